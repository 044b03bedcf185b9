package job_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/connector/datagen"
	"github.com/sluicehq/sluice/job"
	"github.com/sluicehq/sluice/restart"
	"github.com/sluicehq/sluice/state"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// counts records the running counts a run of the test job emitted, per
// key, in order.
type counts struct {
	mu  sync.Mutex
	got map[string][]int64
	n   int
}

func (c *counts) add(k string, n int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.got == nil {
		c.got = map[string][]int64{}
	}
	c.got[k] = append(c.got[k], n)
	c.n++
	return nil
}

func (c *counts) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

type keyCount struct {
	Key string
	N   int64
}

type counter struct{ n state.ValueState[int64] }

func (c *counter) Open(rc *sluice.RuntimeContext[string]) (err error) {
	c.n, err = sluice.NewValueState(rc, "count", codec.Int64)
	return err
}

func (c *counter) ProcessElement(_ datagen.Record, pc *sluice.ProcessContext[string, keyCount]) error {
	n, _ := c.n.Value()
	c.n.Update(n + 1)
	pc.Collect(keyCount{pc.CurrentKey(), n + 1})
	return nil
}

// countJob is datagen (paced) → key by key → running count → out.
func countJob(out *counts) job.Job {
	return job.Job{
		Name: "count-test",
		Build: func(cfg sluice.Config) (*sluice.Environment, error) {
			cfg.Checkpoint = checkpoint.Config{Interval: 50 * time.Millisecond}
			cfg.Restart = restart.None{}
			env := sluice.New(cfg)
			in := sluice.FromSource(env, "datagen", datagen.New(datagen.Config{Keys: 20, RatePerSecond: 5000, Splits: 2}))
			keyed := sluice.KeyBy(in, func(r datagen.Record) string { return r.Key })
			c := sluice.Process(keyed, "count", func() sluice.KeyedProcessFunction[string, datagen.Record, keyCount] { return &counter{} })
			sluice.Sink(c, "sink", sluice.SinkFunc[keyCount](func(v keyCount) error { return out.add(v.Key, v.N) }))
			return env, nil
		},
	}
}

var apiLine = regexp.MustCompile(`control API on http://(\S+)/api/v1/ \(job ([0-9a-f]+)\)`)

// startJob runs j with args in the background and returns the control
// API's address, the job id and the channel of Run's error.
func startJob(t *testing.T, j job.Job, args ...string) (addr, id string, stdout *syncBuffer, done chan error) {
	t.Helper()
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	done = make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	finished := make(chan struct{})
	go func() {
		done <- job.Run(ctx, j, append([]string{"run", "--log-level", "warn"}, args...), stdout, stderr)
		close(finished)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-finished:
		case <-time.After(30 * time.Second):
			t.Error("job did not stop")
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m := apiLine.FindStringSubmatch(stdout.String()); m != nil {
			return m[1], m[2], stdout, done
		}
		select {
		case err := <-done:
			t.Fatalf("job ended before serving: %v\n%s\n%s", err, stdout, stderr)
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("no control API line:\n%s\n%s", stdout, stderr)
	return
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func post(t *testing.T, url, token, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("POST %s: %d %q is not JSON", url, resp.StatusCode, b)
	}
	return resp.StatusCode, m
}

// TestControlAPIOnRunningJob: the control API of a real running job on
// loopback. The job is listed with its id; a savepoint needs the token
// (401 without, 403 with another) and answers with a complete savepoint's
// directory; the stop with savepoint answers with its path and Run returns
// nil; the job restored from that path continues every key's count exactly
// where the stop left it (the stop's savepoint holds all that was emitted,
// nothing after it was).
func TestControlAPIOnRunningJob(t *testing.T) {
	dir := t.TempDir()
	var run1 counts
	const token = "t0ken"
	t.Setenv("SLUICE_HTTP_TOKEN", token) // the environment layer, for run and for the clients
	addr, id, stdout, done := startJob(t, countJob(&run1), "--http", "127.0.0.1:0", "--checkpoint-dir", filepath.Join(dir, "ckpt"))
	base := "http://" + addr + "/api/v1"

	resp, err := http.Get(base + "/jobs")
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Jobs []struct{ ID, Name, Status string }
	}
	err = json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if err != nil || len(list.Jobs) != 1 || list.Jobs[0].ID != id || list.Jobs[0].Name != "count-test" || list.Jobs[0].Status != "RUNNING" {
		t.Fatalf("GET /jobs: %+v %v", list, err)
	}
	waitFor(t, "output", func() bool { return run1.total() > 200 })

	if code, m := post(t, base+"/jobs/"+id+"/savepoints", "", ""); code != http.StatusUnauthorized {
		t.Fatalf("savepoint without the token: %d %v", code, m)
	}
	if code, m := post(t, base+"/jobs/"+id+"/savepoints", "wrong", ""); code != http.StatusForbidden {
		t.Fatalf("savepoint with a wrong token: %d %v", code, m)
	}
	if code, m := post(t, base+"/jobs/nosuchjob/savepoints", token, ""); code != http.StatusNotFound {
		t.Fatalf("savepoint of an unknown job: %d %v", code, m)
	}
	if code, m := post(t, base+"/jobs/"+id+"/stop", token, `{"savepoint": true, "drian": true}`); code != http.StatusBadRequest {
		t.Fatalf("stop with a misspelt field: %d %v", code, m)
	}
	code, m := post(t, base+"/jobs/"+id+"/savepoints", token, "")
	sp1, _ := m["path"].(string)
	if code != http.StatusOK || sp1 == "" {
		t.Fatalf("savepoint: %d %v", code, m)
	}
	if _, err := os.Stat(filepath.Join(sp1, "_metadata")); err != nil {
		t.Fatalf("savepoint %s is not complete: %v", sp1, err)
	}

	// The savepoint subcommand, through the environment's token.
	var out, errb bytes.Buffer
	if err := job.Run(context.Background(), countJob(nil), []string{"savepoint", "--http", addr}, &out, &errb); err != nil {
		t.Fatalf("savepoint subcommand: %v\n%s", err, errb.String())
	}
	sp2 := strings.TrimSpace(out.String())
	if sp2 == "" || sp2 == sp1 {
		t.Fatalf("savepoint subcommand printed %q (first %q)", sp2, sp1)
	}

	// The stop subcommand: prints the path; Run of the job returns nil.
	out.Reset()
	if err := job.Run(context.Background(), countJob(nil), []string{"stop", "--savepoint", "--http", addr}, &out, &errb); err != nil {
		t.Fatalf("stop subcommand: %v\n%s", err, errb.String())
	}
	final := strings.TrimSpace(out.String())
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after stop: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after the stop")
	}
	if !strings.Contains(stdout.String(), "stopped with savepoint "+final) {
		t.Fatalf("run's output does not name the savepoint %s:\n%s", final, stdout)
	}

	// Restore from the stop's savepoint, in another checkpoint directory
	// (savepoints are self-contained).
	var run2 counts
	startJob(t, countJob(&run2), "--http", "127.0.0.1:0", "--checkpoint-dir", filepath.Join(dir, "ckpt2"), "--from-savepoint", final)
	waitFor(t, "output after the restore", func() bool { return run2.total() > 200 })
	run1.mu.Lock()
	run2.mu.Lock()
	defer run1.mu.Unlock()
	defer run2.mu.Unlock()
	for k, ns := range run2.got {
		var last int64
		if old := run1.got[k]; len(old) > 0 {
			last = old[len(old)-1]
		}
		if ns[0] != last+1 {
			t.Errorf("key %s: first count after the restore %d, last before the stop %d", k, ns[0], last)
		}
	}
}

