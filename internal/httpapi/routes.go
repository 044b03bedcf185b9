package httpapi

import (
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
)

// find returns the job with id and its name and status, answering 404
// itself when there is none.
func (s *Server) find(w http.ResponseWriter, id string) (e *entry, name, status string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.jobs {
		if e.job.JobID() == id {
			return e, e.name, e.status, true
		}
	}
	writeError(w, http.StatusNotFound, fmt.Sprintf("no job %q (see GET /api/v1/jobs)", id))
	return nil, "", "", false
}

func (s *Server) jobOverview(w http.ResponseWriter, r *http.Request) {
	e, name, status, ok := s.find(w, r.PathValue("id"))
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, overview(e.job.JobID(), name, status, e.job.Status(), s.cfg.Clock.Now()))
}

func (s *Server) jobPlan(w http.ResponseWriter, r *http.Request) {
	e, _, _, ok := s.find(w, r.PathValue("id"))
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, plan(e.job.Status()))
}

func (s *Server) vertex(w http.ResponseWriter, r *http.Request) {
	e, _, _, ok := s.find(w, r.PathValue("id"))
	if !ok {
		return
	}
	vid := r.PathValue("vid")
	st := e.job.Status()
	for _, v := range st.Vertices {
		if vertexID(v) != vid {
			continue
		}
		d := VertexDetail{VertexView: vertexView(v), Subtasks: []SubtaskView{}}
		for _, sub := range v.Subtasks {
			d.Subtasks = append(d.Subtasks, subtaskView(sub))
		}
		writeJSON(w, http.StatusOK, d)
		return
	}
	writeError(w, http.StatusNotFound, fmt.Sprintf("job %s has no vertex %q (see GET /api/v1/jobs/%s/plan)", e.job.JobID(), vid, e.job.JobID()))
}

func (s *Server) checkpoints(w http.ResponseWriter, r *http.Request) {
	e, _, _, ok := s.find(w, r.PathValue("id"))
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, checkpointOverview(e.job.Status()))
}

func (s *Server) checkpointDetail(w http.ResponseWriter, r *http.Request) {
	e, _, _, ok := s.find(w, r.PathValue("id"))
	if !ok {
		return
	}
	raw := r.PathValue("cid")
	cid, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || cid < 1 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("checkpoint id %q is not a positive integer", raw))
		return
	}
	st := e.job.Status()
	if st.Checkpoints != nil {
		for _, c := range st.Checkpoints.History {
			if c.ID == cid {
				writeJSON(w, http.StatusOK, detail(c))
				return
			}
		}
	}
	writeError(w, http.StatusNotFound, fmt.Sprintf("job %s: checkpoint %d is not in the history (the last %d of the current attempt; see GET /api/v1/jobs/%s/checkpoints)",
		e.job.JobID(), cid, checkpoint.HistorySize, e.job.JobID()))
}

func (s *Server) exceptions(w http.ResponseWriter, r *http.Request) {
	e, _, _, ok := s.find(w, r.PathValue("id"))
	if !ok {
		return
	}
	st := e.job.Status()
	writeJSON(w, http.StatusOK, Exceptions{Failure: failureView(st.LastFailure), Restore: restoreView(st.LastRestore)})
}

