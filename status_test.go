package sluice_test

// The operations status (docs/design.md §8): ratios and rates over the
// sliding window, queue fill, restarts by cause, the last failure and
// restore, per-task checkpoint statistics. Each test runs in a synctest
// bubble, whose clock moves only when every goroutine is blocked, so the
// figures are exact and no test sleeps on the wall clock.

import (
	"errors"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/clock"
	"github.com/sluicehq/sluice/connector/datagen"
	"github.com/sluicehq/sluice/restart"
	"github.com/sluicehq/sluice/watermark"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// checkRatios fails unless every subtask's and the vertex's ratios lie in
// [0, 1] and sum to 1.
func checkRatios(t *testing.T, v sluice.VertexStatus) {
	t.Helper()
	sum := func(b, i, p float64) float64 { return b + i + p }
	if s := sum(v.BusyRatio, v.IdleRatio, v.BackpressuredRatio); !near(s, 1) {
		t.Fatalf("%s: ratios busy %v idle %v backpressured %v sum to %v, want 1", v.Name, v.BusyRatio, v.IdleRatio, v.BackpressuredRatio, s)
	}
	for _, st := range v.Subtasks {
		for _, r := range []float64{st.BusyRatio, st.IdleRatio, st.BackpressuredRatio} {
			if r < 0 || r > 1 {
				t.Fatalf("%s/%d: ratio %v out of [0, 1]", v.Name, st.Index, r)
			}
		}
		if s := sum(st.BusyRatio, st.IdleRatio, st.BackpressuredRatio); !near(s, 1) {
			t.Fatalf("%s/%d: ratios sum to %v, want 1", v.Name, st.Index, s)
		}
	}
}

// TestStatusBackpressureWindow: a sink that does not consume drives its
// upstream task's backpressured ratio (over the sliding window, read while
// the task is still blocked) to 1 and fills the edge between them; the
// sink itself is idle, not backpressured. Once the sink drains, the
// window slides and the source's ratio falls again.
func TestStatusBackpressureWindow(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig(t, 2)
		cfg.BatchSize = 1
		cfg.ChannelCapacity = 2
		cfg.Clock = clock.Real{} // the bubble's fake time
		cfg.Checkpoint = checkpoint.Config{Interval: -1}
		env := sluice.New(cfg)
		src := newLogSource[int]()
		release := make(chan struct{})
		var got atomic.Int64
		tagged := sluice.Map(sluice.FromSource(env, "src", src, sluice.Parallelism(1)), "tag", func(v int) int { return v })
		sluice.Sink(tagged, "slow-sink", sluice.SinkFunc[int](func(int) error {
			<-release
			got.Add(1)
			return nil
		}), sluice.StartNewChain(), sluice.Parallelism(2))
		x := start(t, env)
		const n = 100
		src.Append(make([]int, n)...)
		synctest.Wait() // the sink blocks on release, the source on the full edge
		time.Sleep(20 * time.Second)
		st := env.Status()
		s, k := vertex(t, st, "src"), vertex(t, st, "slow-sink")
		checkRatios(t, s)
		if s.BackpressuredRatio <= 0.3 {
			t.Fatalf("source backpressured ratio %v while the sink is stuck, want > 0.3", s.BackpressuredRatio)
		}
		if k.BackpressuredRatio != 0 {
			t.Fatalf("sink backpressured ratio %v, want 0 (it has no output)", k.BackpressuredRatio)
		}
		if s.OutputQueueFill != 1 {
			t.Fatalf("source output queue fill %v, want 1 (every channel full)", s.OutputQueueFill)
		}
		if len(st.Edges) != 1 || st.Edges[0].From != "src" || st.Edges[0].To != "slow-sink" || st.Edges[0].Partitioning != "rebalance" {
			t.Fatalf("edges %+v, want src → slow-sink (rebalance)", st.Edges)
		}
		if st.Edges[0].QueueFill != 1 {
			t.Fatalf("edge queue fill %v, want 1", st.Edges[0].QueueFill)
		}
		if k.InputQueueFill != 1 || len(k.Subtasks) != 2 || k.Subtasks[0].InputQueueFill != 1 {
			t.Fatalf("sink input queue fill %v (subtasks %+v), want 1", k.InputQueueFill, k.Subtasks)
		}
		if s.UID != "src" || strings.Join(s.Operators, ",") != "src,tag" || s.Parallelism != 1 {
			t.Fatalf("source vertex uid %q operators %v, want src and [src tag]", s.UID, s.Operators)
		}
		close(release)
		synctest.Wait()
		time.Sleep(30 * time.Second) // everything drained: the source idles
		st = env.Status()
		s = vertex(t, st, "src")
		checkRatios(t, s)
		if s.BackpressuredRatio != 0 || !near(s.IdleRatio, 1) {
			t.Fatalf("after draining: source busy %v idle %v backpressured %v, want idle 1", s.BusyRatio, s.IdleRatio, s.BackpressuredRatio)
		}
		if q := vertex(t, st, "slow-sink").InputQueueFill; q != 0 {
			t.Fatalf("sink input queue fill %v after draining, want 0", q)
		}
		src.Close()
		if _, err := x.wait(t); err != nil {
			t.Fatal(err)
		}
		if got.Load() != n {
			t.Fatalf("sink got %d records, want %d", got.Load(), n)
		}
	})
}

