package sluice_test

import (
	"context"
	"fmt"
	"log"
	"slices"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/connector/datagen"
	"github.com/sluicehq/sluice/watermark"
	"github.com/sluicehq/sluice/window"
)

// exampleCount counts the records of a window.
type exampleCount struct{}

func (exampleCount) CreateAccumulator() int64            { return 0 }
func (exampleCount) Add(_ datagen.Record, n int64) int64 { return n + 1 }
func (exampleCount) Merge(a, b int64) int64              { return a + b }
func (exampleCount) Result(n int64) int64                { return n }

// exampleWindowLabel formats a window's count with the key and bounds.
type exampleWindowLabel struct{}

func (exampleWindowLabel) Process(key string, counts []int64, wc *sluice.WindowContext[string]) error {
	w := wc.Window()
	wc.Collect(fmt.Sprintf("%s [%ds,%ds) %d", key, w.Start/int64(time.Second), w.End/int64(time.Second), counts[0]))
	return nil
}

// A per-key count in tumbling event-time windows of 4 seconds: record i
// is at i seconds, the watermark follows the timestamps, and each window
// fires once the watermark passes its end (the last ones at the end of
// input), with its count aggregated incrementally and labelled by a
// ProcessWindowFunction.
func ExampleWindowAggregateProcess() {
	env, cleanup := exampleEnv()
	defer cleanup()
	in := sluice.FromSourceWithWatermarks(env, "input", datagen.New(datagen.Config{
		Splits: 1, RecordsPerSplit: 8, Keys: 3, Distribution: datagen.Sequential,
	}), watermark.ForMonotonousTimestamps(), []sluice.WatermarkOption[datagen.Record]{
		sluice.WithTimestampAssigner(func(r datagen.Record, _ int64) int64 { return r.Seq * int64(time.Second) }),
	})
	keyed := sluice.KeyBy(in, func(r datagen.Record) string { return r.Key })
	counts := sluice.WindowAggregateProcess(sluice.Window(keyed, window.Tumbling(4*time.Second, 0)), "count",
		sluice.AggregateFunction[datagen.Record, int64, int64](exampleCount{}), codec.Int64,
		func() sluice.ProcessWindowFunction[string, int64, string] { return exampleWindowLabel{} })
	var out collect[string]
	sluice.Sink(counts, "print", out.sink())

	if _, err := env.Execute(context.Background()); err != nil {
		log.Fatal(err)
	}
	slices.Sort(out.got) // windows ending at the same time fire in any key order
	for _, s := range out.got {
		fmt.Println(s)
	}
	// Output:
	// k000000 [0s,4s) 2
	// k000000 [4s,8s) 1
	// k000001 [0s,4s) 1
	// k000001 [4s,8s) 2
	// k000002 [0s,4s) 1
	// k000002 [4s,8s) 1
}
