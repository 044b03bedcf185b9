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
	crashAfterRestore(t, rng, dir, gen)

	c := startSP(t, dir, gen, 2, "", nil, 1)
	if _, err := c.wait(t); err != nil {
		t.Fatalf("run 3 (no FromCheckpoint): %v", err)
	}
	rep := check(t, gen, dir)
	t.Logf("seed %d: %+v", seed, rep)
	if !rep.ExactlyOnce() || rep.Produced != 2*3000 {
		t.Fatalf("savepoint → crashed restore → plain restart: %d lost, %d duplicated: %v", rep.Lost, rep.Duplicated, rep.Examples)
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
}
