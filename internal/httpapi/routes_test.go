package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/clock"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// richStatus is a status with every field the routes show set.
func richStatus() sluice.JobStatus {
	wm := t0.Add(-5 * time.Second)
	return sluice.JobStatus{
		Restarts: 2, CheckpointsCompleted: 7, CheckpointsFailed: 1, LastCheckpointID: 9,
		LastCheckpointAt: t0.Add(-4 * time.Second),
		LastRecovery:     1500 * time.Millisecond, StartedAt: t0.Add(-90 * time.Second), AttemptStartedAt: t0.Add(-30 * time.Second),
		RestartsByCause: map[string]int64{sluice.CauseTaskFailure: 2},
		LastFailure:     &sluice.FailureInfo{At: t0.Add(-31 * time.Second), Vertex: "count", Subtask: 1, Cause: sluice.CauseTaskFailure, Error: "boom"},
		LastRestore:     &sluice.RestoreInfo{At: t0.Add(-30 * time.Second), Duration: 250 * time.Millisecond, CheckpointID: 6, Path: "/ck/chk-6", Kind: checkpoint.KindCheckpoint},
		Vertices: []sluice.VertexStatus{
			{Name: "input", UID: "input", Operators: []string{"input", "parse"}, Parallelism: 2, RecordsOutTotal: 1000,
				BackpressuredRatio: 0.35, BusyRatio: 0.5, IdleRatio: 0.15, RecordsOutRate: 123.5, Watermark: wm, BusyNanos: 2_500_000_000,
				Subtasks: []sluice.SubtaskStatus{{Index: 0, RecordsOutTotal: 600, BackpressuredRatio: 0.4}, {Index: 1, RecordsOutTotal: 400, BackpressuredRatio: 0.05, Watermark: wm}}},
			{Name: "count", UID: "count", Operators: []string{"count"}, Parallelism: 2, RecordsInTotal: 1000, BackpressuredRatio: 0.1, StateBytes: 4096, LateRecords: 3, LateDropped: 1, LateToSide: 2},
			// A ratio that is not a number must not break the answer.
			{Name: "out", UID: "out", Operators: []string{"out"}, Parallelism: 1, BackpressuredRatio: math.NaN(), RecordsInRate: math.Inf(1)},
		},
		Edges:   []sluice.EdgeStatus{{From: "input", To: "count", Partitioning: "hash", QueueFill: 0.75}, {From: "count", To: "out", Partitioning: "rebalance"}},
		Sources: []sluice.SourceStatus{{Vertex: "input", Name: "input", RecordsLagMax: 42, IdleSplits: 1, Splits: []sluice.SplitStatus{{Split: "t-0", Topic: "t", Partition: 0, Subtask: 0, Next: 10, End: 52, Lag: 42, Watermark: wm}, {Split: "t-1", Topic: "t", Partition: 1, Subtask: 1, Next: 5, End: -1, Lag: -1, Idle: true}}}},
		Sinks:   []sluice.SinkStatus{{Vertex: "out", Name: "out", TransactionsCommitted: 7, TransactionsAborted: 1, Commits: 4, CommitLatencySum: 400 * time.Millisecond, LastCommitLatency: 120 * time.Millisecond}},
		Checkpoints: &checkpoint.Stats{
			Completed: 3, Failed: 1, InProgress: 1, Retained: []int64{8, 9},
			History: []checkpoint.CheckpointStats{
				{ID: 8, Kind: checkpoint.KindCheckpoint, Status: checkpoint.StatusCompleted, TriggeredAt: t0.Add(-20 * time.Second), CompletedAt: t0.Add(-19 * time.Second), Duration: time.Second, Bytes: 100},
				{ID: 9, Kind: checkpoint.KindCheckpoint, Status: checkpoint.StatusCompleted, TriggeredAt: t0.Add(-5 * time.Second), CompletedAt: t0.Add(-4 * time.Second), Duration: 1200 * time.Millisecond,
					Bytes: 300, FullBytes: 300, IncrementalBytes: 50, MaxAlignment: 30 * time.Millisecond, MaxSyncDuration: 4 * time.Millisecond, MaxAsyncDuration: 900 * time.Millisecond, Acked: 5, Total: 5,
					Tasks: []checkpoint.TaskCheckpointStats{
						{Vertex: "out", Subtask: 0, AckedAt: t0.Add(-4 * time.Second), Duration: 1100 * time.Millisecond, Bytes: 10},
						{Vertex: "input", Subtask: 1, AckedAt: t0.Add(-4 * time.Second), Duration: time.Second, Bytes: 90, Alignment: 0, SyncDuration: 4 * time.Millisecond, AsyncDuration: 900 * time.Millisecond},
						{Vertex: "input", Subtask: 0, AckedAt: t0.Add(-4 * time.Second), Duration: time.Second, Bytes: 200, Alignment: 30 * time.Millisecond},
					}},
				{ID: 10, Kind: checkpoint.KindSavepoint, Status: checkpoint.StatusFailed, TriggeredAt: t0.Add(-3 * time.Second), CompletedAt: t0.Add(-2 * time.Second), Duration: time.Second, FailureReason: "savepoint 10 declined by task out/0: full"},
				{ID: 11, Kind: checkpoint.KindCheckpoint, Status: checkpoint.StatusInProgress, TriggeredAt: t0.Add(-time.Second), Duration: time.Second},
			},
		},
	}
}