// triggerCheckpoint takes a checkpoint. Unlike a savepoint it does not
// claim the job: checkpoints may overlap each other and a savepoint (the
// engine forces them, as Flink's triggered checkpoints).
func (s *Server) triggerCheckpoint(w http.ResponseWriter, r *http.Request) {
	var body struct{}
	if !decode(w, r, &body) {
		return
	}
	e, _, status, ok := s.find(w, r.PathValue("id"))
	if !ok {
		return
	}
	if status != StatusRunning {
		writeError(w, http.StatusConflict, fmt.Sprintf("job %s is %s, not RUNNING", e.job.JobID(), status))
		return
	}
	s.log.Info("control API: checkpoint requested", "job", e.job.JobID(), "remote", r.RemoteAddr)
	id, err := e.job.TriggerCheckpoint(r.Context())
	if err != nil {
		s.log.Warn("control API: checkpoint failed", "job", e.job.JobID(), "err", err)
		writeError(w, failureCode(err), "checkpoint failed: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, TriggerCheckpointResponse{ID: id})
}

// cancel cancels a running or stopping job (a stop that hangs can be
// cancelled); it answers 202 at once: the job ends on its own.
func (s *Server) cancel(w http.ResponseWriter, r *http.Request) {
	var body struct{}
	if !decode(w, r, &body) {
		return
	}
	e, _, _, ok := s.find(w, r.PathValue("id"))
	if !ok {
		return
	}
	s.mu.Lock()
	status := e.status
	if status == StatusRunning || status == StatusStopping {
		e.status = StatusCancelling
	}
	s.mu.Unlock()
	switch status {
	case StatusRunning, StatusStopping:
	case StatusCancelling:
		writeJSON(w, http.StatusAccepted, CancelResponse{Status: StatusCancelling})
		return
	default:
		writeError(w, http.StatusConflict, fmt.Sprintf("job %s is %s: nothing to cancel", e.job.JobID(), status))
		return
	}
	s.log.Warn("control API: cancel requested (no final checkpoint)", "job", e.job.JobID(), "remote", r.RemoteAddr)
	e.job.Cancel()
	writeJSON(w, http.StatusAccepted, CancelResponse{Status: StatusCancelling})
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, HealthResponse{Status: "ok"})
}

// readyz applies the readiness rule (Config.ReadyIntervals) to every job.
func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	type job struct {
		e      *entry
		status string
	}
	jobs := make([]job, 0, len(s.jobs))
	for _, e := range s.jobs {
		jobs = append(jobs, job{e, e.status})
	}
	s.mu.Unlock()
	if len(jobs) == 0 {
		writeError(w, http.StatusServiceUnavailable, "not ready: no job yet")
		return
	}
	now := s.cfg.Clock.Now()
	for _, j := range jobs {
		if why := s.notReady(j.e, j.status, now); why != "" {
			writeError(w, http.StatusServiceUnavailable, "not ready: "+why)
			return
		}
	}
	writeJSON(w, http.StatusOK, HealthResponse{Status: "ready"})
}

// notReady says why one job is not ready, "" when it is: it must be
// RUNNING, and its newest completed checkpoint (or, before the first, its
// start) younger than ReadyIntervals checkpoint intervals. Without periodic
// checkpoints only RUNNING counts.
func (s *Server) notReady(e *entry, status string, now time.Time) string {
	id := e.job.JobID()
	if status != StatusRunning {
		return fmt.Sprintf("job %s is %s, not RUNNING", id, status)
	}
	interval := e.job.CheckpointConfig().Interval
	if interval <= 0 {
		return ""
	}
	st := e.job.Status()
	limit := time.Duration(s.cfg.ReadyIntervals) * interval
	last := lastCheckpointAt(st)
	if !last.IsZero() {
		if age := now.Sub(last); age >= limit {
			return fmt.Sprintf("job %s: the newest completed checkpoint (%d) is %v old, %d checkpoint intervals of %v or more",
				id, st.LastCheckpointID, age.Round(time.Millisecond), s.cfg.ReadyIntervals, interval)
		}
		return ""
	}
	started := st.StartedAt
	if started.IsZero() {
		started = e.added
	}
	if age := now.Sub(started); age >= limit {
		return fmt.Sprintf("job %s: no checkpoint completed in %v since the start, %d checkpoint intervals of %v or more",
			id, age.Round(time.Millisecond), s.cfg.ReadyIntervals, interval)
	}
	return ""
}

// lastCheckpointAt is when the job's newest checkpoint completed: the
// run's LastCheckpointAt, else the newest completed checkpoint of the
// history; zero if none.
func lastCheckpointAt(st sluice.JobStatus) time.Time {
	last := st.LastCheckpointAt
	if st.Checkpoints != nil {
		for _, c := range st.Checkpoints.History {
			if c.Kind == checkpoint.KindCheckpoint && c.Status == checkpoint.StatusCompleted && c.CompletedAt.After(last) {
				last = c.CompletedAt
			}
		}
	}
	return last
}

// recoverJSON answers a handler's panic with a JSON 500 and logs it at
// ERROR, instead of net/http's dropped connection: a bug, never bad input.
func recoverJSON(log *slog.Logger, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				log.Error("control API: handler panicked", "method", r.Method, "path", r.URL.Path, "panic", v)
				writeError(w, http.StatusInternalServerError, fmt.Sprintf("internal error: %v", v))
			}
		}()
		h(w, r)
	}
}

// The Environment is a Job.
var _ Job = (*sluice.Environment)(nil)
