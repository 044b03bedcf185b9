package dashboard_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/internal/dashboard"
	"github.com/sluicehq/sluice/internal/httpapi"
)

// fakeJob is an httpapi.Job whose status is made up, moving on every
// read, so that the page's drawing can be checked apart from the engine
// through the real control API (the end-to-end test drives the real
// engine).
type fakeJob struct {
	mu      sync.Mutex
	polls   int
	history []checkpoint.CheckpointStats
}

var t0 = time.Date(2026, 12, 1, 16, 0, 0, 0, time.UTC)

func fakeCheckpoint(id int64, kind checkpoint.Kind, status checkpoint.Status, d time.Duration) checkpoint.CheckpointStats {
	c := checkpoint.CheckpointStats{ID: id, Kind: kind, Status: status, TriggeredAt: t0.Add(time.Duration(id) * time.Second),
		Duration: d, Bytes: 18400 + id, FullBytes: 18400 + id, IncrementalBytes: 1000, MaxAlignment: 9 * time.Millisecond,
		MaxSyncDuration: 2 * time.Millisecond, MaxAsyncDuration: 22 * time.Millisecond, Acked: 3, Total: 3}
	if status == checkpoint.StatusFailed {
		c.FailureReason = "declined by count #1"
	}
	at := c.TriggeredAt.Add(d)
	c.CompletedAt = at
	c.Tasks = []checkpoint.TaskCheckpointStats{
		{Vertex: "source", Subtask: 0, AckedAt: at, Duration: 12 * time.Millisecond, Bytes: 300, SyncDuration: time.Millisecond, AsyncDuration: 3 * time.Millisecond},
		{Vertex: "count", Subtask: 0, AckedAt: at, Duration: 40 * time.Millisecond, Bytes: 9000, Alignment: 7 * time.Millisecond, SyncDuration: 2 * time.Millisecond, AsyncDuration: 20 * time.Millisecond},
		{Vertex: "count", Subtask: 1, AckedAt: at, Duration: d, Bytes: 9100, Alignment: 9 * time.Millisecond, SyncDuration: 2 * time.Millisecond, AsyncDuration: 22 * time.Millisecond},
	}
	return c
}

func (f *fakeJob) JobID() string { return "j1" }
func (f *fakeJob) CheckpointConfig() checkpoint.Config {
	return checkpoint.Config{Interval: time.Second}
}
func (f *fakeJob) Cancel() {}
func (f *fakeJob) TriggerCheckpoint(context.Context) (int64, error) {
	return 0, errors.New("not in this test")
}
func (f *fakeJob) StopWithSavepoint(context.Context, bool) (string, error) {
	return "", errors.New("not in this test")
}

func (f *fakeJob) TriggerSavepoint(context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := int64(len(f.history) + 1)
	f.history = append(f.history, fakeCheckpoint(id, checkpoint.KindSavepoint, checkpoint.StatusCompleted, 250*time.Millisecond))
	return fmt.Sprintf("/data/savepoints/savepoint-%d", id), nil
}

