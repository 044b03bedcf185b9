package benchjob

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/broker"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/connector/datagen"
	"github.com/sluicehq/sluice/connector/kafka"
	"github.com/sluicehq/sluice/internal/kafkacount"
	"github.com/sluicehq/sluice/restart"
)

// Kafka pipeline names (100-byte values, 4 partitions, checkpoints every
// second).
const (
	KafkaSource      = "kafka-source"        // Kafka source (read_committed) → discard
	KafkaExactlyOnce = "kafka-exactly-once"  // datagen → map → exactly-once Kafka sink
	KafkaAtLeastOnce = "kafka-at-least-once" // datagen → map → at-least-once Kafka sink
)

// KafkaOptions configure a Kafka benchmark run.
type KafkaOptions struct {
	Pipeline    string
	Records     int64
	Parallelism int
	// Brokers of a Kafka cluster; empty starts the embedded broker in this
	// process.
	Brokers []string
	Dir     string
}

// RunKafka runs one Kafka pipeline and returns its throughput in records/s.
func RunKafka(ctx context.Context, o KafkaOptions) (float64, error) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	brokers := o.Brokers
	if len(brokers) == 0 {
		b, err := broker.Start(ctx, broker.Config{Port: 0, Ephemeral: true, Logger: quiet})
		if err != nil {
			return 0, err
		}
		defer b.Close()
		brokers = b.Addrs()
	}
	topic := fmt.Sprintf("bench-%s-%d", o.Pipeline, time.Now().UnixNano())
	if err := kafkacount.EnsureTopics(ctx, brokers, 4, topic); err != nil {
		return 0, err
	}
	env := sluice.New(sluice.Config{
		JobName: "bench-" + o.Pipeline, Parallelism: o.Parallelism, BatchSize: 1024,
		Checkpoint:    checkpoint.Config{Interval: time.Second},
		CheckpointDir: o.Dir, Restart: restart.None{}, Logger: quiet,
	})
	value := make([]byte, 100)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	switch o.Pipeline {
	case KafkaSource:
		if err := fill(ctx, brokers, topic, o.Records, value); err != nil {
			return 0, err
		}
		src, err := kafka.NewSource(kafka.SourceConfig[[]byte]{Brokers: brokers, Topics: []string{topic}, Deserializer: kafka.Bytes()})
		if err != nil {
			return 0, err
		}
		var seen atomic.Int64
		in := sluice.FromSource(env, "kafka", src)
		sluice.Sink(in, "count", sluice.SinkFunc[[]byte](func([]byte) error {
			if seen.Add(1) == o.Records {
				env.Stop()
			}
			return nil
		}))
	case KafkaExactlyOnce, KafkaAtLeastOnce:
		delivery := kafka.DeliveryExactlyOnce
		if o.Pipeline == KafkaAtLeastOnce {
			delivery = kafka.DeliveryAtLeastOnce
		}
		splits := 2 * o.Parallelism
		gen := datagen.Config{Splits: splits, RecordsPerSplit: o.Records / int64(splits), Keys: 10_000, Seed: 1}
		sink, err := kafka.NewSink(kafka.SinkConfig[datagen.Record]{
			Brokers: brokers, Topic: topic, DeliveryGuarantee: delivery, TransactionalIDPrefix: topic,
			CheckpointInterval: time.Second,
			Serializer: kafka.KeyValueSerializer(
				func(dst []byte, r datagen.Record) []byte { return append(dst, r.Key...) },
				func(dst []byte, r datagen.Record) []byte {
					dst = strconv.AppendInt(dst, r.Seq, 10)
					return append(dst, value[:100-len(dst)%100]...)
				}),
		})
		if err != nil {
			return 0, err
		}
		in := sluice.FromSource(env, "datagen", datagen.New(gen))
		m := sluice.Map(in, "map", func(r datagen.Record) datagen.Record { r.Value++; return r })
		sluice.Sink(m, "kafka", sink)
	default:
		return 0, fmt.Errorf("pipeline: unknown %q", o.Pipeline)
	}
	start := time.Now()
	if _, err := env.Execute(ctx); err != nil {
		return 0, err
	}
	return float64(o.Records) / time.Since(start).Seconds(), nil
}

// fill writes n records of value into topic, committed, before the source
// benchmark starts.
func fill(ctx context.Context, brokers []string, topic string, n int64, value []byte) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic), kgo.ProducerBatchMaxBytes(1<<20))
	if err != nil {
		return err
	}
	defer cl.Close()
	for i := int64(0); i < n; i++ {
		cl.Produce(ctx, &kgo.Record{Key: strconv.AppendInt(nil, i%10_000, 10), Value: value}, nil)
	}
	return cl.Flush(ctx)
}
