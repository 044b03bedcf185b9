package sluice_test

// Tests of checkpoint-directory ownership (docs/design.md §9) and of Stop's
// bound (docs/design.md §5) through the public API.

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint/store"
	"github.com/sluicehq/sluice/clock"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/restart"
)

// TestSecondJobOnCheckpointDirRefused: while a job runs, a second one on
// its checkpoint directory fails at once, naming the first; the first goes
// on undisturbed.
func TestSecondJobOnCheckpointDirRefused(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, 1)
	envA := sluice.New(cfg)
	src := newLogSource[int]()
	out := newCollector[int]()
	sluice.Sink(sluice.FromSource(envA, "src", src), "sink", out.Sink())
	x := start(t, envA)
	src.Append(1)
	out.WaitLen(t, 1)

	cfgB := cfg
	cfgB.JobName = "second"
	envB := sluice.New(cfgB)
	sluice.Sink(sluice.FromSource(envB, "src", newLogSource[int]()), "sink", sluice.DiscardSink[int]())
	began := time.Now()
	_, err := envB.Execute(ctxTimeout(t))
	if took := time.Since(began); took > 5*time.Second {
		t.Fatalf("second job took %v to refuse", took)
	}
	var le *store.LockedError
	if !errors.As(err, &le) || !errors.Is(err, store.ErrLocked) {
		t.Fatalf("second job: %v, want a LockedError", err)
	}
	for _, want := range []string{cfg.CheckpointDir, "pid " + strconv.Itoa(os.Getpid()), strconv.Quote(cfg.JobName)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	src.Append(2)
	out.WaitLen(t, 2)
	envA.Stop()
	if _, err := x.wait(t); err != nil {
		t.Fatalf("first job: %v", err)
	}
	// Released: the directory can be used again.
	envC := sluice.New(cfg)
	srcC := newLogSource[int]()
	srcC.Append(1, 2) // the restored position is 2
	sluice.Sink(sluice.FromSource(envC, "src", srcC), "sink", sluice.DiscardSink[int]())
	envC.Stop()
	if _, err := envC.Execute(ctxTimeout(t)); err != nil {
		t.Fatalf("job after the first released the directory: %v", err)
	}
}