func (f *fakeJob) Status() sluice.JobStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.polls++
	n := int64(f.polls)
	rate := float64(1000 + 37*n)
	vertex := func(uid string, ops []string, bp float64) sluice.VertexStatus {
		return sluice.VertexStatus{UID: uid, Name: uid, Operators: ops, Parallelism: 2,
			RecordsInTotal: 1000 * n, RecordsOutTotal: 1000 * n, RecordsInRate: rate, RecordsOutRate: rate,
			BusyRatio: 1 - bp - 0.05, IdleRatio: 0.05, BackpressuredRatio: bp, InputQueueFill: 0.5, OutputQueueFill: bp,
			Watermark: t0.Add(time.Duration(n) * time.Second), StateBytes: 1 << 20}
	}
	// The final watermark (the end of the input) as the runtime reports
	// it: the largest int64 in milliseconds, beyond what a JavaScript Date
	// holds.
	sink := vertex("sink", []string{"sink"}, 0)
	sink.Watermark = time.UnixMilli(math.MaxInt64)
	completed := int64(0)
	for _, c := range f.history {
		if c.Status == checkpoint.StatusCompleted {
			completed++
		}
	}
	return sluice.JobStatus{
		StartedAt: t0, Restarts: 1, RestartsByCause: map[string]int64{sluice.CauseTaskFailure: 1}, LastRecovery: 120 * time.Millisecond,
		CheckpointsCompleted: completed, CheckpointsFailed: 1,
		Vertices: []sluice.VertexStatus{
			vertex("source", []string{"source"}, 0.85),
			vertex("count", []string{"count", "format"}, 0.2),
			sink,
		},
		Edges: []sluice.EdgeStatus{{From: "source", To: "count", Partitioning: "hash", QueueFill: 0.9}, {From: "count", To: "sink", Partitioning: "forward", QueueFill: 0.1}},
		Sources: []sluice.SourceStatus{{Vertex: "source", Name: "source", RecordsLagMax: 900 - 3*n, Splits: []sluice.SplitStatus{
			{Split: "in/0", Topic: "in", Partition: 0, Subtask: 0, Next: 100 * n, End: 100*n + 500 - n, Lag: 500 - n, Watermark: t0},
			{Split: "in/1", Topic: "in", Partition: 1, Subtask: 1, Next: 90 * n, End: 90*n + 900 - 3*n, Lag: 900 - 3*n},
		}}},
		Checkpoints: &checkpoint.Stats{Completed: int(completed), Failed: 1, History: slices.Clone(f.history)},
		LastFailure: &sluice.FailureInfo{At: t0.Add(-time.Minute), Vertex: "count", Subtask: 1, Cause: sluice.CauseTaskFailure, Error: "count: injected failure <b>not html</b>"},
		LastRestore: &sluice.RestoreInfo{At: t0.Add(-59 * time.Second), Duration: 120 * time.Millisecond, CheckpointID: 3, Path: "/data/chk-3", Kind: checkpoint.KindCheckpoint},
	}
}

