// Command eventtime counts records per key in one-second buckets of event
// time, with event-time timers: the bucket of a record is taken from its
// timestamp, not from the clock, so the result is the same however fast
// or slow the input arrives and after any restore. Records arrive out of
// order (by at most 8 ms); a bounded-out-of-orderness watermark of 10 ms
// says when a bucket is complete, and its timer emits the bucket's count.
// The end of the bounded input emits the final watermark, which fires the
// last buckets. Run it with `go run ./examples/eventtime`.
//
// (The windows operator of issue 7 will offer this as a tumbling window;
// this is the keyed-process-function form Flink users write by hand.)
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/connector/datagen"
	"github.com/sluicehq/sluice/restart"
	"github.com/sluicehq/sluice/state"
	"github.com/sluicehq/sluice/watermark"
)

// bucket is one second of event time, in nanoseconds.
const bucket = int64(time.Second)

// epoch is the event time of the first record of every split.
var epoch = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).UnixNano()

// eventTime gives record seq of a split a timestamp 1 ms after the one
// before, shifted back by up to 8 ms so that the input is out of order.
func eventTime(r datagen.Record, _ int64) int64 {
	return epoch + r.Seq*int64(time.Millisecond) - (r.Seq%5)*2*int64(time.Millisecond)
}

// Count is one output: how many records of Key fell into the bucket that
// starts at Start.
type Count struct {
	Key   string
	Start time.Time
	N     int64
}

// bucketCounter keeps a count per open bucket in keyed MapState and emits a
// bucket when the watermark passes its end.
type bucketCounter struct{ counts state.MapState[int64, int64] }

func (c *bucketCounter) Open(rc *sluice.RuntimeContext[string]) (err error) {
	c.counts, err = sluice.NewMapState(rc, "counts", codec.Int64, codec.Int64)
	return err
}

func (c *bucketCounter) ProcessElement(_ datagen.Record, pc *sluice.ProcessContext[string, Count]) error {
	ts := pc.Timestamp()
	start := ts - ts%bucket
	if start+bucket-1 <= pc.CurrentWatermark() {
		return nil // later than the watermark allows: a real job would send it to a side output
	}
	n, _ := c.counts.Get(start)
	c.counts.Put(start, n+1)
	pc.RegisterEventTimeTimer(start + bucket - 1) // one timer per key and bucket: registering again is a no-op
	return nil
}

func (c *bucketCounter) OnTimer(at time.Time, pc *sluice.ProcessContext[string, Count]) error {
	start := at.UnixNano() - (bucket - 1)
	n, _ := c.counts.Get(start)
	c.counts.Remove(start)
	pc.Collect(Count{pc.CurrentKey(), time.Unix(0, start).UTC(), n})
	return nil
}

func run(ctx context.Context, dir string) ([]Count, error) {
	env := sluice.New(sluice.Config{
		JobName:       "eventtime",
		Parallelism:   2,
		CheckpointDir: dir,
		Restart:       restart.None{},
	})
	src := datagen.New(datagen.Config{Splits: 2, Keys: 3, RecordsPerSplit: 3000, Seed: 7})
	in := sluice.FromSourceWithWatermarks(env, "datagen", src,
		watermark.ForBoundedOutOfOrderness(10*time.Millisecond),
		[]sluice.WatermarkOption[datagen.Record]{sluice.WithTimestampAssigner(eventTime)})
	keyed := sluice.KeyBy(in, func(r datagen.Record) string { return r.Key })
	counts := sluice.Process(keyed, "buckets", func() sluice.KeyedProcessFunction[string, datagen.Record, Count] {
		return &bucketCounter{}
	})
	var mu sync.Mutex
	var out []Count
	sluice.Sink(counts, "collect", sluice.SinkFunc[Count](func(c Count) error {
		mu.Lock()
		defer mu.Unlock()
		out = append(out, c)
		return nil
	}))
	if _, err := env.Execute(ctx); err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Start.Equal(out[j].Start) {
			return out[i].Start.Before(out[j].Start)
		}
		return out[i].Key < out[j].Key
	})
	return out, nil
}

func main() {
	dir, err := os.MkdirTemp("", "sluice-eventtime-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	out, err := run(context.Background(), dir)
	if err != nil {
		log.Fatal(err)
	}
	var total int64
	for _, c := range out {
		fmt.Printf("%s %s %d\n", c.Start.Format(time.TimeOnly), c.Key, c.N)
		total += c.N
	}
	fmt.Printf("%d buckets, %d records\n", len(out), total)
}
