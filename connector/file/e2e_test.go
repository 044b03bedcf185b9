package file_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/connector/datagen"
	"github.com/sluicehq/sluice/connector/file"
	"github.com/sluicehq/sluice/fault"
	"github.com/sluicehq/sluice/internal/countjob"
	"github.com/sluicehq/sluice/internal/testsrc"
	"github.com/sluicehq/sluice/internal/verify"
	"github.com/sluicehq/sluice/restart"
)

// TestExactlyOnceUnderFailures runs the count job (datagen → keyBy → count
// → file sink) on bounded input while failures strike the sink at the
// places two-phase commit is most fragile (right after a pre-commit, right
// before a commit) and the other operators at records, then checks that the
// committed output is exactly once (docs/design.md §6; the demo's contract).
func TestExactlyOnceUnderFailures(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a job with restarts")
	}
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "output")
	// 40,000 records at 40,000/s: about a second; the source is gated to
	// 500 records per reader and completed checkpoint, so at least 40
	// checkpoints per attempt interleave with the failures whatever the
	// machine's load (the commit targets need several in a row).
	gen := datagen.Config{Splits: 4, Keys: 100, RecordsPerSplit: 10_000, RatePerSecond: 40_000, Seed: 5, BatchSize: 64, Distribution: datagen.Zipf}
	inj := fault.New(5)
	targets := []fault.Target{
		{Point: fault.AfterPreCommit, UID: countjob.SinkUID, Subtask: 1, Skip: 3},
		{Point: fault.BeforeCommit, UID: countjob.SinkUID, Subtask: 0, Skip: 3},
		{Point: fault.OnRecord, UID: countjob.CountUID, Subtask: -1, Skip: 2_000},
		{Point: fault.AfterPreCommit, UID: countjob.SinkUID, Subtask: 0},
		{Point: fault.OnRecord, UID: countjob.SinkUID, Subtask: -1, Skip: 1_000},
	}
	inj.Schedule(targets)
	env := sluice.New(sluice.Config{
		JobName:       "count",
		Parallelism:   2,
		Checkpoint:    checkpoint.Config{Interval: 10 * time.Millisecond, MinPause: time.Millisecond},
		CheckpointDir: filepath.Join(dir, "checkpoints"),
		Restart:       restart.FixedDelay{Attempts: 100, Delay: time.Millisecond},
		Faults:        inj,
	})
	countjob.Build(env, testsrc.Gated(datagen.New(gen), 500), file.NewSink(file.Config[countjob.Count]{Dir: out, Encode: countjob.AppendLine}), 2)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := env.Execute(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.LastCheckpoint == nil {
		t.Fatal("no checkpoint completed")
	}
	splits, err := sluice.SplitsFromMetadata(res.LastCheckpoint, countjob.SourceUID)
	if err != nil {
		t.Fatal(err)
	}
	pos, err := datagen.Positions(splits)
	if err != nil {
		t.Fatal(err)
	}
	for s := range gen.Splits {
		if pos[s] != gen.RecordsPerSplit {
			t.Errorf("final checkpoint has split %d at %d, want the end (%d)", s, pos[s], gen.RecordsPerSplit)
		}
	}
	outputs, err := verify.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	rep := verify.Counts(datagen.Expected(gen, pos), outputs)
	t.Logf("%d failures injected, %d restarts, %d checkpoints; %+v", inj.Fired(), res.Restarts, res.Checkpoints, rep)
	if !rep.ExactlyOnce() || rep.Produced != 40_000 {
		t.Fatalf("not exactly once: %+v", rep)
	}
	if inj.Fired() < 2 {
		t.Errorf("%d of %d failures were injected: the test proves little", inj.Fired(), len(targets))
	}
}
