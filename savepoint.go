package sluice

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/sluicehq/sluice/internal/runtime"
)

// ErrNotRunning is wrapped by the error TriggerSavepoint and
// StopWithSavepoint return when the job has not started running yet or has
// already ended.
var ErrNotRunning = runtime.ErrNotRunning

// TriggerSavepoint takes a savepoint of the running job (not a stop) and
// returns its directory once complete. Savepoints go to Config.SavepointDir
// (default <CheckpointDir>/savepoints), are self-contained and relocatable
// (copy the directory anywhere and restore it with Config.FromCheckpoint),
// and are never deleted by checkpoint retention.
//
// A savepoint that fails or is aborted returns an error naming why; the job
// keeps running. Like Flink's, an intermediate savepoint commits no sink
// transactions: they are committed with the next checkpoint.
func (e *Environment) TriggerSavepoint(ctx context.Context) (path string, err error) {
	job, err := e.runningJob(ctx)
	if err != nil {
		return "", fmt.Errorf("savepoint: %w", err)
	}
	return job.Savepoint(ctx, false, false)
}

// StopWithSavepoint stops the job with a savepoint (Flink's stop
// --savepointPath): sources stop after the savepoint's barrier, the
// savepoint's transactions commit, Execute returns nil, and the savepoint's
// directory is returned. drain first emits the final watermark through the
// job, so that every event-time timer and window fires before the
// savepoint: for a job that is retired, not upgraded. Without drain, timers
// stay in the savepoint.
//
// If the savepoint fails, the job keeps running (as in Flink) and the error
// says so.
func (e *Environment) StopWithSavepoint(ctx context.Context, drain bool) (path string, err error) {
	job, err := e.runningJob(ctx)
	if err != nil {
		return "", fmt.Errorf("stop-with-savepoint: %w", err)
	}
	return job.Savepoint(ctx, true, drain)
}

// runningJob waits until Execute made the job (or ctx ends).
func (e *Environment) runningJob(ctx context.Context) (*runtime.Job, error) {
	if !e.executed.Load() {
		return nil, ErrNotRunning
	}
	select {
	case <-e.ready:
		return e.job, nil
	case <-e.exited:
		return nil, ErrNotRunning
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// JobID is a stable id of this run of the job, 32 hex digits, fixed when the
// Environment is made (the REST API's {id}).
func (e *Environment) JobID() string { return e.jobID }

func newJobID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand, Go ≥ 1.24)
	return hex.EncodeToString(b[:])
}
