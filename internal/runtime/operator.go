// Package runtime executes a job graph: tasks (one goroutine and a mailbox
// each), bounded batched edges, barrier alignment, the checkpoint
// coordinator's driver and the restart loop (docs/design.md §2, §3, §5).
//
// The typed dataflow API (package sluice) builds a Plan; everything here that
// carries records is generic, everything that carries control is not.
package runtime

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/clock"
	"github.com/sluicehq/sluice/fault"
)

// Emitter receives records, one call each. Operators of a chain are joined
// by Emitters (plain method calls); at a shuffle the Emitter is a partition
// writer that batches records onto bounded edges.
type Emitter[T any] interface {
	Emit(v T) error
}

// Barrier is a checkpoint barrier travelling in-band with the data.
type Barrier struct {
	ID        int64
	Kind      checkpoint.Kind
	Timestamp time.Time
	// Stop says the sources end their input after this barrier.
	Stop bool
	// Drain says the sources emit the final watermark just before this
	// (stop) barrier, so that every event-time timer fires and its output
	// is part of the snapshot (Flink's stop --drain).
	Drain bool
	// Unaligned says the checkpoint is unaligned (docs/design.md §3
	// "Unaligned checkpoints"): a task that receives it snapshots at once
	// and stores the records still in flight on its other inputs.
	Unaligned bool
}

// Operator is the lifecycle every operator instance (one subtask of one
// operator) implements; records reach it through a typed Emitter built next
// to it. All methods run on the task goroutine, one at a time.
//
// Every lifecycle call gets a context.Context: the attempt's context, which
// is cancelled when the attempt ends (a task failed, the job was cancelled),
// so that a call blocked on I/O (a commit, a flush) returns. Close is the
// exception: it runs after the attempt's context may be done, and gets a
// fresh context bounded by CloseTimeout (docs/design.md §5).
type Operator interface {
	// Open is called once per attempt, after state was restored into oc
	// and before any record.
	Open(ctx context.Context, oc *OperatorContext) error
	// Snapshot is the synchronous part of a checkpoint: take an immutable
	// view quickly. Heavy work goes into the returned KeyedSnapshot, which is
	// written off the task goroutine.
	Snapshot(ctx context.Context, b Barrier) (*OperatorSnapshot, error)
	// NotifyComplete tells that checkpoint id is durable (two-phase-commit
	// sinks commit here).
	NotifyComplete(ctx context.Context, id int64) error
	// NotifyAborted tells that checkpoint id will never complete.
	NotifyAborted(ctx context.Context, id int64) error
	// EndInput is called once when every input has ended, in chain order.
	EndInput(ctx context.Context) error
	// Close releases resources; it is called on every exit, also after a
	// failure, with a context of its own (see CloseTimeout).
	Close(ctx context.Context) error
}

// CloseTimeout bounds the Close calls of one attempt's operators and source
// readers. Close runs when the attempt's context may already be cancelled
// (a failure or a hard cancel is what ended it), yet it still has work that
// must not be skipped: abort the open transaction, so that read_committed
// readers are not blocked until the broker's transaction timeout; close
// clients; remove temporary files. So it gets a context of its own, not
// cancelled with the attempt (it keeps the attempt's values), and bounded,
// so that a close hung on an unreachable broker cannot keep the job from
// restarting or from returning.
const CloseTimeout = 10 * time.Second

// closeContext returns the context for the Close calls after an attempt
// whose context is ctx: see CloseTimeout.
func closeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), CloseTimeout)
}

// TimerOperator is an Operator with processing-time timers.
type TimerOperator interface {
	Operator
	// NextTimer returns the earliest pending timer.
	NextTimer() (time.Time, bool)
	// FireTimers fires every timer due at now.
	FireTimers(now time.Time) error
}

// OperatorSnapshot is what one operator instance hands over at a barrier.
type OperatorSnapshot struct {
	// Keyed is written asynchronously into one state file, or nil.
	Keyed KeyedSnapshot
	// Operator is non-keyed list state by name, stored inline in _metadata.
	Operator map[string][][]byte
	// Channels is the channel state of an unaligned checkpoint: the
	// records that were in flight on the task's inputs, set by the task on
	// its chain's head operator (docs/design.md §3 "Unaligned checkpoints").
	Channels []checkpoint.ChannelState
}

// KeyedSnapshot is the asynchronous part of a keyed state snapshot.
type KeyedSnapshot interface {
	// WriteKeyGroups serializes the snapshot key group by key group and returns
	// the offset at which each key group's section starts.
	WriteKeyGroups(w io.Writer) (keyGroupOffsets []int64, err error)
	// Release is called once the write finished or was abandoned.
	Release()
}

// IncrementalSnapshot is a KeyedSnapshot that can also write a checkpoint
// incrementally (docs/design.md §4): it writes only the files that no
// earlier checkpoint of the same subtask stored, and refers to the others
// again. The runtime calls WriteIncremental for a checkpoint when
// incremental checkpoints are on, and WriteKeyGroups (the canonical,
// self-contained format) for every savepoint and otherwise.
type IncrementalSnapshot interface {
	KeyedSnapshot
	// WriteIncremental writes the snapshot's new files through w and
	// returns the handles of every file the checkpoint needs: the new
	// ones, and reused ones exactly as an earlier WriteIncremental of this
	// backend returned them (or as they were restored).
	WriteIncremental(ctx context.Context, w SharedWriter) ([]checkpoint.StateHandle, error)
}

