package countjob

import (
	"context"
	"errors"
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
	"github.com/sluicehq/sluice/internal/verify"
	"github.com/sluicehq/sluice/restart"
)

// spJob is one run of the count job for the savepoint tests: it reads gen
// (rate limited, so that it is still running when the test acts) into the
// file sink under dir/output, checkpointing into dir/checkpoints.
type spJob struct {
	env  *sluice.Environment
	done chan struct{}
	res  *sluice.Result
	err  error
}

func startSP(t *testing.T, dir string, gen datagen.Config, par int, from string, inj *fault.Injector, retained int) *spJob {
	t.Helper()
	return startSPEvery(t, dir, gen, par, from, inj, retained, 20*time.Millisecond)
}

// startSPEvery is startSP with the checkpoint interval.
func startSPEvery(t *testing.T, dir string, gen datagen.Config, par int, from string, inj *fault.Injector, retained int, interval time.Duration) *spJob {
	t.Helper()
	env := sluice.New(sluice.Config{
		JobName:       "count",
		Parallelism:   par,
		BufferTimeout: time.Millisecond,
		Checkpoint: checkpoint.Config{
			Interval: interval, MinPause: time.Millisecond, TolerableFailures: 100, Retained: retained,
		},
		CheckpointDir:  filepath.Join(dir, "checkpoints"),
		FromCheckpoint: from,
		Restart:        restart.FixedDelay{Attempts: 1000, Delay: time.Millisecond},
		Faults:         inj,
		Logger:         quietLogger(),
	})
	Build(env, datagen.New(gen), exactlyOnceSink(filepath.Join(dir, "output")), par)
	j := &spJob{env: env, done: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	go func() {
		defer close(j.done)
		defer cancel()
		j.res, j.err = env.Execute(ctx)
	}()
	t.Cleanup(func() {
		env.Stop()
		<-j.done
	})
	return j
}

func (j *spJob) wait(t *testing.T) (*sluice.Result, error) {
	t.Helper()
	select {
	case <-j.done:
		return j.res, j.err
	case <-time.After(2 * time.Minute):
		t.Fatal("job did not end")
		return nil, nil
	}
}

// sinkIn is how many records the job's counting task (the sink is
// chained to it) received in this run.
func (j *spJob) sinkIn() int64 {
	st := j.env.Status()
	var n int64
	for _, v := range st.Vertices {
		if v.Name == CountUID {
			n += v.RecordsInTotal
		}
	}
	return n
}

// waitRecords waits until the sink received n records in this run (a
// condition, not a sleep).
func (j *spJob) waitRecords(t *testing.T, n int64) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for j.sinkIn() < n {
		select {
		case <-j.done:
			t.Fatalf("job ended before its sink saw %d records: %v", n, j.err)
		case <-time.After(time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("sink saw %d records, waited for %d", j.sinkIn(), n)
		}
	}
}

func ctx2(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// copyDir copies the savepoint directory src to dst (files only, as cp -r
// does), to prove a savepoint relocatable.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestTriggerSavepointWhileRunning takes a savepoint of the running count
// job: the job keeps running to the end of its input (exactly once on its
// own), and the savepoint, copied to another directory and the original
// deleted, restores at another parallelism into a second job whose output
// continues exactly where the savepoint left off.
func TestTriggerSavepointWhileRunning(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 10))
	gen := datagen.Config{Splits: 3, RecordsPerSplit: 4000, Keys: 100, Seed: rng.Uint64(), RatePerSecond: 20_000}
	dirA := t.TempDir()
	a := startSP(t, dirA, gen, 2, "", nil, 1)
	a.waitRecords(t, 1000)
	path, err := a.env.TriggerSavepoint(ctx2(t))
	if err != nil {
		t.Fatalf("savepoint: %v", err)
	}
	t.Logf("savepoint at %s", path)
	if want := filepath.Join(dirA, "checkpoints", "savepoints"); filepath.Dir(path) != want || !strings.HasPrefix(filepath.Base(path), "savepoint-") {
		t.Fatalf("savepoint at %s, want a savepoint-<id>-… directory in %s", path, want)
	}
	// The job kept running: it reads all of its input.
	if _, err := a.wait(t); err != nil {
		t.Fatalf("job after its savepoint: %v", err)
	}
	if rep := check(t, gen, dirA); !rep.ExactlyOnce() || rep.Produced != 3*4000 {
		t.Fatalf("job that took a savepoint: %+v", rep)
	}
	// Retention (1 checkpoint retained, many completed since) left the
	// savepoint alone.
	if _, _, err := store.LoadPath(ctx2(t), path); err != nil {
		t.Fatalf("savepoint after the job ended and retention ran: %v", err)
	}

	// Relocate it, then restore it at parallelism 3. Its sink state
	// names transactions in the first job's output directory (committed
	// there since), so the second job writes into a copy of that
	// directory; its own output is the files the copy did not have.
	moved := filepath.Join(t.TempDir(), "elsewhere", "sp")
	copyDir(t, path, moved)
	if err := os.RemoveAll(path); err != nil {
		t.Fatal(err)
	}
	m, _, err := store.LoadPath(ctx2(t), moved)
	if err != nil {
		t.Fatalf("moved savepoint: %v", err)
	}
	if m.Kind != checkpoint.KindSavepoint {
		t.Fatalf("metadata kind %v, want savepoint", m.Kind)
	}
	dirB := t.TempDir()
	copyDir(t, filepath.Join(dirA, "output"), filepath.Join(dirB, "output"))
	b := startSP(t, dirB, gen, 3, moved, nil, 1)
	if _, err := b.wait(t); err != nil {
		t.Fatalf("restore from the moved savepoint: %v", err)
	}
	onlyB := filepath.Join(t.TempDir(), "onlyB")
	if err := os.MkdirAll(onlyB, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(filepath.Join(dirB, "output"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(dirA, "output", e.Name())); err == nil || e.IsDir() {
			continue
		}
		if err := os.Rename(filepath.Join(dirB, "output", e.Name()), filepath.Join(onlyB, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	// The second job's output starts after the savepoint: for each key,
	// its counts run from (count in the savepoint)+1 to the total, once
	// each. Joined with the first job's outputs below that, every key's
	// counts must be 1..n once each.
	outsB, err := readOutputs(onlyB)
	if err != nil {
		t.Fatal(err)
	}
	outsA, err := readOutputs(filepath.Join(dirA, "output"))
	if err != nil {
		t.Fatal(err)
	}
	minB := map[string]int64{}
	for k, ns := range outsB {
		for _, n := range ns {
			if v, ok := minB[k]; !ok || n < v {
				minB[k] = n
			}
		}
	}
	joined := map[string][]int64{}
	for k, ns := range outsA {
		for _, n := range ns {
			if v, ok := minB[k]; !ok || n < v {
				joined[k] = append(joined[k], n)
			}
		}
	}
	for k, ns := range outsB {
		joined[k] = append(joined[k], ns...)
	}
	rep := checkJoined(t, gen, joined)
	if !rep.ExactlyOnce() || rep.Produced != 3*4000 {
		t.Fatalf("restored at parallelism 3 from the moved savepoint: %+v", rep)
	}
	var inB int64
	for _, ns := range outsB {
		inB += int64(len(ns))
	}
	if inB == 0 || inB >= 3*4000 {
		t.Fatalf("second job emitted %d records: it did not start from the savepoint's positions", inB)
	}
	t.Logf("restored job emitted %d of %d records", inB, 3*4000)
}

// TestStopWithSavepointExactlyOnce stops the count job under load with a
// savepoint while failures are injected at the savepoint (at the barrier,
// in the snapshot write, after the pre-commit, before the commit: seeded
// and printed), retrying the stop until one succeeds, then restores the
// savepoint and runs the rest of the input. The committed output across
// stop → restore must be every key's 1..n once each.
func TestStopWithSavepointExactlyOnce(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 11))
	iters := iterations(t, 4)
	failedStops := 0
	for it := 0; it < iters; it++ {
		gen := datagen.Config{Splits: 1 + rng.IntN(4), RecordsPerSplit: int64(3000 + rng.IntN(3000)), Keys: 1 + rng.IntN(200),
			Seed: rng.Uint64(), RatePerSecond: float64(10_000 + rng.IntN(20_000))}
		par := 1 + rng.IntN(3)
		dir := t.TempDir()
		inj := fault.New(rng.Uint64())
		a := startSP(t, dir, gen, par, "", inj, 1)
		a.waitRecords(t, int64(500+rng.IntN(1000)))
		points := []fault.Point{fault.OnBarrier, fault.InSnapshotWrite, fault.AfterPreCommit, fault.BeforeCommit}
		uids := []string{SourceUID, CountUID, SinkUID}
		var path string
		for try := 0; ; try++ {
			if try == 10 {
				t.Fatalf("iteration %d: no stop-with-savepoint succeeded in %d tries", it, try)
			}
			if try < 2 {
				// The first try of iteration i fails at points[i%4], so
				// that every point is hit in the default 4 iterations.
				pt := points[it%len(points)]
				if try > 0 {
					pt = points[rng.IntN(len(points))]
				}
				tg := fault.Target{Point: pt, UID: uids[rng.IntN(len(uids))], Subtask: -1}
				if tg.Point == fault.AfterPreCommit || tg.Point == fault.BeforeCommit {
					tg.UID = ""
				}
				t.Logf("iteration %d try %d: arming %+v", it, try, tg)
				inj.Arm(tg)
			} else {
				inj.Disarm()
			}
			p, err := a.env.StopWithSavepoint(ctx2(t), false)
			if err == nil {
				path = p
				break
			}
			t.Logf("iteration %d try %d: %v", it, try, err)
			failedStops++
			// Let the restarted job make progress, so that the stop
			// that succeeds has records to commit.
			a.waitRecords(t, a.sinkIn()+300)
			if !strings.Contains(err.Error(), "the job keeps running") && !strings.Contains(err.Error(), "restarts") {
				t.Fatalf("a failed stop-with-savepoint must say the job keeps running: %v", err)
			}
		}
		res, err := a.wait(t)
		if err != nil {
			t.Fatalf("iteration %d: Execute after stop-with-savepoint: %v", it, err)
		}
		if res.LastCheckpoint == nil || res.LastCheckpoint.Kind != checkpoint.KindSavepoint {
			t.Fatalf("iteration %d: last snapshot %+v, want the savepoint", it, res.LastCheckpoint)
		}
		stopped := check(t, gen, dir)
		if stopped.Duplicated != 0 || stopped.Committed >= stopped.Produced {
			t.Fatalf("iteration %d: after the stop: %+v (want a prefix, no duplicates)", it, stopped)
		}
		// Restore the savepoint; the rest of the input follows into the
		// same output directory.
		b := startSP(t, dir, gen, 1+rng.IntN(3), path, nil, 1)
		if _, err := b.wait(t); err != nil {
			t.Fatalf("iteration %d: restore from %s: %v", it, path, err)
		}
		rep := check(t, gen, dir)
		t.Logf("iteration %d: %+v par %d, %d restarts before the stop, fired %d; after stop %d committed; total %+v",
			it, gen, par, res.Restarts, inj.Fired(), stopped.Committed, rep)
		if !rep.ExactlyOnce() {
			t.Fatalf("iteration %d (seed %d): stop → restore: %d lost, %d duplicated: %v", it, seed, rep.Lost, rep.Duplicated, rep.Examples)
		}
	}
	if failedStops == 0 {
		t.Fatalf("no stop-with-savepoint failed in %d iterations: the failure path was not exercised", iters)
	}
}

// TestFailedSavepointJobKeepsRunning makes the savepoint's storage fail
// (its directory cannot be created): TriggerSavepoint returns an error
// naming the cause, no restart happens, and the job reads all its input
// exactly once.
func TestFailedSavepointJobKeepsRunning(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 12))
	gen := datagen.Config{Splits: 2, RecordsPerSplit: 3000, Keys: 50, Seed: rng.Uint64(), RatePerSecond: 20_000}
	dir := t.TempDir()
	a := startSP(t, dir, gen, 2, "", nil, 1)
	a.waitRecords(t, 500)
	// A file where the savepoint root goes: refused at once, by key.
	spRoot := filepath.Join(dir, "checkpoints", "savepoints")
	if err := os.WriteFile(spRoot, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := a.env.TriggerSavepoint(ctx2(t)); err == nil || !strings.Contains(err.Error(), "savepoint-dir") {
		t.Fatalf("savepoint into a file: err %v, want a refusal naming savepoint-dir", err)
	}
	if err := os.Remove(spRoot); err != nil {
		t.Fatal(err)
	}
	if _, err := a.env.TriggerSavepoint(ctx2(t)); err != nil {
		t.Fatal(err)
	}
	// The savepoint root is open now; replace it by a file so that the
	// next savepoint's directory cannot be made: its tasks decline.
	if err := os.RemoveAll(spRoot); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(spRoot, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := a.env.TriggerSavepoint(ctx2(t))
	if err == nil || !strings.Contains(err.Error(), "the job keeps running") {
		t.Fatalf("savepoint into a broken directory: err %v, want a failure saying the job keeps running", err)
	}
	t.Logf("failed savepoint: %v", err)
	_, err = a.env.StopWithSavepoint(ctx2(t), false)
	if err == nil || !strings.Contains(err.Error(), "keeps running") {
		t.Fatalf("stop-with-savepoint into a broken directory: err %v, want a failure saying the job keeps running", err)
	}
	t.Logf("failed stop-with-savepoint: %v", err)
	res, err := a.wait(t)
	if err != nil {
		t.Fatal(err)
	}
	if res.Restarts != 1 {
		t.Fatalf("%d restarts: want none for the failed savepoint and one for the failed stop", res.Restarts)
	}
	if rep := check(t, gen, dir); !rep.ExactlyOnce() || rep.Produced != 2*3000 {
		t.Fatalf("after failed savepoints: %+v", rep)
	}
	if _, err := a.env.TriggerSavepoint(ctx2(t)); !errors.Is(err, sluice.ErrNotRunning) {
		t.Fatalf("savepoint of an ended job: %v, want ErrNotRunning", err)
	}
}

// readOutputs reads the committed outputs under dir, by key.
func readOutputs(dir string) (map[string][]int64, error) {
	outs, err := verify.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	m := map[string][]int64{}
	for k, n := range outs {
		m[k] = append(m[k], n)
	}
	return m, nil
}

// checkJoined verifies outputs by key against the whole input of gen.
func checkJoined(t *testing.T, gen datagen.Config, outs map[string][]int64) verify.Report {
	t.Helper()
	pos := map[int]int64{}
	for s := 0; s < gen.Splits; s++ {
		pos[s] = gen.RecordsPerSplit
	}
	return verify.Counts(datagen.Expected(gen, pos), func(yield func(string, int64) bool) {
		for k, ns := range outs {
			for _, n := range ns {
				if !yield(k, n) {
					return
				}
			}
		}
	})
}

// TestStopWithSavepointCommitFails fails the commit of a completed
// stop-with-savepoint (no periodic checkpoints: the savepoint's is the only
// commit). The job restores that savepoint, commits its transactions,
// stops with a savepoint again and returns that one; restoring it must
// give exactly-once output overall.
func TestStopWithSavepointCommitFails(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 13))
	gen := datagen.Config{Splits: 2, RecordsPerSplit: 4000, Keys: 80, Seed: rng.Uint64(), RatePerSecond: 20_000}
	dir := t.TempDir()
	inj := fault.New(seed)
	a := startSPEvery(t, dir, gen, 2, "", inj, 1, time.Hour)
	a.waitRecords(t, 1000)
	inj.Arm(fault.Target{Point: fault.BeforeCommit, Subtask: -1})
	path, err := a.env.StopWithSavepoint(ctx2(t), false)
	if err != nil {
		t.Fatalf("stop-with-savepoint whose commit failed once: %v", err)
	}
	res, err := a.wait(t)
	if err != nil {
		t.Fatal(err)
	}
	if inj.Fired() != 1 || res.Restarts != 1 {
		t.Fatalf("fired %d, restarts %d: want the commit to fail once and the job to restart once", inj.Fired(), res.Restarts)
	}
	if res.LastCheckpoint == nil || res.LastCheckpoint.Kind != checkpoint.KindSavepoint {
		t.Fatalf("last snapshot %+v, want a savepoint", res.LastCheckpoint)
	}
	stopped := check(t, gen, dir)
	if stopped.Duplicated != 0 || stopped.Committed == 0 {
		t.Fatalf("after the stop: %+v", stopped)
	}
	b := startSP(t, dir, gen, 3, path, nil, 1)
	if _, err := b.wait(t); err != nil {
		t.Fatalf("restore from %s: %v", path, err)
	}
	rep := check(t, gen, dir)
	t.Logf("after stop %d committed; total %+v", stopped.Committed, rep)
	if !rep.ExactlyOnce() || rep.Produced != 2*4000 {
		t.Fatalf("stop (commit failed) → restore: %+v", rep)
	}
}