// newRichServer serves one fake job "abc" with richStatus on a fake clock
// at t0.
func newRichServer(t *testing.T, token string) (*httptest.Server, *fakeJob, *clock.Fake) {
	t.Helper()
	clk := clock.NewFake(t0.Add(-100 * time.Second))
	s, err := New(Config{Addr: "127.0.0.1:0", Token: token, Clock: clk, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	j := &fakeJob{id: "abc", interval: 10 * time.Second}
	j.setStatus(richStatus())
	s.Add(j, "count")
	clk.Advance(100 * time.Second)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts, j, clk
}

// getJSON decodes a GET answer into v, failing on anything but 200.
func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := testClient.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v in %s", url, err, b)
	}
}

func TestBackpressureLevel(t *testing.T) {
	for _, tc := range []struct {
		ratio float64
		want  string
	}{
		{0, LevelOK}, {0.0999, LevelOK}, {0.10, LevelLow}, {0.2999, LevelLow}, {0.30, LevelHigh}, {1, LevelHigh},
	} {
		if got := BackpressureLevel(tc.ratio); got != tc.want {
			t.Errorf("BackpressureLevel(%v) = %s, want %s", tc.ratio, got, tc.want)
		}
	}
}

// TestJobOverview checks the overview's shape: times as RFC 3339,
// durations in ms, levels from the ratios, watermarks in epoch ms, every
// list present (empty, never null).
func TestJobOverview(t *testing.T) {
	ts, _, _ := newRichServer(t, "")
	var raw map[string]any
	getJSON(t, ts.URL+"/api/v1/jobs/abc", &raw)
	if raw["startedAt"] != "2026-03-01T11:58:30Z" || raw["uptimeMs"] != float64(90_000) || raw["lastRecoveryMs"] != float64(1500) {
		t.Errorf("times: startedAt %v uptimeMs %v lastRecoveryMs %v", raw["startedAt"], raw["uptimeMs"], raw["lastRecoveryMs"])
	}
	var o JobOverview
	getJSON(t, ts.URL+"/api/v1/jobs/abc", &o)
	if o.ID != "abc" || o.Name != "count" || o.Status != StatusRunning || o.Restarts != 2 || o.RestartsByCause[sluice.CauseTaskFailure] != 2 {
		t.Errorf("job: %+v", o)
	}
	if c := o.Checkpoints; c.Completed != 7 || c.Failed != 1 || c.InProgress != 1 || c.LastCompletedID != 9 || len(c.Retained) != 2 {
		t.Errorf("checkpoint counts: %+v", c)
	}
	if len(o.Vertices) != 3 {
		t.Fatalf("vertices: %+v", o.Vertices)
	}
	in, count, out := o.Vertices[0], o.Vertices[1], o.Vertices[2]
	if in.ID != "input" || len(in.Operators) != 2 || in.BackpressureLevel != LevelHigh || in.RecordsOutRate != 123.5 || in.BusyMs != 2500 ||
		in.Watermark == nil || *in.Watermark != t0.Add(-5*time.Second).UnixMilli() {
		t.Errorf("input vertex: %+v", in)
	}
	if count.BackpressureLevel != LevelLow || count.Watermark != nil || count.StateBytes != 4096 || count.LateDropped != 1 || count.LateToSide != 2 {
		t.Errorf("count vertex: %+v", count)
	}
	if out.BackpressureLevel != LevelOK || out.BackpressuredRatio != 0 || out.RecordsInRate != 0 {
		t.Errorf("a NaN ratio or infinite rate must read as 0: %+v", out)
	}
	if len(o.Edges) != 2 || o.Edges[0] != (EdgeView{From: "input", To: "count", Partitioning: "hash", QueueFill: 0.75}) {
		t.Errorf("edges: %+v", o.Edges)
	}
	if len(o.Sources) != 1 || o.Sources[0].RecordsLagMax != 42 || len(o.Sources[0].Splits) != 2 || o.Sources[0].Splits[1].Lag != -1 ||
		!o.Sources[0].Splits[1].Idle || o.Sources[0].Splits[1].Watermark != nil {
		t.Errorf("sources: %+v", o.Sources)
	}
	if len(o.Sinks) != 1 || o.Sinks[0].MeanCommitLatencyMs != 100 || o.Sinks[0].LastCommitLatencyMs != 120 {
		t.Errorf("sinks: %+v", o.Sinks)
	}

	// A job whose status is still empty (before Execute) answers empty
	// lists, not nulls, and no start time.
	ts2 := newTestServer(t, "", &fakeJob{id: "e"})
	raw = nil
	getJSON(t, ts2.URL+"/api/v1/jobs/e", &raw)
	for _, k := range []string{"vertices", "edges", "sources", "sinks"} {
		if l, ok := raw[k].([]any); !ok || len(l) != 0 {
			t.Errorf("empty job: %s = %v, want []", k, raw[k])
		}
	}
	if _, ok := raw["startedAt"]; ok {
		t.Errorf("empty job: startedAt %v, want it omitted", raw["startedAt"])
	}
}

