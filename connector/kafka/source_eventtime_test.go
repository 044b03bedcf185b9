package kafka_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/connector/kafka"
	"github.com/sluicehq/sluice/restart"
	"github.com/sluicehq/sluice/watermark"
	"github.com/twmb/franz-go/pkg/kgo"
)

// tsFn checks that each record arrives with its Kafka timestamp, registers
// an event-time timer at it and reports firings with the watermark.
type tsFn struct {
	mu    *sync.Mutex
	fired map[string]int64 // "p/i" → watermark at firing
	bad   *[]string
}

func (f *tsFn) Open(*sluice.RuntimeContext[string]) error { return nil }

func (f *tsFn) ProcessElement(v string, pc *sluice.ProcessContext[string, string]) error {
	// v is "p/i", produced with timestamp i seconds after the epoch.
	i, _ := strconv.Atoi(v[strings.IndexByte(v, '/')+1:])
	if want := time.Unix(int64(i), 0).UnixNano(); pc.Timestamp() != want {
		f.mu.Lock()
		*f.bad = append(*f.bad, fmt.Sprintf("%s: timestamp %d, want %d", v, pc.Timestamp(), want))
		f.mu.Unlock()
	}
	pc.RegisterEventTimeTimer(pc.Timestamp())
	return nil
}

func (f *tsFn) OnTimer(at time.Time, pc *sluice.ProcessContext[string, string]) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fired[fmt.Sprintf("%s/%d", pc.CurrentKey(), at.Unix())] = pc.CurrentWatermark()
	return nil
}

// TestSourceEventTime: the Kafka source stamps every record with its Kafka
// timestamp and generates watermarks per partition. Partition 0 runs to
// 20s, partition 1 stops at 5s: the watermark is at most partition 1's,
// 5s-1ns (the minimum over partitions), so the timers up to 4s fire on
// both partitions and none after.
func TestSourceEventTime(t *testing.T) {
	t.Parallel()
	c := srcCluster(t, 2, "events")
	cl := srcProducer(t, c)
	var recs []*kgo.Record
	for p, last := range []int{20, 5} {
		for i := 1; i <= last; i++ {
			recs = append(recs, &kgo.Record{Topic: "events", Partition: int32(p), Value: fmt.Appendf(nil, "%d/%d", p, i), Timestamp: time.Unix(int64(i), 0)})
		}
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	src, err := kafka.NewSource(srcConfig(c, kafka.String(), "events"))
	if err != nil {
		t.Fatal(err)
	}
	env := sluice.New(sluice.Config{
		JobName: "kafka-event-time", Parallelism: 1, CheckpointDir: t.TempDir(),
		Checkpoint: checkpoint.Config{Interval: -1}, Restart: restart.None{},
		BufferTimeout: sluice.FlushAlways, Logger: srcLogger(), WatermarkInterval: 10 * time.Millisecond,
	})
	in := sluice.FromSourceWithWatermarks(env, "kafka", sluice.Source[string](src), watermark.ForMonotonousTimestamps(), nil)
	f := &tsFn{mu: &sync.Mutex{}, fired: map[string]int64{}, bad: new([]string)}
	keyed := sluice.KeyBy(in, func(v string) string { return v[:strings.IndexByte(v, '/')] })
	p := sluice.Process(keyed, "timers", func() sluice.KeyedProcessFunction[string, string, string] { return f })
	sluice.Sink(p, "discard", sluice.DiscardSink[string]())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := env.Execute(ctx); done <- err }()
	want := 8 // 0/1..0/4 and 1/1..1/4
	srcWait(t, "timers up to 4s", 30*time.Second, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.fired) >= want
	})
	env.Stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(*f.bad) > 0 {
		t.Fatalf("wrong timestamps: %v", *f.bad)
	}
	wm := time.Unix(5, 0).UnixNano() - 1
	for p := range 2 {
		for i := 1; i <= 4; i++ {
			// The watermark rises as fetches arrive: a timer fires at one
			// between its time and partition 1's last.
			if got, ok := f.fired[fmt.Sprintf("%d/%d", p, i)]; !ok || got < time.Unix(int64(i), 0).UnixNano() || got > wm {
				t.Errorf("timer %d/%d: fired %v at watermark %d, want in [%ds, %d]", p, i, ok, got, i, wm)
			}
		}
	}
	if len(f.fired) != want {
		t.Fatalf("fired %v: only the timers up to 4s may fire", f.fired)
	}
}
