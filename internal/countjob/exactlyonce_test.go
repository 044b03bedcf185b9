package countjob

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/connector/datagen"
	"github.com/sluicehq/sluice/connector/file"
	"github.com/sluicehq/sluice/fault"
	"github.com/sluicehq/sluice/internal/verify"
	"github.com/sluicehq/sluice/restart"
)

// testSeed returns the random seed of a test: SLUICE_SEED if set, else
// the clock. It is printed so that a failure can be replayed.
func testSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("SLUICE_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("SLUICE_SEED: %v", err)
		}
		seed = v
	}
	t.Logf("seed %d (replay with SLUICE_SEED=%d)", seed, seed)
	return seed
}

// iterations returns how many random runs to make: SLUICE_CHAOS_ITERATIONS
// if set (the chaos run in CI sets it high), else def.
func iterations(t *testing.T, def int) int {
	if s := os.Getenv("SLUICE_CHAOS_ITERATIONS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("SLUICE_CHAOS_ITERATIONS: %v", err)
		}
		return n
	}
	if testing.Short() {
		return 2
	}
	return def
}

type run struct {
	gen         datagen.Config
	parallelism int
	sourcePar   int
	mode        checkpoint.Mode
	unaligned   bool
	// anyFired: the caller checks that failures fired over many runs, so
	// one run whose failures all missed (its input ended first) is logged,
	// not failed.
	anyFired bool
	// replays, if set, counts the restores that replayed channel state.
	replays  *atomic.Int64
	failures int
	from     string
	sink     func(dir string) sluice.SinkProvider[Count]
	// state is the keyed-state backend (zero: heap).
	state sluice.StateConfig
	// timeout bounds the run (zero: 2 minutes).
	timeout time.Duration
	// fresh is how many records the run reads beyond the checkpoint it
	// restores (zero: the whole input): record failures that must fire
	// strike among them.
	fresh int64
}

// backendOf picks iteration i's state backend: heap and pebble by turns,
// starting where the test seed says, so any two iterations cover both. Pebble
// runs take incremental checkpoints or not at random.
func backendOf(i int, seed uint64, rng *rand.Rand) sluice.StateConfig {
	if (uint64(i)+seed)%2 == 0 {
		return sluice.StateConfig{Backend: sluice.StateBackendHeap}
	}
	return sluice.StateConfig{Backend: sluice.StateBackendPebble, MemoryBytes: 16 << 20, Incremental: rng.IntN(2) == 0}
}

func exactlyOnceSink(dir string) sluice.SinkProvider[Count] {
	return file.NewSink(file.Config[Count]{Dir: dir, Encode: AppendLine})
}

// recordTargets returns n record failures in the count operator or the sink,
// each after fewer hits than half the records read over n: both operators
// see every record, so each failure fires, however fast or slow the run.
func recordTargets(inj *fault.Injector, rng *rand.Rand, n int, total int64) []fault.Target {
	ts := make([]fault.Target, n)
	for k := range ts {
		uid := CountUID
		if rng.IntN(2) == 1 {
			uid = SinkUID
		}
		ts[k] = fault.Target{Point: fault.OnRecord, UID: uid, Subtask: -1, Skip: rng.IntN(int(max(total/int64(2*n), 1)))}
	}
	return ts
}

// runJob runs the count job to the end of its bounded input with failures
// injected at random operators and points.
func runJob(t *testing.T, rng *rand.Rand, r run, dir string) *sluice.Result {
	t.Helper()
	inj := fault.New(rng.Uint64())
	if r.failures > 0 {
		// Spread record failures over the input: a skip beyond it would
		// never fire.
		// (The source's record point is hit once per poll, a few records,
		// hence the cap.)
		total := r.gen.RecordsPerSplit * int64(r.gen.Splits)
		if r.anyFired {
			inj.Schedule(inj.RandomTargets([]string{SourceUID, CountUID, SinkUID}, r.failures, int(min(total/int64(2*r.failures), 200))+1))
		} else {
			// A run that must see its failures gets record failures in the
			// count operator or the sink, which see every record. The
			// source's record point is hit once per poll, and a loaded
			// machine makes polls fewer and bigger; the barrier, snapshot
			// and commit points are hit once per checkpoint.
			fresh := total
			if r.fresh > 0 {
				fresh = r.fresh
			}
			inj.Schedule(recordTargets(inj, rng, r.failures, fresh))
		}
	}
	cfg := sluice.Config{
		JobName:       "count",
		Parallelism:   r.sourcePar,
		BufferTimeout: time.Millisecond,
		BatchSize:     1 + rng.IntN(64),
		Checkpoint: checkpoint.Config{
			Interval: 10 * time.Millisecond, MinPause: time.Millisecond, Mode: r.mode,
			TolerableFailures: 100, Unaligned: r.unaligned,
		},
		CheckpointDir:  filepath.Join(dir, "checkpoints"),
		FromCheckpoint: r.from,
		Restart:        restart.FixedDelay{Attempts: 1000, Delay: time.Millisecond},
		Faults:         inj,
		Logger:         quietLogger(),
		State:          r.state,
	}
	if r.replays != nil && os.Getenv("SLUICE_TEST_LOG") == "" {
		cfg.Logger = slog.New(slog.NewTextHandler(countReplays{r.replays}, nil))
	}
	env := sluice.New(cfg)
	sink := r.sink
	if sink == nil {
		sink = exactlyOnceSink
	}
	Build(env, datagen.New(r.gen), sink(filepath.Join(dir, "output")), r.parallelism)
	timeout := r.timeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	res, err := env.Execute(ctx)
	if err != nil {
		t.Fatalf("job failed: %v", err)
	}
	if got := inj.Fired(); got != int64(r.failures) {
		t.Logf("%d of %d scheduled failures fired before the input ended", got, r.failures)
		if got == 0 && !r.anyFired {
			// A run with no failure proves nothing about recovery.
			t.Fatalf("none of %d scheduled failures fired", r.failures)
		}
	}
	return res
}