// captureLog returns a config option that sends the job's log to a buffer.
func captureLog(buf *logBuffer) func(*sluice.Config) {
	return func(c *sluice.Config) {
		c.Logger = slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
}

// TestStopDuringRestartDelay: a Stop that finds the job waiting out its
// restart delay cuts the delay short (the clock never moves) and the job
// restarts at once to take the final checkpoint, so Execute succeeds: a
// failure just before the Stop does not turn it into a stop without a
// final checkpoint, any more than one just after it (the demo with
// --fail-every failed so when a failure landed a restart delay before the
// stop).
func TestStopDuringRestartDelay(t *testing.T) {
	t.Parallel()
	var log logBuffer
	rc := restart.FixedDelay{Attempts: 100, Delay: time.Hour}
	env, attempts, clk := failingJob(t, rc, func(n int64) error {
		if n == 1 {
			return errBoom
		}
		return nil
	}, captureLog(&log))
	x := start(t, env)
	until(t, "the restart delay", func() bool { return strings.Contains(log.String(), "restarting") })
	waitTimers(t, clk, 1) // the restart delay's timer, and nothing else
	env.Stop()
	res, err := x.wait(t)
	if err != nil {
		t.Fatalf("Execute: %v, want a clean stop after one restart\nlog:\n%s", err, log.String())
	}
	// The restarted attempt may take its final checkpoint before its
	// first record reaches the flatmap, so only the restart is certain.
	if n := attempts.Load(); res.Restarts != 1 || n > 2 {
		t.Fatalf("%d attempts seen by the flatmap, %d restarts after Stop in the delay; want 1 restart", n, res.Restarts)
	}
	if res.LastCheckpoint == nil {
		t.Fatal("no final checkpoint")
	}
	if !clk.Now().Equal(t0) {
		t.Fatalf("the clock moved to %v: the stop waited out the delay", clk.Now())
	}
}

// TestStopDuringRestartDelayFailingAgain: a job that fails every attempt
// (here at start) gets one immediate restart for a Stop in its restart
// delay; when that attempt fails too, its restart delay (an hour) outlasts
// Stop's bound, so the job ends at once with an error wrapping ErrStopped
// that carries the failure, instead of restarting without delay until the
// bound.
func TestStopDuringRestartDelayFailingAgain(t *testing.T) {
	t.Parallel()
	var log logBuffer
	cfg := testConfig(t, 1)
	captureLog(&log)(&cfg)
	cfg.Restart = restart.FixedDelay{Attempts: 100, Delay: time.Hour}
	env := sluice.New(cfg)
	clk := cfg.Clock.(*clock.Fake)
	var opened atomic.Int64
	sink := sluice.TwoPhaseCommitSink(sluice.TwoPhaseCommitConfig[int, int]{
		New: func(context.Context, *sluice.OperatorContext) (sluice.TwoPhaseCommitter[int, int], error) {
			opened.Add(1)
			return nil, errBoom
		},
		TxnCodec: codec.Int,
	})
	sluice.Sink(sluice.FromSource(env, "src", newLogSource[int]()), "sink", sink)
	x := start(t, env)
	until(t, "the restart delay", func() bool { return strings.Contains(log.String(), "restarting") })
	waitTimers(t, clk, 1) // the restart delay's timer, and nothing else
	env.Stop()
	res, err := x.wait(t)
	if !errors.Is(err, sluice.ErrStopped) || !errors.Is(err, errBoom) {
		t.Fatalf("Execute: %v, want ErrStopped with the attempt's error\nlog:\n%s", err, log.String())
	}
	if n := opened.Load(); n != 2 || res.Restarts != 1 {
		t.Fatalf("%d starts, %d restarts after Stop in the delay; want 2, 1", n, res.Restarts)
	}
	if !clk.Now().Equal(t0) {
		t.Fatalf("the clock moved to %v", clk.Now())
	}
}

// blockingCommitter is a two-phase-commit committer whose New or Commit
// blocks until release is closed, ignoring cancellation: a start or a
// commit hung on an unreachable system.
type blockingCommitter struct {
	noteCommitter[int]
	commitBlocks bool
	entered      chan struct{}
	release      chan struct{}
}

func (c *blockingCommitter) Commit(context.Context, int) error {
	if c.commitBlocks {
		close(c.entered)
		<-c.release
	}
	return nil
}

// TestStopBounded: Stop ends the job, by the clock alone, while an
// attempt's start hangs and while the commit after the final checkpoint
// hangs, in calls that ignore cancellation.
func TestStopBounded(t *testing.T) {
	t.Parallel()
	for _, hang := range []string{"start", "commit"} {
		t.Run(hang, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t, 1)
			cfg.StopTimeout = time.Minute
			env := sluice.New(cfg)
			clk := cfg.Clock.(*clock.Fake)
			c := &blockingCommitter{commitBlocks: hang == "commit", entered: make(chan struct{}), release: make(chan struct{})}
			c.add = func(subtaskRecord[int]) error { return nil }
			defer close(c.release)
			src := newLogSource[int]()
			sink := sluice.TwoPhaseCommitSink(sluice.TwoPhaseCommitConfig[int, int]{
				New: func(context.Context, *sluice.OperatorContext) (sluice.TwoPhaseCommitter[int, int], error) {
					if hang == "start" {
						close(c.entered)
						<-c.release
					}
					return c, nil
				},
				TxnCodec: codec.Int,
			})
			sluice.Sink(sluice.FromSource(env, "src", src), "sink", sink)
			x := start(t, env)
			if hang == "commit" {
				src.Append(1) // a transaction for the final checkpoint to commit
				src.WaitIdle(t, 1)
			}
			env.Stop()
			<-c.entered
			advanceUntil(t, clk, time.Second, "Execute to return", func() bool {
				select {
				case <-x.done:
					return true
				default:
					return false
				}
			})
			_, err := x.wait(t)
			if !errors.Is(err, sluice.ErrStopped) || !strings.Contains(err.Error(), "abandoned") {
				t.Fatalf("Execute: %v, want ErrStopped after abandoning the hung %s", err, hang)
			}
			// Only the clock ended the wait: a hung start gets 5s, a hung
			// final commit StopTimeout, then 10s before it is abandoned.
			// (The clock may run past while timers are armed, so only the
			// lower bound is exact.)
			least := 5*time.Second + 10*time.Second
			if hang == "commit" {
				least = cfg.StopTimeout + 10*time.Second
			}
			if elapsed := clk.Now().Sub(t0); elapsed < least {
				t.Fatalf("stopped after %v of clock time, before the bound %v", elapsed, least)
			}
		})
	}
}

