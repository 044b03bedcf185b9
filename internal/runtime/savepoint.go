package runtime

import (
	"context"
	"errors"
	"fmt"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/checkpoint/store"
	"github.com/sluicehq/sluice/internal/coordinator"
)

// ErrNotRunning is returned by Savepoint when the job has ended (or ends
// before an attempt takes the request).
var ErrNotRunning = errors.New("job is not running")

// errStopSavepointFailed marks an attempt that ended because its
// stop-with-savepoint was aborted: Run restarts it at once, outside the
// restart strategy, because the job itself did not fail.
var errStopSavepointFailed = errors.New("stop-with-savepoint failed")

// savepointReq is a request for a savepoint, handed to the job master loop.
type savepointReq struct {
	stop, drain bool
	// root is the savepoint root the savepoint is written into.
	root store.Storage
	// id is set once the savepoint is triggered.
	id     int64
	answer chan savepointResult // buffered, one answer
}

type savepointResult struct {
	dir string
	err error
}

func (r *savepointReq) reply(dir string, err error) {
	select {
	case r.answer <- savepointResult{dir: dir, err: err}:
	default: // answered already
	}
}

func (r *savepointReq) what() string {
	switch {
	case r.stop && r.drain:
		return "stop-with-savepoint (drain)"
	case r.stop:
		return "stop-with-savepoint"
	}
	return "savepoint"
}

// Savepoint takes a savepoint of the running job and returns its location
// (its directory, for a store.FS) once it is complete (docs/design.md §3).
// With stop set the sources end their input after the savepoint's barrier,
// the savepoint's transactions are committed and Run returns nil; Savepoint
// returns once Run is about to return. drain (with stop) first emits the
// final watermark from every source.
//
// A savepoint that fails returns an error naming why. The job keeps
// running: after an intermediate savepoint untouched, after a failed stop
// by restarting at once from its latest checkpoint (the sources had
// already ended their input). If ctx ends first, Savepoint returns ctx's
// error; a savepoint already triggered still completes or fails on its
// own.
func (j *Job) Savepoint(ctx context.Context, stop, drain bool) (string, error) {
	r := &savepointReq{stop: stop, drain: drain && stop, answer: make(chan savepointResult, 1)}
	if j.cfg.Savepoints == nil {
		return "", fmt.Errorf("%s refused: savepoint-dir: not configured (set it when checkpoint-storage is not a directory)", r.what())
	}
	root, err := j.savepointRoot()
	if err != nil {
		return "", fmt.Errorf("%s refused: %w", r.what(), err)
	}
	r.root = root
	select {
	case j.spReqs <- r:
	case <-j.done:
		return "", fmt.Errorf("%s: %w", r.what(), ErrNotRunning)
	case <-ctx.Done():
		return "", fmt.Errorf("%s: not started: %w", r.what(), ctx.Err())
	}
	select {
	case res := <-r.answer:
		return res.dir, res.err
	case <-ctx.Done():
		return "", fmt.Errorf("%s: stopped waiting (it may still complete): %w", r.what(), ctx.Err())
	}
}

// request starts a savepoint for r, or answers it with why not.
func (d *driver) request(r *savepointReq) {
	var why string
	switch {
	case d.stopAsked || d.stopID != 0 || d.j.stopping():
		// Also when bounded sources ran out: the job is finishing with a
		// final checkpoint.
		why = "the job is stopping"
	}
	if why != "" {
		r.reply("", fmt.Errorf("%s refused: %s", r.what(), why))
		return
	}
	if r.stop {
		// No final checkpoint besides: the savepoint is the final snapshot.
		d.stopAsked = true
	}
	d.nextSP = r
	d.coord.Step(coordinator.TriggerSavepointEvent{Now: d.a.clock.Now(), Stop: r.stop})
}

// savepointTriggered makes the directory of the savepoint act triggers and
// ties it to its request; it returns whether its sources drain.
func (d *driver) savepointTriggered(act coordinator.TriggerAction) bool {
	r := d.nextSP
	d.nextSP = nil
	if r == nil {
		// Not requested through Savepoint (no other trigger exists now);
		// answer nobody but still write it where savepoints go.
		r = &savepointReq{stop: act.Stop, answer: make(chan savepointResult, 1)}
	}
	r.id = act.CheckpointID
	d.sps[act.CheckpointID] = r
	if r.root == nil {
		return false // its writes fail: "no savepoint directory"
	}
	sn, err := store.NewSavepoint(r.root, act.CheckpointID)
	if err != nil {
		// Not reachable for a valid id; the writes fail and the savepoint
		// aborts, naming this.
		d.j.log.Error("savepoint directory", "savepoint", act.CheckpointID, "err", err)
		return false
	}
	d.a.writesMu.Lock()
	if d.a.savepoints == nil {
		d.a.savepoints = map[int64]*store.Snapshot{}
	}
	d.a.savepoints[act.CheckpointID] = sn
	d.a.writesMu.Unlock()
	d.j.log.Info("savepoint triggered", "job", d.j.plan.JobName, "savepoint", act.CheckpointID,
		"stop", act.Stop, "drain", r.drain, "location", sn.Location())
	return r.drain
}