func check(t *testing.T, gen datagen.Config, dir string) verify.Report {
	t.Helper()
	pos := map[int]int64{}
	for s := 0; s < gen.Splits; s++ {
		pos[s] = gen.RecordsPerSplit
	}
	outs, err := verify.ReadDir(filepath.Join(dir, "output"))
	if err != nil {
		t.Fatal(err)
	}
	return verify.Counts(datagen.Expected(gen, pos), outs)
}

func randomGen(rng *rand.Rand) datagen.Config {
	return datagen.Config{
		Splits:          1 + rng.IntN(6),
		RecordsPerSplit: int64(2000 + rng.IntN(5000)),
		// Rate-limited so that a run spans tens of checkpoints (every 10ms)
		// and failures strike mid-stream, not only at the end.
		RatePerSecond: float64(10_000 + rng.IntN(30_000)),
		Keys:          1 + rng.IntN(300),
		Distribution:  []string{"uniform", "zipf", "sequential"}[rng.IntN(3)],
		Seed:          rng.Uint64(),
	}
}

// TestExactlyOnceUnderFailures is the exactly-once property test: the count
// job with a shuffle, keyed state and the two-phase-commit file sink, with
// failures injected at random operators and points (on a record, at a
// barrier, in the asynchronous snapshot write, between pre-commit and
// commit, before a commit). The committed output must equal the expected
// output record by record: every key's counts 1..n exactly once. The first
// iteration's failures are record failures in the count operator or the
// sink, which fire however loaded the machine is; whether the other points
// are reached before the input ends depends on how many checkpoints
// complete, so a later run whose failures all missed is logged, not failed.
func TestExactlyOnceUnderFailures(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 1))
	n := iterations(t, 6)
	totalFired := 0
	var replays atomic.Int64
	for i := 0; i < n; i++ {
		// Every other iteration with unaligned checkpoints (docs/design.md
		// §3 "Unaligned checkpoints"): restores then replay channel state.
		// The backend alternates too, offset by the test seed, so all four
		// combinations occur.
		r := run{gen: randomGen(rng), parallelism: 1 + rng.IntN(3), sourcePar: 1 + rng.IntN(3), mode: checkpoint.ExactlyOnce, unaligned: i%2 == 1, failures: 1 + rng.IntN(4), anyFired: i > 0}
		r.state = backendOf(i/2, seed, rng)
		if r.unaligned {
			r.replays = &replays
		}
		dir := t.TempDir()
		res := runJob(t, rng, r, dir)
		rep := check(t, r.gen, dir)
		t.Logf("iteration %d: %+v parallelism %d/%d unaligned %v, state %+v: %d restarts, %d checkpoints, produced %d committed %d",
			i, r.gen, r.sourcePar, r.parallelism, r.unaligned, r.state, res.Restarts, res.Checkpoints, rep.Produced, rep.Committed)
		if rep.Lost != 0 || rep.Duplicated != 0 {
			t.Fatalf("iteration %d (seed %d, state backend %s): %d lost, %d duplicated: %v", i, seed, r.state.Backend, rep.Lost, rep.Duplicated, rep.Examples)
		}
		totalFired += int(res.Restarts)
	}
	if totalFired == 0 {
		t.Fatalf("no failure was injected in %d iterations: the test proved nothing", n)
	}
	t.Logf("%d restores replayed the channel state of an unaligned checkpoint", replays.Load())
	// Whether a restore finds channel state is chance (data must be in
	// flight when the barrier overtakes it, and the failure must strike
	// after that checkpoint): over the 3 unaligned iterations of the
	// default run none may; over the chaos loop's (SLUICE_CHAOS_ITERATIONS,
	// 25 in CI) one must. TestUnalignedRestoreReplaysChannelState (package
	// sluice) restores a checkpoint with records in flight for certain.
	if n >= 20 && replays.Load() == 0 {
		t.Fatalf("no restore replayed channel state in %d unaligned iterations: the unaligned mode proved nothing", n/2)
	}
}

