package benchjob

import (
	"context"
	"testing"
	"time"
)

// The `go test -bench` twins of `sluice bench`. b.N is the number of input
// records; the figures are records/s and the longest synchronous snapshot
// pause. Run: go test -run XXX -bench . -benchtime 20000000x ./internal/benchjob/
func benchPipeline(b *testing.B, pipeline string, keys int, interval time.Duration) {
	benchRun(b, Options{Pipeline: pipeline, Keys: keys, CheckpointInterval: interval})
}

// benchRun runs o with b.N records at parallelism 2.
func benchRun(b *testing.B, o Options) {
	o.Records, o.Parallelism, o.Dir = int64(max(b.N, 4)), 2, b.TempDir()
	r, err := Run(context.Background(), o)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(r.RecordsPerSec, "records/s")
	b.ReportMetric(r.RecordsPerCPUSec, "records/cpu-s")
	b.ReportMetric(float64(r.MaxSyncPause.Microseconds()), "max-sync-µs")
	b.ReportMetric(float64(r.PeakRSS>>20), "peak-RSS-MB")
}

func BenchmarkStateless(b *testing.B)             { benchPipeline(b, Stateless, 1, 0) }
func BenchmarkStatelessCheckpointed(b *testing.B) { benchPipeline(b, Stateless, 1, time.Second) }
func BenchmarkKeyedSum(b *testing.B)              { benchPipeline(b, KeyedSum, 1_000_000, 0) }
func BenchmarkKeyedSumCheckpointed(b *testing.B)  { benchPipeline(b, KeyedSum, 1_000_000, time.Second) }

// The window pipelines, with checkpoints every second: a 10s tumbling
// count over 1M keys, and a 10s window sliding by 1s over 100k keys
// (each record updates ten windows, so 1M live window states).
func BenchmarkTumblingCheckpointed(b *testing.B) { benchPipeline(b, Tumbling, 1_000_000, time.Second) }
func BenchmarkSlidingCheckpointed(b *testing.B)  { benchPipeline(b, Sliding, 100_000, time.Second) }

// BenchmarkTumblingCheckpointedPlainKeys is the tumbling count without
// datagen's key prefetch (Options.PlainKeys): each key's first read, the
// partitioner's hash, misses the cache on the generator's key table.
func BenchmarkTumblingCheckpointedPlainKeys(b *testing.B) {
	benchRun(b, Options{Pipeline: Tumbling, Keys: 1_000_000, CheckpointInterval: time.Second, PlainKeys: true})
}

// TestPipelinesRun keeps the benchmark pipelines working in the normal test
// run (small input, no timing).
func TestPipelinesRun(t *testing.T) {
	t.Parallel()
	for _, p := range []string{Stateless, KeyedSum, Tumbling, Sliding} {
		r, err := Run(context.Background(), Options{Pipeline: p, Records: 20_000, Keys: 1000, Parallelism: 2, CheckpointInterval: 10 * time.Millisecond, Dir: t.TempDir()})
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if r.Checkpoints < 1 {
			t.Fatalf("%s: no checkpoint completed", p)
		}
	}
}
