package kafka

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/connector/datagen"
	"github.com/sluicehq/sluice/fault"
	"github.com/sluicehq/sluice/restart"
)

// TestSinkTxnFallbackRestore is defect 6 of issue 6: the restore falls back
// past a corrupt newest checkpoint to an older one, whose transaction was
// committed under a newer checkpoint, after which its transactional id was
// reused by a transaction that the crash left open.
//
// Restoring the older checkpoint must not loop on the refused re-commit
// (the id's epoch moved on: it was committed), and must abort the open
// transaction under the reused id, or every read_committed reader of the
// output blocks until the transaction timeout. Without the fallback the
// same refusal is data loss and fails the job terminally (defect 5).
func TestSinkTxnFallbackRestore(t *testing.T) {
	t.Parallel()
	_, addrs := sinkBroker(t)
	sinkCreateTopic(t, addrs, "out", 1)
	cfg := sinkStringConfig(addrs, "out", "fallback")
	cfg.PoolSize = MinTxnPoolSize
	ctx := context.Background()

	// The first run. t1 is pre-committed for checkpoint 1 and committed
	// when it completes; checkpoints 2 and 3 complete too, which frees t1's
	// slot; t4 reuses it (bumping its epoch) and is pre-committed when the
	// job crashes.
	c := sinkNewCommitter(t, cfg, "sink", 0, 1)
	var committed []string
	t1 := sinkWriteTxn(t, c, sinkNumbered("cp1", 5)...)
	prev, prevVals := t1, sinkNumbered("cp1", 5)
	var t4 *Txn
	for i := 2; t4 == nil; i++ {
		if i > 10 {
			t.Fatalf("slot of %s never reused", t1)
		}
		// As in a job: the first record after barrier i-1 opens the next
		// transaction, checkpoint i-1 completes, then barrier i.
		next, err := c.BeginTransaction(ctx)
		if err != nil {
			t.Fatal(err)
		}
		vals := sinkNumbered(fmt.Sprintf("cp%d", i), 5)
		for _, v := range vals {
			if err := c.Write(next, v); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Commit(ctx, prev); err != nil {
			t.Fatal(err)
		}
		committed = append(committed, sinkValuesOf(prevVals)...)
		if err := c.PreCommit(ctx, next); err != nil {
			t.Fatal(err)
		}
		if next.TransactionalID == t1.TransactionalID {
			t4 = next // the crash comes before its checkpoint completes
		}
		prev, prevVals = next, vals
	}
	// Every transaction before t4 is committed; t4 stays open, as the
	// crash leaves it.
	if !sinkOngoing(t, addrs)[t4.TransactionalID] {
		t.Fatalf("%s is not ongoing", t4)
	}

	// Restoring checkpoint 1 as the newest checkpoint (nothing newer is
	// complete): the refused re-commit is data loss, terminal.
	plain := sinkNewCommitter(t, cfg, "sink", 0, 1, t1)
	err := plain.RecoverAndCommit(ctx, t1)
	if !errors.Is(err, ErrDataLoss) || !restart.IsUnrecoverable(err) {
		t.Fatalf("re-commit without a newer complete checkpoint: %v, want terminal data loss", err)
	}

	// Restoring checkpoint 1 because 2 and 3 are corrupt.
	opCtx := sinkOpCtx("sink", 0, 1, cfg.Logger, t1)
	opCtx.Restored.Superseded = []int64{2, 3}
	r, err := newTxnCommitter(cfg, opCtx)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.RecoverAndCommit(ctx, t1); err != nil {
		t.Fatalf("fallback restore: re-commit of a transaction committed under a newer checkpoint: %v", err)
	}
	if err := r.CleanUp(ctx, []*Txn{t1}); err != nil {
		t.Fatal(err)
	}
	if ongoing := sinkOngoing(t, addrs); len(ongoing) > 0 {
		t.Fatalf("transactions left open after the fallback restore (readers block): %v", ongoing)
	}
	// Read to the end (blocks on an open transaction): what was committed,
	// once; the open transaction's records are gone (the restored job
	// replays their input).
	sinkCheckOnce(t, sinkValues(sinkReadCommitted(t, addrs, "out", 1)), committed)
}

// TestSinkFallbackRestoreJob runs the job of defect 6 end to end on the
// embedded broker: a run crashes right after a pre-commit, its two newest complete
// checkpoints are then corrupted, and the next run falls back to the
// oldest retained one, whose transactions were committed long ago and
// whose ids were reused since. The run must complete (not loop on
// PRODUCER_FENCED or fail with DATA LOSS), leave no transaction open, and
// the output must hold every record at least once (records committed
// after the restored checkpoint are replayed: ADR 0003).
func TestSinkFallbackRestoreJob(t *testing.T) {
	if testing.Short() {
		t.Skip("runs jobs")
	}
	t.Parallel()
	_, addrs := sinkBroker(t)
	sinkCreateTopic(t, addrs, "out", 2)
	dir := t.TempDir()
	gen := datagen.Config{Splits: 2, RecordsPerSplit: 4000, Keys: 20, Seed: 9, BatchSize: 16}

	// Run 1: crash (cancel, nothing more committed) right after the 9th
	// pre-commit of subtask 0, for checkpoint K. K-3 is restored below; its
	// transaction's slot was freed by the commit for K-2 and reused by the
	// transaction just pre-committed, which the crash leaves open.
	inj := fault.New(9)
	inj.Arm(fault.Target{Point: fault.AfterPreCommit, UID: e2eSinkUID, Subtask: 0, Skip: 8})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	inj.OnFire(func(fault.Injected) { cancel() })
	e2eJob{gen: gen, parallelism: 2, delivery: DeliveryExactlyOnce, inj: inj, ctx: ctx, perCheckpoint: 100}.run(t, addrs, "out", "fb", dir)
	if inj.Fired() != 1 {
		t.Fatalf("run 1 did not crash before a commit")
	}

	metas, err := filepath.Glob(filepath.Join(dir, "checkpoints", "chk-*", "_metadata"))
	if err != nil || len(metas) < 3 {
		t.Fatalf("run 1 left %d complete checkpoints (%v), want 3", len(metas), err)
	}
	id := func(p string) int {
		n, _ := strconv.Atoi(strings.TrimPrefix(filepath.Base(filepath.Dir(p)), "chk-"))
		return n
	}
	sort.Slice(metas, func(i, j int) bool { return id(metas[i]) < id(metas[j]) })
	for _, m := range metas[len(metas)-2:] {
		b, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0x20
		if err := os.WriteFile(m, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("restoring checkpoint %d, %d and %d corrupt", id(metas[len(metas)-3]), id(metas[len(metas)-2]), id(metas[len(metas)-1]))

	// Run 2 restores the oldest and runs to the end of the input.
	res := e2eJob{gen: gen, parallelism: 2, delivery: DeliveryExactlyOnce, perCheckpoint: 100}.run(t, addrs, "out", "fb", dir)
	t.Logf("run 2: %d restarts, %d checkpoints", res.Restarts, res.Checkpoints)
	if res.Restarts > 0 {
		t.Errorf("run 2 restarted %d times", res.Restarts)
	}
	if ongoing := sinkOngoing(t, addrs); len(ongoing) > 0 {
		t.Errorf("transactions left open: %v", ongoing)
	}
	e2eCheck(t, gen, sinkReadCommitted(t, addrs, "out", 2), true)
}