// SharedWriter creates state files that several checkpoints may share.
// A shared file stays in checkpoint storage while any retained checkpoint
// refers to it.
type SharedWriter interface {
	// Create starts a new shared file. name need only be unique among the
	// files of this operator subtask; the storage makes it unique in the
	// job (operator, subtask, run).
	Create(name string) (SharedFile, error)
}

// SharedFile is a shared state file being written.
type SharedFile interface {
	io.Writer
	// Commit makes the file durable and returns its handle (Shared set).
	Commit() (checkpoint.StateHandle, error)
	// Abort discards the file.
	Abort() error
}

// OperatorContext is what an operator instance knows about where it runs.
type OperatorContext struct {
	UID            string
	Name           string
	Subtask        int
	Parallelism    int
	MaxParallelism int
	KeyGroups      checkpoint.KeyGroupRange
	// Restored is the state to restore, nil on a fresh start.
	Restored *RestoredState
	// Attempt counts the restarts of this job run (0 for the first).
	Attempt int
	// RunID is unique per attempt, also across processes: operators use it
	// to name things (files, transactions) that must never collide with
	// leftovers of an earlier attempt.
	RunID  string
	Clock  clock.Clock
	Logger *slog.Logger
	Faults *fault.Injector
	// Fence reports whether another instance of the job has taken over
	// its checkpoints (docs/design.md §9): it returns an error for which
	// errors.Is(err, store.ErrFenced) holds, naming op, or nil while this
	// instance still owns them. It reads a small file; sinks call it before
	// they take over an external resource, such as a Kafka sink before it
	// initialises a transactional producer. Nil where no job owns the
	// checkpoints (tests): call CheckFenced, which handles that.
	Fence func(ctx context.Context, op string) error
	// Orphaned reports whether nothing checkpoint id covers can ever be
	// committed: this instance was fenced before it could write the
	// _metadata of any checkpoint from id on (store.Checkpoints.Orphaned).
	// A two-phase-commit sink aborts its transactions pre-committed for
	// such a checkpoint as it closes. Nil outside a job (tests): call
	// IsOrphaned, which handles that.
	Orphaned func(id int64) bool
	// OwnerEpoch is the ownership epoch this instance of the job holds on
	// its checkpoints (docs/design.md §9), the same in every attempt of the
	// instance and higher in every instance that takes over; 0 where no job
	// owns the checkpoints (tests). A sink names its external resources with
	// it (the Kafka sink's transactional ids) so that a zombie of an older
	// epoch cannot touch those of the instance that replaced it.
	OwnerEpoch int64
	// Time is the task's event-time state: the current record's timestamp
	// and watermark (docs/design.md §14). Nil for an operator outside a
	// task (tests).
	Time *Time
	// Stats is the task's counters, for operators that count something of
	// their own (late records). Nil outside a task (tests).
	Stats *TaskStats
	// LocalDir is this operator subtask's directory for a state backend's
	// working files and its task-local copies (local recovery), the same
	// path in every attempt and process of the job; empty outside a job
	// (tests), where a backend uses a temporary directory.
	LocalDir string
	// PlanOnly is set by a restore check (sluice.Environment.CheckRestore,
	// docs/design.md §10) instead of Restored: the operator is opened only
	// to learn which states it registers, and plans the restore of this
	// state of its uid (empty for an operator the checkpoint lacks) instead
	// of restoring it. Nil in a running job.
	PlanOnly *checkpoint.OperatorState
}

// CheckFenced calls c.Fence if it is set; see Fence.
func (c *OperatorContext) CheckFenced(ctx context.Context, op string) error {
	if c == nil || c.Fence == nil {
		return nil
	}
	return c.Fence(ctx, op)
}

// IsOrphaned calls c.Orphaned if it is set (false otherwise); see Orphaned.
func (c *OperatorContext) IsOrphaned(id int64) bool {
	return c != nil && c.Orphaned != nil && c.Orphaned(id)
}

// RestoredState is the state of one operator uid from a checkpoint,
// selected for one subtask.
type RestoredState struct {
	CheckpointID int64
	// Superseded lists the complete checkpoints newer than CheckpointID
	// that the restore skipped because they are corrupt (a fallback), in
	// ascending order; nil for a restore of the newest one or of an
	// explicit path. A two-phase-commit sink uses it to know that the
	// transactions of CheckpointID may have been committed and their ids
	// reused under a newer checkpoint (docs/adr/0003-two-phase-commit-recovery.md).
	Superseded []int64
	// Keyed holds the keyed state files whose key-group range overlaps this
	// subtask's range.
	Keyed []RestoredKeyed
	// Operator holds the operator list state of every old subtask, by name
	// (union redistribution: each operator keeps what it owns).
	Operator map[string][][]byte
}

// RestoredKeyed is one keyed state file, read and checksum-verified, or,
// for a backend's native format, the handles of its files.
type RestoredKeyed struct {
	// Data, KeyGroups and Offsets are a canonical keyed-state file (Format
	// empty).
	Data      []byte
	KeyGroups checkpoint.KeyGroupRange
	Offsets   []int64
	// Format is the file layout: empty for the canonical keyed-state file,
	// otherwise a backend's native format (checkpoint.StateHandle.Format),
	// whose files are Handles, read with Fetch.
	Format  string
	Handles []checkpoint.StateHandle
	// Fetch copies the file of h to the local path dst, verifying its
	// size and checksum (ErrCorrupt otherwise). Set with Handles.
	Fetch func(ctx context.Context, h checkpoint.StateHandle, dst string) error
}
