package benchjob

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/connector/datagen"
	"github.com/sluicehq/sluice/restart"
)

// checkpointsUnderBackpressure runs datagen → map → a sink that takes 1 ms
// a record (about 1000 records/s), with batches of 256 records and edges of
// 16 batches: about 11,000 records, 11 s of the sink's work, are queued
// between the source and the sink, and the source is backpressured all the
// time. It returns the durations of the first n periodic checkpoints
// (triggered every second) once the edges are full.
func checkpointsUnderBackpressure(tb testing.TB, ck checkpoint.Config, n int) []time.Duration {
	ck.Interval = time.Second
	ck.MinPause = 10 * time.Millisecond
	var mu sync.Mutex
	var durs []time.Duration
	done := make(chan struct{})
	env := sluice.New(sluice.Config{
		JobName: "backpressure", Parallelism: 1, BatchSize: 256, ChannelCapacity: 16,
		Checkpoint: ck, CheckpointDir: filepath.Join(tb.TempDir(), "checkpoints"),
		Restart: restart.None{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	warm := time.Now().Add(3 * time.Second) // the edges are full by then
	env.OnCheckpointComplete(func(cs checkpoint.CheckpointStats) {
		mu.Lock()
		defer mu.Unlock()
		if cs.Kind != checkpoint.KindCheckpoint || cs.Stop || cs.TriggeredAt.Before(warm) || len(durs) >= n {
			return
		}
		if cs.Status != checkpoint.StatusCompleted {
			tb.Errorf("checkpoint %d %s", cs.ID, cs.Status)
		}
		durs = append(durs, cs.Duration)
		if len(durs) == n {
			close(done)
		}
	})
	src := sluice.FromSource(env, "datagen", datagen.New(datagen.Config{Splits: 1, Keys: 1000}), sluice.WithCodec(datagen.RecordCodec))
	mapped := sluice.Map(src, "value", func(r datagen.Record) int64 { return r.Value }, sluice.StartNewChain())
	sluice.Sink(mapped, "slow-sink", sluice.SinkFunc[int64](func(int64) error {
		time.Sleep(time.Millisecond)
		return nil
	}), sluice.StartNewChain())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := env.Execute(ctx)
		errc <- err
	}()
	select {
	case <-done:
	case err := <-errc:
		tb.Fatalf("job ended: %v", err)
	}
	cancel() // no final checkpoint: it would wait for the queued records
	<-errc
	mu.Lock()
	defer mu.Unlock()
	return durs
}

// BenchmarkCheckpointUnderBackpressure measures how long a checkpoint takes
// behind full edges (docs/design.md §3 "Unaligned checkpoints"): aligned,
// the barrier waits behind every queued record; unaligned, it overtakes
// them and they are stored as channel state. Each iteration measures 3
// checkpoints; the metric is the slowest. Run:
//
//	go test -run XXX -bench CheckpointUnderBackpressure -benchtime 1x ./internal/benchjob/
func BenchmarkCheckpointUnderBackpressure(b *testing.B) {
	for _, m := range []struct {
		name string
		ck   checkpoint.Config
	}{
		{"aligned", checkpoint.Config{}},
		{"unaligned", checkpoint.Config{Unaligned: true}},
		{"aligned-timeout-200ms", checkpoint.Config{Unaligned: true, AlignedTimeout: 200 * time.Millisecond}},
	} {
		b.Run(m.name, func(b *testing.B) {
			var slowest time.Duration
			for range b.N {
				for _, d := range checkpointsUnderBackpressure(b, m.ck, 3) {
					slowest = max(slowest, d)
				}
			}
			b.ReportMetric(float64(slowest.Milliseconds()), "max-checkpoint-ms")
		})
	}
}
