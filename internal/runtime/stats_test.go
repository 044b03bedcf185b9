package runtime

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/clock"
	"github.com/sluicehq/sluice/internal/coordinator"
)

// slowForward is an operator that takes a second per record (time.Sleep:
// synctest's fake time) and forwards it to out.
type slowForward struct{ out *Writer[int] }

func (s *slowForward) Emit(v int) error {
	time.Sleep(time.Second)
	return s.out.Emit(v)
}
func (s *slowForward) Open(context.Context, *OperatorContext) error                 { return nil }
func (s *slowForward) Snapshot(context.Context, Barrier) (*OperatorSnapshot, error) { return nil, nil }
func (s *slowForward) NotifyComplete(context.Context, int64) error                  { return nil }
func (s *slowForward) NotifyAborted(context.Context, int64) error                   { return nil }
func (s *slowForward) EndInput(context.Context) error                               { return nil }
func (s *slowForward) Close(context.Context) error                                  { return nil }

// TestBusyIdleBackpressuredDisjoint: a task's time is split into busy, idle
// and backpressured stretches that do not overlap and add up to the time it
// ran, as Flink defines busyTimeMsPerSecond (backpressure excluded) and
// idleTimeMsPerSecond (waiting for input). Under synctest the clock moves
// only when every goroutine is blocked, so the figures are exact.
func TestBusyIdleBackpressuredDisjoint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		plan := &Plan{JobName: "split", MaxParallelism: 128, BatchSize: 1, ChannelCapacity: 4}
		a := &attempt{
			plan: plan, cfg: checkpoint.Config{}.WithDefaults(), clock: clock.Real{}, ctx: ctx,
			byID:   map[checkpoint.TaskID]*task{},
			events: make(chan coordinator.Event, 8), errs: make(chan error, 8),
			exhaust: make(chan checkpoint.TaskID, 8), endedCh: make(chan checkpoint.TaskID, 8),
		}
		in := NewChannels[int](1, 1, 4)
		out := NewChannels[int](1, 1, 1)
		stats := &TaskStats{}
		w := NewWriter(out, 0, Forward, nil, 1, ctx.Done(), stats, nil)
		op := &slowForward{out: w}
		tk := &task{
			id:          checkpoint.TaskID{Vertex: "slow", Subtask: 0},
			chain:       &Chain{Ops: []OpInstance{{UID: "slow", Name: "slow", Op: op}}, Inputs: NewInputs(in, 0, Forward, Emitter[int](op), stats, nil), Outputs: []OutputWriter{w}},
			job:         a,
			ctl:         make(chan taskCtl, 8),
			mailbox:     make(chan mail, 8),
			stats:       stats,
			parallelism: 1,
		}
		errc := make(chan error, 1)
		go func() { errc <- tk.run(ctx) }()
		producer := NewWriter(in, 0, Forward, nil, 1, ctx.Done(), &TaskStats{}, nil)

		time.Sleep(2 * time.Second) // idle: no input yet
		for v := range 2 {
			if err := producer.Emit(v); err != nil {
				t.Fatal(err)
			}
		}
		// Record 0 takes 1s and fits the output channel; record 1 takes 1s
		// and then blocks on the full channel until the read below.
		time.Sleep(8 * time.Second)
		synctest.Wait()
		<-out.Chans[0][0] // at 10s: 6s backpressured
		time.Sleep(5 * time.Second)
		synctest.Wait() // idle again: waiting for input
		tk.ctl <- taskCtl{kind: ctlFinish}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		busy, idle, bp := time.Duration(stats.BusyNanos.Load()), time.Duration(stats.IdleNanos.Load()), time.Duration(stats.BackpressuredNanos.Load())
		if busy != 2*time.Second || bp != 6*time.Second || idle != 7*time.Second {
			t.Fatalf("busy %v, backpressured %v, idle %v; want 2s, 6s, 7s (15s in all)", busy, bp, idle)
		}
		cancel()
	})
}

