package kafka

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice"
)

// zombieOwner is the ownership record of a checkpoint directory as the
// sink sees it (docs/design.md §9): the current epoch, and per instance a
// Fence that refuses once a newer epoch holds it.
type zombieOwner struct{ epoch atomic.Int64 }

var errZombieFenced = errors.New("fenced: another instance took over (test)")

// instance returns the operator context of subtask 0 of the instance
// holding epoch, whose ownership check runs hook (if set) once it passed:
// the instance is paused right after check 3, hook is what happens
// meanwhile.
func (o *zombieOwner) instance(epoch int64, cfg SinkConfig[string], hook func()) *sluice.OperatorContext {
	oc := sinkOpCtx("sink", 0, 1, cfg.Logger)
	oc.OwnerEpoch = epoch
	var once atomic.Bool
	oc.Fence = func(_ context.Context, op string) error {
		if cur := o.epoch.Load(); cur != epoch {
			return fmt.Errorf("%w: %s refused, epoch %d is now %d", errZombieFenced, op, epoch, cur)
		}
		if hook != nil && once.CompareAndSwap(false, true) {
			hook()
		}
		return nil
	}
	return oc
}

// zombieSetup starts a broker with a one-partition topic "out" and returns
// its addresses, a sink config with the transactional-id prefix prefix, and
// the ownership record at epoch 1 (the zombie's).
func zombieSetup(t *testing.T, prefix string) ([]string, SinkConfig[string], *zombieOwner) {
	t.Helper()
	_, addrs := sinkBroker(t)
	sinkCreateTopic(t, addrs, "out", 1)
	o := new(zombieOwner)
	o.epoch.Store(1)
	return addrs, sinkStringConfig(addrs, "out", prefix), o
}

