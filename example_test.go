package sluice_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/connector/datagen"
	"github.com/sluicehq/sluice/restart"
	"github.com/sluicehq/sluice/state"
	"github.com/sluicehq/sluice/watermark"
)

// exampleEnv returns an environment for a small bounded job, with its
// checkpoints in a fresh temporary directory, and a function that removes it.
func exampleEnv() (*sluice.Environment, func()) {
	dir, err := os.MkdirTemp("", "sluice-example-")
	if err != nil {
		log.Fatal(err)
	}
	env := sluice.New(sluice.Config{
		JobName:       "example",
		Parallelism:   1,
		CheckpointDir: dir,
		Restart:       restart.None{},
		Logger:        slog.New(slog.DiscardHandler),
	})
	return env, func() { os.RemoveAll(dir) }
}

// exampleInput is bounded datagen input: one split of eight records whose
// keys cycle through k000000, k000001, k000002 and whose values are 0 to 7.
func exampleInput(env *sluice.Environment) sluice.Stream[datagen.Record] {
	in := sluice.FromSource(env, "input", datagen.New(datagen.Config{
		Splits: 1, RecordsPerSplit: 8, Keys: 3, Distribution: datagen.Sequential,
	}))
	return sluice.Map(in, "value-is-seq", func(r datagen.Record) datagen.Record { r.Value = r.Seq; return r })
}

// collect is a sink that keeps what it receives, for printing after the
// job ended.
type collect[T any] struct {
	mu  sync.Mutex
	got []T
}

func (c *collect[T]) sink() sluice.SinkFunc[T] {
	return func(v T) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.got = append(c.got, v)
		return nil
	}
}