// TestFailureWhileStoppingRestartsForFinalCheckpoint: an attempt that fails
// after Stop was asked is restarted at once (no restart delay: the fake
// clock never moves) and the new attempt takes the final checkpoint, so
// Execute succeeds; a stop does not turn a transient failure into a stop
// without a final checkpoint.
func TestFailureWhileStoppingRestartsForFinalCheckpoint(t *testing.T) {
	t.Parallel()
	var env *sluice.Environment
	env, attempts, _ := failingJob(t, restart.FixedDelay{Attempts: 5, Delay: time.Hour}, func(n int64) error {
		if n == 1 {
			env.Stop()
			return errBoom
		}
		return nil
	})
	res, err := env.Execute(ctxTimeout(t))
	if err != nil {
		t.Fatalf("Execute: %v, want a clean stop after one restart", err)
	}
	// The restarted attempt may take its final checkpoint before its
	// first record reaches the flatmap, so only the restart is certain.
	if n := attempts.Load(); res.Restarts != 1 || n > 2 {
		t.Fatalf("%d attempts seen by the flatmap, %d restarts; want 1 restart", n, res.Restarts)
	}
}

// TestStopCancelledStartNotRetried: a Stop while an attempt starts cancels
// the start after 5s; a start that then returns an error of its own (a
// connector reporting its failed dial, not context.Canceled) is not
// restarted for the final checkpoint, which would hang the same way for
// every attempt until StopTimeout: Execute ends with ErrStopped carrying
// that error, after one start and 5s of clock. (`sluice run count` with its
// broker gone took over a minute to end after SIGTERM so.)
func TestStopCancelledStartNotRetried(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, 1)
	cfg.Restart = restart.FixedDelay{Attempts: 100, Delay: time.Millisecond}
	cfg.StopTimeout = time.Hour
	env := sluice.New(cfg)
	clk := cfg.Clock.(*clock.Fake)
	errDial := errors.New("dial: connection refused")
	var starts atomic.Int64
	entered := make(chan struct{}, 100)
	sink := sluice.TwoPhaseCommitSink(sluice.TwoPhaseCommitConfig[int, int]{
		New: func(ctx context.Context, _ *sluice.OperatorContext) (sluice.TwoPhaseCommitter[int, int], error) {
			starts.Add(1)
			entered <- struct{}{}
			<-ctx.Done()
			return nil, errDial
		},
		TxnCodec: codec.Int,
	})
	sluice.Sink(sluice.FromSource(env, "src", newLogSource[int]()), "sink", sink)
	x := start(t, env)
	<-entered
	env.Stop()
	waitTimers(t, clk, 1) // the stop's wait for the start, and nothing else
	clk.Advance(5 * time.Second)
	res, err := x.wait(t)
	if !errors.Is(err, sluice.ErrStopped) || !errors.Is(err, errDial) {
		t.Fatalf("Execute: %v, want ErrStopped with the start's error", err)
	}
	if n := starts.Load(); n != 1 || res.Restarts != 0 {
		t.Fatalf("%d starts, %d restarts; want 1, 0: the cancelled start was retried", n, res.Restarts)
	}
}