// TestStatusRatesOverWindow: the record rates are the records of the
// window divided by its length, from the injected clock.
func TestStatusRatesOverWindow(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig(t, 1)
		cfg.Clock = clock.Real{}
		cfg.Checkpoint = checkpoint.Config{Interval: -1}
		cfg.StatusWindow = 4 * time.Second
		env := sluice.New(cfg)
		src := newLogSource[int]()
		out := newCollector[int]()
		sluice.Sink(sluice.FromSource(env, "src", src), "sink", out.Sink(), sluice.StartNewChain())
		x := start(t, env)
		synctest.Wait()
		env.Status() // the window's first sample
		src.Append(make([]int, 80)...)
		synctest.Wait()
		time.Sleep(4 * time.Second)
		st := env.Status()
		if r := vertex(t, st, "src").RecordsOutRate; !near(r, 20) {
			t.Fatalf("source out rate %v, want 80 records / 4s = 20", r)
		}
		if r := vertex(t, st, "sink").RecordsInRate; !near(r, 20) {
			t.Fatalf("sink in rate %v, want 20", r)
		}
		time.Sleep(4 * time.Second)
		if r := vertex(t, env.Status(), "src").RecordsOutRate; r != 0 {
			t.Fatalf("source out rate %v a window later, want 0", r)
		}
		src.Close()
		if _, err := x.wait(t); err != nil {
			t.Fatal(err)
		}
	})
}