// savepointComplete answers the request of a completed savepoint; a stop's
// answer waits for the end of Run.
func (d *driver) savepointComplete(act coordinator.CompleteAction) {
	r := d.sps[act.CheckpointID]
	delete(d.sps, act.CheckpointID)
	sn := d.a.savepoint(act.CheckpointID)
	if r == nil || sn == nil {
		return
	}
	loc := sn.Location()
	d.j.log.Info("savepoint complete", "job", d.j.plan.JobName, "savepoint", act.CheckpointID, "stop", act.Stop, "location", loc)
	if !act.Stop {
		d.publishStats()
		r.reply(loc, nil)
		return
	}
	d.j.stopMu.Lock()
	if d.j.stopSP == nil {
		d.j.stopSP = r
	}
	d.j.stopDir = loc
	d.j.stopMu.Unlock()
}

// resumeStop returns the request of a stop-with-savepoint that completed in
// an earlier attempt, which then failed: the attempt restoring it stops
// with a savepoint again at once (see Run), so that the records it reads
// before its sources stop are in a savepoint and nothing is committed
// outside one.
func (j *Job) resumeStop() *savepointReq {
	j.stopMu.Lock()
	defer j.stopMu.Unlock()
	return j.stopSP
}

// savepointAborted answers the request of an aborted savepoint.
func (d *driver) savepointAborted(act coordinator.AbortAction) {
	r := d.sps[act.CheckpointID]
	delete(d.sps, act.CheckpointID)
	if r == nil {
		return
	}
	if r.stop {
		r.reply("", fmt.Errorf("%s %d failed: %w; the job keeps running: it restarts from its latest checkpoint", r.what(), act.CheckpointID, act.Reason))
		return
	}
	r.reply("", fmt.Errorf("savepoint %d failed: %w; the job keeps running", act.CheckpointID, act.Reason))
}

// failSavepoints answers every request still open when the attempt ends.
func (d *driver) failSavepoints(why error) {
	if why == nil {
		why = errors.New("the attempt ended")
	}
	for id, r := range d.sps {
		r.reply("", fmt.Errorf("%s %d aborted: the job attempt failed (%w); the job restarts as its restart strategy allows", r.what(), id, why))
	}
	if d.nextSP != nil {
		d.nextSP.reply("", fmt.Errorf("%s not triggered: the job attempt ended", d.nextSP.what()))
	}
}

// savepointRoot opens the savepoint root once; a failure is retried by the
// next request.
func (j *Job) savepointRoot() (store.Storage, error) {
	j.stopMu.Lock()
	defer j.stopMu.Unlock()
	if j.spRoot == nil {
		root, err := j.cfg.Savepoints()
		if err != nil {
			return nil, err
		}
		j.spRoot = root
	}
	return j.spRoot, nil
}

// stopSavepointDir is the location of the completed stop-with-savepoint,
// "" if none.
func (j *Job) stopSavepointDir() string {
	j.stopMu.Lock()
	defer j.stopMu.Unlock()
	return j.stopDir
}

// endSavepoints answers the stop-with-savepoint when Run returns with
// runErr, and refuses later requests.
func (j *Job) endSavepoints(runErr error) {
	close(j.done)
	j.stopMu.Lock()
	r, dir := j.stopSP, j.stopDir
	j.stopMu.Unlock()
	if r == nil {
		return
	}
	if runErr != nil {
		r.reply(dir, fmt.Errorf("%s %s is complete, but the job did not end cleanly after it: %w", r.what(), dir, runErr))
		return
	}
	r.reply(dir, nil)
}

// savepoint returns the directory of savepoint id triggered in this
// attempt, or nil for a checkpoint.
func (a *attempt) savepoint(id int64) *store.Snapshot {
	a.writesMu.Lock()
	defer a.writesMu.Unlock()
	return a.savepoints[id]
}

// writeSavepointMetadata completes a savepoint: its _metadata, written only
// while this instance owns the job's checkpoints (docs/design.md §9).
func (a *attempt) writeSavepointMetadata(sn *store.Snapshot, m *checkpoint.Metadata) error {
	return a.j.cfg.Store.WriteCompleting(a.ctx, m.CheckpointID, "savepoint", func() error {
		if err := sn.WriteMetadata(a.ctx, m); err != nil {
			return fmt.Errorf("savepoint %d: %w", m.CheckpointID, err)
		}
		return nil
	})
}

// deleteSavepoint deletes the files of an aborted savepoint.
func (a *attempt) deleteSavepoint(id int64, sn *store.Snapshot) error {
	err := sn.Delete(context.WithoutCancel(a.ctx))
	a.writesMu.Lock()
	delete(a.savepoints, id)
	a.writesMu.Unlock()
	if err != nil {
		return fmt.Errorf("delete aborted savepoint %s: %w", sn.Location(), err)
	}
	return nil
}
