package sluice_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/clock"
	"github.com/sluicehq/sluice/codec"
)

// backpressureRun is what runBackpressured measured.
type backpressureRun struct {
	durations []time.Duration // of the periodic checkpoints completed
	failed    int
	srcBP     time.Duration // the source's backpressured time
	elapsed   time.Duration
}

// runBackpressured runs src → map → slow sink (1 ms a record, in a
// goroutine of its own) for runFor with edges of 8 batches of 100 records:
// the sink cannot keep up, so every edge is full and the source is
// backpressured all the time. Checkpoints are due every second. It runs in
// a synctest bubble: time is fake, the sink's sleep and every wait exact.
// It checks that the sink got every record once, in order.
func runBackpressured(t *testing.T, ck checkpoint.Config, runFor time.Duration) backpressureRun {
	t.Helper()
	var out backpressureRun
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig(t, 1)
		cfg.BatchSize = 100
		cfg.ChannelCapacity = 8
		cfg.Clock = clock.Real{} // the bubble's fake time
		ck.Interval = time.Second
		ck.MinPause = 10 * time.Millisecond
		ck.Timeout = 60 * time.Second
		cfg.Checkpoint = ck
		env := sluice.New(cfg)
		var mu sync.Mutex
		env.OnCheckpointComplete(func(cs checkpoint.CheckpointStats) {
			mu.Lock()
			defer mu.Unlock()
			if cs.Kind != checkpoint.KindCheckpoint || cs.Stop {
				return
			}
			if cs.Status == checkpoint.StatusCompleted {
				out.durations = append(out.durations, cs.Duration)
			} else {
				out.failed++
			}
		})
		src := newLogSource[int]()
		mapped := sluice.Map(sluice.FromSource(env, "src", src), "inc", func(v int) int { return v + 1 }, sluice.StartNewChain())
		var next atomic.Int64
		var bad atomic.Value
		sluice.Sink(mapped, "slow-sink", sluice.SinkFunc[int](func(v int) error {
			time.Sleep(time.Millisecond)
			if want := next.Add(1); int64(v) != want {
				bad.CompareAndSwap(nil, fmt.Sprintf("sink got %d, want %d", v, want))
			}
			return nil
		}), sluice.StartNewChain())
		// Far more records than the sink can take in runFor.
		n := 2 * int(runFor/time.Millisecond)
		recs := make([]int, n)
		for i := range recs {
			recs[i] = i
		}
		src.Append(recs...)
		began := time.Now()
		x := start(t, env)
		time.Sleep(runFor)
		src.Close()
		env.Stop()
		res, err := x.wait(t)
		if err != nil {
			t.Fatal(err)
		}
		if b := bad.Load(); b != nil {
			t.Fatal(b)
		}
		out.elapsed = time.Since(began)
		out.srcBP = time.Duration(vertex(t, res.Status, "src").BackpressuredNanos)
	})
	return out
}

