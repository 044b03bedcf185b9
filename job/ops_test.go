package job_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/job"
)

// runJob runs j with args in the background until the test ends or stop is
// called; it returns the output buffers and the API's address once it
// serves (or "" with --http off, once the job has emitted records).
func runJob(t *testing.T, j job.Job, out *counts, args ...string) (addr string, stdout, stderr *syncBuffer, stop func() error) {
	t.Helper()
	stdout, stderr = &syncBuffer{}, &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- job.Run(ctx, j, append([]string{"run"}, args...), stdout, stderr) }()
	var result error
	stopped := false
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case result = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("job did not stop")
			}
		}
		return result
	}
	t.Cleanup(func() { _ = stop() })
	waitFor(t, "the job to run", func() bool {
		select {
		case err := <-done:
			t.Fatalf("job ended early: %v\n%s\n%s", err, stdout, stderr)
		default:
		}
		if m := apiLine.FindStringSubmatch(stdout.String()); m != nil {
			addr = m[1]
		}
		return out.total() > 100 && (addr != "" || strings.Contains(strings.Join(args, " "), "--http off"))
	})
	return addr, stdout, stderr, stop
}

func TestLogFormatJSON(t *testing.T) {
	var out counts
	_, _, stderr, stop := runJob(t, countJob(&out), &out, "--http", "off", "--log-level", "debug", "--log-format", "json",
		"--checkpoint-dir", t.TempDir())
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if len(lines) < 2 {
		t.Fatalf("want debug logs on stderr, got %q", stderr.String())
	}
	for _, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("stderr line %q is not JSON: %v", l, err)
		}
		if rec["msg"] == nil || rec["level"] == nil || rec["time"] == nil {
			t.Fatalf("stderr line %q lacks time, level or msg", l)
		}
	}
}

func TestLogFormatRefused(t *testing.T) {
	var stdout, stderr syncBuffer
	var out counts
	err := job.Run(context.Background(), countJob(&out), []string{"describe", "--log-format", "yaml"}, &stdout, &stderr)
	if !errors.Is(err, job.ErrUsage) || !strings.Contains(stderr.String(), `--log-format: must be text or json, got "yaml"`) {
		t.Fatalf("err %v, stderr %q", err, stderr.String())
	}
	err = job.Run(context.Background(), countJob(&out), []string{"run", "--pprof", "--http", "off"}, &stdout, &stderr)
	if !errors.Is(err, job.ErrUsage) || !strings.Contains(stderr.String(), "--pprof: the profiler is served on the control API") {
		t.Fatalf("--pprof without http: err %v, stderr %q", err, stderr.String())
	}
}

func httpGet(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestPprofFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{
		{nil, http.StatusNotFound},
		{[]string{"--pprof"}, http.StatusOK},
	} {
		var out counts
		args := append([]string{"--http", "127.0.0.1:0", "--log-level", "warn", "--checkpoint-dir", t.TempDir()}, tc.args...)
		addr, stdout, _, stop := runJob(t, countJob(&out), &out, args...)
		for _, p := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/cmdline"} {
			if got := httpGet(t, "http://"+addr+p); got != tc.want {
				t.Errorf("%v: GET %s = %d, want %d", tc.args, p, got, tc.want)
			}
		}
		if got := httpGet(t, "http://"+addr+"/api/v1/jobs"); got != http.StatusOK {
			t.Errorf("%v: GET /api/v1/jobs = %d", tc.args, got)
		}
		if announced := strings.Contains(stdout.String(), "profiler on http://"+addr+"/debug/pprof/"); announced != (tc.want == http.StatusOK) {
			t.Errorf("%v: profiler line printed %v:\n%s", tc.args, announced, stdout)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestProgressPlain: without a terminal, a job without Report logs its
// progress as INFO records, in the chosen log format.
func TestProgressPlain(t *testing.T) {
	var out counts
	j := countJob(&out)
	j.ReportInterval = 20 * time.Millisecond
	j.IsTerminal = func(io.Writer) bool { return false }
	_, stdout, stderr, stop := runJob(t, j, &out, "--http", "off", "--log-format", "json", "--checkpoint-dir", t.TempDir())
	waitFor(t, "a progress record with records", func() bool {
		for _, l := range strings.Split(stderr.String(), "\n") {
			var rec map[string]any
			if json.Unmarshal([]byte(l), &rec) == nil && rec["msg"] == "progress" && rec["records"].(float64) > 0 &&
				rec["job"] == "count-test" && rec["backpressure"] != nil && rec["restarts"] == float64(0) {
				return true
			}
		}
		return false
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stdout.String(), "\r") || strings.Contains(stdout.String(), "\x1b") {
		t.Errorf("terminal control characters without a terminal: %q", stdout.String())
	}
}

// TestProgressLive: on a terminal the status line is redrawn in place on
// stdout, and the lines printed meanwhile do not run into it.
func TestProgressLive(t *testing.T) {
	var out counts
	j := countJob(&out)
	j.ReportInterval = 20 * time.Millisecond
	j.IsTerminal = func(io.Writer) bool { return true }
	_, stdout, stderr, stop := runJob(t, j, &out, "--http", "off", "--log-level", "info", "--checkpoint-dir", t.TempDir())
	waitFor(t, "two status lines", func() bool { return strings.Count(stdout.String(), "\r\x1b[K") >= 2 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	s := stdout.String()
	draws := strings.Split(s, "\r\x1b[K")
	last := draws[len(draws)-2]
	for _, want := range []string{" in ", "/s out ", "records ", "checkpoints ", "backpressure ", "restarts 0"} {
		if !strings.Contains(last, want) {
			t.Errorf("status line %q lacks %q", last, want)
		}
	}
	// "stopping ..." is printed on a line of its own, and the output ends
	// on a new line (Done).
	if !strings.Contains(s, "\r\x1b[Kstopping with a final checkpoint...\n") || !strings.HasSuffix(s, "\n") {
		t.Errorf("stdout %q", s)
	}
	if strings.Contains(stderr.String(), "msg=progress") {
		t.Errorf("progress logged although live: %s", stderr)
	}
}