func TestPlanAndVertex(t *testing.T) {
	ts, _, _ := newRichServer(t, "")
	var p Plan
	getJSON(t, ts.URL+"/api/v1/jobs/abc/plan", &p)
	if len(p.Vertices) != 3 || len(p.Vertices[0].Operators) != 2 ||
		p.Vertices[0].ID != "input" || p.Vertices[0].Parallelism != 2 || len(p.Edges) != 2 || p.Edges[1].Partitioning != "rebalance" {
		t.Errorf("plan: %+v", p)
	}
	var v VertexDetail
	getJSON(t, ts.URL+"/api/v1/jobs/abc/vertices/input", &v)
	if v.ID != "input" || len(v.Subtasks) != 2 || v.Subtasks[0].BackpressureLevel != LevelHigh || v.Subtasks[1].BackpressureLevel != LevelOK ||
		v.Subtasks[0].RecordsOutTotal != 600 || v.Subtasks[0].Watermark != nil || v.Subtasks[1].Watermark == nil {
		t.Errorf("vertex: %+v", v)
	}
}

func TestCheckpointRoutes(t *testing.T) {
	ts, _, _ := newRichServer(t, "")
	var o CheckpointOverview
	getJSON(t, ts.URL+"/api/v1/jobs/abc/checkpoints", &o)
	if len(o.History) != 4 || o.History[0].ID != 8 || o.Latest.Completed == nil || o.Latest.Completed.ID != 9 ||
		o.Latest.Failed == nil || o.Latest.Failed.ID != 10 || o.Latest.Savepoint != nil || o.Latest.Restored == nil || o.Latest.Restored.CheckpointID != 6 {
		t.Errorf("overview: %+v", o)
	}
	var raw map[string]any
	getJSON(t, ts.URL+"/api/v1/jobs/abc/checkpoints/9", &raw)
	if raw["durationMs"] != float64(1200) || raw["asyncMs"] != float64(900) || raw["alignmentMs"] != float64(30) ||
		raw["completedAt"] != "2026-03-01T11:59:56Z" || raw["incrementalBytes"] != float64(50) {
		t.Errorf("checkpoint 9: %v", raw)
	}
	var d CheckpointDetail
	getJSON(t, ts.URL+"/api/v1/jobs/abc/checkpoints/9", &d)
	if len(d.Tasks) != 3 || d.Tasks[0].Vertex != "input" || d.Tasks[0].Subtask != 0 || d.Tasks[1].Subtask != 1 || d.Tasks[2].Vertex != "out" ||
		d.Tasks[0].AlignmentMs != 30 || d.Tasks[1].AsyncMs != 900 || d.Tasks[2].DurationMs != 1100 {
		t.Errorf("tasks (by vertex, subtask): %+v", d.Tasks)
	}
	raw = nil
	getJSON(t, ts.URL+"/api/v1/jobs/abc/checkpoints/11", &raw)
	if _, ok := raw["completedAt"]; ok || raw["status"] != string(checkpoint.StatusInProgress) {
		t.Errorf("checkpoint in progress: %v", raw)
	}
	if l, ok := raw["tasks"].([]any); !ok || len(l) != 0 {
		t.Errorf("checkpoint without acks: tasks %v, want []", raw["tasks"])
	}
}

