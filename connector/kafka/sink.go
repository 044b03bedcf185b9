// Package kafka connects Sluice jobs to Apache Kafka through franz-go
// (docs/design.md §6–§7): NewSource reads topics, keeping its offsets in
// checkpoints; NewSink writes with delivery guarantee none, at-least-once
// or exactly-once, the latter through Kafka transactions tied to
// checkpoints and committed when a checkpoint completes, so that
// read_committed readers see every record once.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/restart"
)

// The delivery guarantees of SinkConfig.DeliveryGuarantee.
const (
	// DeliveryNone produces asynchronously and never waits: records
	// buffered in the client when a task fails are lost, records replayed
	// after a restart are written again.
	DeliveryNone = "none"
	// DeliveryAtLeastOnce flushes every record to Kafka at each checkpoint
	// barrier before the checkpoint may complete: nothing is lost, records
	// replayed after a restart are written again.
	DeliveryAtLeastOnce = "at-least-once"
	// DeliveryExactlyOnce writes through Kafka transactions tied to
	// checkpoints (docs/design.md §6): a read_committed reader sees every record
	// exactly once.
	DeliveryExactlyOnce = "exactly-once"
)

// Defaults of SinkConfig.
const (
	// DefaultTransactionTimeout is Kafka's default transaction.max.timeout.ms,
	// so the default works against an unconfigured broker.
	DefaultTransactionTimeout = 15 * time.Minute
	// DefaultTxnPoolSize is the number of transactional ids per subtask. Three
	// are busy in steady state (one open, one pre-committed, one committed
	// but still named by the latest checkpoint); two more absorb checkpoints
	// that fail or complete late.
	DefaultTxnPoolSize = 5
	// MinTxnPoolSize is the smallest pool that works in steady state.
	MinTxnPoolSize = 3
	// DefaultSinkRetryTimeout bounds how long one step is retried on
	// retriable errors before the task fails.
	DefaultSinkRetryTimeout = time.Minute
	// DefaultSinkRetryBackoff is the first wait between retries; it doubles up
	// to sinkMaxRetryBackoff.
	DefaultSinkRetryBackoff = 100 * time.Millisecond

	sinkMaxRetryBackoff = 5 * time.Second
)

// The configuration keys of SinkConfig, named in Validate's errors.
const (
	KeySinkBrokers               = "kafka.sink.brokers"
	KeySinkTopic                 = "kafka.sink.topic"
	KeySinkSerializer            = "kafka.sink.serializer"
	KeySinkDeliveryGuarantee     = "kafka.sink.delivery-guarantee"
	KeySinkTransactionalIDPrefix = "kafka.sink.transactional-id-prefix"
	KeySinkTransactionTimeout    = "kafka.sink.transaction-timeout"
	KeySinkPoolSize              = "kafka.sink.pool-size"
	KeySinkRetryTimeout          = "kafka.sink.retry-timeout"
	KeySinkRetryBackoff          = "kafka.sink.retry-backoff"
	KeySinkCreateTopic           = "kafka.sink.create-topic"
)

