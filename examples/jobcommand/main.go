// Command jobcommand is a user's job made a program by package job: datagen
// → key by account → keyed running count → exactly-once file sink, with
// the standard subcommands and keys and two keys of its own (keys, output).
//
//	go run ./examples/jobcommand run --checkpoint-dir /tmp/jc/ckpt --output /tmp/jc/out
//	go run ./examples/jobcommand savepoint            # prints the savepoint's path
//	go run ./examples/jobcommand stop --savepoint     # the job exits 0
//	go run ./examples/jobcommand check /tmp/jc/ckpt/savepoints/savepoint-...
//	go run ./examples/jobcommand run --checkpoint-dir /tmp/jc/ckpt --output /tmp/jc/out --from-savepoint PATH
//	go run ./examples/jobcommand describe
//
// Keys come from the command line, SLUICE_KEYS-style environment variables
// or a YAML file (--config job.yaml), in that order of precedence.
package main

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/connector/datagen"
	"github.com/sluicehq/sluice/connector/file"
	"github.com/sluicehq/sluice/job"
	"github.com/sluicehq/sluice/state"
)

// Count is one output: a key and how many records of it were seen.
type Count struct {
	Key string
	N   int64
}

// counter is a keyed process function: a running count per key.
type counter struct{ n state.ValueState[int64] }

func (c *counter) Open(rc *sluice.RuntimeContext[string]) (err error) {
	c.n, err = sluice.NewValueState(rc, "count", codec.Int64)
	return err
}

func (c *counter) ProcessElement(_ datagen.Record, pc *sluice.ProcessContext[string, Count]) error {
	n, _ := c.n.Value()
	c.n.Update(n + 1)
	pc.Collect(Count{pc.CurrentKey(), n + 1})
	return nil
}

// newJob returns the job; main runs it as a command.
func newJob() job.Job {
	var (
		keys     int
		rate     float64
		output   string
		interval time.Duration
	)
	return job.Job{
		Name: "jobcommand",
		Doc:  "datagen → key by account → running count → exactly-once files in --output.",
		Flags: func(fs *flag.FlagSet) {
			fs.IntVar(&keys, "keys", 1000, "number of distinct account keys")
			fs.Float64Var(&rate, "rate", 10_000, "input records per second")
			fs.StringVar(&output, "output", "out", "directory of the committed output files")
			fs.DurationVar(&interval, "checkpoint-interval", time.Second, "checkpoint interval")
		},
		Validate: func(sluice.Config) error {
			var errs []error
			if keys < 1 || keys > datagen.MaxKeys {
				errs = append(errs, fmt.Errorf("keys: must be in 1..%d, got %d", datagen.MaxKeys, keys))
			}
			if rate <= 0 {
				errs = append(errs, fmt.Errorf("rate: must be positive, got %v", rate))
			}
			if interval <= 0 {
				errs = append(errs, fmt.Errorf("checkpoint-interval: must be positive, got %v", interval))
			}
			return errors.Join(errs...)
		},
		Build: func(cfg sluice.Config) (*sluice.Environment, error) {
			cfg.Checkpoint = checkpoint.Config{Interval: interval}
			env := sluice.New(cfg)
			in := sluice.FromSource(env, "datagen", datagen.New(datagen.Config{Keys: keys, RatePerSecond: rate}))
			keyed := sluice.KeyBy(in, func(r datagen.Record) string { return r.Key })
			counts := sluice.Process(keyed, "count", func() sluice.KeyedProcessFunction[string, datagen.Record, Count] {
				return &counter{}
			})
			sluice.Sink(counts, "sink", file.NewSink(file.Config[Count]{Dir: output, Encode: func(dst []byte, c Count) []byte {
				return fmt.Appendf(dst, "%s,%d\n", c.Key, c.N)
			}}))
			return env, nil
		},
	}
}

func main() { job.Main(newJob()) }