// TestStopWithoutSavepointRefused: `stop` needs --savepoint; the clients
// say clearly when nothing listens.
func TestClientErrors(t *testing.T) {
	var out, errb bytes.Buffer
	j := countJob(nil)
	if err := job.Run(context.Background(), j, []string{"stop", "--http", "127.0.0.1:1"}, &out, &errb); !errors.Is(err, job.ErrUsage) || !strings.Contains(errb.String(), "stop needs --savepoint") {
		t.Fatalf("stop without --savepoint: %v %s", err, errb.String())
	}
	err := job.Run(context.Background(), j, []string{"savepoint", "--http", "127.0.0.1:1"}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "is the job running with --http 127.0.0.1:1") {
		t.Fatalf("savepoint with nothing listening: %v", err)
	}
	if code := job.ExitCode(err); code != 1 {
		t.Fatalf("exit code %d", code)
	}
}

// TestCheckAndDescribe: describe prints the graph; check of the job's own
// savepoint passes, and of a job without the count operator fails naming
// it unless --allow-non-restored-state.
func TestCheckAndDescribe(t *testing.T) {
	var out, errb bytes.Buffer
	if err := job.Run(context.Background(), countJob(nil), []string{"describe"}, &out, &errb); err != nil {
		t.Fatalf("describe: %v %s", err, errb.String())
	}
	for _, w := range []string{"datagen", "count", "sink", `state count: keyed value "count", codecs `} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("describe does not show %s:\n%s", w, out.String())
		}
	}
	var run1 counts
	addr, _, _, done := startJob(t, countJob(&run1), "--http", "127.0.0.1:0", "--checkpoint-dir", t.TempDir())
	waitFor(t, "output", func() bool { return run1.total() > 50 })
	out.Reset()
	if err := job.Run(context.Background(), countJob(nil), []string{"stop", "--savepoint", "--http", addr}, &out, &errb); err != nil {
		t.Fatalf("stop: %v %s", err, errb.String())
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	sp := strings.TrimSpace(out.String())
	out.Reset()
	if err := job.Run(context.Background(), countJob(nil), []string{"check", sp}, &out, &errb); err != nil {
		t.Fatalf("check of the same job: %v\n%s%s", err, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "restore OK") {
		t.Fatalf("check:\n%s", out.String())
	}
	// v2 without the count operator: its state would be dropped.
	v2 := countJob(nil)
	v2.Build = func(cfg sluice.Config) (*sluice.Environment, error) {
		env := sluice.New(cfg)
		in := sluice.FromSource(env, "datagen", datagen.New(datagen.Config{Keys: 20, RatePerSecond: 5000, Splits: 2}))
		sluice.Sink(in, "sink", sluice.DiscardSink[datagen.Record]())
		return env, nil
	}
	out.Reset()
	err := job.Run(context.Background(), v2, []string{"check", sp}, &out, &errb)
	if !errors.Is(err, job.ErrRestoreRefused) || job.ExitCode(err) != 1 || !strings.Contains(out.String(), "count") || !strings.Contains(out.String(), "dropped") {
		t.Fatalf("check of v2: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := job.Run(context.Background(), v2, []string{"check", sp, "--allow-non-restored-state"}, &out, &errb); err != nil {
		t.Fatalf("check of v2 allowing non-restored state: %v\n%s", err, out.String())
	}
	fmt.Fprint(io.Discard, out.String())
}
