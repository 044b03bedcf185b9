package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/job"
)

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

var apiLine = regexp.MustCompile(`control API on http://(\S+)/api/v1/`)

// committed reads the committed output files: per key, how often each
// count was committed.
func committed(t *testing.T, dir string) map[string]map[int64]int {
	t.Helper()
	got := map[string]map[int64]int{}
	files, _ := os.ReadDir(dir)
	for _, f := range files {
		if f.IsDir() || strings.Contains(f.Name(), ".inprogress.") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ",")
			n, err := strconv.ParseInt(v, 10, 64)
			if !ok || err != nil {
				t.Fatalf("%s: bad line %q", f.Name(), sc.Text())
			}
			if got[k] == nil {
				got[k] = map[int64]int{}
			}
			got[k][n]++
		}
	}
	return got
}

// exactlyOnce checks that every key's committed counts are 1..max, once
// each, and returns the total.
func exactlyOnce(t *testing.T, got map[string]map[int64]int) int64 {
	t.Helper()
	var total int64
	for k, ns := range got {
		for n := int64(1); n <= int64(len(ns)); n++ {
			if ns[n] != 1 {
				t.Fatalf("key %s: count %d committed %d times (counts %v)", k, n, ns[n], ns)
			}
		}
		total += int64(len(ns))
	}
	return total
}

// TestRunStopRestore: the example as its users run it. run serves the
// control API; stop --savepoint ends it (Run returns nil) with the output
// committed exactly once; check says this build restores the savepoint;
// run --from-savepoint (another checkpoint directory) continues every
// key's count where the savepoint left it, still exactly once.
func TestRunStopRestore(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	runJob := func(ctx context.Context, extra ...string) (*syncBuffer, chan error) {
		stdout := &syncBuffer{}
		done := make(chan error, 1)
		args := append([]string{"run", "--output", out, "--keys", "50", "--rate", "20000", "--checkpoint-interval", "100ms",
			"--http", "127.0.0.1:0", "--log-level", "error"}, extra...)
		go func() { done <- job.Run(ctx, newJob(), args, stdout, os.Stderr) }()
		return stdout, done
	}
	waitAPI := func(stdout *syncBuffer, done chan error) string {
		for {
			if m := apiLine.FindStringSubmatch(stdout.String()); m != nil {
				return m[1]
			}
			select {
			case err := <-done:
				t.Fatalf("job ended: %v\n%s", err, stdout)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	stdout, done := runJob(context.Background(), "--checkpoint-dir", filepath.Join(dir, "ckpt-1"))
	api := waitAPI(stdout, done)
	for deadline := time.Now().Add(30 * time.Second); len(committed(t, out)) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("nothing committed")
		}
	}
	var spOut, errb bytes.Buffer
	if err := job.Run(context.Background(), newJob(), []string{"stop", "--savepoint", "--http", api}, &spOut, &errb); err != nil {
		t.Fatalf("stop: %v %s", err, errb.String())
	}
	if err := <-done; err != nil {
		t.Fatalf("run after stop: %v", err)
	}
	sp := strings.TrimSpace(spOut.String())
	before := exactlyOnce(t, committed(t, out))

	var check bytes.Buffer
	if err := job.Run(context.Background(), newJob(), []string{"check", sp, "--keys", "50"}, &check, &errb); err != nil {
		t.Fatalf("check: %v\n%s", err, check.String())
	}

	ctx, stop := context.WithCancel(context.Background())
	stdout, done = runJob(ctx, "--checkpoint-dir", filepath.Join(dir, "ckpt-2"), "--from-savepoint", sp)
	waitAPI(stdout, done)
	for deadline := time.Now().Add(30 * time.Second); exactlyOnceCount(committed(t, out)) <= before; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("nothing committed after the restore")
		}
	}
	stop() // a clean stop with a final checkpoint
	if err := <-done; err != nil {
		t.Fatalf("second run: %v", err)
	}
	after := exactlyOnce(t, committed(t, out))
	t.Logf("%d counts committed before the stop, %d after the restore", before, after)
}

func exactlyOnceCount(got map[string]map[int64]int) int64 {
	var n int64
	for _, ns := range got {
		n += int64(len(ns))
	}
	return n
}

// TestBadKeysNamed: the job's own keys are checked, naming the key.
func TestBadKeysNamed(t *testing.T) {
	var out, errb bytes.Buffer
	err := job.Run(context.Background(), newJob(), []string{"describe", "--keys", "0", "--rate", "-1"}, &out, &errb)
	if job.ExitCode(err) != 2 || !strings.Contains(errb.String(), "keys: must be in 1..") || !strings.Contains(errb.String(), "rate: must be positive") {
		t.Fatalf("exit %d: %s", job.ExitCode(err), errb.String())
	}
}
