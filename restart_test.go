package sluice_test

// Tests of the wiring between task failures and the restart strategy
// (docs/design.md §5): which failures are retried, how often, and what error the
// job finally returns.

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/clock"
	"github.com/sluicehq/sluice/connector/datagen"
	"github.com/sluicehq/sluice/restart"
)

// failingJob builds src → flatmap "fail" → sink, where the flatmap calls
// fail on the first record of every attempt and counts the attempts.
func failingJob(t *testing.T, rc restart.Policy, fail func(attempt int64) error, opts ...func(*sluice.Config)) (*sluice.Environment, *atomic.Int64, *clock.Fake) {
	cfg := testConfig(t, 1)
	cfg.Restart = rc
	for _, o := range opts {
		o(&cfg)
	}
	env := sluice.New(cfg)
	var attempts atomic.Int64
	src := sluice.FromSource(env, "src", datagen.New(gen))
	fm := sluice.FlatMap(src, "fail", func(r datagen.Record, c *sluice.Collector[datagen.Record]) error {
		if r.Split == 0 && r.Seq == 0 {
			if err := fail(attempts.Add(1)); err != nil {
				return err
			}
		}
		c.Collect(r)
		return nil
	}, sluice.StartNewChain())
	sluice.Sink(fm, "sink", sluice.DiscardSink[datagen.Record]())
	return env, &attempts, cfg.Clock.(*clock.Fake)
}

// TestRestartNone: with restart "none" the first failure fails the job, and
// the error names the failing operator.
func TestRestartNone(t *testing.T) {
	t.Parallel()
	env, attempts, _ := failingJob(t, restart.None{}, func(int64) error { return errBoom })
	res, err := env.Execute(ctxTimeout(t))
	if !errors.Is(err, errBoom) || !strings.Contains(err.Error(), "fail") {
		t.Fatalf("Execute: %v, want the operator's error naming it", err)
	}
	if n := attempts.Load(); n != 1 || res.Restarts != 0 {
		t.Fatalf("%d attempts, %d restarts; want 1 attempt, no restart", n, res.Restarts)
	}
}

// TestRestartFixedDelay: fixed-delay with 2 attempts runs the job 3 times,
// then fails with the last error; a job that recovers on a retry succeeds.
func TestRestartFixedDelay(t *testing.T) {
	t.Parallel()
	rc := restart.FixedDelay{Attempts: 2, Delay: -1}
	t.Run("always failing", func(t *testing.T) {
		t.Parallel()
		env, attempts, _ := failingJob(t, rc, func(n int64) error { return fmt.Errorf("attempt %d: %w", n, errBoom) })
		res, err := env.Execute(ctxTimeout(t))
		if !errors.Is(err, errBoom) || !strings.Contains(err.Error(), "attempt 3") {
			t.Fatalf("Execute: %v, want the third attempt's error", err)
		}
		if n := attempts.Load(); n != 3 || res.Restarts != 2 {
			t.Fatalf("%d attempts, %d restarts; want 3 attempts, 2 restarts", n, res.Restarts)
		}
	})
	t.Run("recovering", func(t *testing.T) {
		t.Parallel()
		env, attempts, _ := failingJob(t, rc, func(n int64) error {
			if n < 3 {
				return errBoom
			}
			return nil
		})
		res, err := env.Execute(ctxTimeout(t))
		if err != nil {
			t.Fatalf("Execute: %v", err)
		}
		if n := attempts.Load(); n != 3 || res.Restarts != 2 || res.Checkpoints != 1 {
			t.Fatalf("%d attempts, %d restarts, %d checkpoints; want 3, 2 and the final one", n, res.Restarts, res.Checkpoints)
		}
	})
}

// TestRestartDelayUsesClock: the fixed delay is waited out on the job's
// clock, so a fake clock holds the restart until it is advanced.
func TestRestartDelayUsesClock(t *testing.T) {
	t.Parallel()
	rc := restart.FixedDelay{Attempts: 1, Delay: time.Minute}
	env, attempts, clk := failingJob(t, rc, func(n int64) error {
		if n == 1 {
			return errBoom
		}
		return nil
	}, func(cfg *sluice.Config) {
		// The test moves the clock while attempts run: no periodic
		// checkpoint, and no timeout that a fast fake clock could reach.
		cfg.Checkpoint = checkpoint.Config{Interval: -1, Timeout: 1000 * time.Hour}
	})
	x := start(t, env)
	until(t, "the first attempt to fail", func() bool { return attempts.Load() == 1 })
	// Attempt 2 cannot start before a minute of fake time passed.
	advanceUntil(t, clk, 10*time.Second, "the second attempt", func() bool { return attempts.Load() == 2 })
	if elapsed := clk.Now().Sub(t0); elapsed < time.Minute {
		t.Fatalf("second attempt after %v of fake time, want the 1m delay", elapsed)
	}
	res, err := x.wait(t)
	if err != nil || res.Restarts != 1 {
		t.Fatalf("Execute: %v, %d restarts; want success after 1 restart", err, res.Restarts)
	}
}

// TestUnrecoverableNotRetried: an error marked restart.Unrecoverable fails
// the job at once, whatever attempts the strategy has left.
func TestUnrecoverableNotRetried(t *testing.T) {
	t.Parallel()
	rc := restart.FixedDelay{Attempts: 5, Delay: -1}
	env, attempts, _ := failingJob(t, rc, func(int64) error { return restart.Unrecoverable(errBoom) })
	res, err := env.Execute(ctxTimeout(t))
	if !errors.Is(err, errBoom) || !restart.IsUnrecoverable(err) {
		t.Fatalf("Execute: %v, want the unrecoverable error", err)
	}
	if n := attempts.Load(); n != 1 || res.Restarts != 0 {
		t.Fatalf("%d attempts, %d restarts; want 1 attempt, no restart", n, res.Restarts)
	}
}

// TestSinkErrorNamesSink: an error returned by a SinkFunc fails the job with
// the sink named, like every other operator's error.
func TestSinkErrorNamesSink(t *testing.T) {
	t.Parallel()
	env := sluice.New(testConfig(t, 1))
	src := sluice.FromSource(env, "src", datagen.New(gen))
	sluice.Sink(src, "my-sink", sluice.SinkFunc[datagen.Record](func(datagen.Record) error { return errBoom }))
	_, err := env.Execute(ctxTimeout(t))
	if !errors.Is(err, errBoom) || !strings.Contains(err.Error(), "my-sink") {
		t.Fatalf("Execute: %v, want the sink's error naming it", err)
	}
}

// TestPanicNamesTask: a panic in a user function fails the job with the
// task named and the panic value.
func TestPanicNamesTask(t *testing.T) {
	t.Parallel()
	env := sluice.New(testConfig(t, 1))
	src := sluice.FromSource(env, "src", datagen.New(gen))
	m := sluice.Map(src, "oops", func(r datagen.Record) string {
		if r.Seq == 3 {
			panic("kaboom")
		}
		return r.Key
	}, sluice.StartNewChain())
	sluice.Sink(m, "sink", sluice.DiscardSink[string]())
	_, err := env.Execute(ctxTimeout(t))
	if err == nil || !strings.Contains(err.Error(), "task oops/0 panicked: kaboom") {
		t.Fatalf("Execute: %v, want a panic of task oops/0", err)
	}
}
