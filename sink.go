package sluice

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/fault"
	"github.com/sluicehq/sluice/internal/runtime"
)

// SinkProvider makes the sink operator of each subtask. Make one with
// SinkFunc, DiscardSink or TwoPhaseCommitSink.
type SinkProvider[T any] interface {
	newSinkOperator() (sinkOperator[T], error)
}

type sinkOperator[T any] interface {
	runtime.Operator
	Emitter[T]
}

// SinkFunc is a sink that calls a function per record, with no delivery
// guarantee of its own (records replayed after a failure are seen again).
type SinkFunc[T any] func(v T) error

func (f SinkFunc[T]) newSinkOperator() (sinkOperator[T], error) { return &funcSink[T]{f: f}, nil }

// SubtaskSinkFunc is a sink whose per-record function each subtask makes
// when it opens, from its OperatorContext (as Flink's RichSinkFunction
// opens): for what a subtask keeps of its own, such as a buffer, a file or
// a row count, instead of one value that every subtask writes, where each
// record pays for the contended cache line. Like SinkFunc it has no
// delivery guarantee of its own. An error from the maker fails the
// subtask's start, and with it the attempt.
type SubtaskSinkFunc[T any] func(oc *OperatorContext) (SinkFunc[T], error)

func (f SubtaskSinkFunc[T]) newSinkOperator() (sinkOperator[T], error) {
	return &funcSink[T]{open: f}, nil
}

type funcSink[T any] struct {
	baseOp
	f    SinkFunc[T]
	open SubtaskSinkFunc[T] // nil for a SinkFunc
}

func (s *funcSink[T]) Open(ctx context.Context, rc *runtime.OperatorContext) error {
	if err := s.baseOp.Open(ctx, rc); err != nil {
		return err
	}
	if s.open == nil {
		return nil
	}
	f, err := s.open(s.oc)
	if err != nil {
		return fmt.Errorf("sink %s subtask %d: open: %w", s.uid, s.sub, err)
	}
	if f == nil {
		return fmt.Errorf("sink %s subtask %d: open returned no function", s.uid, s.sub)
	}
	s.f = f
	return nil
}

func (s *funcSink[T]) Emit(v T) error {
	s.hit()
	if err := s.f(v); err != nil {
		// Name the sink: chained into a source's task, an unnamed error
		// would be reported as the source's.
		return fmt.Errorf("%s: %w", s.uid, err)
	}
	return nil
}

// DiscardSink drops every record (benchmarks).
func DiscardSink[T any]() SinkProvider[T] { return SinkFunc[T](func(T) error { return nil }) }

// TwoPhaseCommitter writes into transactions tied to checkpoints (Flink's
// TwoPhaseCommitSinkFunction): records of the time between two barriers go
// into one transaction, pre-committed at the barrier and committed once the
// checkpoint is complete. Methods run on the subtask's goroutine.
//
// The ctx of every call is the attempt's context: it is cancelled when the
// attempt ends (a task failed, the job was cancelled), and a call blocked
// on I/O must return then, so that the job can restart or stop; a
// pre-committed transaction whose commit was interrupted stays recorded in
// the checkpoint and is committed on restore. Abort of the open transaction
// on close is the exception: it gets a fresh context bounded by a timeout
// (the attempt's is likely done by then), so that the transaction is
// aborted and does not block read_committed readers until it times out.
type TwoPhaseCommitter[T, TXN any] interface {
	// BeginTransaction opens a transaction; called lazily at the first
	// record after a barrier, so empty transactions are never opened.
	BeginTransaction(ctx context.Context) (TXN, error)
	// Write adds v to txn.
	Write(txn TXN, v T) error
	// PreCommit makes txn durable but invisible (flush, fsync); after it
	// the transaction must be committable after a crash.
	PreCommit(ctx context.Context, txn TXN) error
	// Commit makes txn visible. It must be idempotent: it can be called
	// again for a committed transaction after a failure.
	Commit(ctx context.Context, txn TXN) error
	// Abort discards txn: the open one when the subtask closes, and, when
	// this instance was fenced (docs/design.md §9), a pre-committed one
	// that no checkpoint any instance can restore names, so that nothing
	// else would ever end it.
	Abort(ctx context.Context, txn TXN) error
	// RecoverAndCommit commits a pre-committed transaction recorded in the
	// checkpoint being restored (idempotent).
	RecoverAndCommit(ctx context.Context, txn TXN) error
	// CleanUp runs once on every start of the sink's subtask 0, after every
	// recovered transaction was committed: it removes what earlier
	// attempts left (open transactions, temporary files) that is not among
	// recovered.
	CleanUp(ctx context.Context, recovered []TXN) error
}

