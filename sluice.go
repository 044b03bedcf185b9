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
	"github.com/sluicehq/sluice/internal/runtime"
)

// Emitter receives records one call at a time; an error stops the job
// attempt. Chained operators call each other through Emitters.
type Emitter[T any] = runtime.Emitter[T]

// Barrier is a checkpoint barrier as an operator sees it.
type Barrier = runtime.Barrier

// OperatorContext describes where an operator instance runs: its uid,
// subtask, parallelism, key groups, attempt and clock.
type OperatorContext = runtime.OperatorContext

// JobStatus is a point-in-time view of a running job.
type JobStatus = runtime.Status

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
