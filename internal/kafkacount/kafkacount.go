// Package kafkacount is the count job on Kafka, behind `sluice demo`,
// `sluice run count` and `sluice verify`: Kafka source → key by record key →
// keyed running count → Kafka sink. Its contract is the core count job's:
// for every input record it emits one output record whose key is the input
// key and whose value is the decimal count n of that key's records so far,
// so exactly-once holds iff for every key the committed outputs are exactly
// 1..n_k, once each.
package kafkacount

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/connector/kafka"
	"github.com/sluicehq/sluice/fault"
	"github.com/sluicehq/sluice/internal/countjob"
	"github.com/sluicehq/sluice/internal/verify"
	"github.com/sluicehq/sluice/restart"
)

// Operator uids of the job.
const (
	SourceUID = "kafka-source"
	CountUID  = countjob.CountUID
	SinkUID   = "kafka-sink"
)

// Options configure the job.
type Options struct {
	Brokers       []string
	Input, Output string
	// GroupID receives the job's offsets after each checkpoint, for lag
	// monitoring. Default "sluice-count".
	GroupID string
	// TxnPrefix starts the sink's transactional ids. Default
	// "sluice-count-<output>".
	TxnPrefix          string
	Parallelism        int
	CheckpointInterval time.Duration
	MinPause           time.Duration
	// BufferTimeout is sluice.Config.BufferTimeout. Default 100ms.
	BufferTimeout time.Duration
	// Delivery is exactly-once (default) or at-least-once; it sets both
	// the checkpointing mode and the sink's guarantee.
	Delivery string
	// TransactionTimeout is the sink's transaction timeout
	// (kafka.sink.transaction-timeout). Default the sink's, 15m.
	TransactionTimeout time.Duration
	// AcceptLostTransactions goes on after restored transactions that
	// can no longer be committed (kafka.SinkConfig.AcceptLostTransactionsOnRestore).
	AcceptLostTransactions bool
	CheckpointDir          string
	// FromCheckpoint restores this checkpoint or savepoint instead of the
	// latest checkpoint in CheckpointDir (sluice.Config.FromCheckpoint).
	FromCheckpoint string
	// SavepointDir is sluice.Config.SavepointDir: where savepoints go.
	SavepointDir string
	// AllowNonRestoredState and AllowSourceChange relax the restore
	// compatibility checks, as sluice.Config's fields of those names
	// (docs/design.md §10).
	AllowNonRestoredState bool
	AllowSourceChange     bool
	// Restart is the restart policy; nil means restart.Default().
	Restart restart.Policy
	// State is sluice.Config.State: the keyed-state backend.
	State  sluice.StateConfig
	Faults *fault.Injector
	Logger *slog.Logger
	Seed   int64
}

// New builds the job.
func New(o Options) (*sluice.Environment, error) {
	if o.GroupID == "" {
		o.GroupID = "sluice-count"
	}
	if o.TxnPrefix == "" {
		o.TxnPrefix = "sluice-count-" + o.Output
	}
	if o.Input != "" && o.Input == o.Output {
		return nil, fmt.Errorf("output: the output topic must differ from the input topic %q (the job would read its own output)", o.Input)
	}
	if o.Delivery == "" {
		o.Delivery = kafka.DeliveryExactlyOnce
	}
	mode := checkpoint.ExactlyOnce
	switch o.Delivery {
	case kafka.DeliveryExactlyOnce:
	case kafka.DeliveryAtLeastOnce:
		mode = checkpoint.AtLeastOnce
	default:
		return nil, fmt.Errorf("delivery: must be exactly-once or at-least-once, got %q", o.Delivery)
	}
	env := sluice.New(sluice.Config{
		JobName:               "count",
		Parallelism:           o.Parallelism,
		BufferTimeout:         o.BufferTimeout,
		Checkpoint:            checkpoint.Config{Interval: o.CheckpointInterval, MinPause: o.MinPause, Mode: mode},
		CheckpointDir:         o.CheckpointDir,
		FromCheckpoint:        o.FromCheckpoint,
		SavepointDir:          o.SavepointDir,
		AllowNonRestoredState: o.AllowNonRestoredState,
		AllowSourceChange:     o.AllowSourceChange,
		Restart:               o.Restart,
		State:                 o.State,
		Faults:                o.Faults,
		Logger:                o.Logger,
		Seed:                  o.Seed,
	})
	src, err := kafka.NewSource(kafka.SourceConfig[kafka.Record]{
		Brokers: o.Brokers, Topics: []string{o.Input}, GroupID: o.GroupID,
		StartOffsets: kafka.StartEarliest, Deserializer: kafka.Records(),
	})
	if err != nil {
		return nil, err
	}
	maxDelay := maxRestartDelay(o.Restart)
	sink, err := kafka.NewSink(kafka.SinkConfig[countjob.Count]{
		Brokers: o.Brokers, Topic: o.Output,
		Serializer: kafka.KeyValueSerializer(
			func(dst []byte, c countjob.Count) []byte { return append(dst, c.Key...) },
			func(dst []byte, c countjob.Count) []byte { return strconv.AppendInt(dst, c.N, 10) }),
		DeliveryGuarantee:     o.Delivery,
		TransactionalIDPrefix: o.TxnPrefix,
		CheckpointInterval:    o.CheckpointInterval,
		MaxRestartDelay:       max(maxDelay, 0),
		TransactionTimeout:    o.TransactionTimeout,

		AcceptLostTransactionsOnRestore: o.AcceptLostTransactions,
	})
	if err != nil {
		return nil, err
	}
	in := sluice.FromSource(env, SourceUID, src)
	keyed := sluice.KeyBy(in, func(r kafka.Record) string { return string(r.Key) })
	counts := sluice.Process(keyed, CountUID, countjob.NewCounter[kafka.Record])
	sluice.Sink(counts, SinkUID, sink)
	return env, nil
}

