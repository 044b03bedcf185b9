package broker

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestStartEphemeral(t *testing.T) {
	t.Parallel()
	b := startEphemeral(t)
	addrs := b.Addrs()
	if len(addrs) != 1 {
		t.Fatalf("Addrs() = %v, want one address", addrs)
	}
	host, port, err := net.SplitHostPort(addrs[0])
	if err != nil || host != "127.0.0.1" || port == "0" {
		t.Fatalf("Addrs() = %v, want 127.0.0.1:<free port>", addrs)
	}
	if b.Cluster() == nil {
		t.Fatal("Cluster() = nil")
	}
	testProduceConsume(t, addrs)
}

func TestStartCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := Start(ctx, Config{Ephemeral: true})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Start(cancelled) = %v, want context.Canceled", err)
	}
}

func TestStartInvalidConfig(t *testing.T) {
	t.Parallel()
	_, err := Start(t.Context(), Config{Port: 70000, Ephemeral: true})
	if err == nil || err.Error() != "broker.port: must be 0..65535, got 70000" {
		t.Fatalf("Start(port 70000) = %v", err)
	}
}

// The broker advertises its listen address, so the configured host is what
// clients connect to after bootstrapping.
func TestHostIsAdvertised(t *testing.T) {
	t.Parallel()
	b, err := Start(t.Context(), Config{Host: "127.0.0.2", Ephemeral: true, Logger: testLogger(t)})
	if err != nil {
		t.Skipf("cannot listen on 127.0.0.2 here: %v", err)
	}
	closeAtEnd(t, b)
	if !strings.HasPrefix(b.Addrs()[0], "127.0.0.2:") {
		t.Fatalf("Addrs() = %v, want 127.0.0.2:<port>", b.Addrs())
	}
	testProduceConsume(t, b.Addrs())
}

