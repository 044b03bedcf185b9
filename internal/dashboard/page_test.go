package dashboard_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sluicehq/sluice/internal/dashboard"
)

// fakeAPI answers the REST routes the page reads with made-up numbers that
// move on every read, so that the page's drawing can be checked apart from
// the engine (the end-to-end test drives the real one). Its savepoint route
// wants the bearer token "secret".
type fakeAPI struct {
	mu        sync.Mutex
	polls     int
	history   []map[string]any
	savepoint int
}

func (f *fakeAPI) handler() http.Handler {
	mux := http.NewServeMux()
	dashboard.Mount(mux)
	mux.HandleFunc("GET /api/v1/jobs", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, 200, map[string]any{"jobs": []any{map[string]any{"id": "j1", "name": "fake", "status": "RUNNING"}}})
	})
	mux.HandleFunc("GET /api/v1/jobs/j1", f.overview)
	mux.HandleFunc("GET /api/v1/jobs/j1/checkpoints", func(w http.ResponseWriter, _ *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		writeJSON(w, 200, map[string]any{"counts": map[string]any{"completed": len(f.history) - 1, "failed": 1, "inProgress": 0}, "history": f.history})
	})
	mux.HandleFunc("GET /api/v1/jobs/j1/checkpoints/{cid}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, c := range f.history {
			if fmt.Sprint(c["id"]) == r.PathValue("cid") {
				d := map[string]any{}
				for k, v := range c {
					d[k] = v
				}
				d["tasks"] = []any{
					map[string]any{"vertex": "source", "subtask": 0, "durationMs": 12, "bytes": 300, "alignmentMs": 0, "syncMs": 1, "asyncMs": 3, "ackedAt": "2026-12-01T16:00:00Z"},
					map[string]any{"vertex": "count", "subtask": 0, "durationMs": 40, "bytes": 9000, "alignmentMs": 7, "syncMs": 2, "asyncMs": 20, "ackedAt": "2026-12-01T16:00:00Z"},
					map[string]any{"vertex": "count", "subtask": 1, "durationMs": 44, "bytes": 9100, "alignmentMs": 9, "syncMs": 2, "asyncMs": 22, "ackedAt": "2026-12-01T16:00:00Z"},
				}
				writeJSON(w, 200, d)
				return
			}
		}
		writeJSON(w, 404, map[string]any{"error": "no checkpoint " + r.PathValue("cid")})
	})
	mux.HandleFunc("GET /api/v1/jobs/j1/exceptions", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, 200, map[string]any{
			"failure": map[string]any{"at": "2026-12-01T15:59:00Z", "vertex": "count", "subtask": 1, "cause": "task-failure", "error": "count: injected failure <b>not html</b>"},
			"restore": map[string]any{"at": "2026-12-01T15:59:01Z", "durationMs": 120, "checkpointId": 3, "path": "/data/chk-3", "kind": "checkpoint"},
		})
	})
	mux.HandleFunc("POST /api/v1/jobs/j1/savepoints", func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get("Authorization") {
		case "":
			writeJSON(w, 401, map[string]any{"error": "this call needs the bearer token"})
			return
		case "Bearer secret":
		default:
			writeJSON(w, 403, map[string]any{"error": "wrong token"})
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		id := len(f.history) + 1
		f.savepoint = id
		f.history = append(f.history, ck(id, "savepoint", "completed", 250))
		writeJSON(w, 200, map[string]any{"path": fmt.Sprintf("/data/savepoints/savepoint-%d", id)})
	})
	return mux
}

func ck(id int, kind, status string, ms int) map[string]any {
	return map[string]any{"id": id, "kind": kind, "status": status, "triggeredAt": "2026-12-01T16:00:00Z", "durationMs": ms,
		"fullBytes": 18400 + id, "incrementalBytes": 1000, "maxAlignmentMs": 9, "maxSyncMs": 2, "maxAsyncMs": 22, "acked": 5, "total": 5}
}

func (f *fakeAPI) overview(w http.ResponseWriter, _ *http.Request) {
	f.mu.Lock()
	f.polls++
	n := f.polls
	f.mu.Unlock()
	rate := float64(1000 + 37*n)
	vertex := func(id, name string, ops []string, bp float64, level string) map[string]any {
		return map[string]any{"id": id, "name": name, "operators": ops, "parallelism": 2,
			"recordsInTotal": 1000 * n, "recordsOutTotal": 1000 * n, "recordsInRate": rate, "recordsOutRate": rate,
			"busyRatio": 1 - bp - 0.05, "idleRatio": 0.05, "backpressuredRatio": bp, "backpressureLevel": level,
			"inputQueueFill": 0.5, "outputQueueFill": bp, "watermark": 1764604800000 + n*1000, "lateRecords": 0, "stateBytes": 1 << 20}
	}
	writeJSON(w, 200, map[string]any{
		"id": "j1", "name": "fake", "status": "RUNNING", "startedAt": "2026-12-01T16:00:00Z", "uptimeMs": 61000 + n*1000,
		"restarts": 1, "restartsByCause": map[string]any{"task-failure": 1}, "lastRecoveryMs": 120,
		"vertices": []any{
			vertex("source", "source", []string{"source"}, 0.85, "HIGH"),
			vertex("count", "count", []string{"count", "format"}, 0.2, "LOW"),
			vertex("sink", "sink", []string{"sink"}, 0, "OK"),
		},
		"edges": []any{
			map[string]any{"from": "source", "to": "count", "partitioning": "hash", "queueFill": 0.9},
			map[string]any{"from": "count", "to": "sink", "partitioning": "forward", "queueFill": 0.1},
		},
		"sources": []any{map[string]any{"id": "source", "name": "source", "recordsLagMax": 900 - n, "idleSplits": 0, "splits": []any{
			map[string]any{"split": "in/0", "topic": "in", "partition": 0, "subtask": 0, "next": 100 * n, "end": 100*n + 500 - n, "lag": 500 - n, "watermark": 1764604800000},
			map[string]any{"split": "in/1", "topic": "in", "partition": 1, "subtask": 1, "next": 90 * n, "end": 90*n + 900 - 3*n, "lag": 900 - 3*n, "idle": false},
		}}},
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// TestPageAgainstFakeAPI drives the page in Chromium against fakeAPI: it
// draws the graph with each task's level, numbers that change, the
// checkpoint history with per-subtask detail on click, the lag lines, the
// failure (as text, not HTML), and asks for the token when the savepoint
// call answers 401.
func TestPageAgainstFakeAPI(t *testing.T) {
	b := newBrowser(t)
	f := &fakeAPI{}
	for i := 1; i <= 5; i++ {
		status := "completed"
		if i == 4 {
			status = "failed"
		}
		f.history = append(f.history, ck(i, "checkpoint", status, 40*i))
	}
	srv := httptest.NewServer(f.handler())
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
	b.screenshot("fake-api-detail")

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
	b.screenshot("fake-api-savepoint")
}