func TestExceptions(t *testing.T) {
	ts, j, _ := newRichServer(t, "")
	var e Exceptions
	getJSON(t, ts.URL+"/api/v1/jobs/abc/exceptions", &e)
	if e.Failure == nil || e.Failure.Error != "boom" || e.Failure.Vertex != "count" || e.Failure.Subtask == nil || *e.Failure.Subtask != 1 ||
		e.Restore == nil || e.Restore.DurationMs != 250 || e.Restore.Kind != "checkpoint" {
		t.Errorf("exceptions: %+v %+v", e.Failure, e.Restore)
	}
	st := richStatus()
	st.LastFailure = &sluice.FailureInfo{At: t0, Subtask: -1, Cause: sluice.CauseCheckpointFailure, Error: "too many"}
	st.LastRestore = nil
	j.setStatus(st)
	var raw map[string]any
	getJSON(t, ts.URL+"/api/v1/jobs/abc/exceptions", &raw)
	f := raw["failure"].(map[string]any)
	if _, ok := f["subtask"]; ok || raw["restore"] != nil {
		t.Errorf("a failure that is no task's has no subtask; no restore is null: %v", raw)
	}
	if _, ok := raw["restore"]; !ok {
		t.Errorf("restore must be present as null: %v", raw)
	}
}

func TestTriggerCheckpointRoute(t *testing.T) {
	ts, j, _ := newRichServer(t, "tok")
	for want := 1; want <= 2; want++ {
		code, m := do(t, "POST", ts.URL+"/api/v1/jobs/abc/checkpoints", "tok", "{}")
		if code != 200 || m["id"] != float64(want) {
			t.Fatalf("checkpoint %d: %d %v", want, code, m)
		}
	}
	for _, tc := range []struct {
		err  error
		code int
	}{
		{fmt.Errorf("checkpoint: %w", sluice.ErrNotRunning), http.StatusConflict},
		{errors.New("checkpoint 3 failed: declined; the job keeps running"), http.StatusInternalServerError},
	} {
		j.mu.Lock()
		j.cpErr = tc.err
		j.mu.Unlock()
		code, m := do(t, "POST", ts.URL+"/api/v1/jobs/abc/checkpoints", "tok", "")
		if code != tc.code || !strings.Contains(m["error"].(string), tc.err.Error()) {
			t.Errorf("engine error %v: %d %v, want %d naming it", tc.err, code, m, tc.code)
		}
	}
}

func TestCancelRoute(t *testing.T) {
	ts, j, _ := newRichServer(t, "")
	for range 2 {
		code, m := do(t, "POST", ts.URL+"/api/v1/jobs/abc/cancel", "", "{}")
		if code != http.StatusAccepted || m["status"] != StatusCancelling {
			t.Fatalf("cancel: %d %v", code, m)
		}
	}
	if n := j.cancels(); n != 1 {
		t.Fatalf("the job was cancelled %d times, want once", n)
	}
	var list JobList
	getJSON(t, ts.URL+"/api/v1/jobs", &list)
	if list.Jobs[0].Status != StatusCancelling {
		t.Fatalf("status after cancel: %v", list.Jobs[0].Status)
	}
	for _, route := range []string{"savepoints", "stop", "checkpoints"} {
		if code, m := do(t, "POST", ts.URL+"/api/v1/jobs/abc/"+route, "", ""); code != http.StatusConflict {
			t.Errorf("%s of a cancelling job: %d %v, want 409", route, code, m)
		}
	}
}