// TestStatusCheckpointDurationFromClock: the duration of a checkpoint in
// progress grows with the clock between the coordinator's events (it used
// to stand still at its value as of the last event).
func TestStatusCheckpointDurationFromClock(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1000, 0)
	clk := clock.NewFake(t0)
	j := &Job{plan: &Plan{}, clock: clk, stats: map[checkpoint.TaskID]*TaskStats{}}
	j.coordStats.Store(&checkpoint.Stats{InProgress: 1, History: []checkpoint.CheckpointStats{
		{ID: 1, Status: checkpoint.StatusCompleted, TriggeredAt: t0.Add(-time.Minute), CompletedAt: t0.Add(-50 * time.Second), Duration: 10 * time.Second},
		{ID: 2, Status: checkpoint.StatusInProgress, TriggeredAt: t0.Add(-2 * time.Second), Duration: 2 * time.Second},
	}})
	clk.Advance(7 * time.Second)
	h := j.Status().Checkpoints.History
	if h[0].Duration != 10*time.Second || h[1].Duration != 9*time.Second {
		t.Fatalf("durations %v and %v, want 10s (completed) and 9s (in progress, now - trigger)", h[0].Duration, h[1].Duration)
	}
	if d := j.coordStats.Load().History[1].Duration; d != 2*time.Second {
		t.Fatalf("Status changed the coordinator's stored statistics (duration %v)", d)
	}
}

// slowSource emits n records, taking a second for each, then has nothing.
type slowSource struct {
	out   *Writer[int]
	n     int
	avail chan struct{}
}

func (s *slowSource) Open(context.Context, *OperatorContext) error { return nil }
func (s *slowSource) Poll(context.Context) (PollStatus, error) {
	if s.n == 0 {
		return NothingAvailable, nil
	}
	s.n--
	time.Sleep(time.Second)
	return MoreAvailable, s.out.Emit(s.n)
}
func (s *slowSource) Available() <-chan struct{}                                     { return s.avail }
func (s *slowSource) Snapshot(context.Context, Barrier) (map[string][][]byte, error) { return nil, nil }
func (s *slowSource) NotifyComplete(context.Context, int64) error                    { return nil }
func (s *slowSource) Close(context.Context) error                                    { return nil }

// TestSourceBusyIdleBackpressured: the same split for a source task: Poll
// is busy except while its emit is blocked on a full channel, and waiting
// for records to become available is idle.
func TestSourceBusyIdleBackpressured(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		plan := &Plan{JobName: "split", MaxParallelism: 128, BatchSize: 1, ChannelCapacity: 1}
		a := &attempt{
			plan: plan, cfg: checkpoint.Config{}.WithDefaults(), clock: clock.Real{}, ctx: ctx,
			byID:   map[checkpoint.TaskID]*task{},
			events: make(chan coordinator.Event, 8), errs: make(chan error, 8),
			exhaust: make(chan checkpoint.TaskID, 8), endedCh: make(chan checkpoint.TaskID, 8),
		}
		out := NewChannels[int](1, 1, 1)
		stats := &TaskStats{}
		w := NewWriter(out, 0, Forward, nil, 1, ctx.Done(), stats, nil)
		src := &slowSource{out: w, n: 2, avail: make(chan struct{})}
		tk := &task{
			id:    checkpoint.TaskID{Vertex: "src", Subtask: 0},
			chain: &Chain{SourceUID: "src", Source: src, Outputs: []OutputWriter{w}},
			job:   a, ctl: make(chan taskCtl, 8), stats: stats, parallelism: 1,
		}
		errc := make(chan error, 1)
		go func() { errc <- tk.run(ctx) }()
		// Record 1 takes 1s and fits the channel; record 0 takes 1s and
		// blocks until the read at 10s.
		time.Sleep(10 * time.Second)
		synctest.Wait()
		<-out.Chans[0][0]
		time.Sleep(5 * time.Second) // nothing available: idle
		synctest.Wait()
		tk.ctl <- taskCtl{kind: ctlFinish}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		busy, idle, bp := time.Duration(stats.BusyNanos.Load()), time.Duration(stats.IdleNanos.Load()), time.Duration(stats.BackpressuredNanos.Load())
		if busy != 2*time.Second || bp != 8*time.Second || idle != 5*time.Second {
			t.Fatalf("busy %v, backpressured %v, idle %v; want 2s, 8s, 5s (15s in all)", busy, bp, idle)
		}
	})
}
