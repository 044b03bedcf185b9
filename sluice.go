// Package sluice is a fault-tolerant, stateful stream processor in the mould
// of Apache Flink: you describe a dataflow of typed streams, and Sluice runs
// it in parallel with checkpointed state, replay from replayable sources and
// exactly-once output through two-phase-commit sinks.
//
//	env := sluice.New(sluice.Config{JobName: "count", CheckpointDir: "ckpt"})
//	src := sluice.FromSource(env, "input", datagen.New(datagen.Config{...}))
//	keyed := sluice.KeyBy(src, func(r datagen.Record) string { return r.Key })
//	counts := sluice.Process(keyed, "count", newCounter)
//	sluice.Sink(counts, "output", file.NewSink(...))
//	result, err := env.Execute(ctx)
//
// Every operator has a stable uid (by default its name) under which its
// state is stored in checkpoints and savepoints, so a new version of a job
// can restore an old snapshot. Keyed state is sharded into key groups (the
// job's max parallelism), which is what lets a job be restored at another
// parallelism.
package sluice

import (
	"time"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/internal/runtime"
)

// Emitter receives records one call at a time: a source reader's Poll emits
// what it read into one, and chained operators call each other through
// them.
type Emitter[T any] interface {
	// Emit passes v downstream. An error stops the job attempt; the caller
	// returns it.
	Emit(v T) error
}

// JobStatus is a point-in-time view of a running job: its restarts,
// checkpoints and per-task counters (docs/design.md §8). It is a copy; the
// caller may keep it. Counters are over the whole run, every attempt
// included.
type JobStatus struct {
	// Restarts counts the attempts that failed and were restarted.
	Restarts int64
	// CheckpointsCompleted counts the checkpoints completed in this run.
	CheckpointsCompleted int64
	// CheckpointsFailed counts the checkpoints of this run that failed or
	// were declined.
	CheckpointsFailed int64
	// LastCheckpointID is the id of the newest checkpoint this run
	// completed, zero if none.
	LastCheckpointID int64
	// LastRecovery is how long the last restart took, from the failure to
	// the new attempt running; zero if the job never restarted.
	LastRecovery time.Duration
	// Vertices holds the counters of each task (a chain of operators), in
	// plan order.
	Vertices []VertexStatus
	// Checkpoints is the checkpoint coordinator's view: counts, retained
	// checkpoints and recent history. Nil before the first attempt.
	Checkpoints *checkpoint.Stats
}

// VertexStatus sums the counters of one task's subtasks.
type VertexStatus struct {
	// Name is the name of the chain's first operator.
	Name string
	// Parallelism is the task's number of subtasks.
	Parallelism int
	// RecordsInAttempt counts the records the task received in the current
	// attempt: since the restored checkpoint, each record once.
	RecordsInAttempt int64
	// RecordsOutAttempt counts the records the task emitted downstream in
	// the current attempt.
	RecordsOutAttempt int64
	// RecordsInTotal counts the records the task received over every
	// attempt of this run: replayed records are counted again, so after a
	// restart it exceeds the input (docs/design.md §8).
	RecordsInTotal int64
	// RecordsOutTotal counts the records the task emitted over every
	// attempt, replays included.
	RecordsOutTotal int64
	// BusyNanos is the time the subtasks spent processing (records,
	// timers, snapshots), summed; backpressured time is not included.
	// Busy, idle and backpressured time are disjoint and add up to the
	// subtasks' running time, as Flink defines them.
	BusyNanos int64
	// IdleNanos is the time the subtasks waited for input, control mail or
	// a timer, summed.
	IdleNanos int64
	// BackpressuredNanos is the time the subtasks were blocked on a full
	// output edge, summed.
	BackpressuredNanos int64
	// AlignmentNanos is the time the subtasks spent aligning checkpoint
	// barriers (first barrier to last), summed; it overlaps the other
	// three.
	AlignmentNanos int64
	// LateRecords counts the records the task's window operators found
	// late, past the allowed lateness of all their windows, and those its
	// interval joins found at or below the watermark, over every attempt
	// (replays counted again): sent to the late side output, or dropped
	// when there is none (docs/design.md §14).
	LateRecords int64
}

// jobStatus copies the runtime's status into the public type.
func jobStatus(s runtime.Status) JobStatus {
	js := JobStatus{
		Restarts:             s.Restarts,
		CheckpointsCompleted: s.CheckpointsCompleted,
		CheckpointsFailed:    s.CheckpointsFailed,
		LastCheckpointID:     s.LastCheckpointID,
		LastRecovery:         s.LastRecovery,
		Checkpoints:          s.Checkpoints,
	}
	for _, v := range s.Vertices {
		js.Vertices = append(js.Vertices, VertexStatus{
			Name: v.Name, Parallelism: v.Parallelism,
			RecordsInAttempt: v.RecordsInAttempt, RecordsOutAttempt: v.RecordsOutAttempt,
			RecordsInTotal: v.RecordsInTotal, RecordsOutTotal: v.RecordsOutTotal,
			BusyNanos: v.BusyNanos, IdleNanos: v.IdleNanos, BackpressuredNanos: v.BackpressuredNanos,
			AlignmentNanos: v.AlignmentNanos, LateRecords: v.LateRecords,
		})
	}
	return js
}

// Collector collects the outputs of a user function. It remembers the first
// downstream error, which the operator returns after the function.
type Collector[T any] struct {
	out Emitter[T]
	err error
}

// Collect emits v downstream.
func (c *Collector[T]) Collect(v T) {
	if c.err == nil {
		c.err = c.out.Emit(v)
	}
}

func (c *Collector[T]) take() error {
	err := c.err
	c.err = nil
	return err
}
