package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// sinkWriteTxn begins a transaction with c, writes the values and
// pre-commits it.
func sinkWriteTxn(t testing.TB, c *txnCommitter[string], values ...string) *Txn {
	t.Helper()
	ctx := context.Background()
	txn, err := c.BeginTransaction(ctx)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	for _, v := range values {
		if err := c.Write(txn, v); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	if err := c.PreCommit(ctx, txn); err != nil {
		t.Fatalf("pre-commit: %v", err)
	}
	return txn
}

func sinkNewCommitter(t testing.TB, cfg SinkConfig[string], uid string, sub, par int, restored ...*Txn) *txnCommitter[string] {
	t.Helper()
	c, err := newTxnCommitter(cfg, sinkOpCtx(uid, sub, par, cfg.Logger, restored...))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func sinkNumbered(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("k%d=%s-%d", i%7, prefix, i)
	}
	return out
}

func sinkValuesOf(kvs []string) []string {
	out := make([]string, len(kvs))
	for i, kv := range kvs {
		out[i] = string(appendValueOf(nil, kv))
	}
	return out
}

// TestSinkTxnVisibleAfterCommit: records of a pre-committed transaction are
// invisible to read_committed readers (the last stable offset does not move)
// until the commit; keys are partitioned like the Java client's.
func TestSinkTxnVisibleAfterCommit(t *testing.T) {
	t.Parallel()
	_, addrs := sinkBroker(t)
	sinkCreateTopic(t, addrs, "out", 4)
	cfg := sinkStringConfig(addrs, "out", "vis")
	c := sinkNewCommitter(t, cfg, "sink", 0, 1)
	values := sinkNumbered("a", 100)
	txn := sinkWriteTxn(t, c, values...)
	if !txn.HasData || txn.TransactionalID != "vis-sink-0-0" || txn.TxnVersion != txnV2 {
		t.Fatalf("pre-committed %+v", txn)
	}
	for p, lso := range sinkLSO(t, addrs, "out") {
		if lso != 0 {
			t.Fatalf("partition %d: last stable offset %d before the commit", p, lso)
		}
	}
	if err := c.Commit(context.Background(), txn); err != nil {
		t.Fatal(err)
	}
	got := sinkReadCommitted(t, addrs, "out", 4)
	sinkCheckOnce(t, sinkValues(got), sinkValuesOf(values))
	// Same key, same partition; and the partition is murmur2's.
	part := map[string]int32{}
	for _, r := range got {
		k := string(r.Key)
		if p, ok := part[k]; ok && p != r.Partition {
			t.Errorf("key %s in partitions %d and %d", k, p, r.Partition)
		}
		part[k] = r.Partition
		if want := int32(kgo.KafkaHasher(sinkMurmur2)(r.Key, 4)); want != r.Partition {
			t.Errorf("key %s in partition %d, murmur2 says %d", k, r.Partition, want)
		}
	}
}

// sinkMurmur2 is Kafka's murmur2 as the Java client uses it (positive
// variant applied by KafkaHasher).
func sinkMurmur2(b []byte) uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	h := seed ^ uint32(len(b))
	for ; len(b) >= 4; b = b[4:] {
		k := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	switch len(b) {
	case 3:
		h ^= uint32(b[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(b[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(b[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}

// TestSinkTxnCommitTwice: a commit repeated with the same producer id and
// epoch (a retry whose first reply was lost, or a restore after the
// commit) answers OK, under both transaction protocols.
func TestSinkTxnCommitTwice(t *testing.T) {
	t.Parallel()
	for _, tv := range []int16{txnV1, txnV2} {
		t.Run(fmt.Sprintf("transaction.version=%d", tv), func(t *testing.T) {
			t.Parallel()
			_, addrs := sinkBroker(t)
			sinkCreateTopic(t, addrs, "out", 2)
			cfg := sinkStringConfig(addrs, "out", "twice")
			if tv == txnV1 {
				cfg.ClientOpts = append(cfg.ClientOpts, kgo.MaxVersions(sinkPreKIP890()))
			}
			c := sinkNewCommitter(t, cfg, "sink", 0, 1)
			values := sinkNumbered("b", 10)
			txn := sinkWriteTxn(t, c, values...)
			if txn.TxnVersion != tv {
				t.Fatalf("transaction version %d, want %d", txn.TxnVersion, tv)
			}
			ctx := context.Background()
			for i := range 3 {
				if err := c.Commit(ctx, txn); err != nil {
					t.Fatalf("commit %d: %v", i+1, err)
				}
			}
			if err := c.RecoverAndCommit(ctx, txn); err != nil {
				t.Fatalf("recover-commit after commit: %v", err)
			}
			sinkCheckOnce(t, sinkValues(sinkReadCommitted(t, addrs, "out", 2)), sinkValuesOf(values))
		})
	}
}

// sinkPreKIP890 caps the client below KIP-890 part 2 (Produce v11), so
// that franz-go adds partitions with AddPartitionsToTxn and ends
// transactions with EndTxn v4: transaction.version 1.
func sinkPreKIP890() *kversion.Versions {
	v := kversion.Stable()
	v.SetMaxKeyVersion(int16(kmsg.Produce), 11)
	return v
}

// TestSinkTxnRecoverAfterCrash: the committer is dropped after the
// pre-commit (the process died); the transaction, stored as the
// checkpoint stores it, is committed by a new committer on restore, and a
// restored slot is not reused until a new checkpoint completes.
func TestSinkTxnRecoverAfterCrash(t *testing.T) {
	t.Parallel()
	_, addrs := sinkBroker(t)
	sinkCreateTopic(t, addrs, "out", 3)
	cfg := sinkStringConfig(addrs, "out", "crash")
	ctx := context.Background()

	c1 := sinkNewCommitter(t, cfg, "sink", 0, 2)
	first := sinkNumbered("c1", 50)
	committed := sinkWriteTxn(t, c1, first[:20]...)
	if err := c1.Commit(ctx, committed); err != nil {
		t.Fatal(err)
	}
	pending := sinkWriteTxn(t, c1, first[20:]...)
	// Subtask 1 of the same attempt pre-committed too.
	c1b := sinkNewCommitter(t, cfg, "sink", 1, 2)
	second := sinkNumbered("c1b", 30)
	pendingB := sinkWriteTxn(t, c1b, second...)
	// An open transaction nobody pre-committed: it must be aborted.
	open, err := c1.BeginTransaction(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range sinkNumbered("lost", 5) {
		if err := c1.Write(open, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := open.live.cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	open.live.cl.Close() // crash: no abort

	// The checkpoint holds committed (already committed, the notification
	// came before the crash but after the barrier), pending and pendingB.
	var restored []*Txn
	for _, txn := range []*Txn{committed, pending, pendingB} {
		b := TxnCodec.Append(nil, txn)
		d, _, err := TxnCodec.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		restored = append(restored, d)
	}
	// Restore at parallelism 2: subtask 0 commits everything, then cleans up.
	c2 := sinkNewCommitter(t, cfg, "sink", 0, 2, restored...)
	for _, txn := range restored {
		if err := c2.RecoverAndCommit(ctx, txn); err != nil {
			t.Fatalf("recover %s: %v", txn, err)
		}
	}
	if err := c2.CleanUp(ctx, restored); err != nil {
		t.Fatal(err)
	}
	sinkCheckOnce(t, sinkValues(sinkReadCommitted(t, addrs, "out", 3)), append(sinkValuesOf(first), sinkValuesOf(second)...))

	// Slots 0 and 1 of subtask 0 are named by the restored checkpoint:
	// the next transactions use others until one commits.
	next := sinkWriteTxn(t, c2, "k=next")
	if next.TransactionalID != "crash-sink-0-2" {
		t.Fatalf("first transaction after restore uses %s, want slot 2", next.TransactionalID)
	}
	// A second crash before any new checkpoint completes restores the same
	// checkpoint again: the restored transactions still commit.
	c3 := sinkNewCommitter(t, cfg, "sink", 0, 2, restored...)
	for _, txn := range restored {
		if err := c3.RecoverAndCommit(ctx, txn); err != nil {
			t.Fatalf("second recovery of %s: %v", txn, err)
		}
	}
	if err := c3.CleanUp(ctx, restored); err != nil {
		t.Fatal(err)
	}
	sinkCheckOnce(t, sinkValues(sinkReadCommitted(t, addrs, "out", 3)), append(sinkValuesOf(first), sinkValuesOf(second)...))
}

// TestSinkTxnSlotReuse: in steady state three slots cycle: open,
// pre-committed, and committed but still named by the latest checkpoint.
func TestSinkTxnSlotReuse(t *testing.T) {
	t.Parallel()
	_, addrs := sinkBroker(t)
	sinkCreateTopic(t, addrs, "out", 1)
	cfg := sinkStringConfig(addrs, "out", "reuse")
	c := sinkNewCommitter(t, cfg, "sink", 0, 1)
	ctx := context.Background()
	var used, all []string
	write := func(i int) *Txn {
		txn, err := c.BeginTransaction(ctx)
		if err != nil {
			t.Fatal(err)
		}
		used = append(used, txn.TransactionalID)
		all = append(all, fmt.Sprint(i))
		if err := c.Write(txn, fmt.Sprintf("k=%d", i)); err != nil {
			t.Fatal(err)
		}
		return txn
	}
	prev := write(0)
	if err := c.PreCommit(ctx, prev); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < 8; i++ {
		// As in a job: the first record after barrier i-1 opens the next
		// transaction, then checkpoint i-1 completes, then barrier i.
		next := write(i)
		if err := c.Commit(ctx, prev); err != nil {
			t.Fatal(err)
		}
		if err := c.PreCommit(ctx, next); err != nil {
			t.Fatal(err)
		}
		prev = next
	}
	if err := c.Commit(ctx, prev); err != nil {
		t.Fatal(err)
	}
	want := []string{"reuse-sink-0-0", "reuse-sink-0-1", "reuse-sink-0-2", "reuse-sink-0-0", "reuse-sink-0-1", "reuse-sink-0-2", "reuse-sink-0-0", "reuse-sink-0-1"}
	if strings.Join(used, " ") != strings.Join(want, " ") {
		t.Errorf("slots used %v, want %v", used, want)
	}
	sinkCheckOnce(t, sinkValues(sinkReadCommitted(t, addrs, "out", 1)), all)

	// With checkpoints that never complete, the pool runs out with a clear
	// error instead of reusing a slot that a checkpoint may restore.
	for i := 0; ; i++ {
		txn, err := c.BeginTransaction(ctx)
		if err != nil {
			if !strings.Contains(err.Error(), "kafka.sink.pool-size") || i == 0 {
				t.Fatalf("exhausted pool after %d transactions: %v", i, err)
			}
			break
		}
		if i == cfg.PoolSize {
			t.Fatalf("%d transactions pending in a pool of %d", i+1, cfg.PoolSize)
		}
		if err := c.Write(txn, "k=stuck"); err != nil {
			t.Fatal(err)
		}
		if err := c.PreCommit(ctx, txn); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSinkTxnEmptyNotCommitted: a transaction without records is not
// committed (Kafka with transaction.version 2 would answer
// INVALID_TXN_STATE), neither on checkpoint completion nor on restore.
func TestSinkTxnEmptyNotCommitted(t *testing.T) {
	t.Parallel()
	b, addrs := sinkBroker(t)
	sinkCreateTopic(t, addrs, "out", 1)
	cfg := sinkStringConfig(addrs, "out", "empty")
	c := sinkNewCommitter(t, cfg, "sink", 0, 1)
	h := sinkCluster(b).Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.EndTxn}, Observe: true, Count: -1})
	defer h.Remove()
	txn := sinkWriteTxn(t, c)
	if txn.HasData {
		t.Fatal("empty transaction has data")
	}
	ctx := context.Background()
	if err := c.Commit(ctx, txn); err != nil {
		t.Fatal(err)
	}
	if err := c.RecoverAndCommit(ctx, txn); err != nil {
		t.Fatal(err)
	}
	if n := h.Hits(); n != 0 {
		t.Errorf("%d EndTxn requests for an empty transaction", n)
	}
	// Its slot is free again at once.
	if next := sinkWriteTxn(t, c, "k=v"); next.TransactionalID != "empty-sink-0-0" {
		t.Errorf("next transaction uses %s", next.TransactionalID)
	}
}

// TestSinkTxnCommitAfterFencing: a commit refused because the transaction
// was fenced (another producer initialised the same id, aborting it) or
// timed out is a loud data-loss error naming the transaction, logged at
// Error, never ignored; on restore it fails the restore unless
// AcceptLostTransactionsOnRestore is set.
func TestSinkTxnCommitAfterFencing(t *testing.T) {
	t.Parallel()
	_, addrs := sinkBroker(t)
	sinkCreateTopic(t, addrs, "out", 1)
	rec := &sinkRecordingHandler{}
	cfg := sinkStringConfig(addrs, "out", "fenced")
	cfg.Logger = slog.New(rec)
	c := sinkNewCommitter(t, cfg, "sink", 0, 1)
	ctx := context.Background()

	txn := sinkWriteTxn(t, c, "k=doomed")
	if err := fenceTxnID(ctx, c.cfg, c.log, txn.TransactionalID); err != nil {
		t.Fatal(err)
	}
	err := c.Commit(ctx, txn)
	var dl *DataLossError
	if !errors.As(err, &dl) || !errors.Is(err, ErrDataLoss) {
		t.Fatalf("commit after fencing: got %v, want a DataLossError", err)
	}
	for _, w := range []string{"DATA LOSS", "fenced-sink-0-0", fmt.Sprintf("producer id %d", txn.ProducerID),
		fmt.Sprintf("epoch %d", txn.ProducerEpoch), "transaction-timeout"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
	if !errors.Is(err, kerr.ProducerFenced) && !errors.Is(err, kerr.InvalidProducerEpoch) && !errors.Is(err, kerr.InvalidTxnState) {
		t.Errorf("error does not wrap the broker's answer: %v", err)
	}
	logged := rec.errors()
	if len(logged) != 1 || !strings.Contains(logged[0], "DATA LOSS") || !strings.Contains(logged[0], "fenced-sink-0-0") {
		t.Errorf("logged at Error: %q", logged)
	}

	// On restore: fails, unless accepted.
	if err := c.RecoverAndCommit(ctx, txn); !errors.Is(err, ErrDataLoss) {
		t.Errorf("recover after fencing: got %v, want data loss", err)
	}
	cfg.AcceptLostTransactionsOnRestore = true
	c2 := sinkNewCommitter(t, cfg, "sink", 0, 1, txn)
	if err := c2.RecoverAndCommit(ctx, txn); err != nil {
		t.Errorf("recover with AcceptLostTransactionsOnRestore: %v", err)
	}
	if n := len(rec.errors()); n != 3 {
		t.Errorf("%d errors logged, want 3 (each loss is logged)", n)
	}
	if got := sinkReadCommitted(t, addrs, "out", 1); len(got) != 0 {
		t.Errorf("fenced transaction visible: %q", sinkValues(got))
	}
}

// TestSinkTxnCommitAfterTimeout: the broker aborts a transaction that
// outlives its timeout; the commit then reports data loss.
func TestSinkTxnCommitAfterTimeout(t *testing.T) {
	t.Parallel()
	_, addrs := sinkBroker(t)
	sinkCreateTopic(t, addrs, "out", 1)
	cfg := sinkStringConfig(addrs, "out", "timeout")
	cfg.TransactionTimeout = 200 * time.Millisecond // below Validate's bound, on purpose
	c := sinkNewCommitter(t, cfg, "sink", 0, 1)
	txn := sinkWriteTxn(t, c, "k=late")
	deadline := time.Now().Add(30 * time.Second)
	for sinkOngoing(t, addrs)[txn.TransactionalID] {
		if time.Now().After(deadline) {
			t.Fatal("the broker did not time the transaction out")
		}
		time.Sleep(20 * time.Millisecond) // polling the broker's timer, bounded by the deadline
	}
	err := c.Commit(context.Background(), txn)
	if !errors.Is(err, ErrDataLoss) || !strings.Contains(err.Error(), txn.TransactionalID) {
		t.Fatalf("commit after timeout: got %v, want data loss", err)
	}
}

// TestSinkTxnCleanUp: a restore at a lower parallelism aborts the
// transactions that subtasks which no longer exist left open, so
// read_committed readers proceed; other operators' transactions are left
// alone, and recovered ones are not touched.
func TestSinkTxnCleanUp(t *testing.T) {
	t.Parallel()
	_, addrs := sinkBroker(t)
	sinkCreateTopic(t, addrs, "out", 2)
	cfg := sinkStringConfig(addrs, "out", "clean")
	ctx := context.Background()

	// Attempt 1 at parallelism 3: subtask 2 pre-committed a transaction
	// of a checkpoint that never completed; subtask 1 had one open.
	old2 := sinkNewCommitter(t, cfg, "sink", 2, 3)
	sinkWriteTxn(t, old2, sinkNumbered("gone", 10)...)
	old1 := sinkNewCommitter(t, cfg, "sink", 1, 3)
	open, err := old1.BeginTransaction(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := old1.Write(open, "k=open"); err != nil {
		t.Fatal(err)
	}
	if err := open.live.cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	open.live.cl.Close()
	// Subtask 0 pre-committed one that the restored checkpoint holds.
	old0 := sinkNewCommitter(t, cfg, "sink", 0, 3)
	kept := sinkNumbered("kept", 10)
	keptTxn := sinkWriteTxn(t, old0, kept...)
	// Another operator whose uid extends ours: not ours to abort.
	other := sinkNewCommitter(t, cfg, "sink-2", 0, 1)
	otherTxn := sinkWriteTxn(t, other, "k=other")

	ongoing := sinkOngoing(t, addrs)
	for _, id := range []string{"clean-sink-2-0", "clean-sink-1-0", "clean-sink-0-0", "clean-sink-2-0-0"} {
		if !ongoing[id] {
			t.Fatalf("%s not ongoing before the clean-up: %v", id, ongoing)
		}
	}

	// Attempt 2 at parallelism 1.
	c := sinkNewCommitter(t, cfg, "sink", 0, 1, keptTxn)
	if err := c.CleanUp(ctx, []*Txn{keptTxn}); err != nil {
		t.Fatal(err)
	}
	ongoing = sinkOngoing(t, addrs)
	if ongoing["clean-sink-2-0"] || ongoing["clean-sink-1-0"] {
		t.Errorf("lingering transactions left: %v", ongoing)
	}
	if !ongoing["clean-sink-0-0"] {
		t.Errorf("the recovered transaction was aborted")
	}
	if !ongoing["clean-sink-2-0-0"] {
		t.Errorf("another operator's transaction was aborted")
	}
	if err := c.RecoverAndCommit(ctx, keptTxn); err != nil {
		t.Fatal(err)
	}
	if err := other.Commit(ctx, otherTxn); err != nil {
		t.Fatal(err)
	}
	sinkCheckOnce(t, sinkValues(sinkReadCommitted(t, addrs, "out", 2)), append(sinkValuesOf(kept), "other"))
}

// TestSinkTxnCleanUpWithoutListing: when the broker refuses to list
// transactions (no permission, or older than Kafka 3.0), the clean-up
// still fences the pool of the current parallelism.
func TestSinkTxnCleanUpWithoutListing(t *testing.T) {
	t.Parallel()
	b, addrs := sinkBroker(t)
	sinkCreateTopic(t, addrs, "out", 1)
	cfg := sinkStringConfig(addrs, "out", "nolist")
	old := sinkNewCommitter(t, cfg, "sink", 1, 2)
	sinkWriteTxn(t, old, "k=lost")
	h := sinkCluster(b).Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.ListTransactions}, Err: kerr.ClusterAuthorizationFailed, Count: -1})
	c := sinkNewCommitter(t, cfg, "sink", 0, 2)
	if err := c.CleanUp(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if h.Hits() == 0 {
		t.Fatal("the listing was not refused")
	}
	h.Remove()
	if sinkOngoing(t, addrs)["nolist-sink-1-0"] {
		t.Error("the lingering transaction of subtask 1 was not aborted")
	}
	if got := sinkReadCommitted(t, addrs, "out", 1); len(got) != 0 {
		t.Errorf("aborted records visible: %q", sinkValues(got))
	}
}
