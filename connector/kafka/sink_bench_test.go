package kafka

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/sluicehq/sluice/connector/datagen"
)

// The speed targets (2 vCPU, embedded broker in the process,
// 100-byte records, 4 partitions, checkpoints every second).
//
//	go test -run '^$' -bench 'BenchmarkSink' -benchtime 2000000x ./connector/kafka/
//
// Each iteration is one record; the job runs to the end of its bounded
// input (including the final checkpoint and its commit), so short runs
// are dominated by start-up: use -benchtime of a few million records.
func BenchmarkSinkExactlyOnce(b *testing.B) { benchSinkJob(b, DeliveryExactlyOnce) }

// BenchmarkSinkAtLeastOnce is BenchmarkSinkExactlyOnce with at-least-once.
func BenchmarkSinkAtLeastOnce(b *testing.B) { benchSinkJob(b, DeliveryAtLeastOnce) }

func benchSinkJob(b *testing.B, delivery string) {
	_, addrs := sinkBroker(b)
	topic := "bench"
	sinkCreateTopic(b, addrs, topic, 4)
	splits := 4
	per := int64(max(b.N/splits, 1))
	gen := datagen.Config{Splits: splits, RecordsPerSplit: per, Keys: 10_000, Seed: 1}
	job := e2eJob{gen: gen, parallelism: runtime.GOMAXPROCS(0), delivery: delivery, interval: time.Second, valueSize: 100}
	b.ResetTimer()
	start := time.Now()
	res := job.run(b, addrs, topic, "bench", b.TempDir())
	elapsed := time.Since(start)
	b.StopTimer()
	n := int64(splits) * per
	b.ReportMetric(float64(n)/elapsed.Seconds(), "records/s")
	b.ReportMetric(float64(res.Checkpoints), "checkpoints")
	// The records are all there (the count, not each one: that is what
	// the tests are for).
	var total int64
	for _, o := range sinkLSO(b, addrs, topic) {
		total += o
	}
	if total < n {
		b.Fatalf("%d records in the topic (counting markers), want at least %d", total, n)
	}
}

// BenchmarkSinkCommitter measures the sink alone, without the engine: one
// subtask writing 100-byte records through the committer with a
// transaction (or flush) every 100,000 records.
func BenchmarkSinkCommitter(b *testing.B) {
	for _, delivery := range []string{DeliveryExactlyOnce, DeliveryAtLeastOnce} {
		b.Run(delivery, func(b *testing.B) {
			_, addrs := sinkBroker(b)
			sinkCreateTopic(b, addrs, "bench", 4)
			cfg := sinkStringConfig(addrs, "bench", "bench")
			cfg.DeliveryGuarantee = delivery
			cfg.Serializer = KeyValueSerializer(
				func(dst []byte, s string) []byte { return append(dst, s[:8]...) },
				func(dst []byte, s string) []byte { return append(dst, s...) })
			ctx := context.Background()
			opCtx := sinkOpCtx("sink", 0, 1, cfg.Logger)
			var c interface {
				BeginTransaction(context.Context) (*Txn, error)
				Write(*Txn, string) error
				PreCommit(context.Context, *Txn) error
				Commit(context.Context, *Txn) error
			}
			if delivery == DeliveryExactlyOnce {
				tc, err := newTxnCommitter(cfg, opCtx)
				if err != nil {
					b.Fatal(err)
				}
				c = tc
			} else {
				c = newFlushCommitter(cfg, opCtx)
			}
			values := make([]string, 1024)
			for i := range values {
				v := fmt.Sprintf("%08d", i)
				for len(v) < 100 {
					v += strconv.Itoa(i % 10)
				}
				values[i] = v
			}
			b.ResetTimer()
			start := time.Now()
			var txn *Txn
			var err error
			for i := range b.N {
				if txn == nil {
					if txn, err = c.BeginTransaction(ctx); err != nil {
						b.Fatal(err)
					}
				}
				if err := c.Write(txn, values[i%len(values)]); err != nil {
					b.Fatal(err)
				}
				if (i+1)%100_000 == 0 || i == b.N-1 {
					if err := c.PreCommit(ctx, txn); err != nil {
						b.Fatal(err)
					}
					if err := c.Commit(ctx, txn); err != nil {
						b.Fatal(err)
					}
					txn = nil
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
		})
	}
}