// TwoPhaseCommitConfig describes a two-phase-commit sink.
type TwoPhaseCommitConfig[T, TXN any] struct {
	// New creates the committer of the subtask oc describes; ctx is the
	// attempt's context.
	New func(ctx context.Context, oc *OperatorContext) (TwoPhaseCommitter[T, TXN], error)
	// TxnCodec encodes transaction handles into checkpoints.
	TxnCodec codec.Codec[TXN]
}

// TwoPhaseCommitSink returns an exactly-once sink built on a committer
// (docs/design.md §6).
func TwoPhaseCommitSink[T, TXN any](cfg TwoPhaseCommitConfig[T, TXN]) SinkProvider[T] {
	return twoPhaseProvider[T, TXN](cfg)
}

type twoPhaseProvider[T, TXN any] TwoPhaseCommitConfig[T, TXN]

func (p twoPhaseProvider[T, TXN]) newSinkOperator() (sinkOperator[T], error) {
	if p.New == nil || p.TxnCodec == nil {
		return nil, fmt.Errorf("two-phase-commit sink: New and TxnCodec are required")
	}
	return &twoPhaseOp[T, TXN]{cfg: TwoPhaseCommitConfig[T, TXN](p)}, nil
}

const pendingState = "pending-transactions"

type pendingTxn[TXN any] struct {
	checkpoint int64
	txn        TXN
}

type twoPhaseOp[T, TXN any] struct {
	baseOp
	cfg     TwoPhaseCommitConfig[T, TXN]
	c       TwoPhaseCommitter[T, TXN]
	cur     TXN
	open    bool
	pending []pendingTxn[TXN]
	// ctx is the attempt's context, from Open, for BeginTransaction: it is
	// called from Emit, the per-record path, which carries no context.
	ctx context.Context
	// stats counts transactions for the job's status (nil outside a task).
	stats *runtime.TaskStats
	// rc is the runtime's context of the subtask, for IsOrphaned.
	rc *runtime.OperatorContext
}

func (s *twoPhaseOp[T, TXN]) Open(ctx context.Context, rc *runtime.OperatorContext) error {
	if err := s.baseOp.Open(ctx, rc); err != nil {
		return err
	}
	s.ctx, s.rc = ctx, rc
	oc := s.oc
	if s.stats = rc.Stats; s.stats != nil {
		s.stats.SetSink(rc.Name)
	}
	c, err := s.cfg.New(ctx, oc)
	if err != nil {
		return err
	}
	s.c = c
	if oc.Subtask != 0 {
		return nil
	}
	// Restore order (docs/design.md §11): commit every pre-committed transaction
	// of the checkpoint, then clean up everything else, before any source
	// reads again. The state is union-redistributed, so subtask 0 sees the
	// transactions of every old subtask, also of subtasks that no longer
	// exist after a rescale.
	var recovered []TXN
	if oc.Restored != nil {
		for _, e := range oc.Restored.Operator[pendingState] {
			p, err := s.decode(e)
			if err != nil {
				return fmt.Errorf("restore pending transactions from checkpoint %d: %w", oc.Restored.CheckpointID, err)
			}
			if err := s.c.RecoverAndCommit(ctx, p.txn); err != nil {
				return fmt.Errorf("commit transaction of checkpoint %d on restore: %w", p.checkpoint, err)
			}
			// Not counted in the sink's committed transactions: the
			// commit may repeat one already counted before the failure.
			recovered = append(recovered, p.txn)
		}
	}
	return s.c.CleanUp(ctx, recovered)
}

func (s *twoPhaseOp[T, TXN]) Emit(v T) error {
	s.hit()
	if !s.open {
		txn, err := s.c.BeginTransaction(s.ctx)
		if err != nil {
			return fmt.Errorf("%s: begin transaction: %w", s.uid, err)
		}
		s.cur, s.open = txn, true
	}
	if err := s.c.Write(s.cur, v); err != nil {
		return fmt.Errorf("%s: write: %w", s.uid, err)
	}
	return nil
}

// Snapshot pre-commits the open transaction for barrier b and records every
// transaction not yet committed in the state.
func (s *twoPhaseOp[T, TXN]) Snapshot(ctx context.Context, b runtime.Barrier) (*runtime.OperatorSnapshot, error) {
	if s.open {
		if err := s.c.PreCommit(ctx, s.cur); err != nil {
			return nil, fmt.Errorf("pre-commit: %w", err)
		}
		s.pending = append(s.pending, pendingTxn[TXN]{checkpoint: b.ID, txn: s.cur})
		var zero TXN
		s.cur, s.open = zero, false
		if s.faults != nil {
			s.faults.Hit(fault.AfterPreCommit, s.uid, s.sub)
		}
	}
	entries := make([][]byte, len(s.pending))
	for i, p := range s.pending {
		e := binary.AppendVarint(nil, p.checkpoint)
		entries[i] = s.cfg.TxnCodec.Append(e, p.txn)
	}
	return &runtime.OperatorSnapshot{Operator: map[string][][]byte{pendingState: entries}}, nil
}

