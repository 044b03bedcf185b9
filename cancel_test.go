package sluice_test

// Operator calls observe the attempt's context (docs/design.md §5): a
// commit blocked on I/O returns when the job is cancelled or another task
// fails, and Close still gets a live, bounded context.

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/clock"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/internal/runtime"
)

// hangingSink is a two-phase-commit sink whose Commit blocks until its
// context is done, like a commit retrying against a broker that never
// answers. It reports each step on a channel.
type hangingSink struct {
	written    chan int           // every value written
	committing chan struct{}      // a Commit started
	commitErr  chan error         // what a Commit returned
	aborted    chan abortObserved // what an Abort saw of its context
}

type abortObserved struct {
	err      error
	deadline time.Time
	ok       bool
	at       time.Time
}

func newHangingSink() *hangingSink {
	return &hangingSink{
		written: make(chan int, 16), committing: make(chan struct{}, 1),
		commitErr: make(chan error, 1), aborted: make(chan abortObserved, 1),
	}
}

func (h *hangingSink) provider() sluice.SinkProvider[int] {
	return sluice.TwoPhaseCommitSink(sluice.TwoPhaseCommitConfig[int, int]{
		New: func(context.Context, *sluice.OperatorContext) (sluice.TwoPhaseCommitter[int, int], error) {
			return &hangingCommitter{h: h}, nil
		},
		TxnCodec: codec.Int,
	})
}

type hangingCommitter struct {
	h *hangingSink
	n int
}

func (c *hangingCommitter) BeginTransaction(context.Context) (int, error) { c.n++; return c.n, nil }
func (c *hangingCommitter) Write(_ int, v int) error                      { c.h.written <- v; return nil }
func (c *hangingCommitter) PreCommit(context.Context, int) error          { return nil }
func (c *hangingCommitter) RecoverAndCommit(context.Context, int) error   { return nil }
func (c *hangingCommitter) CleanUp(context.Context, []int) error          { return nil }

func (c *hangingCommitter) Commit(ctx context.Context, _ int) error {
	select {
	case c.h.committing <- struct{}{}:
	default:
	}
	<-ctx.Done()
	err := ctx.Err()
	select {
	case c.h.commitErr <- err:
	default:
	}
	return err
}

func (c *hangingCommitter) Abort(ctx context.Context, _ int) error {
	d, ok := ctx.Deadline()
	select {
	case c.h.aborted <- abortObserved{err: ctx.Err(), deadline: d, ok: ok, at: time.Now()}:
	default:
	}
	return nil
}

// recv waits for a value on ch; a hang fails the test after waitTimeout.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	tm := time.NewTimer(waitTimeout)
	defer tm.Stop()
	select {
	case v := <-ch:
		return v
	case <-tm.C:
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

// executeAsync runs env.Execute(ctx) in the background and returns its
// error channel.
func executeAsync(t *testing.T, env *sluice.Environment, ctx context.Context) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := env.Execute(ctx)
		done <- err
	}()
	t.Cleanup(func() { env.Stop() })
	return done
}

// TestCancelInterruptsHungCommit: Stop takes the final checkpoint, whose
// commit hangs; cancelling Execute's context then ends the job within the
// bound, and the commit saw the cancellation. Before the context reached
// the committer (it got context.Background()), Execute never returned.
func TestCancelInterruptsHungCommit(t *testing.T) {
	t.Parallel()
	env, h, cancel, done := hangingJob(t)
	defer cancel()
	env.Stop()
	recv(t, h.committing, "the final checkpoint's commit")
	cancel()
	if err := recv(t, done, "Execute to return after the cancel (the hung commit ignored its context)"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Execute: %v, want context.Canceled", err)
	}
	if err := recv(t, h.commitErr, "the commit's error"); !errors.Is(err, context.Canceled) {
		t.Fatalf("the commit returned %v, want context.Canceled", err)
	}
}

// TestTaskFailureInterruptsHungCommit: a checkpoint completes and one
// sink's commit hangs; another task then fails. The attempt's context is
// cancelled, the hung commit returns with context.Canceled, and Execute
// reports the failure (no restarts configured). Before, the job hung.
func TestTaskFailureInterruptsHungCommit(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(t0)
	cfg := testConfig(t, 1)
	cfg.Clock = clk
	cfg.BufferTimeout = sluice.FlushAlways
	cfg.Checkpoint = checkpoint.Config{Interval: time.Second, Timeout: time.Hour}
	env := sluice.New(cfg)
	src := newLogSource[int]()
	h := newHangingSink()
	in := sluice.FromSource(env, "src", src)
	sluice.Sink(in, "hanging", h.provider(), sluice.StartNewChain())
	seen := make(chan int, 16)
	sluice.Sink(in, "failing", sluice.SinkFunc[int](func(v int) error {
		seen <- v
		if v == 2 {
			return errBoom
		}
		return nil
	}), sluice.StartNewChain())
	done := executeAsync(t, env, ctxTimeout(t))
	src.Append(1)
	recv(t, h.written, "record 1 at the hanging sink")
	recv(t, seen, "record 1 at the failing sink")
	if !checkpointOnce(t, env, clk, time.Second) {
		t.Fatal("checkpoint 1 failed")
	}
	recv(t, h.committing, "checkpoint 1's commit")
	src.Append(2)
	err := recv(t, done, "Execute to return after the failure (the hung commit ignored the attempt's context)")
	if !errors.Is(err, errBoom) {
		t.Fatalf("Execute: %v, want the failing sink's error", err)
	}
	if err := recv(t, h.commitErr, "the commit's error"); !errors.Is(err, context.Canceled) {
		t.Fatalf("the commit returned %v, want context.Canceled", err)
	}
}

// TestCloseGetsOwnContext: a hard cancel with a transaction open closes the
// sink, and its Abort gets a context that is not cancelled with the
// attempt and is bounded by runtime.CloseTimeout. Before, it got
// context.Background(), unbounded.
func TestCloseGetsOwnContext(t *testing.T) {
	t.Parallel()
	_, h, cancel, done := hangingJob(t)
	defer cancel()
	cancel()
	if err := recv(t, done, "Execute to return"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Execute: %v, want context.Canceled", err)
	}
	a := recv(t, h.aborted, "the open transaction's abort")
	if a.err != nil {
		t.Fatalf("Abort's context was already done (%v): the abort could not reach a broker", a.err)
	}
	if !a.ok || a.deadline.Sub(a.at) > runtime.CloseTimeout {
		t.Fatalf("Abort's context has deadline %v (set %v) at %v, want one within runtime.CloseTimeout (%v)", a.deadline, a.ok, a.at, runtime.CloseTimeout)
	}
}

// hangingJob runs src → hanging sink (its own task) with one record
// written and returns the job, the sink, the cancel of Execute's context
// and Execute's result.
func hangingJob(t *testing.T) (*sluice.Environment, *hangingSink, context.CancelFunc, <-chan error) {
	t.Helper()
	cfg := testConfig(t, 1)
	cfg.BufferTimeout = sluice.FlushAlways
	env := sluice.New(cfg)
	src := newLogSource[int]()
	h := newHangingSink()
	sluice.Sink(sluice.FromSource(env, "src", src), "sink", h.provider(), sluice.StartNewChain())
	ctx, cancel := context.WithCancel(context.Background())
	done := executeAsync(t, env, ctx)
	src.Append(1)
	recv(t, h.written, "the record to be written")
	return env, h, cancel, done
}
