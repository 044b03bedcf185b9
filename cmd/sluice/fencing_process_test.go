package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/checkpoint/store"
	"github.com/sluicehq/sluice/internal/kafkacount"
)

// syncBuffer collects a process's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
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

// proc is a sluice process the test runs and signals.
type proc struct {
	cmd  *exec.Cmd
	out  syncBuffer
	done chan struct{}
	err  error // set when done is closed
}

func startProc(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGCONT)
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// wait returns the process's exit error, failing the test if it does not
// end within d.
func (p *proc) wait(t *testing.T, what string, d time.Duration) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		t.Fatalf("%s did not exit within %v; output:\n%s", what, d, p.out.String())
		return nil
	}
}

// waitOutput waits until the process printed s (a log line, a message).
func (p *proc) waitOutput(t *testing.T, s string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !strings.Contains(p.out.String(), s) {
		select {
		case <-p.done:
			t.Fatalf("process exited (%v) before printing %q; output:\n%s", p.err, s, p.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q within %v; output:\n%s", s, d, p.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kafkaForProcessTest returns SLUICE_KAFKA_BROKERS (real Kafka, see
// scripts/kafka-reference.sh) or the address of `sluice broker` started in
// its own process.
func kafkaForProcessTest(t *testing.T, bin string) []string {
	t.Helper()
	if s := os.Getenv("SLUICE_KAFKA_BROKERS"); s != "" {
		t.Logf("using Kafka at %s", s)
		return splitBrokers(s)
	}
	return []string{startBroker(t, bin, filepath.Join(t.TempDir(), "broker"))}
}

// topicsForTest returns input and output topic names unique to this run, so
// that runs against a shared real Kafka do not see each other's records.
func topicsForTest(name string) (string, string) {
	suffix := strconv.FormatUint(rand.Uint64()%1e9, 10)
	return name + "-in-" + suffix, name + "-out-" + suffix
}

func produceKeys(t *testing.T, ctx context.Context, brokers []string, topic string, from, n int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i := from; i < from+n; i++ {
		cl.Produce(ctx, &kgo.Record{Key: []byte("k" + strconv.Itoa(i%97)), Value: []byte(strconv.Itoa(i))}, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// waitExactlyOnce waits until the output holds exactly one count per
// input record, failing at once on a duplicate.
func waitExactlyOnce(t *testing.T, ctx context.Context, brokers []string, in, out string, produced int64, procs ...*proc) {
	t.Helper()
	var last string
	for {
		rep, err := kafkacount.Check(ctx, brokers, in, out)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Duplicated > 0 {
			t.Fatalf("duplicates in the committed output: %+v\n%s", rep, outputs(procs))
		}
		if rep.ExactlyOnce() && rep.Produced == produced {
			return
		}
		last = fmt.Sprintf("%+v", rep)
		select {
		case <-ctx.Done():
			t.Fatalf("output never reached %d exactly once: %s\n%s", produced, last, outputs(procs))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func outputs(procs []*proc) string {
	var b strings.Builder
	for i, p := range procs {
		fmt.Fprintf(&b, "--- process %d output:\n%s\n", i, p.out.String())
	}
	return b.String()
}

func countArgs(brokers []string, in, out, dir string) []string {
	return []string{"run", "count", "--brokers", strings.Join(brokers, ","), "--input", in, "--output", out,
		"--checkpoint-dir", dir, "--parallelism", "2", "--checkpoint-interval", "100ms", "--min-pause", "20ms",
		"--txn-prefix", "fence-" + out}
}

// TestKafkaSecondRunOnCheckpointDirRefused: a second `sluice run count` on
// the checkpoint directory of a running one exits non-zero within seconds,
// naming the holder; the first goes on.
func TestKafkaSecondRunOnCheckpointDirRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real processes")
	}
	bin := buildBinary(t)
	brokers := kafkaForProcessTest(t, bin)
	in, out := topicsForTest("refuse")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := kafkacount.EnsureTopics(ctx, brokers, 4, in, out); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "checkpoints")
	a := startProc(t, bin, countArgs(brokers, in, out, dir)...)
	produceKeys(t, ctx, brokers, in, 0, 500)
	waitExactlyOnce(t, ctx, brokers, in, out, 500, a)

	began := time.Now()
	b := startProc(t, bin, countArgs(brokers, in, out, dir)...)
	err := b.wait(t, "the second run", 20*time.Second)
	took := time.Since(began)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("second run: %v, want a non-zero exit; output:\n%s", err, b.out.String())
	}
	msg := b.out.String()
	for _, want := range []string{"in use by", "pid " + strconv.Itoa(a.cmd.Process.Pid), dir} {
		if !strings.Contains(msg, want) {
			t.Errorf("second run's message does not name %q:\n%s", want, msg)
		}
	}
	t.Logf("second run refused after %v: %s", took, strings.TrimSpace(msg))
	if took > 10*time.Second {
		t.Errorf("second run took %v to refuse", took)
	}
	// The first is undisturbed.
	produceKeys(t, ctx, brokers, in, 500, 500)
	waitExactlyOnce(t, ctx, brokers, in, out, 1000, a)
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	if err := a.wait(t, "the first run", time.Minute); err != nil {
		t.Fatalf("first run: %v\n%s", err, a.out.String())
	}
}

// TestKafkaZombieFenced is zombie fencing (docs/design.md §9) with real
// processes: job A runs, is paused with SIGSTOP, its lock becomes invisible
// (the lock file is replaced, as on shared storage without visible locks),
// and job B takes over from the same checkpoints and topics. When A is
// resumed with SIGCONT it must exit non-zero with a fenced error and commit
// nothing; B goes on, and the output is exactly once record by record.
func TestKafkaZombieFenced(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real processes")
	}
	bin := buildBinary(t)
	brokers := kafkaForProcessTest(t, bin)
	in, out := topicsForTest("zombie")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if err := kafkacount.EnsureTopics(ctx, brokers, 4, in, out); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "checkpoints")
	a := startProc(t, bin, countArgs(brokers, in, out, dir)...)
	produceKeys(t, ctx, brokers, in, 0, 2000)
	waitExactlyOnce(t, ctx, brokers, in, out, 2000, a)
	// More input that A reads into open transactions before it is paused,
	// so that it is paused with work in flight.
	produceKeys(t, ctx, brokers, in, 2000, 1000)
	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// A new inode for the lock: B does not see A's flock.
	if err := os.Remove(filepath.Join(dir, store.LockName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	b := startProc(t, bin, countArgs(brokers, in, out, dir)...)
	produceKeys(t, ctx, brokers, in, 3000, 1000)
	waitExactlyOnce(t, ctx, brokers, in, out, 4000, a, b)

	if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	err := a.wait(t, "the zombie", 2*time.Minute)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("zombie: %v, want a non-zero exit\n%s", err, outputs([]*proc{a, b}))
	}
	if msg := a.out.String(); !strings.Contains(msg, "fenced") || !strings.Contains(msg, "level=ERROR") {
		t.Fatalf("zombie's output has no fenced error logged at ERROR:\n%s", msg)
	}
	// B goes on: new input is counted once, and nothing the zombie did
	// shows in the output.
	produceKeys(t, ctx, brokers, in, 4000, 1000)
	waitExactlyOnce(t, ctx, brokers, in, out, 5000, a, b)
	select {
	case <-b.done:
		t.Fatalf("the new instance exited: %v\n%s", b.err, b.out.String())
	default:
	}
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	if err := b.wait(t, "the new instance", time.Minute); err != nil {
		t.Fatalf("new instance: %v\n%s", err, b.out.String())
	}
	rep, err := kafkacount.Check(ctx, brokers, in, out)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.ExactlyOnce() || rep.Produced != 5000 {
		t.Fatalf("final output: %+v", rep)
	}
	t.Logf("final: %+v\nzombie said:\n%s", rep, a.out.String())
}

// TestRunCountSIGTERMWhileRestarting is defect 7 of issue 6 as a user met
// it: `sluice run count` whose broker died goes into its restart loop (the
// attempts fail, the next ones hang while starting); SIGTERM must end it
// within a bound instead of being ignored. The broker runs in its own
// process so that it can be killed. The first failure takes the sink's and
// source's retry timeout (1m), so the test is slow.
func TestRunCountSIGTERMWhileRestarting(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real processes for over a minute")
	}
	bin := buildBinary(t)
	br := startProc(t, bin, "broker", "--port", "0", "--data-dir", filepath.Join(t.TempDir(), "broker"), "--log-level", "error")
	br.waitOutput(t, "broker listening on ", 30*time.Second)
	_, rest, _ := strings.Cut(br.out.String(), "broker listening on ")
	brokers := []string{strings.Fields(rest)[0]}
	in, out := topicsForTest("sigterm")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if err := kafkacount.EnsureTopics(ctx, brokers, 4, in, out); err != nil {
		t.Fatal(err)
	}
	job := startProc(t, bin, countArgs(brokers, in, out, filepath.Join(t.TempDir(), "checkpoints"))...)
	produceKeys(t, ctx, brokers, in, 0, 200)
	waitExactlyOnce(t, ctx, brokers, in, out, 200, job)
	if err := br.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	job.waitOutput(t, "job attempt failed, restarting", 3*time.Minute)
	if err := job.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	// Bound: 5s for the starting attempt, 10s before what ignores the
	// cancellation is abandoned, and slack for a loaded machine.
	err := job.wait(t, "run count after SIGTERM", 45*time.Second)
	t.Logf("exited %v after SIGTERM: %v", time.Since(began), err)
	if msg := job.out.String(); !strings.Contains(msg, "stopped without a final checkpoint") {
		t.Fatalf("no stop message in the output:\n%s", msg)
	}
}
