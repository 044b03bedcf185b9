package sluice

import (
	"context"
	"fmt"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/internal/runtime"
)

// ErrCancelled is wrapped by the error Execute returns when Cancel ended
// the job: a hard cancel, as Flink's cancel, without a final checkpoint.
// Nothing is committed after it and nothing is lost: the job resumes from
// its latest checkpoint when started again.
var ErrCancelled = runtime.ErrCancelled

// TriggerCheckpoint takes a checkpoint of the running job now (a
// checkpoint, not a savepoint: it joins the job's checkpoint lineage,
// counts towards retention and its transactions commit) and returns its id
// once complete. Like a savepoint it is forced, ignoring the interval and
// the minimum pause, and it leaves the periodic schedule unchanged
// (docs/design.md §3 step 1).
//
// It returns an error wrapping ErrNotRunning when the job has not started
// running, has ended or is stopping, and one naming the reason when the
// checkpoint fails (the job keeps running; the failure counts towards
// checkpoint.Config.TolerableFailures like any).
func (e *Environment) TriggerCheckpoint(ctx context.Context) (int64, error) {
	job, err := e.runningJob(ctx)
	if err != nil {
		return 0, fmt.Errorf("checkpoint: %w", err)
	}
	return job.TriggerCheckpoint(ctx)
}

// Cancel ends the job at once (Flink's cancel): no final checkpoint is
// taken and nothing more is committed; Execute returns an error wrapping
// ErrCancelled. Open transactions are aborted, or left to the next start's
// recovery, as after a crash. Safe to call more than once, and before
// Execute (the job is then cancelled as soon as it runs). To stop cleanly
// use Stop or StopWithSavepoint.
func (e *Environment) Cancel() {
	e.stopMu.Lock()
	defer e.stopMu.Unlock()
	e.cancelAsked = true
	if e.job != nil {
		e.job.Cancel()
	}
}

// CheckpointConfig returns the job's checkpoint configuration with its
// defaults filled in (the interval the readiness check and the metrics
// measure against).
func (e *Environment) CheckpointConfig() checkpoint.Config {
	return e.cfg.Checkpoint.WithDefaults()
}
