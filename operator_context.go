package sluice

import (
	"context"
	"log/slog"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/clock"
	"github.com/sluicehq/sluice/fault"
	"github.com/sluicehq/sluice/internal/runtime"
)

// OperatorContext describes where an operator instance (one subtask of one
// operator, in one attempt of the job) runs. Sources get it in
// Source.NewReader, two-phase-commit sinks in TwoPhaseCommitConfig.New, keyed
// functions through RuntimeContext.Operator.
type OperatorContext struct {
	// UID is the operator's stable id, under which its state is stored in
	// checkpoints (by default its name).
	UID string
	// Name is the operator's name as given to the builder.
	Name string
	// Subtask is this instance's index, in [0, Parallelism).
	Subtask int
	// Parallelism is the operator's number of subtasks.
	Parallelism int
	// MaxParallelism is the job's number of key groups.
	MaxParallelism int
	// KeyGroups is the range of key groups this subtask owns (keyed
	// operators; docs/design.md §4).
	KeyGroups checkpoint.KeyGroupRange
	// Restored is this operator's state in the checkpoint the attempt
	// restores, nil on a fresh start or when the checkpoint holds no state
	// for the uid.
	Restored *RestoredState
	// Attempt counts the restarts of this job run: 0 for the first attempt.
	Attempt int
	// RunID is unique per attempt, also across processes: operators use it
	// to name things (files, transactions) that must never collide with the
	// leftovers of an earlier attempt.
	RunID string
	// Clock is the job's time source (a fake one in tests).
	Clock clock.Clock
	// Logger is the job's logger with the operator's uid and subtask.
	Logger *slog.Logger
	// Faults injects failures in tests and chaos runs; nil otherwise.
	Faults *fault.Injector
	// Fence, when set, reports whether another instance of the job has
	// taken over its checkpoints (docs/design.md §9); see CheckFenced. The
	// runtime sets it; tests of a sink may set their own.
	Fence func(ctx context.Context, op string) error
	// LocalDir is this operator subtask's directory for a state backend's
	// working files (the Pebble database) and task-local state copies, the
	// same path in every attempt and process of the job (under
	// Config.State.LocalDir); empty outside a job, where a backend uses a
	// temporary directory.
	LocalDir string
	// State is the job's state configuration, defaults applied: set for
	// keyed operators (keyed functions, windows), zero for others.
	State StateConfig
	// OwnerEpoch is the ownership epoch this instance of the job holds on
	// its checkpoints (docs/design.md §9): the same in every attempt of the
	// instance, higher in every instance that takes over; 0 when nothing
	// owns them (tests). A sink names the external resources it takes over
	// with it, as the Kafka sink does its transactional ids, so that a
	// zombie of an older epoch can never touch those of its successor.
	OwnerEpoch int64

	// stats is the task's counters (nil outside a task): operators built
	// on the keyed function API count late records in it.
	stats *runtime.TaskStats
	// plan is set when a restore check opens the operator only to plan
	// the restore of this state (runtime.OperatorContext.PlanOnly).
	plan *checkpoint.OperatorState
}

// CheckFenced returns an error for which errors.Is(err, store.ErrFenced)
// holds when another instance of the job has taken over its checkpoints
// (docs/design.md §9), naming op; nil while this instance still owns them,
// or when nothing owns them (Fence unset). It reads a small file: a sink
// calls it before it takes over an external resource, as the Kafka sink
// does before it initialises a transactional producer, so that a zombie
// never fences the instance that replaced it.
func (c *OperatorContext) CheckFenced(ctx context.Context, op string) error {
	if c == nil || c.Fence == nil {
		return nil
	}
	return c.Fence(ctx, op)
}

// RestoredState is the state of one operator uid in a checkpoint, as this
// subtask restores it.
type RestoredState struct {
	// CheckpointID is the id of the checkpoint restored.
	CheckpointID int64
	// Superseded lists, in ascending order, the complete checkpoints newer
	// than CheckpointID that the restore skipped because they are corrupt
	// (a fallback); nil when the newest checkpoint or an explicit path is
	// restored. A two-phase-commit sink learns from it that the
	// transactions of CheckpointID may already be committed under a newer
	// checkpoint, their ids reused (docs/adr/0003-two-phase-commit-recovery.md).
	Superseded []int64
	// Keyed holds the keyed state files whose key-group range overlaps this
	// subtask's range.
	Keyed []RestoredKeyed
	// Operator holds the operator (list) state of every old subtask, by
	// state name: union redistribution, so each subtask picks what it owns
	// (source splits, a sink's pending transactions).
	Operator map[string][][]byte
}

// RestoredKeyed is one keyed state file of a checkpoint, read and
// checksum-verified.
type RestoredKeyed struct {
	// Data is the file's content.
	Data []byte
	// KeyGroups is the range of key groups the file holds.
	KeyGroups checkpoint.KeyGroupRange
	// Offsets holds where each key group of KeyGroups starts in Data.
	Offsets []int64
	// Format is empty for the canonical keyed-state file above; otherwise
	// a state backend's native format (checkpoint.StateHandle.Format, such
	// as an incremental Pebble checkpoint).
	Format string
	// Handles are the files of a native format, read with Fetch.
	Handles []checkpoint.StateHandle
	// Fetch copies the file of h to the local path dst, verifying its size
	// and checksum. Set with Handles.
	Fetch func(ctx context.Context, h checkpoint.StateHandle, dst string) error
}

// operatorContext converts the runtime's context once per Open; the
// restored data is shared, not copied.
func operatorContext(rc *runtime.OperatorContext) *OperatorContext {
	c := &OperatorContext{
		UID: rc.UID, Name: rc.Name, Subtask: rc.Subtask, Parallelism: rc.Parallelism, MaxParallelism: rc.MaxParallelism,
		KeyGroups: rc.KeyGroups, Attempt: rc.Attempt, RunID: rc.RunID, Clock: rc.Clock, Logger: rc.Logger, Faults: rc.Faults,
		Fence: rc.Fence, OwnerEpoch: rc.OwnerEpoch, LocalDir: rc.LocalDir, stats: rc.Stats, plan: rc.PlanOnly,
	}
	if rs := rc.Restored; rs != nil {
		c.Restored = &RestoredState{CheckpointID: rs.CheckpointID, Superseded: rs.Superseded, Operator: rs.Operator}
		for _, k := range rs.Keyed {
			c.Restored.Keyed = append(c.Restored.Keyed, RestoredKeyed{Data: k.Data, KeyGroups: k.KeyGroups, Offsets: k.Offsets,
				Format: k.Format, Handles: k.Handles, Fetch: k.Fetch})
		}
	}
	return c
}

// CountBytesIn adds n serialized bytes read (by a source reader) to the
// task's BytesInTotal (docs/design.md §8). Call it once per poll or batch,
// not per record. Outside a task (tests) it does nothing.
func (c *OperatorContext) CountBytesIn(n int64) {
	if c != nil && c.stats != nil && n > 0 {
		c.stats.BytesIn.Add(n)
	}
}

// CountBytesOut adds n serialized bytes written (by a sink) to the task's
// BytesOutTotal (docs/design.md §8), once per flush or batch.
func (c *OperatorContext) CountBytesOut(n int64) {
	if c != nil && c.stats != nil && n > 0 {
		c.stats.BytesOut.Add(n)
	}
}
