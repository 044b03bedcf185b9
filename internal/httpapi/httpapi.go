// Package httpapi is the running job's control endpoint: JSON under
// /api/v1/, with the routes named as Flink's REST API names them
// (docs/design.md §8), plus the health probes. It lists the jobs of the
// process and, per job, serves its overview, plan, vertices, checkpoints
// and exceptions, and takes a checkpoint or savepoint, stops with a
// savepoint, or cancels. Reads are open; every mutating call needs the
// bearer token when one is configured, and a listener on a non-loopback
// address is refused without one.
//
// Routes (docs/rest.md and docs/openapi.yaml describe every answer):
//
//	GET  /healthz                              {"status": "ok"}
//	GET  /readyz                               200 {"status": "ready"} or 503 {"error": ...}
//	GET  /api/v1/jobs                          {"jobs": [{"id", "name", "status"}]}
//	GET  /api/v1/jobs/{id}                     JobOverview
//	GET  /api/v1/jobs/{id}/plan                Plan
//	GET  /api/v1/jobs/{id}/vertices/{vid}      VertexDetail
//	GET  /api/v1/jobs/{id}/checkpoints         CheckpointOverview
//	GET  /api/v1/jobs/{id}/checkpoints/{cid}   CheckpointDetail
//	GET  /api/v1/jobs/{id}/exceptions          Exceptions
//	POST /api/v1/jobs/{id}/checkpoints         {} → {"id": N} once complete
//	POST /api/v1/jobs/{id}/savepoints          {} → {"path": ...} once complete
//	POST /api/v1/jobs/{id}/stop                {"savepoint": true, "drain": false} → {"path": ...}
//	POST /api/v1/jobs/{id}/cancel              {} → 202 {"status": "CANCELLING"}
//
// Errors are {"error": "..."} with a status code that says what happened:
// 400 a bad request (bad JSON, an unknown field, a bad id), 401 no token,
// 403 a wrong token, 404 an unknown job, vertex, checkpoint or route, 405 a
// wrong method, 409 a savepoint or stop already in progress or a job not
// running (sluice.ErrNotRunning), 500 a checkpoint or savepoint that failed
// (the job keeps running). Bad input never gets a 500.
package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/clock"
)

// Job is what the server controls: a *sluice.Environment.
type Job interface {
	// Status returns the job's counters (docs/design.md §8).
	Status() sluice.JobStatus
	// CheckpointConfig returns the job's checkpoint configuration, defaults
	// filled in: the readiness check measures against its interval.
	CheckpointConfig() checkpoint.Config
	// TriggerCheckpoint takes a checkpoint and returns its id once it is
	// complete.
	TriggerCheckpoint(ctx context.Context) (int64, error)
	// Cancel cancels the job at once, without a final checkpoint.
	Cancel()
	// JobID is the job's id in the routes.
	JobID() string
	// TriggerSavepoint takes a savepoint and returns its directory.
	TriggerSavepoint(ctx context.Context) (string, error)
	// StopWithSavepoint stops the job with a savepoint and returns its
	// directory.
	StopWithSavepoint(ctx context.Context, drain bool) (string, error)
}

// Job statuses, as Flink names them.
const (
	StatusRunning  = "RUNNING"
	StatusStopping = "STOPPING"
	StatusFinished = "FINISHED"
	StatusFailed   = "FAILED"
	// StatusCancelling: a cancel was asked through the API.
	StatusCancelling = "CANCELLING"
	// StatusCancelled: the job ended by a cancel (Execute returned an
	// error wrapping sluice.ErrCancelled).
	StatusCancelled = "CANCELED"
)

// DefaultReadyIntervals is the default of Config.ReadyIntervals.
const DefaultReadyIntervals = 3

// Config configures a Server.
type Config struct {
	// Addr is the address to listen on, host:port; port 0 picks a free
	// port. The host must be a loopback address (127.0.0.1, ::1 or
	// localhost) unless Token is set [http].
	Addr string
	// Token, when set, is the bearer token every mutating call must carry
	// (Authorization: Bearer <token>) [http-token].
	Token string
	// Logger receives a line per mutating call; default slog.Default().
	Logger *slog.Logger
	// ReadyIntervals is N of the readiness rule: GET /readyz answers 200
	// while every job is RUNNING and its newest completed checkpoint is
	// younger than N checkpoint intervals (a job younger than that with no
	// checkpoint yet is ready). Default DefaultReadyIntervals.
	ReadyIntervals int
	// Clock is the time the uptime and the readiness rule are measured
	// with; the job's clock. Default the wall clock.
	Clock clock.Clock
}

