package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
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

	"github.com/sluicehq/sluice/connector/kafka"
	"github.com/sluicehq/sluice/fault"
	"github.com/sluicehq/sluice/internal/kafkacount"
	"github.com/sluicehq/sluice/restart"
)

// brokerProc is a `sluice broker` process on a fixed port.
type brokerProc struct {
	t    *testing.T
	bin  string
	dir  string
	port int
	cmd  *exec.Cmd
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// start runs the broker and waits until it listens.
func (b *brokerProc) start() {
	b.t.Helper()
	cmd := exec.Command(b.bin, "broker", "--port", strconv.Itoa(b.port), "--data-dir", b.dir, "--log-level", "error")
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	b.cmd = cmd
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "broker listening on ") {
			go func() { _, _ = io.Copy(io.Discard, out) }()
			return
		}
	}
	b.t.Fatalf("broker did not start: %v", sc.Err())
}

// kill9 kills the broker with SIGKILL and waits for it to be gone.
func (b *brokerProc) kill9() {
	_ = b.cmd.Process.Kill()
	_ = b.cmd.Wait()
}

func (b *brokerProc) stop() {
	if b.cmd != nil && b.cmd.ProcessState == nil {
		_ = b.cmd.Process.Signal(syscall.SIGTERM)
		_ = b.cmd.Wait()
	}
}

// errorLog records the messages of ERROR records.
type errorLog struct {
	mu   sync.Mutex
	msgs []string
}

func (h *errorLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelError }
func (h *errorLog) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs = append(h.msgs, r.Message)
	return nil
}
func (h *errorLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *errorLog) WithGroup(string) slog.Handler      { return h }

