package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
)

// fakeJob answers savepoints with paths it numbers; a call blocks until
// release is closed when release is set, so that a second call can be made
// while one is in progress.
type fakeJob struct {
	id      string
	started chan struct{}
	release chan struct{}
	fail    error
	n       int
	drained bool

	// The status calls (routes_test.go): mu guards them.
	mu        sync.Mutex
	status    sluice.JobStatus
	interval  time.Duration
	cpErr     error
	cpN       int64
	cancelled int
}

func (f *fakeJob) JobID() string { return f.id }

func (f *fakeJob) wait(ctx context.Context) error {
	if f.started != nil {
		select {
		case f.started <- struct{}{}:
		default: // a second call while the first is in progress
		}
	}
	if f.release != nil {
		select {
		case <-f.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return f.fail
}

func (f *fakeJob) TriggerSavepoint(ctx context.Context) (string, error) {
	if err := f.wait(ctx); err != nil {
		return "", err
	}
	f.n++
	return "/sp/savepoint-" + string(rune('0'+f.n)), nil
}

func (f *fakeJob) StopWithSavepoint(ctx context.Context, drain bool) (string, error) {
	if err := f.wait(ctx); err != nil {
		return "", err
	}
	f.drained = drain
	return "/sp/final", nil
}

func newTestServer(t *testing.T, token string, jobs ...*fakeJob) *httptest.Server {
	t.Helper()
	s, err := New(Config{Addr: "127.0.0.1:0", Token: token, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs {
		s.Add(j, "count")
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts
}

// testClient bounds every call: a call the server should have refused at
// once fails the test instead of hanging it.
var testClient = &http.Client{Timeout: 10 * time.Second}

func do(t *testing.T, method, url, token, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q, want application/json", method, url, ct)
	}
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("%s %s: answer is not JSON: %v", method, url, err)
	}
	return resp.StatusCode, m
}

func TestListSavepointStop(t *testing.T) {
	j := &fakeJob{id: "abc"}
	ts := newTestServer(t, "", j)
	code, m := do(t, "GET", ts.URL+"/api/v1/jobs", "", "")
	if code != 200 {
		t.Fatalf("list: %d %v", code, m)
	}
	jobs := m["jobs"].([]any)
	if len(jobs) != 1 || jobs[0].(map[string]any)["id"] != "abc" || jobs[0].(map[string]any)["status"] != StatusRunning || jobs[0].(map[string]any)["name"] != "count" {
		t.Fatalf("list: %v", m)
	}
	for _, body := range []string{"", "{}"} {
		code, m = do(t, "POST", ts.URL+"/api/v1/jobs/abc/savepoints", "", body)
		if code != 200 || !strings.HasPrefix(m["path"].(string), "/sp/savepoint-") {
			t.Fatalf("savepoint with body %q: %d %v", body, code, m)
		}
	}
	code, m = do(t, "POST", ts.URL+"/api/v1/jobs/abc/stop", "", `{"savepoint": true, "drain": true}`)
	if code != 200 || m["path"] != "/sp/final" || !j.drained {
		t.Fatalf("stop: %d %v (drained %v)", code, m, j.drained)
	}
	_, m = do(t, "GET", ts.URL+"/api/v1/jobs", "", "")
	if st := m["jobs"].([]any)[0].(map[string]any)["status"]; st != StatusFinished {
		t.Fatalf("status after stop: %v", st)
	}
	code, m = do(t, "POST", ts.URL+"/api/v1/jobs/abc/savepoints", "", "")
	if code != http.StatusConflict || !strings.Contains(m["error"].(string), "FINISHED") {
		t.Fatalf("savepoint of a stopped job: %d %v", code, m)
	}
}

// TestSavepointInProgress: a second savepoint or a stop while one is in
// progress is refused with 409; once it completed, the next one runs.
func TestSavepointInProgress(t *testing.T) {
	j := &fakeJob{id: "abc", started: make(chan struct{}, 1), release: make(chan struct{})}
	ts := newTestServer(t, "", j)
	var once sync.Once
	release := func() { once.Do(func() { close(j.release) }) }
	t.Cleanup(release) // before the server's Close, also when the test fails
	first := make(chan int, 1)
	go func() {
		resp, err := http.Post(ts.URL+"/api/v1/jobs/abc/savepoints", "application/json", nil)
		if err != nil {
			first <- 0
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	<-j.started
	for _, route := range []string{"savepoints", "stop"} {
		code, m := do(t, "POST", ts.URL+"/api/v1/jobs/abc/"+route, "", "")
		if code != http.StatusConflict || !strings.Contains(m["error"].(string), "already in progress") {
			t.Fatalf("%s during a savepoint: %d %v", route, code, m)
		}
	}
	release()
	if code := <-first; code != 200 {
		t.Fatalf("first savepoint: %d", code)
	}
	j.started = nil
	if code, m := do(t, "POST", ts.URL+"/api/v1/jobs/abc/savepoints", "", ""); code != 200 {
		t.Fatalf("savepoint after the first completed: %d %v", code, m)
	}
}

func TestFailedSavepointKeepsJobRunning(t *testing.T) {
	j := &fakeJob{id: "abc", fail: errors.New("sink declined")}
	ts := newTestServer(t, "", j)
	code, m := do(t, "POST", ts.URL+"/api/v1/jobs/abc/stop", "", `{"savepoint": true}`)
	if code != http.StatusInternalServerError || !strings.Contains(m["error"].(string), "sink declined") || !strings.Contains(m["error"].(string), "keeps running") {
		t.Fatalf("failed stop: %d %v", code, m)
	}
	_, m = do(t, "GET", ts.URL+"/api/v1/jobs", "", "")
	if st := m["jobs"].([]any)[0].(map[string]any)["status"]; st != StatusRunning {
		t.Fatalf("status after a failed stop: %v", st)
	}
}

// TestNotRunning: a savepoint the engine refuses because the job is not
// running (not started, or ended) is a conflict, not a server error.
func TestNotRunning(t *testing.T) {
	ts := newTestServer(t, "", &fakeJob{id: "abc", fail: fmt.Errorf("savepoint: %w", sluice.ErrNotRunning)})
	for _, route := range []string{"savepoints", "stop"} {
		if code, m := do(t, "POST", ts.URL+"/api/v1/jobs/abc/"+route, "", ""); code != http.StatusConflict {
			t.Errorf("%s of a job not running: %d %v, want 409", route, code, m)
		}
	}
}

func TestToken(t *testing.T) {
	ts := newTestServer(t, "s3cret", &fakeJob{id: "abc"})
	if code, m := do(t, "GET", ts.URL+"/api/v1/jobs", "", ""); code != 200 {
		t.Fatalf("list without a token: %d %v (reads are open)", code, m)
	}
	for _, route := range []string{"savepoints", "stop"} {
		url := ts.URL + "/api/v1/jobs/abc/" + route
		if code, m := do(t, "POST", url, "", ""); code != http.StatusUnauthorized {
			t.Errorf("%s without a token: %d %v, want 401", route, code, m)
		}
		if code, m := do(t, "POST", url, "s3cre", ""); code != http.StatusForbidden {
			t.Errorf("%s with a wrong token: %d %v, want 403", route, code, m)
		}
		if code, m := do(t, "POST", url, "s3cret-and-more", ""); code != http.StatusForbidden {
			t.Errorf("%s with a longer token: %d %v, want 403", route, code, m)
		}
	}
	if code, m := do(t, "POST", ts.URL+"/api/v1/jobs/abc/savepoints", "s3cret", ""); code != 200 {
		t.Fatalf("savepoint with the token: %d %v", code, m)
	}
}

func TestBadRequests(t *testing.T) {
	ts := newTestServer(t, "", &fakeJob{id: "abc"})
	for _, tc := range []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"POST", "/api/v1/jobs/nope/savepoints", "", 404, `no job "nope"`},
		{"POST", "/api/v1/jobs/nope/stop", "", 404, `no job "nope"`},
		{"GET", "/api/v1/nothing", "", 404, "no route"},
		{"POST", "/api/v1/jobs/abc/stop", `{"savepoint": false}`, 400, `"savepoint": false`},
		{"POST", "/api/v1/jobs/abc/stop", `{"savepoint": "yes"}`, 400, "bad request body"},
		{"POST", "/api/v1/jobs/abc/stop", `{"drian": true}`, 400, `unknown field "drian"`},
		{"POST", "/api/v1/jobs/abc/stop", `{"drain": true} {}`, 400, "data after"},
		{"POST", "/api/v1/jobs/abc/savepoints", `{"target-directory": "/x"}`, 400, "unknown field"},
		{"POST", "/api/v1/jobs/abc/savepoints", `[`, 400, "bad request body"},
		{"GET", "/api/v1/jobs/abc/savepoints", "", 405, "not allowed"},
		{"DELETE", "/api/v1/jobs", "", 405, "not allowed"},
	} {
		code, m := do(t, tc.method, ts.URL+tc.path, "", tc.body)
		msg, _ := m["error"].(string)
		if code != tc.code || !strings.Contains(msg, tc.want) {
			t.Errorf("%s %s %s: %d %q, want %d with %q", tc.method, tc.path, tc.body, code, msg, tc.code, tc.want)
		}
	}
}

func TestCheckAddr(t *testing.T) {
	for _, tc := range []struct {
		addr  string
		token bool
		ok    bool
	}{
		{"127.0.0.1:8081", false, true},
		{"[::1]:0", false, true},
		{"localhost:8081", false, true},
		{":8081", false, false},
		{"0.0.0.0:8081", false, false},
		{"192.0.2.1:8081", false, false},
		{"0.0.0.0:8081", true, true},
		{"8081", false, false},
	} {
		err := CheckAddr(tc.addr, tc.token)
		if (err == nil) != tc.ok {
			t.Errorf("CheckAddr(%q, token %v) = %v, want ok %v", tc.addr, tc.token, err, tc.ok)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "http: ") {
			t.Errorf("CheckAddr(%q): %v does not name the key http", tc.addr, err)
		}
	}
	if _, err := New(Config{Addr: "0.0.0.0:0"}); err == nil {
		t.Error("New on every interface without a token: no error")
	}
}

// TestClient: the client against the server, errors as APIError.
func TestClient(t *testing.T) {
	ts := newTestServer(t, "tok", &fakeJob{id: "abc"})
	cl := &Client{Addr: strings.TrimPrefix(ts.URL, "http://"), Token: "tok"}
	ctx := context.Background()
	jobs, err := cl.Jobs(ctx)
	if err != nil || len(jobs) != 1 || jobs[0].ID != "abc" {
		t.Fatalf("Jobs: %v %v", jobs, err)
	}
	if p, err := cl.Savepoint(ctx, "abc"); err != nil || p == "" {
		t.Fatalf("Savepoint: %q %v", p, err)
	}
	_, err = cl.Savepoint(ctx, "zzz")
	if ae, ok := errors.AsType[*APIError](err); !ok || ae.Code != 404 {
		t.Fatalf("Savepoint of an unknown job: %v", err)
	}
	cl.Token = "bad"
	_, err = cl.Stop(ctx, "abc", false)
	if ae, ok := errors.AsType[*APIError](err); !ok || ae.Code != 403 {
		t.Fatalf("Stop with a bad token: %v", err)
	}
}