// CheckAddr refuses an address the server must not listen on without a
// token: one whose host is not loopback (an empty host listens on every
// interface). The error names the key http.
func CheckAddr(addr string, token bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("http: %q is not host:port: %w", addr, err)
	}
	if token || IsLoopback(host) {
		return nil
	}
	if host == "" {
		host = "every interface"
	}
	return fmt.Errorf("http: %s (%s) is not a loopback address: set http-token to serve it beyond this host", addr, host)
}

// IsLoopback reports whether host names the loopback interface.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Server serves the control API for the jobs added to it.
type Server struct {
	cfg   Config
	token [sha256.Size]byte
	log   *slog.Logger
	mu    sync.Mutex
	jobs  []*entry
	srv   *http.Server
	ln    net.Listener
	// extra are the routes added with Handle.
	extra []route
}

type entry struct {
	job  Job
	name string
	// status and busy are guarded by Server.mu. busy is set while a
	// savepoint or stop is in progress: a second one is refused (409).
	status string
	busy   string
	// stopped is the path of the savepoint the job stopped with.
	stopped string
	// added is when the job was added: its age when its status does not
	// say when it started.
	added time.Time
}

// New returns a server for cfg; it does not listen yet.
func New(cfg Config) (*Server, error) {
	if err := CheckAddr(cfg.Addr, cfg.Token != ""); err != nil {
		return nil, err
	}
	if cfg.ReadyIntervals < 0 {
		return nil, fmt.Errorf("http: ready intervals must not be negative, got %d", cfg.ReadyIntervals)
	}
	if cfg.ReadyIntervals == 0 {
		cfg.ReadyIntervals = DefaultReadyIntervals
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	s := &Server{cfg: cfg, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	if cfg.Token != "" {
		s.token = sha256.Sum256([]byte(cfg.Token))
	}
	return s, nil
}

// Add registers a running job under its JobID and name.
func (s *Server) Add(j Job, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.jobs = append(s.jobs, &entry{job: j, name: name, status: StatusRunning, added: s.cfg.Clock.Now()})
}

// SetStatus records that the job with id ended (StatusFinished or
// StatusFailed); it stays listed.
func (s *Server) SetStatus(id, status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.jobs {
		if e.job.JobID() == id {
			e.status = status
		}
	}
}

// StoppedWith returns the path of the savepoint job id was stopped with
// through the API, "" if it was not. Call it after Shutdown: a stop's call
// may still be in progress before.
func (s *Server) StoppedWith(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.jobs {
		if e.job.JobID() == id {
			return e.stopped
		}
	}
	return ""
}

// Start listens on Config.Addr and serves in the background. Addr returns
// the address it listens on.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("http: listen on %s: %w", s.cfg.Addr, err)
	}
	s.ln = ln
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("control API stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	return nil
}

// Addr returns the address the server listens on, once started.
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Shutdown stops listening and waits, until ctx ends, for calls in
// progress to be answered (a stop's answer is written before the process
// exits).
func (s *Server) Shutdown(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	return s.srv.Shutdown(ctx)
}

// Handle mounts h on pattern (a net/http ServeMux pattern, such as
// "GET /metrics") beside the API's own routes: the metrics, the dashboard
// and the profiler share the one endpoint. Call it before Start.
func (s *Server) Handle(pattern string, h http.Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.extra = append(s.extra, route{pattern, h})
}

type route struct {
	pattern string
	h       http.Handler
}

// Handler returns the API's handler (for tests and for mounting it under
// another server).
func (s *Server) Handler() http.Handler {
	return muxErrorsAsJSON(s.mux())
}

// mux returns the routes' mux, its errors not yet JSON.
func (s *Server) mux() *http.ServeMux {
	mux := http.NewServeMux()
	s.mu.Lock()
	for _, r := range s.extra {
		mux.Handle(r.pattern, r.h)
	}
	s.mu.Unlock()
	for _, r := range s.routes() {
		h := r.h
		if r.mutating {
			h = s.auth(h)
		}
		mux.HandleFunc(r.pattern, recoverJSON(s.log, h))
	}
	return mux
}

// apiRoute is one route of the API.
type apiRoute struct {
	pattern  string
	mutating bool
	h        http.HandlerFunc
}

// routes lists the API's own routes; docs/openapi.yaml describes each
// (TestOpenAPICoversRoutes).
func (s *Server) routes() []apiRoute {
	return []apiRoute{
		{"GET /healthz", false, s.healthz},
		{"GET /readyz", false, s.readyz},
		{"GET /api/v1/jobs", false, s.listJobs},
		{"GET /api/v1/jobs/{id}", false, s.jobOverview},
		{"GET /api/v1/jobs/{id}/plan", false, s.jobPlan},
		{"GET /api/v1/jobs/{id}/vertices/{vid}", false, s.vertex},
		{"GET /api/v1/jobs/{id}/checkpoints", false, s.checkpoints},
		{"GET /api/v1/jobs/{id}/checkpoints/{cid}", false, s.checkpointDetail},
		{"GET /api/v1/jobs/{id}/exceptions", false, s.exceptions},
		{"POST /api/v1/jobs/{id}/checkpoints", true, s.triggerCheckpoint},
		{"POST /api/v1/jobs/{id}/savepoints", true, s.savepoint},
		{"POST /api/v1/jobs/{id}/stop", true, s.stop},
		{"POST /api/v1/jobs/{id}/cancel", true, s.cancel},
	}
}

// JobInfo is one job in GET /api/v1/jobs.
type JobInfo struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Status string `json:"status"`
}