// TestKafkaBrokerCrashBeforeCommitFailsJob is defect 5 of issue 6: the
// embedded broker runs in its own process (`sluice broker`) and is killed
// with SIGKILL between a sink's pre-commit and its commit, then started
// again on the same data directory. kfake aborts the open transaction on
// load, so its commit can never succeed: the job must fail at once, not
// retry forever, with a DATA LOSS error that names the real causes, logged
// at ERROR.
func TestKafkaBrokerCrashBeforeCommitFailsJob(t *testing.T) {
	if testing.Short() {
		t.Skip("runs and kills a broker process")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	b := &brokerProc{t: t, bin: bin, dir: filepath.Join(dir, "broker"), port: freePort(t)}
	b.start()
	t.Cleanup(b.stop)
	addr := "127.0.0.1:" + strconv.Itoa(b.port)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := kafkacount.EnsureTopics(ctx, []string{addr}, 4, "in", "out"); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("in"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5000 {
		cl.Produce(ctx, &kgo.Record{Key: []byte("k" + strconv.Itoa(i%100)), Value: []byte(strconv.Itoa(i))}, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	cl.Close()

	inj := fault.New(1)
	inj.Arm(fault.Target{Point: fault.BeforeCommit, UID: kafkacount.SinkUID, Subtask: -1})
	var killedAt time.Time
	inj.OnFire(func(fault.Injected) {
		// The checkpoint is complete, its transactions pre-committed and
		// not committed: crash the broker now, and start it again.
		b.kill9()
		b.start()
		killedAt = time.Now()
	})
	errs := &errorLog{}
	env, err := kafkacount.New(kafkacount.Options{
		Brokers: []string{addr}, Input: "in", Output: "out", Parallelism: 2,
		CheckpointInterval: 100 * time.Millisecond, MinPause: 20 * time.Millisecond,
		CheckpointDir: filepath.Join(dir, "checkpoints"),
		Restart:       restart.FixedDelay{Attempts: 1000, Delay: 50 * time.Millisecond},
		Faults:        inj, Logger: slog.New(errs),
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = env.Execute(ctx)
	if inj.Fired() != 1 {
		t.Fatalf("the broker was not killed between pre-commit and commit (fired %d); job: %v", inj.Fired(), err)
	}
	if err == nil {
		t.Fatal("job succeeded although a pre-committed transaction was lost with the broker")
	}
	if took := time.Since(killedAt); took > time.Minute {
		t.Errorf("job failed %v after the crash: not at once", took)
	}
	if !errors.Is(err, kafka.ErrDataLoss) || !restart.IsUnrecoverable(err) {
		t.Errorf("job error is not a terminal data-loss error: %v", err)
	}
	for _, w := range []string{
		"DATA LOSS",
		"the broker lost an open transaction (the embedded broker does when it crashes; Apache Kafka does not)",
		kafka.KeySinkTransactionTimeout, kafka.KeySinkTransactionalIDPrefix, "--accept-lost-transactions",
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("job error does not say %q: %v", w, err)
		}
	}
	if st := env.Status(); st.Restarts > 1 {
		t.Errorf("%d restarts: the lost commit was retried by restarting", st.Restarts)
	}
	errs.mu.Lock()
	defer errs.mu.Unlock()
	logged := false
	for _, m := range errs.msgs {
		logged = logged || strings.Contains(m, "DATA LOSS")
	}
	if !logged {
		t.Errorf("no DATA LOSS line at ERROR; errors logged: %q", errs.msgs)
	}
}

// TestVerifyBoundedByDeadline is defect 8 of issue 6: after the embedded
// broker crashed with a transaction open, the transaction is aborted
// without a marker, so a read_committed reader never sees an offset at or
// past the last stable offset of that partition. `sluice verify --wait`
// must still end by its deadline, and say which partition it could not
// read and how far it got.
func TestVerifyBoundedByDeadline(t *testing.T) {
	if testing.Short() {
		t.Skip("runs and kills a broker process")
	}
	bin := buildBinary(t)
	b := &brokerProc{t: t, bin: bin, dir: filepath.Join(t.TempDir(), "broker"), port: freePort(t)}
	b.start()
	t.Cleanup(b.stop)
	addr := "127.0.0.1:" + strconv.Itoa(b.port)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := kafkacount.EnsureTopics(ctx, []string{addr}, 1, "in", "out"); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		r := &kgo.Record{Topic: "in", Key: []byte("k"), Value: []byte(strconv.Itoa(i))}
		if err := cl.ProduceSync(ctx, r, &kgo.Record{Topic: "out", Key: []byte("k"), Value: []byte(strconv.Itoa(i + 1))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cl.Close()
	tx, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.TransactionalID("verify-open"))
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := tx.ProduceSync(ctx, &kgo.Record{Topic: "out", Key: []byte("k"), Value: []byte("4")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	tx.Close()
	b.kill9() // the open transaction is aborted on load, without a marker
	b.start()

	var stdout, stderr strings.Builder
	start := time.Now()
	err = runVerify(ctx, []string{"--brokers", addr, "--input", "in", "--output", "out", "--wait", "3s"}, &stdout, &stderr)
	took := time.Since(start)
	t.Logf("verify took %v: %v", took, err)
	if took > 15*time.Second {
		t.Errorf("verify --wait 3s took %v", took)
	}
	if _, ok := errors.AsType[*kafkacount.IncompleteReadError](err); !ok {
		t.Fatalf("verify: %v, want an incomplete read\nstdout:\n%s", err, stdout.String())
	}
	for _, w := range []string{"read out", "partition 0 up to offset 3 of 4", "within 3s"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
}

// TestRunCountTransactionTimeoutFlag: `sluice run count` sets the sink's
// transaction timeout from --transaction-timeout, and the startup check's
// advice names the flag.
func TestRunCountTransactionTimeoutFlag(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a broker process")
	}
	bin := buildBinary(t)
	b := &brokerProc{t: t, bin: bin, dir: filepath.Join(t.TempDir(), "broker"), port: freePort(t)}
	b.start()
	t.Cleanup(b.stop)
	addr := "127.0.0.1:" + strconv.Itoa(b.port)
	var stdout, stderr strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := runRun(ctx, []string{"count", "--brokers", addr, "--input", "in", "--output", "out",
		"--checkpoint-dir", t.TempDir(), "--transaction-timeout", "30s"}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "kafka.sink.transaction-timeout: 30s does not exceed") ||
		!strings.Contains(err.Error(), "--transaction-timeout") {
		t.Fatalf("run count --transaction-timeout 30s: %v, want the startup check naming the flag\n%s", err, stderr.String())
	}
}