// SinkConfig configures a Kafka sink. The zero value of a field means its
// default; Validate reports every invalid field, naming its key.
type SinkConfig[T any] struct {
	// Brokers are the bootstrap brokers, host:port. Required: there is no
	// sensible default outside a test (the embedded broker's address is
	// broker.Broker.Addrs).
	Brokers []string
	// Topic is the topic every record goes to, unless TopicSelector is
	// set. No default: one of the two is required.
	Topic string
	// TopicSelector picks the topic of each record; it overrides Topic.
	// Default nil: every record goes to Topic. Set it to route records to
	// several topics; a transaction then spans all of them. It runs on the
	// subtask's goroutine and must not return "".
	TopicSelector func(T) string
	// Serializer turns a value into a record's key, value, headers and
	// timestamp. Required: the sink cannot guess an encoding. See
	// ValueSerializer, KeyValueSerializer and SerializerOf.
	Serializer Serializer[T]
	// Partitioner picks the partition of each record. Default franz-go's
	// StickyKeyPartitioner(nil): keyed records go to murmur2(key) mod
	// partitions, as with the Java client, so the same key lands in the
	// same partition whichever client wrote it; records without key stick
	// to one partition per batch. Change it to route by something other
	// than the key.
	Partitioner kgo.Partitioner
	// DeliveryGuarantee is DeliveryNone, DeliveryAtLeastOnce or
	// DeliveryExactlyOnce (default). Exactly-once costs a transaction per
	// checkpoint and makes output visible to read_committed readers only
	// when a checkpoint completes (latency = checkpoint interval); choose
	// at-least-once for lower latency when readers tolerate duplicates
	// after a failure.
	DeliveryGuarantee string
	// TransactionalIDPrefix starts every transactional id the sink uses:
	// "<prefix>-<operator uid>-<subtask>-<slot>-e<ownership epoch>"
	// (docs/design.md §9; without "-e<epoch>" when the job owns no
	// checkpoints). Required for
	// exactly-once, no default: a default shared by two jobs would let
	// each fence and abort the other's transactions (data loss). It must
	// be unique per job on the cluster and stable
	// across restarts of the job: on start the sink aborts every ongoing
	// transaction whose id starts with "<prefix>-<uid>-", and it commits
	// restored transactions by these ids.
	TransactionalIDPrefix string
	// TransactionTimeout is the producer's transaction.timeout.ms: how
	// long the broker keeps a transaction before aborting it. Default 15m
	// (the broker's default transaction.max.timeout.ms, the largest it
	// accepts). A pre-committed transaction must outlive the checkpoint,
	// the commit retries and a restart; see CheckTimeouts. Raise it (and
	// the broker's transaction.max.timeout.ms) for long checkpoints or slow
	// restarts; lower it so that transactions of a crashed job stop
	// blocking read_committed readers sooner.
	TransactionTimeout time.Duration
	// CheckpointInterval is the job's checkpoint interval, used only by the
	// startup check of TransactionTimeout (see CheckTimeouts). Default
	// checkpoint.DefaultInterval (5s). Set it to the job's value when the
	// job does not use the default.
	CheckpointInterval time.Duration
	// CheckpointTimeout is the job's checkpoint timeout, used only by the
	// startup check. Default checkpoint.DefaultTimeout (1m). Set it to the
	// job's value when the job does not use the default.
	CheckpointTimeout time.Duration
	// MaxRestartDelay is the longest delay of the job's restart strategy
	// (restart.max-backoff, or restart.delay for fixed-delay), used only by
	// the startup check. Default restart.DefaultMaxBackoff (1m). Set it to
	// the job's value when the job does not use the default.
	MaxRestartDelay time.Duration
	// PoolSize is the number of transactional ids per subtask (at least
	// MinTxnPoolSize). Default 5. Raise it when checkpoints often fail or
	// complete late: each such checkpoint holds an id until a later one
	// completes, and beginning a transaction fails when none is free.
	PoolSize int
	// RetryTimeout bounds how long the sink retries a retriable failure of
	// one step (delivering records, beginning or committing a transaction)
	// while the broker is unreachable or answers retriable errors
	// (leadership moving, coordinator loading, CONCURRENT_TRANSACTIONS);
	// then the task fails and the job restarts per its restart strategy.
	// Non-retriable errors fail at once. Default 1m. Raise it to ride out
	// longer broker outages without restarts; lower it to fail over sooner.
	RetryTimeout time.Duration
	// RetryBackoff is the first wait between retries of the sink's own
	// retry loops (begin, commit, clean-up); it doubles up to 5s. Default
	// 100ms. Raise it to spare a struggling cluster; lower it (tests) to
	// recover sooner from short faults. franz-go retries produce requests
	// with its own backoff.
	RetryBackoff time.Duration
	// CreateTopic, when set, lets the sink create Topic with these
	// settings if it does not exist when the job starts. Default nil: a
	// missing Topic fails the job at start, terminally, with an error
	// naming the topic and how to create it (a producer would otherwise
	// retry UNKNOWN_TOPIC_OR_PARTITION until RetryTimeout, and every
	// restart the same). Topics picked by TopicSelector are not checked.
	CreateTopic *TopicSpec
	// AcceptLostTransactionsOnRestore makes a restored pre-committed
	// transaction that can no longer be committed a logged error instead
	// of a failure. Default false: such a transaction means data loss (it
	// timed out or was fenced before the commit), and the job refuses to
	// restore. Set it only to restore deliberately from an older checkpoint
	// or savepoint whose transactions were committed long ago: their ids
	// have been reused since, so the broker answers PRODUCER_FENCED for
	// them although nothing is lost.
	AcceptLostTransactionsOnRestore bool
	// ClientOpts are extra franz-go options for every client the sink
	// creates. Default none: franz-go's defaults (snappy compression, 10ms
	// linger, 50,000 buffered records). Use them for TLS, SASL,
	// compression, linger, MaxVersions and the like. They are applied after
	// the sink's own options, so they win. Do not set TransactionalID,
	// TransactionTimeout or RecordDeliveryTimeout here (the last counts
	// from the record's timestamp, which may be an event time long past).
	ClientOpts []kgo.Opt
	// Logger receives the sink's logs and franz-go's (one level lower).
	// Default the operator's logger (OperatorContext.Logger), which names
	// the operator and subtask; set it to send the sink's logs elsewhere.
	Logger *slog.Logger
}

