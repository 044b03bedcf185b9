package kafka_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/connector/kafka"
	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkSourceReadCommitted reads 100-byte records from 4 partitions,
// written in transactions of 10,000 records (as an exactly-once sink with
// a checkpoint a second would), read_committed, into a sink that only
// counts, on the in-process kfake broker. It reports records/s from the
// job's start to its last record (the final checkpoint is not counted).
//
//	go test -run '^$' -bench BenchmarkSourceReadCommitted -benchtime 3x ./connector/kafka/
func BenchmarkSourceReadCommitted(b *testing.B) {
	const (
		partitions = 4
		perTxn     = 10_000
		total      = 1_000_000
	)
	c := srcCluster(b, partitions, "bench")
	prod := srcProducer(b, c, kgo.TransactionalID("bench"), kgo.ProducerBatchMaxBytes(1<<20))
	value := make([]byte, 100)
	ctx := context.Background()
	for written := 0; written < total; written += perTxn {
		if err := prod.BeginTransaction(); err != nil {
			b.Fatal(err)
		}
		for i := range perTxn {
			prod.Produce(ctx, &kgo.Record{Topic: "bench", Partition: int32(i % partitions), Value: value}, nil)
		}
		if err := prod.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		if err := prod.EndTransaction(ctx, kgo.TryCommit); err != nil {
			b.Fatal(err)
		}
	}
	for _, par := range []int{1, 2} {
		b.Run(fmt.Sprintf("parallelism=%d", par), func(b *testing.B) {
			var rate float64
			for range b.N {
				rate += srcBenchRun(b, c, par, total)
			}
			b.ReportMetric(rate/float64(b.N), "records/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// srcBenchRun reads total records once and returns records/s.
func srcBenchRun(b *testing.B, c interface{ ListenAddrs() []string }, par, total int) float64 {
	cfg := kafka.SourceConfig[[]byte]{
		Brokers: c.ListenAddrs(), Topics: []string{"bench"}, Deserializer: kafka.Bytes(),
		ClientOpts: srcClientOpts(),
	}
	src, err := kafka.NewSource(cfg)
	if err != nil {
		b.Fatal(err)
	}
	env := sluice.New(sluice.Config{
		JobName: "bench", Parallelism: par, CheckpointDir: b.TempDir(), Logger: srcLogger(),
	})
	var n atomic.Int64
	var end time.Time
	var once sync.Once
	sluice.Sink(sluice.FromSource(env, "kafka", src), "discard", sluice.SinkFunc[[]byte](func([]byte) error {
		if n.Add(1) == int64(total) {
			once.Do(func() {
				end = time.Now()
				env.Stop()
			})
		}
		return nil
	}))
	j := &srcJob[[]byte]{env: env}
	start := time.Now()
	if _, err := j.run(b, 2*time.Minute); err != nil {
		b.Fatal(err)
	}
	if got := n.Load(); got != int64(total) {
		b.Fatalf("read %d records, want %d", got, total)
	}
	return float64(total) / end.Sub(start).Seconds()
}