func (s *twoPhaseOp[T, TXN]) decode(e []byte) (pendingTxn[TXN], error) {
	return decodePending(e, s.cfg.TxnCodec)
}

func decodePending[TXN any](e []byte, c codec.Codec[TXN]) (pendingTxn[TXN], error) {
	cp, n := binary.Varint(e)
	if n <= 0 {
		return pendingTxn[TXN]{}, fmt.Errorf("corrupt pending transaction entry")
	}
	txn, _, err := c.Decode(e[n:])
	if err != nil {
		return pendingTxn[TXN]{}, fmt.Errorf("decode transaction: %w", err)
	}
	return pendingTxn[TXN]{checkpoint: cp, txn: txn}, nil
}

// RestoredTransactions returns the pre-committed transactions of every old
// subtask that the checkpoint being restored records for a two-phase-commit
// sink, decoded with c. Subtask 0 commits them all before any record flows;
// a committer of another subtask uses this to know which of its resources
// (transactional ids, files) a restored transaction still names.
func RestoredTransactions[TXN any](oc *OperatorContext, c codec.Codec[TXN]) ([]TXN, error) {
	if oc.Restored == nil {
		return nil, nil
	}
	var out []TXN
	for _, e := range oc.Restored.Operator[pendingState] {
		p, err := decodePending(e, c)
		if err != nil {
			return nil, fmt.Errorf("%s/%d: restored pending transactions of checkpoint %d: %w", oc.UID, oc.Subtask, oc.Restored.CheckpointID, err)
		}
		out = append(out, p.txn)
	}
	return out, nil
}

// NotifyComplete commits every pending transaction of a checkpoint up to
// id: a complete checkpoint covers all the records before its barrier.
func (s *twoPhaseOp[T, TXN]) NotifyComplete(ctx context.Context, id int64) error {
	sort.SliceStable(s.pending, func(i, j int) bool { return s.pending[i].checkpoint < s.pending[j].checkpoint })
	var start time.Time
	if s.stats != nil {
		start = s.oc.Clock.Now()
	}
	var n int64
	defer func() {
		if s.stats != nil && n > 0 {
			s.stats.CommitDone(n, s.oc.Clock.Now().Sub(start))
		}
	}()
	kept := s.pending[:0]
	for _, p := range s.pending {
		if p.checkpoint > id {
			kept = append(kept, p)
			continue
		}
		if s.faults != nil {
			s.faults.Hit(fault.BeforeCommit, s.uid, s.sub)
		}
		if err := s.c.Commit(ctx, p.txn); err != nil {
			return fmt.Errorf("commit transaction of checkpoint %d: %w", p.checkpoint, err)
		}
		n++
	}
	s.pending = kept
	return nil
}

// Close aborts the open transaction; pre-committed ones stay for recovery,
// except those of a fenced instance that no checkpoint names (Abort).
// ctx is Close's own bounded context (runtime.CloseTimeout), not the
// attempt's: the abort must still happen after a cancellation.
func (s *twoPhaseOp[T, TXN]) Close(ctx context.Context) error {
	if s.c == nil {
		return nil
	}
	var errs []error
	if s.open {
		s.open = false
		if s.stats != nil {
			s.stats.TxAborted.Add(1)
		}
		errs = append(errs, s.c.Abort(ctx, s.cur))
	}
	// A fenced instance never restarts. What it pre-committed after its
	// successor's clean-up would stay open until its timeout (a Kafka
	// transaction left open holds back what read_committed readers see);
	// aborting one the clean-up already ended is harmless.
	kept := s.pending[:0]
	for _, p := range s.pending {
		if !s.rc.IsOrphaned(p.checkpoint) {
			kept = append(kept, p)
			continue
		}
		s.oc.Logger.Warn("aborting a transaction pre-committed for a checkpoint this fenced instance never completed",
			"checkpoint", p.checkpoint)
		if s.stats != nil {
			s.stats.TxAborted.Add(1)
		}
		if err := s.c.Abort(ctx, p.txn); err != nil {
			errs = append(errs, fmt.Errorf("abort the transaction of checkpoint %d: %w", p.checkpoint, err))
		}
	}
	s.pending = kept
	return errors.Join(errs...)
}