// TestStatusFailureAndRestore: a task failure is counted as a restart of
// cause task-failure, with the failed task and its error as LastFailure,
// the restored checkpoint as LastRestore; the per-attempt counts restart
// from zero while the totals continue.
func TestStatusFailureAndRestore(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig(t, 1)
		cfg.Clock = clock.Real{}
		cfg.Checkpoint = checkpoint.Config{Interval: time.Second, MinPause: time.Millisecond, Timeout: time.Minute}
		cfg.Restart = restart.FixedDelay{Attempts: 3, Delay: 2 * time.Second}
		env := sluice.New(cfg)
		src := newLogSource[int]()
		out := newCollector[subtaskRecord[int]]()
		var failed atomic.Bool
		errBoom := errors.New("boom")
		fm := sluice.FlatMap(sluice.FromSource(env, "src", src), "fail", func(v int, c *sluice.Collector[int]) error {
			if v < 0 && !failed.Swap(true) {
				return errBoom
			}
			c.Collect(v)
			return nil
		})
		sluice.Sink(fm, "sink", subtaskSink(out), sluice.StartNewChain())
		x := start(t, env)
		synctest.Wait()
		began := time.Now()
		src.Append(1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
		time.Sleep(1500 * time.Millisecond) // checkpoint 1 at 1s covers the 10 records
		synctest.Wait()
		st := env.Status()
		if st.CheckpointsCompleted < 1 || st.Restarts != 0 || st.LastFailure != nil || st.LastRestore != nil {
			t.Fatalf("before the failure: %d checkpoints, %d restarts, failure %+v, restore %+v", st.CheckpointsCompleted, st.Restarts, st.LastFailure, st.LastRestore)
		}
		if !st.StartedAt.Equal(began) || !st.AttemptStartedAt.Equal(began) {
			t.Fatalf("started %v, attempt started %v, want both %v", st.StartedAt, st.AttemptStartedAt, began)
		}
		if len(st.RestartsByCause) != 0 {
			t.Fatalf("restarts by cause %v before any failure", st.RestartsByCause)
		}
		ckpt := st.LastCheckpointID
		// The source's split position and the sink's pending transaction
		// are the state of checkpoint 1.
		if vertex(t, st, "src").StateBytes <= 0 || vertex(t, st, "sink").StateBytes <= 0 {
			t.Fatalf("state bytes src %d, sink %d; want both positive", vertex(t, st, "src").StateBytes, vertex(t, st, "sink").StateBytes)
		}
		// Every task acked the checkpoint, each with its own entry.
		h := st.Checkpoints.History
		var done *checkpoint.CheckpointStats
		for i := range h {
			if h[i].ID == ckpt {
				done = &h[i]
			}
		}
		if done == nil || len(done.Tasks) != 2 || done.FullBytes != done.Bytes || done.IncrementalBytes != done.Bytes {
			t.Fatalf("checkpoint %d stats %+v, want 2 task entries and full = incremental = bytes", ckpt, done)
		}
		seen := map[string]bool{}
		for _, ts := range done.Tasks {
			seen[ts.Vertex] = true
			if ts.AckedAt.IsZero() || ts.AckedAt.Before(done.TriggeredAt) || ts.Duration != ts.AckedAt.Sub(done.TriggeredAt) {
				t.Fatalf("task stats %+v of checkpoint triggered at %v", ts, done.TriggeredAt)
			}
		}
		if !seen["src"] || !seen["sink"] {
			t.Fatalf("task entries %+v, want src and sink", done.Tasks)
		}
		// The two-phase-commit sink committed checkpoint 1's transaction.
		if len(st.Sinks) != 1 || st.Sinks[0].Vertex != "sink" || st.Sinks[0].Name != "sink" ||
			st.Sinks[0].TransactionsCommitted != 1 || st.Sinks[0].Commits != 1 || st.Sinks[0].TransactionsAborted != 0 {
			t.Fatalf("sinks %+v, want sink with 1 transaction committed", st.Sinks)
		}

		src.Append(11, 12)                 // an open transaction at the failure: aborted
		time.Sleep(200 * time.Millisecond) // the buffer timeout: they reach the sink
		synctest.Wait()
		src.Append(-1) // fails the source task (fail is chained to it)
		synctest.Wait()
		failedAt := time.Now()
		time.Sleep(3 * time.Second) // the restart delay
		synctest.Wait()
		st = env.Status()
		if st.Restarts != 1 || st.RestartsByCause[sluice.CauseTaskFailure] != 1 || len(st.RestartsByCause) != 1 {
			t.Fatalf("restarts %d by cause %v, want 1 task-failure", st.Restarts, st.RestartsByCause)
		}
		f := st.LastFailure
		if f == nil || f.Vertex != "src" || f.Subtask != 0 || f.Cause != sluice.CauseTaskFailure || !strings.Contains(f.Error, "boom") || !f.At.Equal(failedAt) {
			t.Fatalf("last failure %+v, want src/0 task-failure boom at %v", f, failedAt)
		}
		r := st.LastRestore
		if r == nil || r.CheckpointID != ckpt || r.Kind != checkpoint.KindCheckpoint || r.Path == "" || !r.At.Equal(failedAt.Add(2*time.Second)) {
			t.Fatalf("last restore %+v, want checkpoint %d at %v", r, ckpt, failedAt.Add(2*time.Second))
		}
		if !st.AttemptStartedAt.Equal(r.At.Add(r.Duration)) || !st.StartedAt.Equal(began) {
			t.Fatalf("attempt started %v, run started %v; restore %+v", st.AttemptStartedAt, st.StartedAt, r)
		}
		// The replay after checkpoint 1: 11, 12 and the -1, now passed on.
		s := vertex(t, st, "src")
		if s.RecordsOutAttempt != 3 || s.RecordsOutTotal != 15 {
			t.Fatalf("source out: %d this attempt, %d in all; want 3 and 15", s.RecordsOutAttempt, s.RecordsOutTotal)
		}
		checkRatios(t, s)
		if k := st.Sinks[0]; k.TransactionsAborted != 1 {
			t.Fatalf("sink %+v after the failure, want the open transaction aborted", k)
		}
		src.Close()
		res, err := x.wait(t)
		if err != nil {
			t.Fatal(err)
		}
		if k := res.Status.Sinks[0]; k.TransactionsCommitted < 2 || k.Commits != k.TransactionsCommitted || k.TransactionsAborted != 1 {
			t.Fatalf("sink %+v at the end, want the final checkpoint's transaction committed too", k)
		}
	})
}