// orphanCommitter records what happens to its transactions; the
// pre-commit of transaction takeOverAt runs takeOver first.
type orphanCommitter struct {
	noteCommitter[int]
	takeOverAt int
	takeOver   func()

	mu                          sync.Mutex
	written                     int
	precommitted, committed, ab []int
}

func (c *orphanCommitter) Write(int, int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.written++
	return nil
}

func (c *orphanCommitter) PreCommit(_ context.Context, txn int) error {
	if txn == c.takeOverAt {
		c.takeOver()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.precommitted = append(c.precommitted, txn)
	return nil
}

func (c *orphanCommitter) Commit(_ context.Context, txn int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.committed = append(c.committed, txn)
	return nil
}

func (c *orphanCommitter) Abort(_ context.Context, txn int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ab = append(c.ab, txn)
	return nil
}

func (c *orphanCommitter) nWritten() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.written
}

// TestFencedInstanceAbortsOrphanedTransactions: another instance takes over
// the checkpoints while this one pre-commits the transaction of its second
// checkpoint (after the takeover's clean-up, as a zombie that resumes
// between two transactions does). The _metadata write is refused, the job
// fails fenced, and as the sink closes it aborts that pre-committed
// transaction, which no checkpoint names and nothing else would ever end
// (docs/design.md §9); the first one, committed, is left alone.
func TestFencedInstanceAbortsOrphanedTransactions(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, 1)
	env := sluice.New(cfg)
	var other *store.Ownership
	c := &orphanCommitter{takeOverAt: 2, takeOver: func() {
		// As on storage where the lock is not visible to the new instance.
		if err := os.Remove(filepath.Join(cfg.CheckpointDir, store.LockName)); err != nil {
			t.Error(err)
		}
		fsB, err := store.NewFS(cfg.CheckpointDir)
		if err == nil {
			other, err = store.NewCheckpoints(fsB).Acquire(context.Background(), "other")
		}
		if err != nil {
			t.Errorf("the other instance's takeover: %v", err)
		}
	}}
	sink := sluice.TwoPhaseCommitSink(sluice.TwoPhaseCommitConfig[int, int]{
		New: func(context.Context, *sluice.OperatorContext) (sluice.TwoPhaseCommitter[int, int], error) {
			return c, nil
		},
		TxnCodec: codec.Int,
	})
	src := newLogSource[int]()
	sluice.Sink(sluice.FromSource(env, "src", src), "sink", sink)
	x := start(t, env)
	src.Append(1)
	until(t, "record 1 written", func() bool { return c.nWritten() == 1 })
	if _, err := env.TriggerCheckpoint(ctxTimeout(t)); err != nil {
		t.Fatalf("first checkpoint: %v", err)
	}
	src.Append(2)
	until(t, "record 2 written", func() bool { return c.nWritten() == 2 })
	if _, err := env.TriggerCheckpoint(ctxTimeout(t)); err == nil {
		t.Fatal("the checkpoint after the takeover completed")
	}
	_, err := x.wait(t)
	if !errors.Is(err, store.ErrFenced) {
		t.Fatalf("Execute: %v, want fenced", err)
	}
	defer other.Release()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !slices.Equal(c.precommitted, []int{1, 2}) || !slices.Equal(c.committed, []int{1}) {
		t.Fatalf("pre-committed %v, committed %v; want [1 2], [1]", c.precommitted, c.committed)
	}
	if !slices.Equal(c.ab, []int{2}) {
		t.Fatalf("aborted %v, want [2]: the fenced instance's orphaned transaction", c.ab)
	}
}