// maxRestartDelay is the longest wait between a failure and the next
// attempt under p: how long the sink's transactions must outlive a failure.
func maxRestartDelay(p restart.Policy) time.Duration {
	switch p := p.(type) {
	case restart.FixedDelay:
		return p.WithDefaults().Delay
	case restart.FailureRate:
		return p.WithDefaults().Delay
	case restart.None:
		return 0
	case restart.ExponentialDelay:
		return p.WithDefaults().MaxBackoff
	case nil:
		return restart.ExponentialDelay{}.WithDefaults().MaxBackoff
	}
	return restart.ExponentialDelay{}.WithDefaults().MaxBackoff // a user's own policy: assume the default's bound
}

// EnsureTopics creates the topics that do not exist yet, with partitions
// partitions each.
func EnsureTopics(ctx context.Context, brokers []string, partitions int32, topics ...string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	resp, err := adm.CreateTopics(ctx, partitions, 1, nil, topics...)
	if err != nil {
		return fmt.Errorf("create topics %v: %w", topics, err)
	}
	for _, r := range resp.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, errTopicExists) {
			return fmt.Errorf("create topic %s: %w", r.Topic, r.Err)
		}
	}
	// Apache Kafka answers UNKNOWN_TOPIC_OR_PARTITION for a moment after
	// creating a topic: wait until every partition has a leader.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		md, err := adm.Metadata(ctx, topics...)
		if err == nil && topicsReady(md, topics) {
			return nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("topics %v not ready: %w", topics, ctx.Err())
		}
	}
}

func topicsReady(md kadm.Metadata, topics []string) bool {
	for _, t := range topics {
		td, ok := md.Topics[t]
		if !ok || td.Err != nil || len(td.Partitions) == 0 {
			return false
		}
		for _, p := range td.Partitions {
			if p.Leader < 0 || p.Err != nil {
				return false
			}
		}
	}
	return true
}

// Check reads the input topic and the output topic to their last stable
// offsets (read_committed) and checks the output against the count job's
// contract.
func Check(ctx context.Context, brokers []string, input, output string) (verify.Report, error) {
	expected := map[string]int64{}
	if err := ReadTopic(ctx, brokers, input, func(r *kgo.Record) error {
		expected[string(r.Key)]++
		return nil
	}); err != nil {
		return verify.Report{}, fmt.Errorf("read input %s: %w", input, err)
	}
	type kv struct {
		k string
		n int64
	}
	var outs []kv
	if err := ReadTopic(ctx, brokers, output, func(r *kgo.Record) error {
		n, err := strconv.ParseInt(string(r.Value), 10, 64)
		if err != nil {
			return fmt.Errorf("%s/%d@%d: value %q is not a count", r.Topic, r.Partition, r.Offset, r.Value)
		}
		outs = append(outs, kv{string(r.Key), n})
		return nil
	}); err != nil {
		return verify.Report{}, fmt.Errorf("read output %s: %w", output, err)
	}
	return verify.Counts(expected, func(yield func(string, int64) bool) {
		for _, o := range outs {
			if !yield(o.k, o.n) {
				return
			}
		}
	}), nil
}