// withDefaults returns c with every zero field set to its default.
func (c SinkConfig[T]) withDefaults() SinkConfig[T] {
	if c.DeliveryGuarantee == "" {
		c.DeliveryGuarantee = DeliveryExactlyOnce
	}
	if c.TransactionTimeout == 0 {
		c.TransactionTimeout = DefaultTransactionTimeout
	}
	if c.CheckpointInterval == 0 {
		c.CheckpointInterval = checkpoint.DefaultInterval
	}
	if c.CheckpointTimeout == 0 {
		c.CheckpointTimeout = checkpoint.DefaultTimeout
	}
	if c.MaxRestartDelay == 0 {
		c.MaxRestartDelay = restart.DefaultMaxBackoff
	}
	if c.PoolSize == 0 {
		c.PoolSize = DefaultTxnPoolSize
	}
	if c.RetryTimeout == 0 {
		c.RetryTimeout = DefaultSinkRetryTimeout
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = DefaultSinkRetryBackoff
	}
	if c.Partitioner == nil {
		c.Partitioner = kgo.StickyKeyPartitioner(nil)
	}
	return c
}

// Validate checks the configuration after defaults and reports every
// problem, each prefixed with its configuration key, e.g.
//
//	kafka.sink.transactional-id-prefix: required for delivery-guarantee "exactly-once"
//
// The errors are joined with errors.Join.
func (c SinkConfig[T]) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
	}
	if len(c.Brokers) == 0 {
		bad(KeySinkBrokers, "at least one seed broker (host:port) is required")
	}
	for _, b := range c.Brokers {
		if strings.TrimSpace(b) == "" {
			bad(KeySinkBrokers, "empty broker address in %q", c.Brokers)
			break
		}
	}
	if c.Topic == "" && c.TopicSelector == nil {
		bad(KeySinkTopic, "a topic or a topic selector is required")
	}
	if c.Serializer == nil {
		bad(KeySinkSerializer, "required (see ValueSerializer, KeyValueSerializer, SerializerOf)")
	}
	switch c.DeliveryGuarantee {
	case DeliveryNone, DeliveryAtLeastOnce:
	case DeliveryExactlyOnce:
		if c.TransactionalIDPrefix == "" {
			bad(KeySinkTransactionalIDPrefix, "required for %s %q", KeySinkDeliveryGuarantee, DeliveryExactlyOnce)
		}
		if c.PoolSize < MinTxnPoolSize {
			bad(KeySinkPoolSize, "must be at least %d, got %d", MinTxnPoolSize, c.PoolSize)
		}
		if c.TransactionTimeout < time.Millisecond || c.TransactionTimeout > maxTxnTimeout {
			bad(KeySinkTransactionTimeout, "must be in [1ms, %v], got %v", maxTxnTimeout, c.TransactionTimeout)
		} else if err := c.CheckTimeouts(c.CheckpointInterval, c.CheckpointTimeout, c.MaxRestartDelay); err != nil {
			errs = append(errs, err)
		}
	default:
		bad(KeySinkDeliveryGuarantee, "must be %q, %q or %q, got %q", DeliveryNone, DeliveryAtLeastOnce, DeliveryExactlyOnce, c.DeliveryGuarantee)
	}
	if ct := c.CreateTopic; ct != nil {
		if c.Topic == "" {
			bad(KeySinkCreateTopic, "set %s: only that topic is created", KeySinkTopic)
		}
		if ct.Partitions < 0 {
			bad(KeySinkCreateTopic+".partitions", "must be positive or 0 for the broker's default, got %d", ct.Partitions)
		}
		if ct.ReplicationFactor < 0 {
			bad(KeySinkCreateTopic+".replication-factor", "must be positive or 0 for the broker's default, got %d", ct.ReplicationFactor)
		}
	}
	if c.RetryTimeout < 0 {
		bad(KeySinkRetryTimeout, "must be positive, got %v", c.RetryTimeout)
	}
	if c.RetryBackoff < 0 {
		bad(KeySinkRetryBackoff, "must be positive, got %v", c.RetryBackoff)
	}
	return errors.Join(errs...)
}