// countReplays counts the log lines of restores that replayed channel
// state, and drops the log.
type countReplays struct{ n *atomic.Int64 }

func (c countReplays) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte("replayed the records in flight")) {
		c.n.Add(1)
	}
	return len(p), nil
}

// TestAtLeastOnceNeverLoses runs the same job in at-least-once mode (no
// barrier alignment): duplicates are allowed, loss is not. As in
// TestExactlyOnceUnderFailures, the first iteration's failures are record
// failures, which always fire; the others strike at random points, and a run
// whose input ends before its failure is logged, not failed.
func TestAtLeastOnceNeverLoses(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 2))
	for i := 0; i < iterations(t, 3); i++ {
		r := run{gen: randomGen(rng), parallelism: 1 + rng.IntN(3), sourcePar: 1 + rng.IntN(3), mode: checkpoint.AtLeastOnce, failures: 1 + rng.IntN(3), anyFired: i > 0}
		r.state = backendOf(i, seed, rng)
		dir := t.TempDir()
		runJob(t, rng, r, dir)
		rep := check(t, r.gen, dir)
		t.Logf("iteration %d: produced %d committed %d duplicated %d", i, rep.Produced, rep.Committed, rep.Duplicated)
		if rep.Lost != 0 {
			t.Fatalf("iteration %d (seed %d): at-least-once lost %d records: %v", i, seed, rep.Lost, rep.Examples)
		}
	}
}

// TestVerifierCatchesDuplicates is the control experiment: with a sink that
// writes straight to a file (no two-phase commit), replay after a failure
// duplicates output, and the same verification must say so. Without it the
// exactly-once test could pass by verifying nothing.
func TestVerifierCatchesDuplicates(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 3))
	gen := datagen.Config{Splits: 2, RecordsPerSplit: 3000, Keys: 50, Seed: rng.Uint64()}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "output"), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, "output", "part-direct"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	direct := func(string) sluice.SinkProvider[Count] {
		return sluice.SinkFunc[Count](func(c Count) error {
			_, err := w.Write(AppendLine(nil, c))
			return err
		})
	}
	// One failure on a record of the sink, late enough that output was
	// written after the last checkpoint.
	inj := fault.New(seed)
	env := sluice.New(sluice.Config{
		JobName: "count", BufferTimeout: time.Millisecond,
		Checkpoint:    checkpoint.Config{Interval: time.Hour},
		CheckpointDir: filepath.Join(dir, "checkpoints"),
		Restart:       restart.FixedDelay{Attempts: 10, Delay: time.Millisecond},
		Faults:        inj, Logger: quietLogger(),
	})
	inj.Arm(fault.Target{Point: fault.OnRecord, UID: SinkUID, Subtask: -1, Skip: 4000})
	Build(env, datagen.New(gen), direct(""), 1)
	if _, err := env.Execute(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	rep := check(t, gen, dir)
	if rep.Duplicated == 0 || inj.Fired() != 1 {
		t.Fatalf("a non-transactional sink replayed after a failure, yet the verifier found no duplicate (%+v, fired %d)", rep, inj.Fired())
	}
}

// TestRescaleFromCheckpoint takes a checkpoint at parallelism 2 and
// restores it at 1 and at 4 (also changing the source parallelism, so
// splits are reassigned and key groups redistributed): the combined output
// of both runs must be exactly once.
func TestRescaleFromCheckpoint(t *testing.T) {
	seed := testSeed(t)
	for _, to := range []int{1, 4} {
		t.Run(fmt.Sprintf("2to%d", to), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, uint64(to)))
			dir := t.TempDir()
			first := datagen.Config{Splits: 4, RecordsPerSplit: 2000, Keys: 200, Seed: rng.Uint64(), RatePerSecond: 40_000}
			res := runJob(t, rng, run{gen: first, parallelism: 2, sourcePar: 2, mode: checkpoint.ExactlyOnce}, dir)
			if res.LastCheckpoint == nil {
				t.Fatal("first run completed no checkpoint")
			}
			if p := res.LastCheckpoint.Operators[CountUID].Parallelism; p != 2 {
				t.Fatalf("checkpoint has count parallelism %d, want 2", p)
			}
			from := filepath.Join(dir, "checkpoints", fmt.Sprintf("chk-%d", res.LastCheckpoint.CheckpointID))
			second := first
			second.RecordsPerSplit = 5000
			runJob(t, rng, run{gen: second, parallelism: to, sourcePar: to, mode: checkpoint.ExactlyOnce, failures: 1, from: from, fresh: 4 * (5000 - 2000)}, dir)
			rep := check(t, second, dir)
			if rep.Lost != 0 || rep.Duplicated != 0 || rep.Produced != 4*5000 {
				t.Fatalf("after rescale 2→%d: %+v", to, rep)
			}
		})
	}
}
