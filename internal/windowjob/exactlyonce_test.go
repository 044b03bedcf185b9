package windowjob

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/broker"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/connector/kafka"
	"github.com/sluicehq/sluice/fault"
	"github.com/sluicehq/sluice/restart"
)

// testSeed returns SLUICE_SEED if set, else the clock, and prints it.
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

// iterations returns SLUICE_CHAOS_ITERATIONS if set (the chaos run in CI
// sets it high), else def (1 with -short).
func iterations(t *testing.T, def int) int {
	if s := os.Getenv("SLUICE_CHAOS_ITERATIONS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("SLUICE_CHAOS_ITERATIONS: %v", err)
		}
		return n
	}
	if testing.Short() {
		return 1
	}
	return def
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// stages are the windowings under test: the windows operator, and the
// hand-written reference that proves the harness on its own.
var stages = []struct {
	name string
	s    stage
}{{"windows", windowStage}, {"reference", refStage}}

// jobRun is one run of the job to the end of its bounded input.
type jobRun struct {
	cfg         Config
	parallelism int
	failures    int
	interval    time.Duration
	// maxSkip bounds how many hits of its point a failure waits for.
	maxSkip int
	stage   stage
	sink    sluice.SinkProvider[Output]
	// state is the keyed-state backend (zero: heap).
	state sluice.StateConfig
	// anyFired: the failures strike at random points, and a run whose
	// input ends before they fire is logged, not failed (the caller's first
	// iteration leaves it false). False: record failures in the window
	// operator, which sees every order, so each one fires.
	anyFired bool
}

// backendOf picks iteration i's state backend: heap and pebble by turns,
// starting where the test seed says, so any two iterations cover both (on
// Pebble the windows take the generic path).
func backendOf(i int, seed uint64) sluice.StateConfig {
	if (uint64(i)+seed)%2 == 0 {
		return sluice.StateConfig{Backend: sluice.StateBackendHeap}
	}
	return sluice.StateConfig{Backend: sluice.StateBackendPebble, MemoryBytes: 16 << 20}
}

// runJob runs r with its failures injected at random operators and points
// (on a record, at a barrier, in the snapshot write, between pre-commit
// and commit, before a commit) and returns the restarts.
func runJob(t *testing.T, rng *rand.Rand, r jobRun, dir string) int64 {
	t.Helper()
	inj := fault.New(rng.Uint64())
	if r.failures > 0 {
		results, late, err := Expected(r.cfg)
		if err != nil {
			t.Fatal(err)
		}
		outputs := len(results) + len(late)
		ts := inj.RandomTargets(UIDs, r.failures, int(min(r.cfg.Records/int64(2*r.failures), int64(r.maxSkip)))+1)
		if !r.anyFired {
			// The source's record point is hit once per poll (fewer and
			// bigger polls on a loaded machine), the barrier, snapshot and
			// commit points once per checkpoint; the window operator's
			// record point is hit by every order.
			for k := range ts {
				ts[k] = fault.Target{Point: fault.OnRecord, UID: WindowUID, Subtask: -1, Skip: rng.IntN(int(max(r.cfg.Records/int64(2*r.failures), 1)))}
			}
		}
		for k := range ts {
			// Record points that are hit less often than once per record:
			// the source's once per poll, the late map's once per late order.
			if ts[k].Point == fault.OnRecord {
				switch ts[k].UID {
				case SourceUID:
					ts[k].Skip %= int(max(1, r.cfg.Records/int64(max(1, r.cfg.BatchSize))/4))
				case LateUID:
					ts[k].Skip %= 3
				case SinkUID:
					// The sink sees only the outputs (window results and
					// late orders), far fewer than the records: a skip
					// beyond them never fires (and nor does any target
					// scheduled after it).
					ts[k].Skip %= max(1, outputs/4)
				}
			}
		}
		inj.Schedule(ts)
		t.Logf("failures: %+v", ts)
	}
	env := sluice.New(sluice.Config{
		JobName:           "windows",
		Parallelism:       r.parallelism,
		BufferTimeout:     time.Millisecond,
		BatchSize:         1 + rng.IntN(64),
		WatermarkInterval: 5 * time.Millisecond,
		Checkpoint: checkpoint.Config{
			Interval: r.interval, MinPause: time.Millisecond, TolerableFailures: 100,
		},
		CheckpointDir: filepath.Join(dir, "checkpoints"),
		Restart:       restart.FixedDelay{Attempts: 1000, Delay: time.Millisecond},
		Faults:        inj,
		Logger:        quietLogger(),
		State:         r.state,
	})
	build(env, NewSource(r.cfg), r.sink, r.parallelism, r.stage)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := env.Execute(ctx)
	if err != nil {
		t.Fatalf("job failed: %v", err)
	}
	if r.failures > 0 {
		if got := inj.Fired(); got < int64(r.failures) && !r.anyFired {
			t.Fatalf("%d of %d scheduled record failures fired: the run proved less than it should about recovery", got, r.failures)
		} else if got < int64(r.failures) {
			t.Logf("%d of %d scheduled failures fired before the input ended", got, r.failures)
		}
	}
	return res.Restarts
}