// maxTxnTimeout is the largest timeout that fits Kafka's int32
// milliseconds.
const maxTxnTimeout = time.Duration(1<<31-1) * time.Millisecond

// CheckTimeouts is the startup check of an exactly-once sink: a
// transaction is opened right after a checkpoint barrier and committed
// after the next checkpoint completes, possibly only after commit retries,
// a failure, a restart delay and the restore. If the broker's transaction
// timeout can strike first, it aborts a pre-committed transaction and its
// records are lost. So TransactionTimeout must exceed
// checkpointInterval + checkpointTimeout + RetryTimeout + maxRestartDelay.
// The error names the settings to change. SinkConfig.Validate calls it with
// the CheckpointInterval, CheckpointTimeout and MaxRestartDelay fields;
// call it yourself with the job's actual settings if you did not set them.
func (c SinkConfig[T]) CheckTimeouts(checkpointInterval, checkpointTimeout, maxRestartDelay time.Duration) error {
	c = c.withDefaults()
	if c.DeliveryGuarantee != DeliveryExactlyOnce {
		return nil
	}
	need := checkpointInterval + checkpointTimeout + c.RetryTimeout + maxRestartDelay
	if c.TransactionTimeout > need {
		return nil
	}
	return fmt.Errorf("%s: %v does not exceed checkpoint.interval (%v) + checkpoint.timeout (%v) + %s (%v) + the longest restart delay (%v) = %v: "+
		"a pre-committed transaction could be aborted by the broker before it is committed, losing its records; "+
		"raise %s above %v (and the broker's transaction.max.timeout.ms with it), or lower checkpoint.timeout, restart.max-backoff (or restart.delay) or %s",
		KeySinkTransactionTimeout, c.TransactionTimeout, checkpointInterval, checkpointTimeout, KeySinkRetryTimeout, c.RetryTimeout,
		maxRestartDelay, need, KeySinkTransactionTimeout, need, KeySinkRetryTimeout)
}

// NewSink validates cfg and returns a sink provider for sluice.Sink. Every
// guarantee runs on the engine's two-phase-commit framework
// (sluice.TwoPhaseCommitSink), whose transaction handle is *Txn:
//
//   - exactly-once: a Kafka transaction per checkpoint and subtask,
//     committed when the checkpoint completes (see Txn);
//   - at-least-once: the "transaction" is a producer client whose records
//     are flushed at the barrier; nothing happens on commit;
//   - none: as at-least-once, but the flush runs in the background and the
//     barrier does not wait for it.
func NewSink[T any](cfg SinkConfig[T]) (sluice.SinkProvider[T], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	cfg.Brokers = append([]string(nil), cfg.Brokers...)
	cfg.ClientOpts = append([]kgo.Opt(nil), cfg.ClientOpts...)
	p := sinkProvider[T]{txnTimeout: cfg.TransactionTimeout, retryTimeout: cfg.RetryTimeout}
	if cfg.DeliveryGuarantee != DeliveryExactlyOnce {
		p.txnTimeout = 0
	}
	p.SinkProvider = sluice.TwoPhaseCommitSink(sluice.TwoPhaseCommitConfig[T, *Txn]{
		New: func(ctx context.Context, oc *sluice.OperatorContext) (sluice.TwoPhaseCommitter[T, *Txn], error) {
			if oc.Subtask == 0 {
				if err := checkSinkTopic(ctx, &cfg, oc.Logger); err != nil {
					return nil, err
				}
			}
			if cfg.DeliveryGuarantee == DeliveryExactlyOnce {
				return newTxnCommitter(cfg, oc)
			}
			return newFlushCommitter(cfg, oc), nil
		},
		TxnCodec: TxnCodec,
	})
	return p, nil
}

// sinkProvider is the Kafka sink's provider: the engine's two-phase-commit
// sink, which also tells the advisor its transaction timeout
// (sluice.TransactionalSink).
type sinkProvider[T any] struct {
	sluice.SinkProvider[T]
	txnTimeout, retryTimeout time.Duration
}

// TransactionTimeouts returns the transaction timeout (0 unless
// exactly-once) and the commit retry timeout.
func (p sinkProvider[T]) TransactionTimeouts() (timeout, commitRetry time.Duration) {
	return p.txnTimeout, p.retryTimeout
}
