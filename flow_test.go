package sluice_test

// Batches on bounded edges (docs/design.md §2): when a batch is sent (buffer
// timeout, barriers, end of input) and what a full edge does to its
// producer (backpressure).

import (
	"slices"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/clock"
)

// bufferJob is src → sink in two tasks (a forward edge), with the buffer
// timeout and checkpoint interval given, on a fake clock.
func bufferJob(t *testing.T, bt, interval time.Duration) (*logSource[int], *collector[int], *clock.Fake, *sluice.Environment) {
	clk := clock.NewFake(t0)
	cfg := testConfig(t, 1)
	cfg.Clock = clk
	cfg.BufferTimeout = bt
	cfg.Checkpoint = checkpoint.Config{Interval: interval, MinPause: time.Millisecond, Timeout: time.Hour}
	env := sluice.New(cfg)
	src := newLogSource[int]()
	out := newCollector[int]()
	sluice.Sink(sluice.FromSource(env, "src", src), "sink", out.Sink(), sluice.StartNewChain())
	return src, out, clk, env
}

// TestFlushAlways: with FlushAlways a record is sent downstream at the end
// of the unit of work that emitted it, without any timer or barrier: the
// edge's counter shows it sent before the source task went idle.
func TestFlushAlways(t *testing.T) {
	t.Parallel()
	src, out, _, env := bufferJob(t, sluice.FlushAlways, time.Second)
	x := start(t, env)
	src.Append(1, 2, 3)
	src.WaitIdle(t, 3)
	if sent := vertex(t, env.Status(), "src").RecordsOutTotal; sent != 3 {
		t.Fatalf("source sent %d records before going idle, want 3", sent)
	}
	out.WaitLen(t, 3)
	src.Close()
	if _, err := x.wait(t); err != nil {
		t.Fatal(err)
	}
	if got := out.Records(); !slices.Equal(got, []int{1, 2, 3}) {
		t.Fatalf("sink got %v", got)
	}
}

// TestBufferTimeoutFlushesAtBarrierAndEnd: with a buffer timeout that never
// expires (1h on a fake clock), a partly filled batch stays with the
// producer until a checkpoint barrier flushes it (a barrier is never ahead
// of the records emitted before it), or the end of input does.
func TestBufferTimeoutFlushesAtBarrierAndEnd(t *testing.T) {
	t.Parallel()
	src, out, clk, env := bufferJob(t, time.Hour, time.Second)
	x := start(t, env)
	src.Append(1, 2, 3)
	src.WaitIdle(t, 3)
	if sent := vertex(t, env.Status(), "src").RecordsOutTotal; sent != 0 {
		t.Fatalf("source sent %d records of a partly filled batch before any flush", sent)
	}

	// One second of fake time triggers checkpoint 1 (the buffer timeout is
	// still 59 minutes away): its barrier carries the batch along.
	if !checkpointOnce(t, env, clk, time.Second) {
		t.Fatal("checkpoint 1 failed")
	}
	if got := out.Records(); !slices.Equal(got, []int{1, 2, 3}) {
		t.Fatalf("after checkpoint 1 the sink has %v, want [1 2 3]: the barrier overtook buffered records", got)
	}

	src.Append(4, 5)
	src.WaitIdle(t, 5)
	if sent := vertex(t, env.Status(), "src").RecordsOutTotal; sent != 3 {
		t.Fatalf("source sent %d records, want the 3 of checkpoint 1 only", sent)
	}
	src.Close()
	if _, err := x.wait(t); err != nil {
		t.Fatal(err)
	}
	if got := out.Records(); !slices.Equal(got, []int{1, 2, 3, 4, 5}) {
		t.Fatalf("sink got %v at the end, want [1 2 3 4 5]", got)
	}
}

// TestBufferTimeoutExpires: a partly filled batch is sent once the buffer
// timeout has passed on the job's clock, with no barrier.
func TestBufferTimeoutExpires(t *testing.T) {
	t.Parallel()
	// No periodic checkpoint: no barrier can flush.
	src, out, clk, env := bufferJob(t, 50*time.Millisecond, -1)
	x := start(t, env)
	src.Append(1, 2)
	src.WaitIdle(t, 2)
	if sent := vertex(t, env.Status(), "src").RecordsOutTotal; sent != 0 {
		t.Fatalf("source sent %d records before the buffer timeout", sent)
	}
	// The source task's flush timer is the clock's only one.
	waitTimers(t, clk, 1)
	clk.Advance(49 * time.Millisecond)
	if sent := vertex(t, env.Status(), "src").RecordsOutTotal; sent != 0 || clk.Pending() != 1 {
		t.Fatalf("source sent %d records 1ms before the buffer timeout", sent)
	}
	clk.Advance(time.Millisecond)
	out.WaitLen(t, 2)
	src.Close()
	if _, err := x.wait(t); err != nil {
		t.Fatal(err)
	}
}