// JobList is the answer of GET /api/v1/jobs.
type JobList struct {
	Jobs []JobInfo `json:"jobs"`
}

// SavepointResponse is the answer of the savepoint and stop calls.
type SavepointResponse struct {
	Path string `json:"path"`
}

// StopRequest is the body of POST /api/v1/jobs/{id}/stop. Savepoint
// defaults to true; a stop without a savepoint is refused here (SIGTERM
// stops the job with a final checkpoint).
type StopRequest struct {
	Savepoint *bool `json:"savepoint"`
	Drain     bool  `json:"drain"`
}

// ErrorResponse is the body of every error.
type ErrorResponse struct {
	Error string `json:"error"`
}

func (s *Server) listJobs(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	list := JobList{Jobs: []JobInfo{}}
	for _, e := range s.jobs {
		list.Jobs = append(list.Jobs, JobInfo{ID: e.job.JobID(), Name: e.name, Status: e.status})
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) savepoint(w http.ResponseWriter, r *http.Request) {
	var body struct{}
	if !decode(w, r, &body) {
		return
	}
	e, ok := s.claim(w, r.PathValue("id"), "a savepoint")
	if !ok {
		return
	}
	s.log.Info("control API: savepoint requested", "job", e.job.JobID(), "remote", r.RemoteAddr)
	path, err := e.job.TriggerSavepoint(r.Context())
	s.release(e, StatusRunning)
	if err != nil {
		s.log.Warn("control API: savepoint failed", "job", e.job.JobID(), "err", err)
		writeError(w, failureCode(err), "savepoint failed: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, SavepointResponse{Path: path})
}

func (s *Server) stop(w http.ResponseWriter, r *http.Request) {
	var req StopRequest
	if !decode(w, r, &req) {
		return
	}
	if req.Savepoint != nil && !*req.Savepoint {
		writeError(w, http.StatusBadRequest, `"savepoint": false is not supported: stop takes a savepoint (send SIGTERM to stop with a final checkpoint instead)`)
		return
	}
	e, ok := s.claim(w, r.PathValue("id"), "a stop")
	if !ok {
		return
	}
	s.log.Info("control API: stop with savepoint requested", "job", e.job.JobID(), "drain", req.Drain, "remote", r.RemoteAddr)
	s.mu.Lock()
	e.status = StatusStopping
	s.mu.Unlock()
	// A stop is not abandoned with its caller: once asked, it completes
	// (bounded by the job's stop timeout) and the job's process reports its
	// savepoint even if the client went away.
	path, err := e.job.StopWithSavepoint(context.WithoutCancel(r.Context()), req.Drain)
	if err != nil {
		// The job keeps running when its stop-with-savepoint fails.
		s.release(e, StatusRunning)
		s.log.Warn("control API: stop with savepoint failed; the job keeps running", "job", e.job.JobID(), "err", err)
		writeError(w, failureCode(err), "stop with savepoint failed (the job keeps running): "+err.Error())
		return
	}
	s.mu.Lock()
	e.stopped = path
	s.mu.Unlock()
	s.release(e, StatusFinished)
	writeJSON(w, http.StatusOK, SavepointResponse{Path: path})
}

// failureCode is the status of a failed savepoint: 409 when the job was
// not running (not started yet, or ended meanwhile), else 500.
func failureCode(err error) int {
	if errors.Is(err, sluice.ErrNotRunning) {
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}

// claim finds the job with id and marks it busy with what, answering 404
// or 409 itself when it cannot.
func (s *Server) claim(w http.ResponseWriter, id, what string) (*entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.jobs {
		if e.job.JobID() != id {
			continue
		}
		switch {
		case e.busy != "":
			writeError(w, http.StatusConflict, fmt.Sprintf("job %s: %s is already in progress", id, e.busy))
			return nil, false
		case e.status != StatusRunning:
			writeError(w, http.StatusConflict, fmt.Sprintf("job %s is %s, not RUNNING", id, e.status))
			return nil, false
		}
		e.busy = what
		return e, true
	}
	writeError(w, http.StatusNotFound, fmt.Sprintf("no job %q (see GET /api/v1/jobs)", id))
	return nil, false
}

// release clears the busy mark and sets the status, unless the job ended
// meanwhile (SetStatus).
func (s *Server) release(e *entry, status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e.busy = ""
	if e.status == StatusRunning || e.status == StatusStopping {
		e.status = status
	}
}

// auth wraps a mutating handler: with a token configured, the request must
// carry it as a bearer token (401 without one, 403 with another), compared
// in constant time.
func (s *Server) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Token == "" {
			h(w, r)
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || got == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
			writeError(w, http.StatusUnauthorized, "this call needs the bearer token (Authorization: Bearer <http-token>)")
			return
		}
		// Hashing first makes the comparison independent of the lengths.
		sum := sha256.Sum256([]byte(got))
		if subtle.ConstantTimeCompare(sum[:], s.token[:]) != 1 {
			s.log.Warn("control API: wrong bearer token", "path", r.URL.Path, "remote", r.RemoteAddr)
			writeError(w, http.StatusForbidden, "wrong bearer token")
			return
		}
		h(w, r)
	}
}

// maxBody bounds a request body.
const maxBody = 1 << 16

// decode reads an optional JSON object body into v, refusing unknown fields
// and trailing data with 400.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeError(w, http.StatusBadRequest, "reading the request body: "+err.Error())
		return false
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return true
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "bad request body: "+err.Error())
		return false
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "bad request body: data after the JSON object")
		return false
	}
	return true
}

