package countjob

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/checkpoint/store"
	"github.com/sluicehq/sluice/connector/datagen"
	"github.com/sluicehq/sluice/fault"
	"github.com/sluicehq/sluice/restart"
)

// crashAfterRestore runs the in-place upgrade that crashes: run 1 takes
// checkpoints into dir/checkpoints and stops with a savepoint (committing
// past its last checkpoint); run 2 starts from that savepoint on the same
// checkpoint directory and fails for good (restart.None, an injected
// failure) before it completes a checkpoint of its own, as a process
// killed at that point would. It returns the savepoint's path.
func crashAfterRestore(t *testing.T, rng *rand.Rand, dir string, gen datagen.Config) string {
	t.Helper()
	a := startSP(t, dir, gen, 2, "", nil, 1)
	a.waitRecords(t, 1500)
	path, err := a.env.StopWithSavepoint(ctx2(t), false)
	if err != nil {
		t.Fatalf("stop with savepoint: %v", err)
	}
	if _, err := a.wait(t); err != nil {
		t.Fatalf("run 1: %v", err)
	}
	ids, err := store.NewCheckpoints(mustFS(t, filepath.Join(dir, "checkpoints"))).Completed(ctx2(t))
	if err != nil || len(ids) == 0 {
		t.Fatalf("run 1 left checkpoints %v (%v), want at least one older than its savepoint", ids, err)
	}
	if rep := check(t, gen, dir); rep.Duplicated != 0 || rep.Committed == 0 {
		t.Fatalf("after the stop: %+v", rep)
	}

	inj := fault.New(rng.Uint64())
	inj.Schedule([]fault.Target{{Point: fault.OnRecord, UID: CountUID, Subtask: -1, Skip: 300}})
	env := sluice.New(sluice.Config{
		JobName:       "count",
		Parallelism:   2,
		BufferTimeout: time.Millisecond,
		// No checkpoint of its own before the crash.
		Checkpoint:     checkpoint.Config{Interval: time.Hour, MinPause: time.Millisecond},
		CheckpointDir:  filepath.Join(dir, "checkpoints"),
		FromCheckpoint: path,
		Restart:        restart.None{},
		Faults:         inj,
		Logger:         quietLogger(),
	})
	Build(env, datagen.New(gen), exactlyOnceSink(filepath.Join(dir, "output")), 2)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := env.Execute(ctx)
	if err == nil {
		t.Fatalf("run 2 did not crash (result %+v)", res)
	}
	if inj.Fired() != 1 {
		t.Fatalf("run 2 failed without the injected crash: %v", err)
	}
	t.Logf("run 2 crashed: %v", err)
	return path
}

func mustFS(t *testing.T, dir string) *store.FS {
	t.Helper()
	f, err := store.NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestRestartAfterCrashedRestoreExactlyOnce is the in-place upgrade whose
// new instance crashed before its first checkpoint (docs/design.md §5,
// §9): started again without FromCheckpoint, the job restores the
// savepoint it was last started from, recorded in its checkpoint
// directory, not the older checkpoint there, whose output the savepoint's
// job already committed. The committed output is every key's 1..n once.
func TestRestartAfterCrashedRestoreExactlyOnce(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 20))
	gen := datagen.Config{Splits: 2, RecordsPerSplit: 3000, Keys: 50, Seed: rng.Uint64(), RatePerSecond: 20_000}
	dir := t.TempDir()
	path := crashAfterRestore(t, rng, dir, gen)

	c := startSP(t, dir, gen, 2, "", nil, 1)
	if _, err := c.wait(t); err != nil {
		t.Fatalf("run 3 (no FromCheckpoint): %v", err)
	}
	rep := check(t, gen, dir)
	t.Logf("seed %d: %+v", seed, rep)
	if !rep.ExactlyOnce() || rep.Produced != 2*3000 {
		t.Fatalf("savepoint → crashed restore → plain restart: %d lost, %d duplicated: %v", rep.Lost, rep.Duplicated, rep.Examples)
	}

	// Run 3 completed checkpoints of its own, newer than the record: they
	// supersede it, so a start without the savepoint succeeds and restores
	// them (the input is all read: nothing more is emitted).
	cps := store.NewCheckpoints(mustFS(t, filepath.Join(dir, "checkpoints")))
	r, ok, err := cps.ReadRestored(ctx2(t))
	if err != nil || !ok {
		t.Fatalf("restore record after run 3: ok %v err %v", ok, err)
	}
	ids, err := cps.Completed(ctx2(t))
	if err != nil || len(ids) == 0 || ids[len(ids)-1] <= r.Above {
		t.Fatalf("run 3 left checkpoints %v (%v), want one above the record's %d", ids, err, r.Above)
	}
	if err := os.RemoveAll(path); err != nil {
		t.Fatal(err)
	}
	d := startSP(t, dir, gen, 2, "", nil, 1)
	if _, err := d.wait(t); err != nil {
		t.Fatalf("run 4, after a checkpoint newer than the recorded savepoint (now deleted): %v", err)
	}
	if rep := check(t, gen, dir); !rep.ExactlyOnce() || rep.Produced != 2*3000 {
		t.Fatalf("run 4: %+v", rep)
	}
}

// TestRecordedRestoreMissing deletes the savepoint the crashed instance
// was started from: the next start without FromCheckpoint fails with an
// error naming it and saying to pass --from-checkpoint, rather than
// restoring the older checkpoint and committing output twice.
func TestRecordedRestoreMissing(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 21))
	gen := datagen.Config{Splits: 2, RecordsPerSplit: 3000, Keys: 50, Seed: rng.Uint64(), RatePerSecond: 20_000}
	dir := t.TempDir()
	path := crashAfterRestore(t, rng, dir, gen)
	before := check(t, gen, dir)
	if err := os.RemoveAll(path); err != nil {
		t.Fatal(err)
	}
	c := startSP(t, dir, gen, 2, "", nil, 1)
	_, err := c.wait(t)
	if err == nil {
		t.Fatal("start with the recorded savepoint gone succeeded")
	}
	t.Logf("error: %v", err)
	abs, _ := filepath.Abs(path)
	for _, want := range []string{abs, "--from-checkpoint", store.RestoredName} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not name %q", err, want)
		}
	}
	if after := check(t, gen, dir); after.Committed != before.Committed || after.Duplicated != 0 {
		t.Fatalf("the failed start committed output: before %+v, after %+v", before, after)
	}

	// An explicit FromCheckpoint wins over the record, and replaces it:
	// here the operator chose the older checkpoint (its output is then
	// the operator's business, not checked).
	cps := store.NewCheckpoints(mustFS(t, filepath.Join(dir, "checkpoints")))
	ids, err := cps.Completed(ctx2(t))
	if err != nil || len(ids) == 0 {
		t.Fatalf("checkpoints %v (%v)", ids, err)
	}
	older := filepath.Join(dir, "checkpoints", store.CheckpointDir(ids[len(ids)-1]))
	e := startSP(t, dir, gen, 2, older, nil, 1)
	if _, err := e.wait(t); err != nil {
		t.Fatalf("explicit restore of %s: %v", older, err)
	}
	if r, ok, err := cps.ReadRestored(ctx2(t)); err != nil || !ok || r.Path != older {
		t.Fatalf("record after the explicit restore: %+v ok %v err %v, want it to name %s", r, ok, err, older)
	}
}