// A stateless job on bounded input: Map and Filter. Execute returns once the
// input is exhausted and a final checkpoint completed.
func ExampleMap() {
	env, cleanup := exampleEnv()
	defer cleanup()
	in := exampleInput(env)
	even := sluice.Filter(in, "even", func(r datagen.Record) bool { return r.Seq%2 == 0 })
	lines := sluice.Map(even, "format", func(r datagen.Record) string { return fmt.Sprintf("%d:%s", r.Seq, r.Key) })
	var out collect[string]
	sluice.Sink(lines, "print", out.sink())

	res, err := env.Execute(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(out.got)
	fmt.Println("final checkpoint:", res.LastCheckpoint != nil)
	// Output:
	// [0:k000000 2:k000002 4:k000001 6:k000000]
	// final checkpoint: true
}

// A sink whose subtasks each keep their own row count: SubtaskSinkFunc
// makes each subtask's function when it opens, so no count is shared.
func ExampleSubtaskSinkFunc() {
	env, cleanup := exampleEnv()
	defer cleanup()
	var mu sync.Mutex
	perSubtask := map[int]int{}
	sluice.Sink(exampleInput(env), "count", sluice.SubtaskSinkFunc[datagen.Record](
		func(oc *sluice.OperatorContext) (sluice.SinkFunc[datagen.Record], error) {
			n := 0 // this subtask's alone
			return func(datagen.Record) error {
				n++
				mu.Lock()
				perSubtask[oc.Subtask] = n
				mu.Unlock()
				return nil
			}, nil
		}))
	if _, err := env.Execute(context.Background()); err != nil {
		log.Fatal(err)
	}
	fmt.Println(perSubtask)
	// Output:
	// map[0:8]
}

// exampleCounter counts the records of each key in keyed ValueState: the state is
// per key, checkpointed, and restored after a failure.
type exampleCounter struct{ n state.ValueState[int64] }

func (c *exampleCounter) Open(rc *sluice.RuntimeContext[string]) (err error) {
	c.n, err = sluice.NewValueState(rc, "count", codec.Int64)
	return err
}

func (c *exampleCounter) ProcessElement(_ datagen.Record, pc *sluice.ProcessContext[string, string]) error {
	n, _ := c.n.Value()
	c.n.Update(n + 1)
	pc.Collect(fmt.Sprintf("%s=%d", pc.CurrentKey(), n+1))
	return nil
}

// A keyed process function with ValueState: a running count per key.
func ExampleProcess() {
	env, cleanup := exampleEnv()
	defer cleanup()
	keyed := sluice.KeyBy(exampleInput(env), func(r datagen.Record) string { return r.Key })
	counts := sluice.Process(keyed, "count", func() sluice.KeyedProcessFunction[string, datagen.Record, string] {
		return &exampleCounter{} // one per subtask: the state handle is not shared
	})
	var out collect[string]
	sluice.Sink(counts, "print", out.sink())

	if _, err := env.Execute(context.Background()); err != nil {
		log.Fatal(err)
	}
	fmt.Println(out.got)
	// Output:
	// [k000000=1 k000001=1 k000002=1 k000000=2 k000001=2 k000002=2 k000000=3 k000001=3]
}

// KeyBy and Reduce: a running sum per key, here the parity of the value.
// The running value is keyed state, encoded with the codec given.
func ExampleReduce() {
	env, cleanup := exampleEnv()
	defer cleanup()
	values := sluice.Map(exampleInput(env), "value", func(r datagen.Record) int64 { return r.Value })
	byParity := sluice.KeyBy(values, func(v int64) int64 { return v % 2 })
	sums := sluice.Reduce(byParity, "sum", func(acc, v int64) int64 { return acc + v }, codec.Int64)
	var out collect[int64]
	sluice.Sink(sums, "print", out.sink())

	if _, err := env.Execute(context.Background()); err != nil {
		log.Fatal(err)
	}
	fmt.Println(out.got)
	// Output:
	// [0 1 2 4 6 9 12 16]
}

// exampleSplitter keeps the records with an even value on the main output
// and sends the others to a side output.
type exampleSplitter struct{}

// exampleOdd is the tag of the side output of odd values.
var exampleOdd = sluice.NewOutputTag[int64]("odd")

func (exampleSplitter) Open(*sluice.RuntimeContext[string]) error { return nil }

func (exampleSplitter) ProcessElement(r datagen.Record, pc *sluice.ProcessContext[string, string]) error {
	if r.Value%2 == 0 {
		pc.Collect(fmt.Sprintf("%s:%d", r.Key, r.Value))
	} else {
		sluice.Output(pc, exampleOdd, r.Value)
	}
	return nil
}

// Side outputs: a keyed process function emits to a typed side stream
// with sluice.Output, and SideOutput makes it a stream like any other. A
// tag that no SideOutput consumes costs nothing and its records are
// dropped.
func ExampleSideOutput() {
	env, cleanup := exampleEnv()
	defer cleanup()
	keyed := sluice.KeyBy(exampleInput(env), func(r datagen.Record) string { return r.Key })
	even := sluice.Process(keyed, "split", func() sluice.KeyedProcessFunction[string, datagen.Record, string] {
		return exampleSplitter{}
	})
	odd := sluice.SideOutput(even, exampleOdd)
	var evens collect[string]
	var odds collect[int64]
	sluice.Sink(even, "print-even", evens.sink())
	sluice.Sink(sluice.Map(odd, "times-10", func(v int64) int64 { return v * 10 }), "print-odd", odds.sink())

	if _, err := env.Execute(context.Background()); err != nil {
		log.Fatal(err)
	}
	fmt.Println(evens.got)
	fmt.Println(odds.got)
	// Output:
	// [k000000:0 k000002:2 k000001:4 k000000:6]
	// [10 30 50 70]
}

// Watermark alignment: split 1 runs ahead of split 0 in event time (an
// hour per record against a second), so it pauses whenever its watermark
// is more than a minute ahead of split 0's, until split 0 catches up or
// ends. The records are the same as without alignment; only the order in
// which the splits are read changes.
func ExampleFromSourceWithWatermarks_alignment() {
	env, cleanup := exampleEnv()
	defer cleanup()
	gen := datagen.New(datagen.Config{Splits: 2, RecordsPerSplit: 100})
	eventTime := func(r datagen.Record, _ int64) int64 {
		step := time.Second
		if r.Split == 1 {
			step = time.Hour
		}
		return r.Seq * int64(step)
	}
	strategy := watermark.ForMonotonousTimestamps().
		WithIdleness(time.Minute).
		WithAlignment("input", time.Minute, 100*time.Millisecond)
	in := sluice.FromSourceWithWatermarks(env, "input", gen, strategy,
		[]sluice.WatermarkOption[datagen.Record]{sluice.WithTimestampAssigner(eventTime)})
	var got collect[datagen.Record]
	sluice.Sink(in, "collect", got.sink())

	if _, err := env.Execute(context.Background()); err != nil {
		log.Fatal(err)
	}
	perSplit := [2]int{}
	for _, r := range got.got {
		perSplit[r.Split]++
	}
	fmt.Println(perSplit)
	// Output:
	// [100 100]
}