// randomConfig is an input of a few thousand orders (a few windows of
// event time, ~1% of them late), paced so that a run spans many
// checkpoints and failures strike mid-stream.
func randomConfig(rng *rand.Rand, rate float64) Config {
	return Config{
		Records:       int64(3000 + rng.IntN(6000)),
		RatePerSecond: rate * (1 + rng.Float64()),
		Keys:          1 + rng.IntN(100),
		Seed:          rng.Uint64(),
		BatchSize:     1 + rng.IntN(128),
	}
}

// check verifies outs against Expected record by record.
func check(t *testing.T, cfg Config, outs []Output, restarts int64) {
	t.Helper()
	rep, err := Check(cfg, outs)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("records %d, keys %d: %d window results, %d late; committed %d + %d; %d restarts", cfg.Records, cfg.Keys,
		rep.Windows, rep.Late, rep.CommittedWindows, rep.CommittedLate, restarts)
	if !rep.ExactlyOnce() {
		t.Fatalf("not exactly once: %d lost, %d duplicated, %d unexpected: %v", rep.Lost, rep.Duplicated, rep.Unexpected, rep.Examples)
	}
	updates := 0
	for seq := range cfg.Records {
		if cfg.Kind(seq) == InLateness {
			updates++
		}
	}
	if rep.Windows == 0 || rep.Late == 0 || updates == 0 {
		t.Fatalf("input without window results, updates within the allowed lateness (%d) or late records proves little: %+v", updates, rep)
	}
}

// TestWindowsExactlyOnceUnderFailures is the windowed job's property test
// on the file sink: random inputs, parallelism and failures at random
// points; the committed output must be exactly Expected (the failure-free
// result, TestFailureFreeRunIsExpected), every window firing and late
// order once.
func TestWindowsExactlyOnceUnderFailures(t *testing.T) {
	for _, st := range stages {
		t.Run(st.name, func(t *testing.T) {
			t.Parallel()
			seed := testSeed(t)
			rng := rand.New(rand.NewPCG(seed, 17))
			for i := range iterations(t, 3) {
				dir := t.TempDir()
				r := jobRun{cfg: randomConfig(rng, 20_000), parallelism: 1 + rng.IntN(3), failures: 1 + rng.IntN(3),
					interval: 10 * time.Millisecond, maxSkip: 200, stage: st.s, sink: FileSink(filepath.Join(dir, "output")), state: backendOf(i, seed), anyFired: i > 0}
				restarts := runJob(t, rng, r, dir)
				outs, err := ReadDir(filepath.Join(dir, "output"))
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("iteration %d (parallelism %d, %d failures, state backend %s, seed %d)", i, r.parallelism, r.failures, r.state.Backend, seed)
				check(t, r.cfg, outs, restarts)
			}
		})
	}
}

// TestFailureFreeRunIsExpected: without failures the job commits exactly
// Expected: the pure function is the failure-free run.
func TestFailureFreeRunIsExpected(t *testing.T) {
	for _, st := range stages {
		t.Run(st.name, func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(testSeed(t), 3))
			dir := t.TempDir()
			r := jobRun{cfg: randomConfig(rng, 0), parallelism: 2, interval: 20 * time.Millisecond, stage: st.s,
				sink: FileSink(filepath.Join(dir, "output"))}
			runJob(t, rng, r, dir)
			outs, err := ReadDir(filepath.Join(dir, "output"))
			if err != nil {
				t.Fatal(err)
			}
			check(t, r.cfg, outs, 0)
		})
	}
}

// TestWindowsKafkaExactlyOnceUnderFailures is the property test through
// the transactional Kafka sink on the embedded broker, read back
// read_committed.
func TestWindowsKafkaExactlyOnceUnderFailures(t *testing.T) {
	b, err := broker.Start(context.Background(), broker.Config{Port: 0, Ephemeral: true, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	brokers := b.Addrs()
	for _, st := range stages {
		t.Run(st.name, func(t *testing.T) {
			t.Parallel()
			seed := testSeed(t)
			rng := rand.New(rand.NewPCG(seed, 23))
			for i := range iterations(t, 2) {
				topic := fmt.Sprintf("windows-%s-%d-%d", st.name, seed, i)
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				if err := ensureTopic(ctx, brokers, topic); err != nil {
					t.Fatal(err)
				}
				sink, err := KafkaSink(brokers, topic, "test-"+topic, kafka.DeliveryExactlyOnce, 50*time.Millisecond, time.Millisecond)
				if err != nil {
					t.Fatal(err)
				}
				r := jobRun{cfg: randomConfig(rng, 5_000), parallelism: 1 + rng.IntN(3), failures: 1 + rng.IntN(3),
					interval: 50 * time.Millisecond, maxSkip: 10, stage: st.s, sink: sink, state: backendOf(i, seed), anyFired: i > 0}
				restarts := runJob(t, rng, r, t.TempDir())
				outs, err := ReadTopic(ctx, brokers, topic)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("iteration %d (parallelism %d, %d failures, state backend %s, seed %d)", i, r.parallelism, r.failures, r.state.Backend, seed)
				check(t, r.cfg, outs, restarts)
			}
		})
	}
}
