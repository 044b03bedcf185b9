package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/kafkacount"
)

// jobProc is a `sluice run count` process whose stdout is collected.
type jobProc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  strings.Builder
	addr chan string
	done chan error
}

var controlAPILine = regexp.MustCompile(`control API on http://(\S+)/api/v1/`)

func startJobProc(t *testing.T, bin string, env []string, args ...string) *jobProc {
	t.Helper()
	p := &jobProc{cmd: exec.Command(bin, args...), addr: make(chan string, 1), done: make(chan error, 1)}
	p.cmd.Env = append(os.Environ(), env...)
	pr, pw := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = pw, pw
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			p.mu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			if m := controlAPILine.FindStringSubmatch(sc.Text()); m != nil {
				p.addr <- m[1]
			}
		}
	}()
	go func() { err := p.cmd.Wait(); pw.Close(); p.done <- err }()
	t.Cleanup(func() { _ = p.cmd.Process.Kill() })
	return p
}

func (p *jobProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// TestStopWithSavepointProcess is the job command end to end, in processes:
// the broker in one (`sluice broker`), `sluice run count --http` in
// another, fed continuously. `sluice savepoint` takes a savepoint of the
// running job; `sluice stop --savepoint` stops it with one, printing its
// path, and the job's process exits 0. The savepoint is copied elsewhere
// (self-contained) and `sluice run count --from-savepoint` restores it with
// a fresh checkpoint directory; once caught up, the output holds exactly
// one count per input record, 1..n per key (internal/verify): nothing lost
// or doubled across the stop. The token is required: the clients get it
// from the environment.
func TestStopWithSavepointProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real processes")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	addr := startBroker(t, bin, filepath.Join(dir, "broker"))
	brokers := []string{addr}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := kafkacount.EnsureTopics(ctx, brokers, 4, "in", "out"); err != nil {
		t.Fatal(err)
	}
	// The input flows while the job runs, stops and restarts.
	const total = 30_000
	produced := make(chan error, 1)
	go func() {
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("in"))
		if err != nil {
			produced <- err
			return
		}
		defer cl.Close()
		for i := range total {
			if i%500 == 0 {
				time.Sleep(20 * time.Millisecond)
			}
			cl.Produce(ctx, &kgo.Record{Key: []byte("k" + strconv.Itoa(i%97)), Value: []byte(strconv.Itoa(i))}, nil)
		}
		produced <- cl.Flush(ctx)
	}()
	token := []string{"SLUICE_HTTP_TOKEN=s3cret"}
	args := func(ckpt string, extra ...string) []string {
		return append([]string{"run", "count", "--brokers", addr, "--input", "in", "--output", "out",
			"--checkpoint-dir", filepath.Join(dir, ckpt), "--parallelism", "2", "--http", "127.0.0.1:0",
			"--checkpoint-interval", "100ms", "--min-pause", "20ms"}, extra...)
	}
	blue := startJobProc(t, bin, token, args("ckpt-1")...)
	var api string
	select {
	case api = <-blue.addr:
	case err := <-blue.done:
		t.Fatalf("job ended: %v\n%s", err, blue.output())
	case <-ctx.Done():
		t.Fatalf("no control API:\n%s", blue.output())
	}
	client := func(env []string, args ...string) (string, error) {
		c := exec.Command(bin, args...)
		c.Env = append(os.Environ(), env...)
		var stderr strings.Builder
		c.Stderr = &stderr
		out, err := c.Output()
		if err != nil {
			return stderr.String(), err
		}
		return strings.TrimSpace(string(out)), nil
	}
	// Without the token: refused, and the job runs on.
	if msg, err := client(nil, "savepoint", "--http", api); err == nil || !strings.Contains(msg, "401") {
		t.Fatalf("savepoint without the token: %v %s", err, msg)
	}
	waitCommitted := func(min int64) {
		for {
			rep, err := kafkacount.Check(ctx, brokers, "in", "out")
			if err != nil {
				t.Fatal(err)
			}
			if rep.Committed >= min {
				return
			}
			select {
			case <-ctx.Done():
				t.Fatalf("output stuck at %+v\n%s", rep, blue.output())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	waitCommitted(2_000)
	sp, err := client(token, "savepoint", "--http", api)
	if err != nil {
		t.Fatalf("sluice savepoint: %v %s", err, sp)
	}
	if _, err := os.Stat(filepath.Join(sp, "_metadata")); err != nil {
		t.Fatalf("savepoint %q: %v", sp, err)
	}
	waitCommitted(6_000)
	final, err := client(token, "stop", "--savepoint", "--http", api)
	if err != nil {
		t.Fatalf("sluice stop --savepoint: %v %s", err, final)
	}
	select {
	case err := <-blue.done:
		if err != nil {
			t.Fatalf("job after stop --savepoint: %v (want exit 0)\n%s", err, blue.output())
		}
	case <-ctx.Done():
		t.Fatal("job did not exit after stop --savepoint")
	}
	if !strings.Contains(blue.output(), "stopped with savepoint "+final) {
		t.Fatalf("job output does not name the savepoint %s:\n%s", final, blue.output())
	}
	rep, err := kafkacount.Check(ctx, brokers, "in", "out")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Duplicated > 0 || rep.Unexpected > 0 {
		t.Fatalf("after the stop: %+v", rep)
	}
	t.Logf("stopped with savepoint %s: %+v", final, rep)

	// Relocate the savepoint and restore it with a fresh checkpoint dir.
	moved := filepath.Join(dir, "moved-savepoint")
	if out, err := exec.Command("cp", "-r", final, moved).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	if err := os.RemoveAll(final); err != nil {
		t.Fatal(err)
	}
	green := startJobProc(t, bin, token, args("ckpt-2", "--from-savepoint", moved)...)
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	for {
		rep, err = kafkacount.Check(ctx, brokers, "in", "out")
		if err != nil {
			t.Fatal(err)
		}
		if rep.Duplicated > 0 {
			t.Fatalf("duplicates after the restore: %+v\n%s", rep, green.output())
		}
		if rep.ExactlyOnce() && rep.Produced == total {
			break
		}
		select {
		case err := <-green.done:
			t.Fatalf("restored job ended: %v\n%s", err, green.output())
		case <-ctx.Done():
			t.Fatalf("output never caught up: %+v\n%s", rep, green.output())
		case <-time.After(200 * time.Millisecond):
		}
	}
	if !strings.Contains(green.output(), "restoring checkpoint") {
		t.Errorf("the restored job does not log the restore:\n%s", green.output())
	}
	_ = green.cmd.Process.Signal(syscall.SIGTERM)
	if err := <-green.done; err != nil {
		t.Fatalf("restored job: %v\n%s", err, green.output())
	}
	t.Logf("final: %+v", rep)
}