// takeOver is a new instance starting on the zombie's checkpoints: it takes
// the next epoch, cleans up, and pre-commits a transaction holding value
// (its first checkpoint is complete, the commit is next).
func (o *zombieOwner) takeOver(t *testing.T, cfg SinkConfig[string], value string) (*txnCommitter[string], *Txn) {
	t.Helper()
	ctx := context.Background()
	epoch := o.epoch.Add(1)
	b, err := newTxnCommitter(cfg, o.instance(epoch, cfg, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.CleanUp(ctx, nil); err != nil {
		t.Fatalf("new instance's clean-up: %v", err)
	}
	txn, err := b.BeginTransaction(ctx)
	if err != nil {
		t.Fatalf("new instance's begin: %v", err)
	}
	if err := b.Write(txn, value); err != nil {
		t.Fatal(err)
	}
	if err := b.PreCommit(ctx, txn); err != nil {
		t.Fatalf("new instance's pre-commit: %v", err)
	}
	return b, txn
}

// TestSinkZombieInitAfterTakeover reproduces the interleaving chaos found
// (docs/design.md §9, check 3): the zombie passes its ownership check,
// pauses; a new instance takes over and pre-commits under slot 0 of
// subtask 0; the zombie resumes and initialises its transactional id for
// slot 0. The new instance's commit must succeed and its record be read
// exactly once. Before ids carried the ownership epoch both instances
// used "zombie-sink-0-0": the zombie's InitProducerID aborted the
// pre-committed transaction and the commit failed with DATA LOSS
// (INVALID_TXN_STATE or PRODUCER_FENCED).
func TestSinkZombieInitAfterTakeover(t *testing.T) {
	t.Parallel()
	addrs, cfg, o := zombieSetup(t, "zombie")
	ctx := context.Background()

	var (
		b    *txnCommitter[string]
		bTxn *Txn
	)
	a, err := newTxnCommitter(cfg, o.instance(1, cfg, func() { b, bTxn = o.takeOver(t, cfg, "k=new") }))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.CleanUp(ctx, nil); err != nil {
		t.Fatal(err)
	}
	// The zombie's check 3 passes, the new instance takes over inside it,
	// then the zombie initialises its id.
	aTxn, err := a.BeginTransaction(ctx)
	if err != nil {
		t.Fatalf("zombie's begin: %v", err)
	}
	if bTxn == nil {
		t.Fatal("the takeover did not run inside the zombie's ownership check")
	}
	if err := b.Commit(ctx, bTxn); err != nil {
		t.Fatalf("the zombie's InitProducerID broke the new instance's pre-committed transaction %s: %v", bTxn, err)
	}
	if aTxn.TransactionalID == bTxn.TransactionalID {
		t.Fatalf("zombie and new instance share transactional id %s", aTxn.TransactionalID)
	}
	// The zombie writes on under its own id; its next ownership check (1
	// or 2) fails, so it never commits, and its task aborts the open
	// transaction as it closes.
	if err := a.Write(aTxn, "k=zombie"); err != nil {
		t.Fatal(err)
	}
	if err := a.octx.CheckFenced(ctx, "write checkpoint metadata"); !errors.Is(err, errZombieFenced) {
		t.Fatalf("zombie's next ownership check: %v, want fenced", err)
	}
	if err := a.Abort(ctx, aTxn); err != nil {
		t.Fatalf("zombie's abort of its own transaction: %v", err)
	}
	sinkCheckOnce(t, sinkValues(sinkReadCommitted(t, addrs, "out", 1)), []string{"new"})
}

// TestSinkZombieCleanUpAfterTakeover: a zombie that passed its last
// ownership check (check 4) before a new instance took over restarts and
// runs the sink's clean-up after the new instance pre-committed. The
// clean-up aborts lingering transactions of its own and older epochs, but
// must leave the newer epoch's alone.
func TestSinkZombieCleanUpAfterTakeover(t *testing.T) {
	t.Parallel()
	addrs, cfg, o := zombieSetup(t, "zombie-restart")
	ctx := context.Background()
	a, err := newTxnCommitter(cfg, o.instance(1, cfg, nil))
	if err != nil {
		t.Fatal(err)
	}
	// The zombie's own open transaction, left by its failed attempt.
	aTxn, err := a.BeginTransaction(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Write(aTxn, "k=zombie"); err != nil {
		t.Fatal(err)
	}
	if err := flushTxn(ctx, aTxn.live); err != nil {
		t.Fatal(err)
	}
	aTxn.live.close()

	b, bTxn := o.takeOver(t, cfg, "k=new")
	if ongoing := sinkOngoing(t, addrs); aTxn.TransactionalID != bTxn.TransactionalID && ongoing[aTxn.TransactionalID] {
		t.Fatalf("new instance's clean-up left the zombie's transaction %s open", aTxn.TransactionalID)
	}
	// The zombie restarts (its attempt's ownership check passed before the
	// takeover): a new committer of epoch 1 cleans up.
	a2, err := newTxnCommitter(cfg, o.instance(1, cfg, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := a2.CleanUp(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(ctx, bTxn); err != nil {
		t.Fatalf("the zombie's clean-up broke the new instance's pre-committed transaction %s: %v", bTxn, err)
	}
	sinkCheckOnce(t, sinkValues(sinkReadCommitted(t, addrs, "out", 1)), []string{"new"})
}

// TestSinkRestoreAcrossEpochs: a transaction pre-committed by the previous
// instance, under an id of its epoch, or under an id without an epoch (a
// checkpoint written before ids carried one), is committed by the next
// instance from the checkpoint, and the new instance's own ids do not
// disturb it.
func TestSinkRestoreAcrossEpochs(t *testing.T) {
	t.Parallel()
	for _, old := range []int64{0, 3} {
		t.Run(fmt.Sprintf("epoch%d", old), func(t *testing.T) {
			t.Parallel()
			_, addrs := sinkBroker(t)
			sinkCreateTopic(t, addrs, "out", 1)
			cfg := sinkStringConfig(addrs, "out", "across")
			ctx := context.Background()
			octx := sinkOpCtx("sink", 0, 1, cfg.Logger)
			octx.OwnerEpoch = old
			a, err := newTxnCommitter(cfg, octx)
			if err != nil {
				t.Fatal(err)
			}
			txn, err := a.BeginTransaction(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want := "across-sink-0-0"
			if old > 0 {
				want += fmt.Sprintf("-e%d", old)
			}
			if txn.TransactionalID != want {
				t.Fatalf("transactional id %q, want %q", txn.TransactionalID, want)
			}
			if err := a.Write(txn, "k=old"); err != nil {
				t.Fatal(err)
			}
			if err := a.PreCommit(ctx, txn); err != nil {
				t.Fatal(err)
			}
			// The old instance is gone before the commit; the next one
			// (epoch 5) restores the checkpoint naming txn.
			stored, _, err := TxnCodec.Decode(TxnCodec.Append(nil, txn))
			if err != nil {
				t.Fatal(err)
			}
			noctx := sinkOpCtx("sink", 0, 1, cfg.Logger, stored)
			noctx.OwnerEpoch = 5
			b, err := newTxnCommitter(cfg, noctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.RecoverAndCommit(ctx, stored); err != nil {
				t.Fatalf("commit of restored transaction %s: %v", stored, err)
			}
			if err := b.CleanUp(ctx, []*Txn{stored}); err != nil {
				t.Fatal(err)
			}
			// Slot 0 is free: the restored id is not one the new
			// instance initialises.
			nt, err := b.BeginTransaction(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if nt.TransactionalID != "across-sink-0-0-e5" {
				t.Fatalf("new instance's first id %q, want across-sink-0-0-e5", nt.TransactionalID)
			}
			if err := b.Write(nt, "k=new"); err != nil {
				t.Fatal(err)
			}
			if err := b.PreCommit(ctx, nt); err != nil {
				t.Fatal(err)
			}
			if err := b.Commit(ctx, nt); err != nil {
				t.Fatal(err)
			}
			got := sinkValues(sinkReadCommitted(t, addrs, "out", 1))
			sinkCheckOnce(t, got, []string{"old", "new"})
			if strings.Join(got, ",") != "old,new" {
				t.Fatalf("read %q", got)
			}
		})
	}
}

// TestSinkCleanUpWithoutListingAcrossEpochs: when the broker refuses to
// list transactions, the clean-up of the instance of epoch 3 fences the
// pool in epochs 3 and 2 (nothing restored: its own and the previous one)
// and leaves a newer epoch's transaction alone.
func TestSinkCleanUpWithoutListingAcrossEpochs(t *testing.T) {
	t.Parallel()
	b, addrs := sinkBroker(t)
	sinkCreateTopic(t, addrs, "out", 1)
	cfg := sinkStringConfig(addrs, "out", "nolist-epochs")
	committer := func(epoch int64) *txnCommitter[string] {
		oc := sinkOpCtx("sink", 0, 1, cfg.Logger)
		oc.OwnerEpoch = epoch
		c, err := newTxnCommitter(cfg, oc)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	old := sinkWriteTxn(t, committer(2), "k=old")
	newer := committer(4)
	newerTxn := sinkWriteTxn(t, newer, "k=newer")
	h := sinkCluster(b).Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.ListTransactions}, Err: kerr.ClusterAuthorizationFailed, Count: -1})
	if err := committer(3).CleanUp(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if h.Hits() == 0 {
		t.Fatal("the listing was not refused")
	}
	h.Remove()
	ongoing := sinkOngoing(t, addrs)
	if ongoing[old.TransactionalID] {
		t.Errorf("the lingering transaction %s of the previous epoch was not aborted", old.TransactionalID)
	}
	if !ongoing[newerTxn.TransactionalID] {
		t.Fatalf("the clean-up of epoch 3 aborted %s of epoch 4", newerTxn.TransactionalID)
	}
	if err := newer.Commit(context.Background(), newerTxn); err != nil {
		t.Fatal(err)
	}
	sinkCheckOnce(t, sinkValues(sinkReadCommitted(t, addrs, "out", 1)), []string{"newer"})
}

// TestSinkZombieAbortsOrphanedPreCommit is the interleaving the zombie
// scenario of `sluice chaos` found: the zombie resumes after the new
// instance's clean-up, between two transactions, so nothing fenced its
// next id; it begins one, writes, pre-commits, and only then fails its
// ownership check (check 1). No checkpoint names that transaction, and the
// zombie never restarts, so its task must abort it as it closes (Abort of
// a pre-committed transaction, by the stored producer id and epoch):
// left open it held back the partition's last stable offset, and every
// record the new instance committed after it stayed unreadable under
// read_committed until the transaction timeout (15 minutes).
func TestSinkZombieAbortsOrphanedPreCommit(t *testing.T) {
	t.Parallel()
	addrs, cfg, o := zombieSetup(t, "orphan")
	ctx := context.Background()
	a, err := newTxnCommitter(cfg, o.instance(1, cfg, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.CleanUp(ctx, nil); err != nil {
		t.Fatal(err)
	}
	b, bTxn := o.takeOver(t, cfg, "k=new")
	if err := b.Commit(ctx, bTxn); err != nil {
		t.Fatal(err)
	}
	// The zombie wakes up. It passed check 3 before the takeover (the
	// test drops its Fence, which would refuse it now), so it begins
	// under an id of its own epoch that nothing fenced.
	a.octx.Fence = nil
	aTxn, err := a.BeginTransaction(ctx)
	if err != nil {
		t.Fatalf("zombie's begin: %v", err)
	}
	if err := a.Write(aTxn, "k=zombie"); err != nil {
		t.Fatal(err)
	}
	if err := a.PreCommit(ctx, aTxn); err != nil {
		t.Fatalf("zombie's pre-commit: %v", err)
	}
	if !sinkOngoing(t, addrs)[aTxn.TransactionalID] {
		t.Fatalf("the zombie's pre-committed transaction %s is not open on the broker", aTxn.TransactionalID)
	}
	// Its check 1 fails; closing, its task aborts the orphaned transaction.
	if err := a.Abort(ctx, aTxn); err != nil {
		t.Fatalf("abort of the zombie's pre-committed transaction: %v", err)
	}
	if sinkOngoing(t, addrs)[aTxn.TransactionalID] {
		t.Fatalf("the zombie's pre-committed transaction %s is still open after its abort", aTxn.TransactionalID)
	}
	// Aborting it again (a repeated close) is harmless.
	if err := a.Abort(ctx, aTxn); err != nil {
		t.Fatalf("second abort: %v", err)
	}
	// The new instance's next transaction, written after the zombie's, is
	// readable at once.
	txn, err := b.BeginTransaction(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Write(txn, "k=new2"); err != nil {
		t.Fatal(err)
	}
	if err := b.PreCommit(ctx, txn); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(ctx, txn); err != nil {
		t.Fatal(err)
	}
	sinkCheckOnce(t, sinkValues(sinkReadCommitted(t, addrs, "out", 1)), []string{"new", "new2"})
}
