package runtime

import (
	"context"
	"errors"
	"fmt"

	"github.com/sluicehq/sluice/internal/coordinator"
)

// ErrCancelled is wrapped by the error Run returns when Cancel ended the
// job: a hard cancel, without a final checkpoint. Nothing is committed
// after it; the job resumes from its latest checkpoint when started again.
var ErrCancelled = errors.New("cancelled (no final checkpoint)")

// checkpointReq is a request for a checkpoint on demand, handed to the job
// master loop.
type checkpointReq struct {
	answer chan checkpointResult // buffered, one answer
}

type checkpointResult struct {
	id  int64
	err error
}

func (r *checkpointReq) reply(id int64, err error) {
	select {
	case r.answer <- checkpointResult{id: id, err: err}:
	default: // answered already
	}
}

// TriggerCheckpoint takes a checkpoint now, outside the periodic schedule
// (docs/design.md §3 step 1: forced, like a savepoint), and returns its id
// once it is complete: its metadata is durable and it is the newest
// restore point. Sinks commit it as they commit any checkpoint.
//
// It returns an error wrapping ErrNotRunning when the job has ended or is
// stopping, one naming the reason when the checkpoint is aborted (the job
// keeps running; the abort counts as a checkpoint failure, as any), and
// one wrapping ctx's error if ctx ends first (a checkpoint already
// triggered still completes or fails on its own). Between attempts the
// request waits for the next attempt.
func (j *Job) TriggerCheckpoint(ctx context.Context) (int64, error) {
	r := &checkpointReq{answer: make(chan checkpointResult, 1)}
	select {
	case j.cpReqs <- r:
	case <-j.done:
		return 0, fmt.Errorf("checkpoint: %w", ErrNotRunning)
	case <-ctx.Done():
		return 0, fmt.Errorf("checkpoint: not started: %w", ctx.Err())
	}
	select {
	case res := <-r.answer:
		return res.id, res.err
	case <-ctx.Done():
		return 0, fmt.Errorf("checkpoint: stopped waiting (it may still complete): %w", ctx.Err())
	}
}

// requestCheckpoint triggers a checkpoint for r, or answers it with why
// not.
func (d *driver) requestCheckpoint(r *checkpointReq) {
	if d.stopAsked || d.stopID != 0 || d.j.stopping() {
		r.reply(0, fmt.Errorf("checkpoint refused: the job is stopping (%w)", ErrNotRunning))
		return
	}
	before := d.coord.Pending()
	d.coord.Step(coordinator.TriggerCheckpointEvent{Now: d.a.clock.Now()})
	// Ids strictly increase, so the one triggered, if any, is the newest
	// pending one (its TriggerAction is carried out by the loop next).
	after := d.coord.Pending()
	if len(after) == 0 || (len(before) > 0 && after[len(after)-1] == before[len(before)-1]) {
		r.reply(0, errors.New("checkpoint refused by the coordinator (the job is stopping or failing)"))
		return
	}
	d.cps[after[len(after)-1]] = r
}

// checkpointComplete answers the request of a completed checkpoint.
func (d *driver) checkpointComplete(id int64) {
	if r := d.cps[id]; r != nil {
		delete(d.cps, id)
		d.publishStats()
		r.reply(id, nil)
	}
}

// checkpointAborted answers the request of an aborted checkpoint.
func (d *driver) checkpointAborted(act coordinator.AbortAction) {
	if r := d.cps[act.CheckpointID]; r != nil {
		delete(d.cps, act.CheckpointID)
		d.publishStats()
		r.reply(0, fmt.Errorf("checkpoint %d failed: %w; the job keeps running", act.CheckpointID, act.Reason))
	}
}

// failCheckpoints answers every checkpoint request still open when the
// attempt ends.
func (d *driver) failCheckpoints(why error) {
	if why == nil {
		why = errors.New("the attempt ended")
	}
	for id, r := range d.cps {
		r.reply(0, fmt.Errorf("checkpoint %d aborted: the job attempt ended (%w)", id, why))
	}
}

// Cancel ends the job at once, as Flink's cancel: no final checkpoint, no
// commit after it; every attempt's context is cancelled and Run returns
// an error wrapping ErrCancelled. Safe to call more than once and before
// Run.
func (j *Job) Cancel() {
	j.cancelOnce.Do(func() { close(j.cancelCh) })
}

// cancelled reports whether Cancel was called.
func (j *Job) cancelled() bool {
	select {
	case <-j.cancelCh:
		return true
	default:
		return false
	}
}

// withCancel returns ctx cancelled also by Cancel, and its release.
func (j *Job) withCancel(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case <-j.cancelCh:
			cancel(ErrCancelled)
		case <-ctx.Done():
		}
	}()
	return ctx, func() { cancel(nil) }
}

// cancelErr rewrites the error Run returns after a Cancel.
func (j *Job) cancelErr(err error) error {
	if err == nil || !j.cancelled() || errors.Is(err, ErrCancelled) {
		return err
	}
	j.log.Warn("job cancelled", "job", j.plan.JobName, "last", err)
	return fmt.Errorf("job %s %w", j.plan.JobName, ErrCancelled)
}

// publishStats makes the coordinator's statistics as of now what Status
// reads, before a caller is answered: one who asks for the checkpoint it
// was just told of finds it completed (or failed), not still in progress
// as of the loop's previous step.
func (d *driver) publishStats() {
	st := d.coord.Stats()
	d.j.coordStats.Store(&st)
}
