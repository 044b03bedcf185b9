package kafka

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice"
)

// flushCommitter implements at-least-once and none on the two-phase-commit
// framework without Kafka transactions: a "transaction" is an idempotent
// producer client that writes the records between two barriers. At the
// barrier, at-least-once flushes it (the checkpoint completes only once
// every record before the barrier is acknowledged) and none hands the
// flush to a goroutine. The client is closed after the flush, so no client
// outlives its transaction; the next record opens a new one.
type flushCommitter[T any] struct {
	cfg *SinkConfig[T]
	log *slog.Logger
	w   sinkWriter[T]
}

var _ sluice.TwoPhaseCommitter[int, *Txn] = (*flushCommitter[int])(nil)

func newFlushCommitter[T any](cfg SinkConfig[T], oc *sluice.OperatorContext) *flushCommitter[T] {
	log := cfg.Logger
	if log == nil {
		log = oc.Logger
	}
	if log == nil {
		log = slog.Default()
	}
	return &flushCommitter[T]{
		cfg: &cfg,
		log: log.With("sink", "kafka", "delivery", cfg.DeliveryGuarantee),
		w:   sinkWriter[T]{ser: cfg.Serializer, topic: cfg.Topic, sel: cfg.TopicSelector, pool: newSinkRecordPool()},
	}
}

// BeginTransaction implements sluice.TwoPhaseCommitter.
func (c *flushCommitter[T]) BeginTransaction(context.Context) (*Txn, error) {
	cl, err := kgo.NewClient(sinkClientOpts(c.cfg, c.log)...)
	if err != nil {
		return nil, fmt.Errorf("kafka sink: client: %w", err)
	}
	return &Txn{live: newLiveTxn(cl, -1, c.w.pool, c.cfg.RetryTimeout)}, nil
}

// Write implements sluice.TwoPhaseCommitter.
func (c *flushCommitter[T]) Write(t *Txn, v T) error {
	if err := c.w.write(t.live, v); err != nil {
		return fmt.Errorf("kafka sink: %w", err)
	}
	return nil
}

// PreCommit implements sluice.TwoPhaseCommitter.
func (c *flushCommitter[T]) PreCommit(ctx context.Context, t *Txn) error {
	l := t.live
	t.HasData = l.written.Load() > 0
	if c.cfg.DeliveryGuarantee == DeliveryNone {
		go func() {
			defer l.close()
			if err := flushTxn(context.Background(), l); err != nil {
				c.log.Error("records lost (delivery guarantee none)", "err", err)
			}
		}()
		return nil
	}
	if err := flushTxn(ctx, l); err != nil {
		return fmt.Errorf("kafka sink: flush at checkpoint: %w", err)
	}
	l.close()
	return nil
}

// Commit implements sluice.TwoPhaseCommitter: the records are already
// visible.
func (c *flushCommitter[T]) Commit(context.Context, *Txn) error { return nil }

// RecoverAndCommit implements sluice.TwoPhaseCommitter: nothing to do,
// unless the checkpoint was taken by an exactly-once run of the sink: its
// pre-committed transactions hold records the restored sources will not
// replay, so they are committed here too.
func (c *flushCommitter[T]) RecoverAndCommit(ctx context.Context, t *Txn) error {
	if t.TransactionalID == "" || !t.HasData {
		return nil
	}
	return commitStored(ctx, c.cfg, c.log, nil, t)
}

// CleanUp implements sluice.TwoPhaseCommitter: nothing to do.
func (c *flushCommitter[T]) CleanUp(context.Context, []*Txn) error { return nil }

// Abort implements sluice.TwoPhaseCommitter: close the client; records it
// still buffers are dropped (they are replayed from the last checkpoint).
func (c *flushCommitter[T]) Abort(_ context.Context, t *Txn) error {
	if t.live != nil {
		t.live.close()
	}
	return nil
}