// TestUnalignedUnderBackpressure: with unaligned checkpoints, checkpoints
// complete within their interval while the edges are full and the source
// is backpressured all the time (docs/design.md §3 "Unaligned
// checkpoints"); aligned ones, behind about 3000 queued records at 1 ms
// each, take longer than the interval; aligned ones with an aligned
// timeout switch to unaligned and complete within it too.
func TestUnalignedUnderBackpressure(t *testing.T) {
	t.Parallel()
	const runFor = 20 * time.Second
	check := func(t *testing.T, r backpressureRun, max time.Duration) {
		t.Helper()
		t.Logf("checkpoints %v, failed %d, source backpressured %v of %v", r.durations, r.failed, r.srcBP, r.elapsed)
		if len(r.durations) < 10 || r.failed > 0 {
			t.Fatalf("%d checkpoints completed, %d failed in %v, want ≥ 10 and none failed", len(r.durations), r.failed, runFor)
		}
		for i, d := range r.durations {
			if d > max {
				t.Fatalf("checkpoint %d took %v, want ≤ %v", i, d, max)
			}
		}
		// The source is backpressured nearly all of the run: a full edge.
		if r.srcBP < runFor*9/10 {
			t.Fatalf("source backpressured %v of %v, want ≥ 90%%", r.srcBP, runFor)
		}
	}
	t.Run("unaligned", func(t *testing.T) {
		t.Parallel()
		check(t, runBackpressured(t, checkpoint.Config{Unaligned: true}, runFor), time.Second)
	})
	t.Run("aligned-timeout", func(t *testing.T) {
		t.Parallel()
		r := runBackpressured(t, checkpoint.Config{Unaligned: true, AlignedTimeout: 200 * time.Millisecond}, runFor)
		// The aligned timeout, the batch the sink is in the middle of
		// (100 records at 1 ms) and what an unaligned checkpoint takes
		// here (at most 300 ms): 600 ms. A due timeout that loses the
		// task's select to its always-full mailbox again and again took
		// up to 1.2 s.
		check(t, r, 600*time.Millisecond)
		if slowest := slowest(r.durations); slowest < 200*time.Millisecond {
			t.Fatalf("slowest checkpoint %v: it did not wait for its aligned timeout (200ms)", slowest)
		}
	})
	t.Run("aligned", func(t *testing.T) {
		t.Parallel()
		r := runBackpressured(t, checkpoint.Config{}, runFor)
		t.Logf("checkpoints %v, source backpressured %v", r.durations, r.srcBP)
		if len(r.durations) == 0 {
			t.Fatal("no aligned checkpoint completed")
		}
		if fastest := fastest(r.durations); fastest <= time.Second {
			t.Fatalf("an aligned checkpoint took %v behind full edges: the test does not backpressure enough to tell", fastest)
		}
	})
}

func slowest(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

func fastest(ds []time.Duration) time.Duration {
	m := time.Duration(1<<63 - 1)
	for _, d := range ds {
		m = min(m, d)
	}
	return m
}

// TestUnalignedNeedsCodec: with unaligned checkpoints on, a network edge
// whose records have no codec is refused when the job is planned, with an
// error naming the edge and the option; WithCodec gives it one.
func TestUnalignedNeedsCodec(t *testing.T) {
	t.Parallel()
	build := func(unaligned bool, opts ...sluice.OpOption) error {
		cfg := testConfig(t, 1)
		cfg.Checkpoint.Unaligned = unaligned
		env := sluice.New(cfg)
		src := newLogSource[int]()
		pts := sluice.Map(sluice.FromSource(env, "src", src), "to-point", func(v int) point { return point{v, v} }, opts...)
		sluice.Sink(pts, "sink", sluice.SinkFunc[point](func(point) error { return nil }), sluice.StartNewChain())
		_, err := env.Describe()
		return err
	}
	err := build(true)
	if err == nil || !strings.Contains(err.Error(), "edge to-point → sink") || !strings.Contains(err.Error(), "sluice.WithCodec") || !strings.Contains(err.Error(), checkpoint.KeyUnaligned) {
		t.Fatalf("plan error = %v, want one naming the edge, sluice.WithCodec and %s", err, checkpoint.KeyUnaligned)
	}
	if err := build(false); err != nil {
		t.Fatalf("aligned: %v (a codec is needed only for unaligned checkpoints)", err)
	}
	if err := build(true, sluice.WithCodec[point](pointCodec{})); err != nil {
		t.Fatalf("with WithCodec: %v", err)
	}
	err = build(false, sluice.WithCodec[int64](codec.Int64))
	if err == nil || !strings.Contains(err.Error(), "emits") {
		t.Fatalf("a codec of the wrong type: %v, want an error", err)
	}
}

type point struct{ X, Y int }

// pointCodec is a codec the plan only looks up.
type pointCodec struct{}

func (pointCodec) Append(dst []byte, _ point) []byte { return dst }
func (pointCodec) Decode([]byte) (point, int, error) { return point{}, 0, errors.New("unused") }
