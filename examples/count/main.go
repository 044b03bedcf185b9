// Command count is the README's example job: datagen → key by account →
// keyed running count → exactly-once file sink. Run it with
// `go run ./examples/count`; it stops itself with a final checkpoint after
// five seconds (or at Ctrl-C).
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/connector/datagen"
	"github.com/sluicehq/sluice/connector/file"
	"github.com/sluicehq/sluice/restart"
	"github.com/sluicehq/sluice/state"
)

// Count is one output: a key and how many records of it were seen.
type Count struct {
	Key string
	N   int64
}

// counter is a keyed process function: a running count per key, in keyed state.
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

func run(ctx context.Context) error {
	env := sluice.New(sluice.Config{
		JobName:       "count",
		Parallelism:   2,
		Checkpoint:    checkpoint.Config{Interval: time.Second}, // exactly-once by default
		CheckpointDir: "data/checkpoints/count",
		Restart:       restart.ExponentialDelay{MaxBackoff: 30 * time.Second}, // the default policy, capped lower
	})
	in := sluice.FromSource(env, "datagen", datagen.New(datagen.Config{Keys: 1000, RatePerSecond: 1e5}))
	keyed := sluice.KeyBy(in, func(r datagen.Record) string { return r.Key })
	counts := sluice.Process(keyed, "count", func() sluice.KeyedProcessFunction[string, datagen.Record, Count] {
		return &counter{} // one per subtask
	})
	sluice.Sink(counts, "sink", file.NewSink(file.Config[Count]{Dir: "out", Encode: func(dst []byte, c Count) []byte {
		return fmt.Appendf(dst, "%s,%d\n", c.Key, c.N)
	}}))
	go func() {
		<-ctx.Done()
		env.Stop() // a final checkpoint commits the output
	}()
	res, err := env.Execute(context.Background())
	if err == nil {
		fmt.Printf("done: %d checkpoints, output in ./out\n", res.Checkpoints)
	}
	return err
}

func main() {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	ctx, cancel2 := context.WithTimeout(ctx, 5*time.Second)
	defer cancel2()
	if err := run(ctx); err != nil {
		log.Fatal(err)
	}
}
