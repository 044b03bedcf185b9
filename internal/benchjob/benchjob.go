// Package benchjob holds the benchmark pipelines shared by `sluice bench`
// and the `go test -bench` twins: a stateless chain, a keyed running sum,
// and tumbling and sliding event-time window counts.
package benchjob

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/connector/datagen"
	"github.com/sluicehq/sluice/fault"
	"github.com/sluicehq/sluice/internal/countjob"
	"github.com/sluicehq/sluice/restart"
	"github.com/sluicehq/sluice/state"
	"github.com/sluicehq/sluice/watermark"
	"github.com/sluicehq/sluice/window"
)

// Pipeline names.
const (
	Stateless = "stateless" // datagen → map → filter → discard
	KeyedSum  = "keyed-sum" // datagen → keyBy → keyed running sum → discard
	// Tumbling: datagen with event time (record i of a split at i·10µs,
	// monotonous watermarks) → keyBy → count per key in 10s tumbling
	// windows → discard.
	Tumbling = "tumbling"
	// Sliding: as Tumbling with 10s windows sliding by 1s (every record
	// is in ten windows).
	Sliding = "sliding"
)

// eventTimeStep is the event time between two records of a split in the
// window pipelines: a 10s window holds a million records of each split.
const eventTimeStep = 10 * time.Microsecond

// Options configure one benchmark run.
type Options struct {
	Pipeline    string
	Records     int64 // total input records
	Keys        int   // distinct keys (keyed-sum)
	Parallelism int
	// CheckpointInterval 0 disables periodic checkpoints (a final one is
	// still taken when the bounded input ends).
	CheckpointInterval time.Duration
	Dir                string
	// PlainKeys turns datagen.Config.PrefetchKeys off in the keyed
	// pipelines (it is off in the stateless one, which never reads the key):
	// every key's first read is then a cache miss on the key table, which a
	// source decoding real records would not have.
	PlainKeys bool
	// State is the keyed-state backend's configuration (zero: heap).
	State sluice.StateConfig
	// FailAfter, when positive, injects one failure in the keyed operator
	// after that many of its records, to measure recovery (restart delay 0).
	FailAfter int
	// Attach, when set, is called with the built environment before it
	// executes (to measure an observer's cost, such as a metrics scraper);
	// the function it returns is called once Execute returned.
	Attach func(env *sluice.Environment) (detach func())
}

// Result is what one run measured.
type Result struct {
	Options
	Elapsed       time.Duration
	RecordsPerSec float64
	// CPU is the process's CPU time (user + system, every thread) during
	// the job; RecordsPerCPUSec is the input records over it, the figure
	// that holds up best on a machine shared with other work.
	CPU              time.Duration
	RecordsPerCPUSec float64
	Checkpoints      int64
	// MaxSyncPause is the longest synchronous snapshot part of any task.
	MaxSyncPause time.Duration
	// MaxCheckpoint is the longest trigger-to-complete time.
	MaxCheckpoint time.Duration
	// PeakRSS is the process's peak resident set size (VmHWM), if known.
	PeakRSS int64
	// Restarts and Recovery: how many times the job restarted and how long
	// the last recovery took, from the failure to the tasks running again
	// on restored state.
	Restarts int64
	Recovery time.Duration
}