// TestBackpressure: a sink that does not consume makes its edge fill up and
// the producer block; the time blocked is the producer vertex's
// BackpressuredNanos (docs/design.md §2), and none of it is the sink's.
func TestBackpressure(t *testing.T) {
	t.Parallel()
	// In a synctest bubble the clock is fake and moves only when every
	// goroutine is blocked: the time the source is blocked is exact.
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig(t, 1)
		cfg.BatchSize = 1
		cfg.ChannelCapacity = 1
		cfg.Clock = clock.Real{} // the bubble's fake time
		env := sluice.New(cfg)
		src := newLogSource[int]()
		release := make(chan struct{})
		var got atomic.Int64
		tagged := sluice.Map(sluice.FromSource(env, "src", src), "tag", func(v int) int { return v })
		sluice.Sink(tagged, "slow-sink", sluice.SinkFunc[int](func(int) error {
			<-release
			got.Add(1)
			return nil
		}), sluice.StartNewChain())
		x := start(t, env)
		// Far more records than the edge, the sink's reader and its mailbox
		// hold: the source must block.
		const n = 100
		recs := make([]int, n)
		src.Append(recs...)
		// Every goroutine is blocked now: the sink on release, the source
		// on the full edge (nothing else could block it).
		synctest.Wait()
		time.Sleep(2 * time.Second)
		close(release)
		src.Close()
		res, err := x.wait(t)
		if err != nil {
			t.Fatal(err)
		}
		if got.Load() != n {
			t.Fatalf("sink got %d records, want %d", got.Load(), n)
		}
		// Blocked for the 2 s the sink was stuck, and for no time after.
		if bp := time.Duration(vertex(t, res.Status, "src").BackpressuredNanos); bp != 2*time.Second {
			t.Fatalf("source BackpressuredNanos = %v, want 2s", bp)
		}
		if bp := vertex(t, res.Status, "slow-sink").BackpressuredNanos; bp != 0 {
			t.Fatalf("sink BackpressuredNanos = %d, want 0 (it has no output)", bp)
		}
	})
}

// steppedClock is the wall clock plus an offset that step moves: a clock
// that an operator or NTP steps. Its timers run for their duration.
type steppedClock struct{ off atomic.Int64 }

func (c *steppedClock) Now() time.Time                       { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *steppedClock) NewTimer(d time.Duration) clock.Timer { return clock.Real{}.NewTimer(d) }
func (c *steppedClock) step(d time.Duration)                 { c.off.Add(int64(d)) }

// TestBufferTimeoutAfterClockStepBack: a clock stepped back an hour while
// a batch waits for its buffer timeout must not hold the batch for the
// hour: it is sent one buffer timeout later (docs/design.md §3).
func TestBufferTimeoutAfterClockStepBack(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		clk := &steppedClock{}
		cfg := testConfig(t, 1)
		cfg.Clock = clk
		cfg.BufferTimeout = 50 * time.Millisecond
		cfg.Checkpoint = checkpoint.Config{Interval: -1} // no barrier can flush
		env := sluice.New(cfg)
		src := newLogSource[int]()
		var got atomic.Int64
		sluice.Sink(sluice.FromSource(env, "src", src), "sink", sluice.SinkFunc[int](func(int) error {
			got.Add(1)
			return nil
		}), sluice.StartNewChain())
		x := start(t, env)
		src.Append(1, 2)
		synctest.Wait() // the source task waits for its flush timer
		if n := got.Load(); n != 0 {
			t.Fatalf("sink got %d records before the buffer timeout", n)
		}
		clk.step(-time.Hour)
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		if n := got.Load(); n != 2 {
			t.Fatalf("sink got %d records two buffer timeouts after the clock stepped back, want 2", n)
		}
		src.Close()
		if _, err := x.wait(t); err != nil {
			t.Fatal(err)
		}
	})
}
