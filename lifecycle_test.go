package sluice_test

// Starting and ending jobs (architecture.md "Ending a job").

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/connector/datagen"
)

// TestStopUnboundedJob: Stop ends a job whose input never ends with a final
// checkpoint; Execute returns nil once it is committed, and the checkpoint
// holds the source position of everything the sink got.
func TestStopUnboundedJob(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, 1)
	cfg.BufferTimeout = sluice.FlushAlways
	env := sluice.New(cfg)
	src := newLogSource[int]()
	out := newCollector[int]()
	sluice.Sink(sluice.FromSource(env, "src", src), "sink", out.Sink(), sluice.StartNewChain())
	x := start(t, env)
	src.Append(1, 2, 3)
	out.WaitLen(t, 3)
	env.Stop()
	res, err := x.wait(t)
	if err != nil {
		t.Fatalf("Execute: %v", err)
	}
	if res.Checkpoints != 1 || res.LastCheckpoint == nil {
		t.Fatalf("%d checkpoints, want the final one", res.Checkpoints)
	}
	splits, err := sluice.SplitsFromMetadata(res.LastCheckpoint, "src")
	if err != nil {
		t.Fatal(err)
	}
	if len(splits) != 1 || len(splits[0].State) != 1 || splits[0].State[0] != 3 {
		t.Fatalf("final checkpoint splits %+v, want the log at position 3", splits)
	}
	if got := out.Records(); !slices.Equal(got, []int{1, 2, 3}) {
		t.Fatalf("sink got %v", got)
	}
}

// TestStopBeforeExecute: Stop before Execute is remembered; the job stops
// as soon as it runs.
func TestStopBeforeExecute(t *testing.T) {
	t.Parallel()
	env := sluice.New(testConfig(t, 1))
	src := newLogSource[int]()
	sluice.Sink(sluice.FromSource(env, "src", src), "sink", sluice.DiscardSink[int]())
	env.Stop()
	res, err := env.Execute(ctxTimeout(t))
	if err != nil || res.Checkpoints != 1 {
		t.Fatalf("Execute: %v, %+v; want a clean stop with the final checkpoint", err, res)
	}
}

// TestExecuteTwice: an Environment runs once; a second Execute is an error
// (it used to panic closing a closed channel).
func TestExecuteTwice(t *testing.T) {
	t.Parallel()
	env := sluice.New(testConfig(t, 1))
	g := gen
	g.RecordsPerSplit = 5
	sluice.Sink(sluice.FromSource(env, "src", datagen.New(g)), "sink", sluice.DiscardSink[datagen.Record]())
	run(t, env)
	if _, err := env.Execute(ctxTimeout(t)); err == nil {
		t.Fatal("second Execute: no error")
	}
	if st := env.Status(); st.CheckpointsCompleted != 1 {
		t.Fatalf("status after the second Execute: %+v, want the first run's", st)
	}
}

// TestCancelContext: cancelling Execute's context is a hard stop: Execute
// returns the context's error, with no final checkpoint.
func TestCancelContext(t *testing.T) {
	t.Parallel()
	env := sluice.New(testConfig(t, 1))
	src := newLogSource[int]()
	out := newCollector[int]()
	sluice.Sink(sluice.FromSource(env, "src", src), "sink", out.Sink(), sluice.StartNewChain())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	var res *sluice.Result
	go func() {
		var err error
		res, err = env.Execute(ctx)
		done <- err
	}()
	src.Append(1)
	src.WaitIdle(t, 1)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Execute: %v, want context.Canceled", err)
	}
	if res.Checkpoints != 0 {
		t.Fatalf("%d checkpoints after a hard cancel, want 0", res.Checkpoints)
	}
}