func TestCloseIdempotent(t *testing.T) {
	t.Parallel()
	b, err := Start(t.Context(), Config{DataDir: t.TempDir(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("first Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := net.DialTimeout("tcp", b.Addrs()[0], time.Second); err == nil {
		t.Fatalf("%s still accepts connections after Close", b.Addrs()[0])
	}
}

func TestDataDirLocked(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b := startDir(t, dir)
	_, err := Start(t.Context(), Config{DataDir: dir, Logger: testLogger(t)})
	if err == nil || !strings.Contains(err.Error(), "another broker is using it") {
		t.Fatalf("second Start on %s = %v, want a lock error", dir, err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	// Close released the lock.
	b2 := startDir(t, dir)
	if err := b2.Close(); err != nil {
		t.Fatal(err)
	}
}

// kfake creates topics on demand (AllowAutoTopicCreation) with
// DefaultNumPartitions partitions; it has no num.partitions broker config.
func TestAutoCreatedTopicPartitions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg  int
		want int
	}{{0, 4}, {1, 1}, {7, 7}} {
		t.Run(fmt.Sprint(tc.cfg), func(t *testing.T) {
			t.Parallel()
			b, err := Start(t.Context(), Config{Ephemeral: true, DefaultPartitions: tc.cfg, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			closeAtEnd(t, b)
			if got := partitionCount(t, b.Addrs(), "auto"); got != tc.want {
				t.Errorf("auto-created topic has %d partitions, want %d", got, tc.want)
			}
			// CreateTopics with -1 partitions uses the same default.
			adm := kadm.NewClient(newClient(t, b.Addrs()))
			if _, err := adm.CreateTopic(ctxT(t), -1, -1, nil, "created"); err != nil {
				t.Fatalf("CreateTopic: %v", err)
			}
			if got := partitionCount(t, b.Addrs(), "created"); got != tc.want {
				t.Errorf("CreateTopics(-1) made %d partitions, want %d", got, tc.want)
			}
		})
	}
}

// kfake writes topics.json when CreateTopics creates a topic but not when a
// metadata request auto-creates one, so a crash before the next clean Close
// lost the topic and its records. Start works around it
// (persistAutoCreatedTopics); this pins the workaround without a crash,
// TestCrashAbortsOpenTxn with one.
func TestAutoCreatedTopicPersistedImmediately(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b := startDir(t, dir)
	topic := uniqueName("auto")
	produceSync(t, b.Addrs(), topic, kvs("x", 1))
	raw, err := os.ReadFile(filepath.Join(dir, "topics.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), `"`+topic+`"`) {
		t.Fatalf("topics.json does not list auto-created topic %s before Close: %s", topic, raw)
	}
	// The workaround must not change the partition count.
	if got := partitionCount(t, b.Addrs(), topic); got != DefaultPartitions {
		t.Errorf("auto-created topic has %d partitions, want %d", got, DefaultPartitions)
	}
}

// The workaround's control function is replaced every controlGeneration
// requests (kfake's per-connection memory of kept controls never shrinks);
// auto-created topics must still be persisted across replacements.
func TestAutoCreatePersistedAcrossControlGenerations(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b, err := Start(t.Context(), Config{DataDir: dir, Logger: testLogger(t), controlGeneration: 2})
	if err != nil {
		t.Fatal(err)
	}
	closeAtEnd(t, b)
	var topics []string
	for i := range 7 {
		topic := fmt.Sprintf("gen-%d", i)
		topics = append(topics, topic)
		if got := partitionCount(t, b.Addrs(), topic); got != DefaultPartitions {
			t.Fatalf("%s: %d partitions, want %d", topic, got, DefaultPartitions)
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, "topics.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range topics {
		if !strings.Contains(string(raw), `"`+topic+`"`) {
			t.Errorf("topics.json lacks %s: %s", topic, raw)
		}
	}
}

// transaction.max.timeout.ms is honoured: kfake's own default is 15
// minutes, so a 30 minute transaction timeout only works because Start
// raises it to an hour.
func TestTxnMaxTimeout(t *testing.T) {
	t.Parallel()
	t.Run("default 1h", func(t *testing.T) {
		t.Parallel()
		testTxnMaxTimeout(t, startEphemeral(t).Addrs(), time.Hour)
	})
	t.Run("configured 10m", func(t *testing.T) {
		t.Parallel()
		b, err := Start(t.Context(), Config{Ephemeral: true, TxnMaxTimeout: 10 * time.Minute, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		closeAtEnd(t, b)
		testTxnMaxTimeout(t, b.Addrs(), 10*time.Minute)
	})
}

// testTxnMaxTimeout checks that a transaction timeout of max is accepted
// and one just over it is refused.
func testTxnMaxTimeout(t *testing.T, addrs []string, maxTimeout time.Duration) {
	cl := newClient(t, addrs)
	ctx := ctxT(t)
	if _, _, err := initProducerIDRaw(ctx, cl, uniqueName("at-max"), maxTimeout); err != nil {
		t.Errorf("InitProducerID(timeout %v) = %v, want accepted", maxTimeout, err)
	}
	if _, _, err := initProducerIDRaw(ctx, cl, uniqueName("over-max"), maxTimeout+time.Second); !errors.Is(err, kerr.InvalidTransactionTimeout) {
		t.Errorf("InitProducerID(timeout %v) = %v, want INVALID_TRANSACTION_TIMEOUT", maxTimeout+time.Second, err)
	}
}

func TestTxnRoundTrip(t *testing.T) {
	t.Parallel()
	testTxnRoundTrip(t, startEphemeral(t).Addrs())
}

// testProduceConsume produces with franz-go and reads the records back.
func testProduceConsume(t *testing.T, addrs []string) {
	t.Helper()
	topic := uniqueName("plain")
	want := kvs("plain", 20)
	produceSync(t, addrs, topic, want)
	got := consumeN(t, addrs, topic, len(want), kgo.ReadCommitted())
	if !slices.Equal(sortedStrings(got), sortedStrings(want)) {
		t.Fatalf("consumed %v, want %v", sortedStrings(got), sortedStrings(want))
	}
}

// testTxnRoundTrip aborts one transaction and commits another on
// partition 0: read_committed sees only the committed records,
// read_uncommitted sees both, and each transaction leaves a control record
// (marker) behind it in the log.
func testTxnRoundTrip(t *testing.T, addrs []string) {
	t.Helper()
	topic := uniqueName("txn")
	cl := txnProducer(t, addrs, topic, uniqueName("txn-id"))
	aborted, committed := kvs("aborted", 3), kvs("committed", 5)
	produceTxn(t, cl, aborted, false)
	produceTxn(t, cl, committed, true)

	got := consumeN(t, addrs, topic, len(committed), kgo.ReadCommitted())
	if !slices.Equal(sortedStrings(got), sortedStrings(committed)) {
		t.Errorf("read_committed got %v, want %v", sortedStrings(got), sortedStrings(committed))
	}
	all := append(slices.Clone(aborted), committed...)
	got = consumeN(t, addrs, topic, len(all), kgo.ReadUncommitted())
	if !slices.Equal(sortedStrings(got), sortedStrings(all)) {
		t.Errorf("read_uncommitted got %v, want %v", sortedStrings(got), sortedStrings(all))
	}
	// 3 aborted + marker + 5 committed + marker.
	if hwm, lso := partitionOffsets(t, addrs, topic); hwm != 10 || lso != 10 {
		t.Errorf("after both transactions: high watermark %d, last stable offset %d; want 10, 10", hwm, lso)
	}
}

// Records, committed transactions and consumer group offsets survive a
// clean Close and restart on the same data directory; an aborted
// transaction stays aborted.
func TestPersistenceAcrossRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b := startDir(t, dir)
	addrs := b.Addrs()

	plainTopic, txnTopic, group := uniqueName("plain"), uniqueName("txn"), uniqueName("group")
	plain := kvs("plain", 20)
	produceSync(t, addrs, plainTopic, plain)
	cl := txnProducer(t, addrs, txnTopic, uniqueName("txn-id"))
	aborted, committed := kvs("aborted", 2), kvs("committed", 4)
	produceTxn(t, cl, aborted, false)
	produceTxn(t, cl, committed, true)
	adm := kadm.NewClient(newClient(t, addrs))
	var offs kadm.Offsets
	offs.Add(kadm.Offset{Topic: plainTopic, Partition: 0, At: 3, LeaderEpoch: -1})
	if err := adm.CommitAllOffsets(ctxT(t), group, offs); err != nil {
		t.Fatalf("CommitAllOffsets: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	// Restart with another default partition count: existing topics keep
	// theirs.
	b, err := Start(t.Context(), Config{DataDir: dir, DefaultPartitions: 2, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	closeAtEnd(t, b)
	addrs = b.Addrs()

	if got := consumeN(t, addrs, plainTopic, len(plain), kgo.ReadCommitted()); !slices.Equal(sortedStrings(got), sortedStrings(plain)) {
		t.Errorf("plain topic after restart: %v, want %v", sortedStrings(got), sortedStrings(plain))
	}
	if got := consumeN(t, addrs, txnTopic, len(committed), kgo.ReadCommitted()); !slices.Equal(sortedStrings(got), sortedStrings(committed)) {
		t.Errorf("txn topic after restart: %v, want %v", sortedStrings(got), sortedStrings(committed))
	}
	if hwm, lso := partitionOffsets(t, addrs, txnTopic); hwm != 8 || lso != 8 {
		t.Errorf("txn topic after restart: high watermark %d, last stable offset %d; want 8, 8", hwm, lso)
	}
	if got := partitionCount(t, addrs, plainTopic); got != 4 {
		t.Errorf("plain topic has %d partitions after restart, want 4", got)
	}
	fetched, err := kadm.NewClient(newClient(t, addrs)).FetchOffsets(ctxT(t), group)
	if err != nil {
		t.Fatalf("FetchOffsets: %v", err)
	}
	if o, ok := fetched.Lookup(plainTopic, 0); !ok || o.At != 3 {
		t.Errorf("group offset after restart = %+v (found %v), want 3", o, ok)
	}
}

// A transaction still open at a clean Close is kept: after the restart the
// producer ID and epoch recorded before it (as a Flink-style sink records
// them in a checkpoint) can commit it.
func TestOpenTxnSurvivesCleanClose(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b := startDir(t, dir)
	topic, txnID := uniqueName("txn"), uniqueName("txn-id")
	cl := txnProducer(t, b.Addrs(), topic, txnID)
	committed, open := kvs("committed", 2), kvs("open", 3)
	produceTxn(t, cl, committed, true)
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	produceInTxn(t, cl, open)
	pid, epoch, err := cl.ProducerID(ctxT(t))
	if err != nil {
		t.Fatalf("ProducerID: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	b = startDir(t, dir)
	addrs := b.Addrs()
	if hwm, lso := partitionOffsets(t, addrs, topic); hwm != 6 || lso != 3 {
		t.Errorf("after restart: high watermark %d, last stable offset %d; want 6, 3 (transaction still open)", hwm, lso)
	}
	if err := endTxnRaw(ctxT(t), newClient(t, addrs), txnID, pid, epoch, true); err != nil {
		t.Fatalf("commit the open transaction after restart: %v", err)
	}
	want := append(slices.Clone(committed), open...)
	if got := consumeN(t, addrs, topic, len(want), kgo.ReadCommitted()); !slices.Equal(sortedStrings(got), sortedStrings(want)) {
		t.Errorf("read_committed after resumed commit: %v, want %v", sortedStrings(got), sortedStrings(want))
	}
}

// crashHelperEnv tells the test binary, re-executed by
// TestCrashAbortsOpenTxn, to run a broker on the named data directory
// until it is killed.
const crashHelperEnv = "SLUICE_BROKER_CRASH_HELPER_DIR"

// TestCrashHelperProcess is not a test: it is the broker process that
// TestCrashAbortsOpenTxn kills.
func TestCrashHelperProcess(t *testing.T) {
	dir := os.Getenv(crashHelperEnv)
	if dir == "" {
		t.Skip("helper process for TestCrashAbortsOpenTxn")
	}
	b, err := Start(context.Background(), Config{DataDir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Fprintf(os.Stdout, "ERROR %v\n", err)
		os.Exit(2)
	}
	fmt.Fprintf(os.Stdout, "ADDR %s\n", b.Addrs()[0])
	// Serve until the parent kills us; stdin reaches EOF only if the
	// parent died first.
	_, _ = io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

// A crash (kill -9) with a transaction open aborts that transaction when
// the data directory is loaded again, and bumps the producer's epoch, so
// the recorded producer ID and epoch can no longer commit it. This is why
// an embedded broker and a job in one process cannot survive a crash
// between a sink's pre-commit and commit (docs/broker.md, docs/design.md §7).
//
// The topic here is auto-created in the killed process: before
// persistAutoCreatedTopics this test found that kfake forgot such topics
// after a crash, and served stale records when they were created again.
func TestCrashAbortsOpenTxn(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a subprocess")
	}
	dir := t.TempDir()
	ctx := ctxT(t)
	kill, addr := startCrashHelper(t, ctx, dir)

	topic, txnID := uniqueName("txn"), uniqueName("txn-id")
	cl := txnProducer(t, []string{addr}, topic, txnID)
	committed, open := kvs("committed", 2), kvs("open", 3)
	produceTxn(t, cl, committed, true)
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	produceInTxn(t, cl, open)
	pid, epoch, err := cl.ProducerID(ctx)
	if err != nil {
		t.Fatalf("ProducerID: %v", err)
	}

	kill()

	b := startDir(t, dir)
	addrs := b.Addrs()
	if hwm, lso := partitionOffsets(t, addrs, topic); hwm != lso {
		t.Errorf("after crash: high watermark %d != last stable offset %d: the open transaction was not aborted on load", hwm, lso)
	}
	err = endTxnRaw(ctx, newClient(t, addrs), txnID, pid, epoch, true)
	if !errors.Is(err, kerr.ProducerFenced) && !errors.Is(err, kerr.InvalidTxnState) && !errors.Is(err, kerr.InvalidProducerEpoch) {
		t.Errorf("commit of the crashed transaction = %v, want it refused (fenced or invalid state)", err)
	}
	t.Logf("commit of the crashed transaction after restart: %v", err)

	// Only the committed records are visible: produce a marker after them
	// on the same partition and read up to it.
	after := kvs("after", 1)
	produceTxn(t, txnProducer(t, addrs, topic, uniqueName("txn-id")), after, true)
	want := append(slices.Clone(committed), after...)
	if got := consumeN(t, addrs, topic, len(want), kgo.ReadCommitted()); !slices.Equal(sortedStrings(got), sortedStrings(want)) {
		t.Errorf("read_committed after crash: %v, want %v", sortedStrings(got), sortedStrings(want))
	}
}

// startCrashHelper starts TestCrashHelperProcess, a broker on dir in a
// subprocess, and returns its address and a kill that SIGKILLs it (also
// run at the test's end if the test did not).
func startCrashHelper(t *testing.T, ctx context.Context, dir string) (kill func(), addr string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestCrashHelperProcess$")
	cmd.Env = append(os.Environ(), crashHelperEnv+"="+dir)
	cmd.Stderr = tWriter{t}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start helper: %v", err)
	}
	var once sync.Once
	kill = func() {
		once.Do(func() {
			if err := cmd.Process.Kill(); err != nil {
				t.Errorf("kill helper: %v", err)
			}
			_ = cmd.Wait() // "signal: killed"
			_ = stdin.Close()
		})
	}
	t.Cleanup(kill)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("helper broker did not report its address: %v", err)
	}
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "ADDR ")
	if !ok {
		t.Fatalf("helper broker: %s", line)
	}
	return kill, addr
}
