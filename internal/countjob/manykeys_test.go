package countjob

import (
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/connector/datagen"
)

// TestManyKeysPebbleRescaleExactlyOnce: the count job on the Pebble
// backend with a 64 MiB memory budget, many distinct keys (every key seen
// twice in all), random failures in run 1 at parallelism 2, then run 2
// restores run 1's final checkpoint at parallelism 3 (key groups
// redistribute) and reads the rest of the input, again with failures.
// The committed output of both runs must be every key's counts 1..n once.
// Default 40k keys (the race detector slows Pebble down a lot); SLUICE_BIG=1 runs the 10M
// keys, without a rate limit, with incremental checkpoints and each run bounded by 40 minutes
// (about ten minutes on 2 cores without -race, several GB of disk).
func TestManyKeysPebbleRescaleExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("long: many keys on disk")
	}
	keys, rate, timeout := 40_000, 20_000.0, time.Duration(0)
	st := sluice.StateConfig{Backend: sluice.StateBackendPebble, MemoryBytes: 64 << 20}
	if os.Getenv("SLUICE_BIG") == "1" {
		keys, rate, timeout = 10_000_000, 0, 40*time.Minute
		st.Incremental = true
	}
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 7))
	// Rate-limited so that each run lasts long enough (a second or more)
	// for checkpoints to complete and the scheduled failures to strike;
	// 10M keys take long enough without.
	full := datagen.Config{Splits: 2, RecordsPerSplit: int64(keys), Keys: keys, Distribution: "sequential", RatePerSecond: rate, Seed: rng.Uint64()}
	first := full
	first.RecordsPerSplit = full.RecordsPerSplit / 2
	dir := t.TempDir()
	res1 := runJob(t, rng, run{gen: first, parallelism: 2, sourcePar: 2, mode: checkpoint.ExactlyOnce, failures: 2, state: st, timeout: timeout}, dir)
	if rep := check(t, first, dir); rep.Lost != 0 || rep.Duplicated != 0 {
		t.Fatalf("run 1 (seed %d): %d lost, %d duplicated: %v", seed, rep.Lost, rep.Duplicated, rep.Examples)
	}
	res2 := runJob(t, rng, run{gen: full, parallelism: 3, sourcePar: 2, mode: checkpoint.ExactlyOnce, failures: 2, state: st, timeout: timeout, fresh: 2 * (full.RecordsPerSplit - first.RecordsPerSplit)}, dir)
	rep := check(t, full, dir)
	t.Logf("%d keys: run 1 %d restarts, run 2 (2→3) %d restarts; produced %d committed %d", keys, res1.Restarts, res2.Restarts, rep.Produced, rep.Committed)
	if rep.Lost != 0 || rep.Duplicated != 0 {
		t.Fatalf("seed %d: %d lost, %d duplicated: %v", seed, rep.Lost, rep.Duplicated, rep.Examples)
	}
}

// TestStateMovesBetweenBackends: the job's state moves heap → pebble →
// heap through its checkpoints (the canonical keyed-state file), each run
// at another parallelism (2 → 3 → 1) reading a further third of the
// input, with random failures in every run. The committed output of the
// three runs is every key's counts 1..n once: nothing restored was lost or
// counted twice by the other backend.
func TestStateMovesBetweenBackends(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 8))
	gen := datagen.Config{Splits: 2, RecordsPerSplit: 6000, Keys: 500, Distribution: "uniform", RatePerSecond: 20_000, Seed: rng.Uint64()}
	dir := t.TempDir()
	for i, step := range []struct {
		backend string
		par     int
	}{{sluice.StateBackendHeap, 2}, {sluice.StateBackendPebble, 3}, {sluice.StateBackendHeap, 1}} {
		g := gen
		g.RecordsPerSplit = gen.RecordsPerSplit * int64(i+1) / 3
		st := sluice.StateConfig{Backend: step.backend, MemoryBytes: 16 << 20}
		// Each run reads a third of the input beyond the last one's.
		fresh := int64(gen.Splits) * gen.RecordsPerSplit / 3
		res := runJob(t, rng, run{gen: g, parallelism: step.par, sourcePar: 2, mode: checkpoint.ExactlyOnce, failures: 1 + rng.IntN(2), state: st, fresh: fresh}, dir)
		rep := check(t, g, dir)
		t.Logf("run %d (%s, parallelism %d): %d restarts; produced %d committed %d", i+1, step.backend, step.par, res.Restarts, rep.Produced, rep.Committed)
		if rep.Lost != 0 || rep.Duplicated != 0 {
			t.Fatalf("run %d on %s (seed %d): %d lost, %d duplicated: %v", i+1, step.backend, seed, rep.Lost, rep.Duplicated, rep.Examples)
		}
	}
}