// TestPageAgainstFakeJob drives the page in Chromium against fakeJob,
// served by the real control API: it
// draws the graph with each task's level, numbers that change, the
// checkpoint history with per-subtask detail on click, the lag lines, the
// failure (as text, not HTML), and asks for the token when the savepoint
// call answers 401.
func TestPageAgainstFakeJob(t *testing.T) {
	b := newBrowser(t)
	f := &fakeJob{}
	for i := int64(1); i <= 5; i++ {
		status := checkpoint.StatusCompleted
		if i == 4 {
			status = checkpoint.StatusFailed
		}
		f.history = append(f.history, fakeCheckpoint(i, checkpoint.KindCheckpoint, status, time.Duration(40*i)*time.Millisecond))
	}
	api, err := httpapi.New(httpapi.Config{Addr: "127.0.0.1:0", Token: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	dashboard.Mount(api)
	api.Add(f, "fake")
	srv := httptest.NewServer(api.Handler())
	defer srv.Close()

	b.do("open the dashboard", chromedp.Navigate(srv.URL+"/"))
	b.waitFor("three vertices", `document.querySelectorAll("#graph-svg g.vertex").length === 3`, 10*time.Second)
	levels := eval[[]string](b, `[...document.querySelectorAll("#graph-svg g.vertex")].map(g => g.dataset.vertexId + "=" + g.dataset.level)`)
	if got := strings.Join(levels, ","); got != "source=HIGH,count=LOW,sink=OK" {
		t.Errorf("vertex levels %s, want source=HIGH,count=LOW,sink=OK", got)
	}
	if n := eval[int](b, `document.querySelectorAll("#graph-svg g.edge").length`); n != 2 {
		t.Errorf("%d edges drawn, want 2", n)
	}
	// The boxes are laid out left to right in plan order.
	xs := eval[[]float64](b, `[...document.querySelectorAll("#graph-svg g.vertex")].map(g => g.getBBox().x + g.transform.baseVal[0].matrix.e)`)
	if len(xs) != 3 || !(xs[0] < xs[1] && xs[1] < xs[2]) {
		t.Errorf("vertex x positions %v, want increasing", xs)
	}
	first := eval[string](b, `document.querySelector("#tasks-table tr[data-vertex-id=source] td[data-field=in-rate]").textContent`)
	b.waitFor("the rate to change", fmt.Sprintf(`document.querySelector("#tasks-table tr[data-vertex-id=source] td[data-field=in-rate]").textContent !== %q`, first), 10*time.Second)

	b.waitFor("a throughput sparkline", `document.querySelector("#tasks-table tr[data-vertex-id=source] svg.spark polyline.spark-in").points.numberOfItems >= 2`, 10*time.Second)
	if got := eval[string](b, `document.querySelector("#tasks-table tr[data-vertex-id=count] td[data-field=watermark]").textContent`); !strings.HasPrefix(got, "16:00:") {
		t.Errorf("watermark of count shown as %q", got)
	}
	if got := eval[string](b, `document.querySelector("#tasks-table tr[data-vertex-id=sink] td[data-field=watermark]").textContent`); got != "final" {
		t.Errorf("watermark math.MaxInt64 of sink shown as %q, want final", got)
	}
	b.waitFor("two lag lines with history", `[...document.querySelectorAll("#lag-chart polyline")].filter(p => p.points.numberOfItems >= 2).length === 2`, 10*time.Second)
	if got := eval[string](b, `document.getElementById("last-exception-error").textContent`); got != "count: injected failure <b>not html</b>" {
		t.Errorf("failure shown as %q", got)
	}
	if n := eval[int](b, `document.querySelectorAll("#last-exception b").length`); n != 0 {
		t.Errorf("the failure's text was parsed as HTML")
	}
	if got := eval[string](b, `document.getElementById("restarts").textContent`); got != "1" {
		t.Errorf("restarts shown as %q", got)
	}
	if n := eval[int](b, `document.querySelectorAll("#checkpoint-chart rect.bar").length`); n != 5 {
		t.Errorf("%d checkpoint bars, want 5", n)
	}
	if got := eval[string](b, `document.querySelector("#checkpoint-chart rect.bar[data-checkpoint-id='4']").dataset.status`); got != "failed" {
		t.Errorf("bar of checkpoint 4 has status %q", got)
	}

	b.do("click checkpoint 5", chromedp.Click(chromedp.CSS(`#checkpoint-table tr[data-checkpoint-id="5"]`)))
	b.waitFor("the detail of checkpoint 5", `document.getElementById("checkpoint-detail").dataset.checkpointId === "5" && document.querySelectorAll("#checkpoint-detail-table tbody tr[data-subtask]").length === 3`, 10*time.Second)
	b.screenshot("fake-job-detail")

	b.do("click savepoint", chromedp.Click(chromedp.CSS("#btn-savepoint")))
	b.waitFor("the token form", `!document.getElementById("token-form").hidden`, 10*time.Second)
	b.do("give the token", chromedp.SendKeys(chromedp.CSS("#token-input"), "secret"), chromedp.Click(chromedp.CSS("#token-submit")))
	b.waitFor("the savepoint's answer", `document.getElementById("action-result").dataset.state === "done"`, 10*time.Second)
	if eval[bool](b, `document.getElementById("token-form").offsetParent !== null`) {
		t.Errorf("the token form is still shown after the token was sent")
	}
	if got := eval[string](b, `document.getElementById("action-result").dataset.path`); got != "/data/savepoints/savepoint-6" {
		t.Errorf("savepoint path shown %q", got)
	}
	b.waitFor("the savepoint in the table", `!!document.querySelector("#checkpoint-table tr[data-checkpoint-id='6'][data-kind=savepoint]")`, 10*time.Second)
	b.screenshot("fake-job-savepoint")
}
