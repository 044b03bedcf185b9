package nexmark

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/connector/kafka"
	"github.com/sluicehq/sluice/watermark"
)

// WriteEvents writes the events cfg describes to topic, generator g's
// events to partition g in order, each record's value in EventCodec and
// its timestamp the event's DateTime, and returns when all are
// acknowledged. It creates the topic with cfg.Generators partitions if it
// does not exist; an existing topic needs at least that many. Run by
// several goroutines, one per generator. opts are added to the client's
// (tests: faster metadata refreshes).
func WriteEvents(ctx context.Context, brokers []string, topic string, cfg GeneratorConfig, opts ...kgo.Opt) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(1 << 20), kgo.MaxBufferedRecords(1 << 16)}, opts...)...)
	if err != nil {
		return fmt.Errorf("nexmark: kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, int32(cfg.Generators), -1, nil, topic); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("nexmark: create topic %s: %w", topic, err)
	}
	parts, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return fmt.Errorf("nexmark: describe topic %s: %w", topic, err)
	}
	if n := len(parts[topic].Partitions); n < cfg.Generators {
		return fmt.Errorf("nexmark: topic %s has %d partitions, fewer than the %d generators (nexmark.generators)", topic, n, cfg.Generators)
	}
	var (
		mu    sync.Mutex
		first error
	)
	done := func(_ *kgo.Record, err error) {
		if err != nil {
			mu.Lock()
			if first == nil {
				first = err
			}
			mu.Unlock()
		}
	}
	ch := sharedChannels(cfg)
	var wg sync.WaitGroup
	for g := range cfg.Generators {
		wg.Go(func() {
			gen := newGenerator(cfg, g, ch)
			var ev Event
			for gen.Next(&ev) && ctx.Err() == nil {
				cl.Produce(ctx, &kgo.Record{Topic: topic, Partition: int32(g), Value: EventCodec.Append(nil, ev),
					Timestamp: time.UnixMilli(ev.DateTime())}, done)
			}
		})
	}
	wg.Wait()
	if err := cl.Flush(ctx); err != nil {
		return fmt.Errorf("nexmark: write events to %s: %w", topic, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if first != nil {
		return fmt.Errorf("nexmark: write events to %s: %w", topic, first)
	}
	return ctx.Err()
}

// KafkaDeserializer decodes a record's value with EventCodec.
var KafkaDeserializer kafka.Deserializer[Event] = kafka.DeserializerFunc[Event](func(r *kgo.Record) (Event, error) {
	e, _, err := EventCodec.Decode(r.Value)
	return e, err
})

// KafkaEvents adds a Kafka source of events written by WriteEvents to env,
// named "nexmark-kafka", with the same event time and watermarks as Events:
// DateTime, 4 s of bounded out-of-orderness per partition. cfg is the
// Kafka source's configuration; its Deserializer is set here.
func KafkaEvents(env *sluice.Environment, cfg kafka.SourceConfig[Event]) (sluice.Stream[Event], error) {
	cfg.Deserializer = KafkaDeserializer
	src, err := kafka.NewSource(cfg)
	if err != nil {
		return sluice.Stream[Event]{}, err
	}
	return sluice.FromSourceWithWatermarks(env, "nexmark-kafka", sluice.Source[Event](src), watermark.ForBoundedOutOfOrderness(OutOfOrderness),
		[]sluice.WatermarkOption[Event]{sluice.WithTimestampAssigner(func(e Event, _ int64) int64 { return e.DateTime() * int64(time.Millisecond) })}), nil
}