// TestStatusDatagenSplits: datagen reports its splits, a bounded split with
// its end (RecordsPerSplit) and the records still to generate as its lag.
func TestStatusDatagenSplits(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig(t, 1)
		cfg.Clock = clock.Real{}
		cfg.BatchSize = 1
		cfg.ChannelCapacity = 1
		cfg.Checkpoint = checkpoint.Config{Interval: -1}
		env := sluice.New(cfg)
		g := datagen.Config{Splits: 2, RecordsPerSplit: 1000, Keys: 5, Seed: 1, BatchSize: 8}
		release := make(chan struct{})
		src := sluice.FromSource(env, "gen", datagen.New(g))
		sluice.Sink(src, "held", sluice.SinkFunc[datagen.Record](func(datagen.Record) error { <-release; return nil }), sluice.StartNewChain())
		x := start(t, env)
		synctest.Wait() // the source is blocked on the full edge
		st := env.Status()
		if len(st.Sources) != 1 || st.Sources[0].Vertex != "gen" || len(st.Sources[0].Splits) != 2 {
			t.Fatalf("sources %+v, want gen with 2 splits", st.Sources)
		}
		s := st.Sources[0]
		for _, sp := range s.Splits {
			if sp.End != 1000 || sp.Lag != sp.End-sp.Next || sp.Lag <= 0 || sp.Idle || sp.Subtask != 0 {
				t.Fatalf("split %+v while held, want end 1000 and a positive lag", sp)
			}
		}
		if s.RecordsLagMax <= 0 || s.IdleSplits != 0 {
			t.Fatalf("source %+v, want a positive records lag max and no idle split", s)
		}
		close(release)
		if _, err := x.wait(t); err != nil {
			t.Fatal(err)
		}
	})
}

// TestStatusWatermark: each vertex reports the smallest watermark of its
// subtasks, as a time; zero before the first one.
func TestStatusWatermark(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig(t, 1)
		cfg.Clock = clock.Real{}
		cfg.Checkpoint = checkpoint.Config{Interval: -1}
		env := sluice.New(cfg)
		src := newLogSource[int]()
		s := sluice.FromSourceWithWatermarks(env, "src", src, watermark.ForMonotonousTimestamps(),
			[]sluice.WatermarkOption[int]{sluice.WithTimestampAssigner(func(v int, _ int64) int64 { return int64(v) * int64(time.Millisecond) })})
		out := newCollector[int]()
		sluice.Sink(s, "sink", out.Sink(), sluice.StartNewChain())
		x := start(t, env)
		synctest.Wait()
		if w := vertex(t, env.Status(), "sink").Watermark; !w.IsZero() {
			t.Fatalf("sink watermark %v before any record, want zero", w)
		}
		src.Append(1000, 2000, 5000)
		time.Sleep(time.Second) // a few watermark intervals
		synctest.Wait()
		st := env.Status()
		sw, kw := vertex(t, st, "src").Watermark, vertex(t, st, "sink").Watermark
		if sw.IsZero() || !sw.Equal(kw) || sw.After(time.UnixMilli(5000)) || sw.Before(time.UnixMilli(4999)) {
			t.Fatalf("watermarks src %v sink %v, want both just below 5s after the epoch", sw, kw)
		}
		if sub := vertex(t, st, "sink").Subtasks[0].Watermark; !sub.Equal(kw) {
			t.Fatalf("subtask watermark %v, vertex %v", sub, kw)
		}
		src.Close()
		if _, err := x.wait(t); err != nil {
			t.Fatal(err)
		}
	})
}