// TestCancelEnded: a job that ended cannot be cancelled.
func TestCancelEnded(t *testing.T) {
	s, err := New(Config{Addr: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	j := &fakeJob{id: "abc"}
	s.Add(j, "count")
	s.SetStatus("abc", StatusFinished)
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	if code, m := do(t, "POST", ts.URL+"/api/v1/jobs/abc/cancel", "", ""); code != http.StatusConflict || !strings.Contains(m["error"].(string), "FINISHED") {
		t.Fatalf("cancel of a finished job: %d %v", code, m)
	}
	if j.cancels() != 0 {
		t.Fatal("a finished job was cancelled")
	}
}

// TestReady checks the readiness rule at its edges, on the fake clock:
// ready while the newest checkpoint is younger than 3 intervals (10 s
// each), or while the job is younger than that with none; not when older,
// not when the job is not RUNNING, not without a job.
func TestReady(t *testing.T) {
	clk := clock.NewFake(t0)
	s, err := New(Config{Addr: "127.0.0.1:0", Clock: clk, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	ready := func(want int, what, reason string) {
		t.Helper()
		code, m := do(t, "GET", ts.URL+"/readyz", "", "")
		if code != want {
			t.Fatalf("%s: /readyz %d %v, want %d", what, code, m, want)
		}
		if reason != "" && !strings.Contains(fmt.Sprint(m["error"]), reason) {
			t.Fatalf("%s: /readyz %v, want a reason with %q", what, m, reason)
		}
		if code, m := do(t, "GET", ts.URL+"/healthz", "", ""); code != 200 || m["status"] != "ok" {
			t.Fatalf("%s: /healthz %d %v", what, code, m)
		}
	}
	ready(503, "no job", "no job")
	j := &fakeJob{id: "abc", interval: 10 * time.Second}
	j.setStatus(sluice.JobStatus{StartedAt: t0})
	s.Add(j, "count")
	ready(200, "a new job", "")
	clk.Advance(29999 * time.Millisecond)
	ready(200, "a job just under 3 intervals old without a checkpoint", "")
	clk.Advance(time.Millisecond)
	ready(503, "a job 3 intervals old without a checkpoint", "no checkpoint completed")
	j.setStatus(sluice.JobStatus{StartedAt: t0, LastCheckpointID: 4, LastCheckpointAt: clk.Now().Add(-29 * time.Second)})
	ready(200, "a checkpoint 29 s old", "")
	clk.Advance(time.Second)
	ready(503, "a checkpoint 30 s old", "newest completed checkpoint (4) is 30s old")
	// The history's newest completed checkpoint counts too (a status
	// without LastCheckpointAt).
	j.setStatus(sluice.JobStatus{StartedAt: t0, Checkpoints: &checkpoint.Stats{History: []checkpoint.CheckpointStats{
		{ID: 5, Kind: checkpoint.KindCheckpoint, Status: checkpoint.StatusCompleted, CompletedAt: clk.Now().Add(-time.Second)},
		{ID: 6, Kind: checkpoint.KindSavepoint, Status: checkpoint.StatusCompleted, CompletedAt: clk.Now()},
	}}})
	ready(200, "a checkpoint of the history 1 s old", "")
	s.SetStatus("abc", StatusFailed)
	ready(503, "a failed job", "FAILED, not RUNNING")

	// Without periodic checkpoints only RUNNING counts.
	s2, _ := New(Config{Addr: "127.0.0.1:0", Clock: clk, ReadyIntervals: 1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	s2.Add(&fakeJob{id: "x", interval: -1}, "x")
	clk.Advance(time.Hour)
	rec := httptest.NewRecorder()
	s2.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != 200 {
		t.Fatalf("a job without periodic checkpoints: %d %s", rec.Code, rec.Body)
	}
	if _, err := New(Config{Addr: "127.0.0.1:0", ReadyIntervals: -1}); err == nil {
		t.Fatal("negative ReadyIntervals accepted")
	}
}

// TestBadInput: every bad request gets a 4xx with a JSON reason, on every
// route; never a 500.
func TestBadInput(t *testing.T) {
	ts, _, _ := newRichServer(t, "tok")
	const tok = "tok"
	for _, tc := range []struct {
		method, path, token, body string
		code                      int
		want                      string
	}{
		// Unknown job, on every route that names one.
		{"GET", "/api/v1/jobs/nope", "", "", 404, `no job "nope"`},
		{"GET", "/api/v1/jobs/nope/plan", "", "", 404, `no job "nope"`},
		{"GET", "/api/v1/jobs/nope/vertices/input", "", "", 404, `no job "nope"`},
		{"GET", "/api/v1/jobs/nope/checkpoints", "", "", 404, `no job "nope"`},
		{"GET", "/api/v1/jobs/nope/checkpoints/9", "", "", 404, `no job "nope"`},
		{"GET", "/api/v1/jobs/nope/exceptions", "", "", 404, `no job "nope"`},
		{"POST", "/api/v1/jobs/nope/checkpoints", tok, "", 404, `no job "nope"`},
		{"POST", "/api/v1/jobs/nope/savepoints", tok, "", 404, `no job "nope"`},
		{"POST", "/api/v1/jobs/nope/stop", tok, "", 404, `no job "nope"`},
		{"POST", "/api/v1/jobs/nope/cancel", tok, "", 404, `no job "nope"`},
		// Unknown vertex and checkpoint, bad checkpoint ids.
		{"GET", "/api/v1/jobs/abc/vertices/nope", "", "", 404, `no vertex "nope"`},
		{"GET", "/api/v1/jobs/abc/checkpoints/12", "", "", 404, "checkpoint 12 is not in the history"},
		{"GET", "/api/v1/jobs/abc/checkpoints/abc", "", "", 400, `checkpoint id "abc" is not a positive integer`},
		{"GET", "/api/v1/jobs/abc/checkpoints/0", "", "", 400, "not a positive integer"},
		{"GET", "/api/v1/jobs/abc/checkpoints/-3", "", "", 400, "not a positive integer"},
		{"GET", "/api/v1/jobs/abc/checkpoints/1.5", "", "", 400, "not a positive integer"},
		{"GET", "/api/v1/jobs/abc/checkpoints/99999999999999999999", "", "", 400, "not a positive integer"},
		// Bad bodies on every mutating route.
		{"POST", "/api/v1/jobs/abc/checkpoints", tok, `{`, 400, "bad request body"},
		{"POST", "/api/v1/jobs/abc/checkpoints", tok, `{"type": "full"}`, 400, `unknown field "type"`},
		{"POST", "/api/v1/jobs/abc/checkpoints", tok, `{} {}`, 400, "data after"},
		{"POST", "/api/v1/jobs/abc/checkpoints", tok, `[]`, 400, "bad request body"},
		{"POST", "/api/v1/jobs/abc/savepoints", tok, `{"x": 1}`, 400, "unknown field"},
		{"POST", "/api/v1/jobs/abc/stop", tok, `{"drain": "yes"}`, 400, "bad request body"},
		{"POST", "/api/v1/jobs/abc/cancel", tok, `{"force": true}`, 400, `unknown field "force"`},
		{"POST", "/api/v1/jobs/abc/cancel", tok, "\x00\xff", 400, "bad request body"},
		{"POST", "/api/v1/jobs/abc/cancel", tok, strings.Repeat(" ", maxBody+1), 400, "reading the request body"},
		// Missing and wrong tokens on every mutating route.
		{"POST", "/api/v1/jobs/abc/checkpoints", "", "", 401, "bearer token"},
		{"POST", "/api/v1/jobs/abc/savepoints", "", "", 401, "bearer token"},
		{"POST", "/api/v1/jobs/abc/stop", "", "", 401, "bearer token"},
		{"POST", "/api/v1/jobs/abc/cancel", "", "", 401, "bearer token"},
		{"POST", "/api/v1/jobs/abc/checkpoints", "tok2", "", 403, "wrong bearer token"},
		{"POST", "/api/v1/jobs/abc/savepoints", "to", "", 403, "wrong bearer token"},
		{"POST", "/api/v1/jobs/abc/stop", "x", "", 403, "wrong bearer token"},
		{"POST", "/api/v1/jobs/abc/cancel", "TOK", "", 403, "wrong bearer token"},
		// Wrong methods and unknown routes.
		{"DELETE", "/api/v1/jobs/abc", "", "", 405, "not allowed"},
		{"POST", "/api/v1/jobs/abc/plan", tok, "", 405, "not allowed"},
		{"PUT", "/api/v1/jobs/abc/checkpoints", tok, "", 405, "not allowed"},
		{"GET", "/api/v1/jobs/abc/cancel", "", "", 405, "not allowed"},
		{"POST", "/healthz", "", "", 405, "not allowed"},
		{"POST", "/readyz", "", "", 405, "not allowed"},
		{"GET", "/api/v1/jobs/abc/vertices", "", "", 404, "no route"},
		{"GET", "/api/v1/jobs/abc/checkpoints/9/tasks", "", "", 404, "no route"},
		{"GET", "/api/v2/jobs", "", "", 404, "no route"},
	} {
		code, m := do(t, tc.method, ts.URL+tc.path, tc.token, tc.body)
		msg, _ := m["error"].(string)
		if code != tc.code || !strings.Contains(msg, tc.want) {
			t.Errorf("%s %s (token %q, body %.20q): %d %q, want %d with %q", tc.method, tc.path, tc.token, tc.body, code, msg, tc.code, tc.want)
		}
	}
}

// TestRandomRequestsNever5xx sends seeded random requests (paths made of
// the API's words, ids, encodings and junk; random methods, tokens and
// bodies) and checks that none gets a 5xx or a panic, and every answer
// that is not a redirect is JSON. The fake job succeeds, so a 5xx could
// only come from the server's handling of the input.
func TestRandomRequestsNever5xx(t *testing.T) {
	s, err := New(Config{Addr: "127.0.0.1:0", Token: "tok", Clock: clock.NewFake(t0), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	j := &fakeJob{id: "abc", interval: 10 * time.Second}
	j.setStatus(richStatus())
	s.Add(j, "count")
	h := s.Handler()
	words := []string{"api", "v1", "jobs", "abc", "nope", "plan", "vertices", "input", "count", "checkpoints", "9", "11", "0", "-1",
		"99999999999999999999", "savepoints", "stop", "cancel", "exceptions", "healthz", "readyz", "%2F", "%00", "..", ".", "", "%zz",
		"ü", "a%20b", strings.Repeat("x", 300)}
	methods := []string{"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"}
	bodies := []string{"", "{}", "{", "}", "[]", "null", `{"savepoint": true}`, `{"savepoint": false}`, `{"drain": 1}`, `{"a":`, "\x00",
		`{"savepoint": true, "drain": true}`, `"x"`, "1e999", `{"savepoint": true} x`}
	tokens := []string{"", "tok", "bad", "Bearer", " "}
	rng := rand.New(rand.NewPCG(9, 9))
	for i := range 3000 {
		var b strings.Builder
		for range rng.IntN(7) {
			b.WriteString("/")
			b.WriteString(words[rng.IntN(len(words))])
		}
		if rng.IntN(4) == 0 {
			b.WriteString("/")
		}
		path := b.String()
		pick := func(l ...string) string { return l[rng.IntN(len(l))] }
		switch rng.IntN(3) {
		case 0: // a route's shape with random parts
			path = "/api/v1/jobs/" + pick("abc", "abc", "nope", "", "%00") + pick("", "/plan", "/exceptions", "/checkpoints", "/savepoints", "/stop", "/cancel",
				"/vertices/"+pick("input", "count", "out", "nope", ""), "/checkpoints/"+pick("8", "9", "10", "11", "12", "0", "-1", "x", "1e3", "99999999999999999999"))
		case 1:
			path = "/api/v1/jobs" + path
		}
		if path == "" {
			path = "/"
		}
		method := methods[rng.IntN(len(methods))]
		body := bodies[rng.IntN(len(bodies))]
		if rng.IntN(10) == 0 {
			junk := make([]byte, rng.IntN(64))
			for k := range junk {
				junk[k] = byte(rng.IntN(256))
			}
			body = string(junk)
		}
		req, err := http.NewRequest(method, "http://sluice"+path, strings.NewReader(body))
		if err != nil {
			continue // not a URL a client could send
		}
		if tok := tokens[rng.IntN(len(tokens))]; tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("request %d: %s %s body %q: %d %s", i, method, path, body, rec.Code, rec.Body)
		}
		if rec.Code >= 300 && rec.Code < 400 || method == "HEAD" {
			continue
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" || !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("request %d: %s %s: %d %q %q is not JSON", i, method, path, rec.Code, ct, rec.Body)
		}
		if rec.Code >= 400 {
			var e ErrorResponse
			if json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Error == "" {
				t.Fatalf("request %d: %s %s: %d without a reason: %s", i, method, path, rec.Code, rec.Body)
			}
		}
		// Undo what a successful mutating call changed, so that later
		// requests still meet a running job.
		s.SetStatus("abc", StatusRunning)
	}
}

// TestClientCalls: every client method against the server.
func TestClientCalls(t *testing.T) {
	ts, j, _ := newRichServer(t, "tok")
	cl := &Client{Addr: strings.TrimPrefix(ts.URL, "http://"), Token: "tok"}
	ctx := t.Context()
	if o, err := cl.Job(ctx, "abc"); err != nil || o.Vertices[0].BackpressureLevel != LevelHigh {
		t.Fatalf("Job: %+v %v", o, err)
	}
	if p, err := cl.Plan(ctx, "abc"); err != nil || len(p.Vertices) != 3 {
		t.Fatalf("Plan: %+v %v", p, err)
	}
	if v, err := cl.Vertex(ctx, "abc", "input"); err != nil || len(v.Subtasks) != 2 {
		t.Fatalf("Vertex: %+v %v", v, err)
	}
	if c, err := cl.Checkpoints(ctx, "abc"); err != nil || len(c.History) != 4 {
		t.Fatalf("Checkpoints: %+v %v", c, err)
	}
	if d, err := cl.Checkpoint(ctx, "abc", 9); err != nil || len(d.Tasks) != 3 {
		t.Fatalf("Checkpoint: %+v %v", d, err)
	}
	if _, err := cl.Checkpoint(ctx, "abc", 99); !isCode(err, 404) {
		t.Fatalf("Checkpoint 99: %v", err)
	}
	if e, err := cl.Exceptions(ctx, "abc"); err != nil || e.Failure == nil {
		t.Fatalf("Exceptions: %+v %v", e, err)
	}
	if id, err := cl.TriggerCheckpoint(ctx, "abc"); err != nil || id != 1 {
		t.Fatalf("TriggerCheckpoint: %d %v", id, err)
	}
	if err := cl.Cancel(ctx, "abc"); err != nil || j.cancels() != 1 {
		t.Fatalf("Cancel: %v (%d cancels)", err, j.cancels())
	}
	cl.Token = ""
	if err := cl.Cancel(ctx, "abc"); !isCode(err, 401) {
		t.Fatalf("Cancel without the token: %v", err)
	}
}

func isCode(err error, code int) bool {
	ae, ok := errors.AsType[*APIError](err)
	return ok && ae.Code == code
}

// FuzzRequest is TestRandomRequestsNever5xx for the fuzzer (go test
// -fuzz=FuzzRequest ./internal/httpapi): no request gets a 5xx, and every
// error answer is JSON with a reason. Its seeds run with the other tests.
func FuzzRequest(f *testing.F) {
	f.Add("GET", "/api/v1/jobs/abc", "", "")
	f.Add("POST", "/api/v1/jobs/abc/stop", `{"savepoint": true, "drain": true}`, "tok")
	f.Add("POST", "/api/v1/jobs/abc/checkpoints", `{"x": 1}`, "tok")
	f.Add("GET", "/api/v1/jobs/abc/checkpoints/99999999999999999999", "", "")
	f.Add("DELETE", "/api/v1/jobs/abc/vertices/input", "", "bad")
	s, err := New(Config{Addr: "127.0.0.1:0", Token: "tok", Clock: clock.NewFake(t0), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		f.Fatal(err)
	}
	j := &fakeJob{id: "abc", interval: 10 * time.Second}
	j.setStatus(richStatus())
	s.Add(j, "count")
	h := s.Handler()
	f.Fuzz(func(t *testing.T, method, path, body, token string) {
		req, err := http.NewRequest(method, "http://sluice"+path, strings.NewReader(body))
		if err != nil || req.URL.Path == "" {
			return
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		s.SetStatus("abc", StatusRunning)
		if rec.Code >= 500 {
			t.Fatalf("%s %q body %q: %d %s", method, path, body, rec.Code, rec.Body)
		}
		if rec.Code >= 400 && method != "HEAD" {
			var e ErrorResponse
			if json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Error == "" {
				t.Fatalf("%s %q: %d without a JSON reason: %q", method, path, rec.Code, rec.Body)
			}
		}
	})
}
