package coordinator

import (
	"time"

	"github.com/sluicehq/sluice/checkpoint"
)

// Event is an input to the Coordinator. The concrete types are the *Event
// structs of this package.
type Event interface{ isEvent() }

// Action is an output of the Coordinator that the runtime must carry out.
// The concrete types are the *Action structs of this package.
type Action interface{ isAction() }

// TickEvent tells the coordinator the time. Triggers and timeouts happen
// only on ticks, so a test controls every interleaving.
type TickEvent struct{ Now time.Time }

// AckEvent reports that a task finished its snapshot for CheckpointID.
// States maps each operator uid of the task's chain to what that operator's
// subtask snapshotted.
type AckEvent struct {
	CheckpointID int64
	Task         checkpoint.TaskID
	States       map[string]*checkpoint.SubtaskState
	// Bytes is the total size of the task's state files, for statistics.
	Bytes int64
	// AlignmentDuration is how long the task spent aligning barriers.
	AlignmentDuration time.Duration
	// SyncDuration is how long the synchronous part of the snapshot paused
	// the task.
	SyncDuration time.Duration
	// AsyncDuration is how long the asynchronous part (writing the state
	// files) took, up to the ack.
	AsyncDuration time.Duration
}

// DeclineEvent reports that a task could not take part in CheckpointID
// (its snapshot failed, or it was not running).
type DeclineEvent struct {
	CheckpointID int64
	Task         checkpoint.TaskID
	Err          error
}

// PersistedEvent reports the outcome of a PersistAction.
type PersistedEvent struct {
	CheckpointID int64
	Err          error
}

// TriggerSavepointEvent asks for a savepoint now, ignoring the interval and
// the minimum pause. With Stop set, sources end their input after the
// savepoint's barrier, so the job finishes once it completes.
type TriggerSavepointEvent struct {
	Now  time.Time
	Stop bool
}

// TriggerFinalCheckpointEvent asks for a checkpoint now after which the
// sources end their input (used when bounded sources are exhausted, and to
// stop a job cleanly with its output committed).
type TriggerFinalCheckpointEvent struct{ Now time.Time }

func (TickEvent) isEvent()                   {}
func (AckEvent) isEvent()                    {}
func (DeclineEvent) isEvent()                {}
func (PersistedEvent) isEvent()              {}
func (TriggerSavepointEvent) isEvent()       {}
func (TriggerFinalCheckpointEvent) isEvent() {}

// TriggerAction tells the runtime to inject barrier CheckpointID at every
// source. With Stop set the sources end their input after the barrier.
type TriggerAction struct {
	CheckpointID int64
	Kind         checkpoint.Kind
	Timestamp    time.Time
	Stop         bool
}

// PersistAction tells the runtime to write Metadata atomically and answer
// with a PersistedEvent. The checkpoint is complete only once that write
// succeeded.
type PersistAction struct{ Metadata *checkpoint.Metadata }

// CompleteAction tells the runtime that CheckpointID is complete (its
// metadata is durable): it must call notifyCheckpointComplete on every task.
type CompleteAction struct {
	CheckpointID int64
	Kind         checkpoint.Kind
	Stop         bool
	Metadata     *checkpoint.Metadata
}

// AbortAction tells the runtime that CheckpointID will never complete: tasks
// get notifyCheckpointAborted and its files may be deleted.
type AbortAction struct {
	CheckpointID int64
	Kind         checkpoint.Kind
	Reason       error
}

// DiscardAction tells the runtime to delete a completed checkpoint that
// retention no longer keeps.
type DiscardAction struct{ CheckpointID int64 }

// FailJobAction tells the runtime to fail the job attempt: more checkpoints
// failed in a row than checkpoint.Config.TolerableFailures allows.
type FailJobAction struct{ Err error }

func (TriggerAction) isAction()  {}
func (PersistAction) isAction()  {}
func (CompleteAction) isAction() {}
func (AbortAction) isAction()    {}
func (DiscardAction) isAction()  {}
func (FailJobAction) isAction()  {}
