package job_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/connector/datagen"
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

// partitioned is a datagen source that says it reads n partitions (or
// fails to count them), as the Kafka source does.
type partitioned struct {
	sluice.Source[datagen.Record]
	n   int
	err error
}

func (p partitioned) PartitionCount(context.Context) (int, error) { return p.n, p.err }

func partitionedJob(n int, err error) job.Job {
	return job.Job{
		Name: "advised",
		Build: func(cfg sluice.Config) (*sluice.Environment, error) {
			env := sluice.New(cfg)
			src := partitioned{datagen.New(datagen.Config{Keys: 5, RatePerSecond: 10}), n, err}
			sluice.Sink(sluice.FromSource(env, "orders", src), "sink", sluice.DiscardSink[datagen.Record]())
			return env, nil
		},
	}
}

// TestDescribeAdvice: describe prints the advisor's warnings, and says so
// when it could not count a source's partitions.
func TestDescribeAdvice(t *testing.T) {
	for _, tc := range []struct {
		name  string
		j     job.Job
		par   string
		want  []string
		never string
	}{
		{"fine", partitionedJob(8, nil), "4", nil, "WARN"},
		{"uneven", partitionedJob(8, nil), "3", []string{
			`WARN source "orders": parallelism 3 is neither a multiple nor a divisor of its 8 partitions: subtasks read 2 or 3 each`}, ""},
		{"idle", partitionedJob(2, nil), "4", []string{`WARN source "orders": 2 of its 4 subtasks will be idle, reading none of its 2 partitions`}, "neither"},
		{"unknown", partitionedJob(0, errors.New("no broker")), "3", []string{
			`advice incomplete: source "orders": partition count unknown: no broker`}, "WARN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if err := job.Run(context.Background(), tc.j, []string{"describe", "--parallelism", tc.par}, &out, &errb); err != nil {
				t.Fatalf("describe: %v %s", err, errb.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("describe does not say %q:\n%s", w, out.String())
				}
			}
			if tc.never != "" && strings.Contains(out.String(), tc.never) {
				t.Errorf("describe says %q:\n%s", tc.never, out.String())
			}
		})
	}
}