// writeJSON answers v with code. v is encoded before anything is written,
// so that a value JSON cannot hold is a clear 500, not a 200 with a cut
// body.
func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		b, _ = json.Marshal(ErrorResponse{Error: "internal error: encoding the answer: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, ErrorResponse{Error: msg})
}

// muxErrorsAsJSON turns the mux's own plain-text 404 and 405 answers into
// JSON errors. The handlers' errors are JSON already.
func muxErrorsAsJSON(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&jsonErrWriter{ResponseWriter: w, method: r.Method, path: r.URL.Path}, r)
	})
}

type jsonErrWriter struct {
	http.ResponseWriter
	method, path string
	swallow      bool
}

func (w *jsonErrWriter) WriteHeader(code int) {
	plain := strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain")
	if plain && (code == http.StatusMethodNotAllowed || code == http.StatusNotFound) {
		w.swallow = true
		w.Header().Del("X-Content-Type-Options")
		msg := fmt.Sprintf("no route %s %s (see GET /api/v1/jobs)", w.method, w.path)
		if code == http.StatusMethodNotAllowed {
			msg = fmt.Sprintf("%s is not allowed on %s (allowed: %s)", w.method, w.path, w.Header().Get("Allow"))
		}
		writeError(w.ResponseWriter, code, msg)
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *jsonErrWriter) Write(b []byte) (int, error) {
	if w.swallow {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}