// Run builds and runs one pipeline to the end of its bounded input.
func Run(ctx context.Context, o Options) (*Result, error) {
	interval := o.CheckpointInterval
	if interval == 0 {
		interval = -1
	}
	splits := 2 * o.Parallelism
	gen := datagen.Config{Splits: splits, RecordsPerSplit: o.Records / int64(splits), Keys: max(o.Keys, 1), Seed: 1,
		PrefetchKeys: o.Pipeline != Stateless && !o.PlainKeys}
	cfg := sluice.Config{
		JobName:       "bench-" + o.Pipeline,
		Parallelism:   o.Parallelism,
		BatchSize:     1024,
		Checkpoint:    checkpoint.Config{Interval: interval},
		CheckpointDir: o.Dir,
		Restart:       restart.None{},
		State:         o.State,
		Logger:        slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
	}
	if o.FailAfter > 0 {
		inj := fault.New(1)
		inj.Arm(fault.Target{Point: fault.OnRecord, UID: "sum", Subtask: 0, Skip: o.FailAfter})
		cfg.Faults = inj
		cfg.Restart = restart.FixedDelay{Attempts: 1, Delay: -1}
	}
	env := sluice.New(cfg)
	var src sluice.Stream[datagen.Record]
	switch o.Pipeline {
	case Tumbling, Sliding:
		src = sluice.FromSourceWithWatermarks(env, "datagen", datagen.New(gen), watermark.ForMonotonousTimestamps(),
			[]sluice.WatermarkOption[datagen.Record]{sluice.WithTimestampAssigner(func(r datagen.Record, _ int64) int64 {
				return r.Seq * int64(eventTimeStep)
			})})
	default:
		src = sluice.FromSource(env, "datagen", datagen.New(gen))
	}
	switch o.Pipeline {
	case Stateless:
		m := sluice.Map(src, "map", func(r datagen.Record) int64 { return r.Value + r.Seq })
		f := sluice.Filter(m, "filter", func(v int64) bool { return v&7 != 0 })
		sluice.Sink(f, "discard", sluice.DiscardSink[int64]())
	case KeyedSum:
		keyed := sluice.KeyBy(src, func(r datagen.Record) string { return r.Key })
		sums := sluice.Process(keyed, "sum", func() sluice.KeyedProcessFunction[string, datagen.Record, countjob.Count] { return &summer{} })
		sluice.Sink(sums, "discard", sluice.DiscardSink[countjob.Count]())
	case Tumbling, Sliding:
		a := window.Tumbling(10*time.Second, 0)
		if o.Pipeline == Sliding {
			a = window.Sliding(10*time.Second, time.Second, 0)
		}
		keyed := sluice.KeyBy(src, func(r datagen.Record) string { return r.Key })
		counts := sluice.WindowAggregate(sluice.Window(keyed, a), "sum", sluice.AggregateFunction[datagen.Record, int64, int64](counter{}), codec.Int64)
		sluice.Sink(counts, "discard", sluice.DiscardSink[int64]())
	default:
		return nil, fmt.Errorf("pipeline: unknown %q (want %s, %s, %s or %s)", o.Pipeline, Stateless, KeyedSum, Tumbling, Sliding)
	}
	if o.Attach != nil {
		defer o.Attach(env)()
	}
	start, cpu0 := time.Now(), processCPU()
	res, err := env.Execute(ctx)
	if err != nil {
		return nil, err
	}
	el, cpu := time.Since(start), processCPU()-cpu0
	n := float64(gen.RecordsPerSplit * int64(splits))
	r := &Result{Options: o, Elapsed: el, RecordsPerSec: n / el.Seconds(), Checkpoints: res.Checkpoints, PeakRSS: PeakRSS(),
		Restarts: res.Restarts, Recovery: res.Status.LastRecovery, CPU: cpu}
	if cpu > 0 {
		r.RecordsPerCPUSec = n / cpu.Seconds()
	}
	if cs := res.Status.Checkpoints; cs != nil {
		for _, h := range cs.History {
			r.MaxSyncPause = max(r.MaxSyncPause, h.MaxSyncDuration)
			if h.Status == checkpoint.StatusCompleted {
				r.MaxCheckpoint = max(r.MaxCheckpoint, h.Duration)
			}
		}
	}
	return r, nil
}

// summer is a keyed running sum of record values.
type summer struct{ sum state.ValueState[int64] }

func (s *summer) Open(rc *sluice.RuntimeContext[string]) error {
	var err error
	s.sum, err = sluice.NewValueState(rc, "sum", codec.Int64)
	return err
}

func (s *summer) ProcessElement(r datagen.Record, pc *sluice.ProcessContext[string, countjob.Count]) error {
	v, _ := s.sum.Value()
	v += r.Value
	s.sum.Update(v)
	pc.Collect(countjob.Count{Key: r.Key, N: v})
	return nil
}

// counter counts a window's records.
type counter struct{}

func (counter) CreateAccumulator() int64            { return 0 }
func (counter) Add(_ datagen.Record, n int64) int64 { return n + 1 }
func (counter) Merge(a, b int64) int64              { return a + b }
func (counter) Result(n int64) int64                { return n }

// PeakRSS returns the process's peak resident set size in bytes (Linux
// VmHWM), or 0 where unknown.
func PeakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}
