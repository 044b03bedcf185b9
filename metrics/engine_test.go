package metrics_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/connector/datagen"
	"github.com/sluicehq/sluice/internal/httpapi"
	"github.com/sluicehq/sluice/metrics"
	"github.com/sluicehq/sluice/restart"
	"github.com/sluicehq/sluice/watermark"
)

// waitTimeout bounds every wait: the tests wait for conditions, never
// sleep for something to happen.
const waitTimeout = 60 * time.Second

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// serve mounts the metrics of env on GET /metrics of a control API server
// on a free loopback port, as job.Main does, and returns the URL.
func serve(t *testing.T, env *sluice.Environment, info metrics.JobInfo) (*metrics.Collector, string) {
	t.Helper()
	srv, err := httpapi.New(httpapi.Config{Addr: "127.0.0.1:0", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	col := metrics.NewCollector()
	if err := col.Add(env, info); err != nil {
		t.Fatal(err)
	}
	reg, err := metrics.NewRegistry(col)
	if err != nil {
		t.Fatal(err)
	}
	srv.Handle("GET /metrics", metrics.Handler(reg, quiet))
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	srv.Add(env, info.Name)
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return col, "http://" + srv.Addr() + "/metrics"
}

// waitScrape scrapes url until cond holds of the scrape and returns it.
func waitScrape(t *testing.T, url, what string, cond func(s scrape) bool) scrape {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		s := getURL(t, url)
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; last scrape:\n%s", what, s.dump())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// v returns a series' value, -1 when absent (for conditions).
func (s scrape) v(name, want string) float64 {
	m := s.find(name, want)
	switch {
	case m == nil:
		return -1
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return -1
}

func (s scrape) histCount(name, want string) uint64 {
	m := s.find(name, want)
	if m == nil || m.Histogram == nil {
		return 0
	}
	return m.Histogram.GetSampleCount()
}

var errBoom = errors.New("boom")

// TestMetricsAcrossRestart runs a real job (datagen with event time →
// flatmap → sink) with its metrics on a real endpoint and fails the
// flatmap once; the restarted attempt's source reads nothing. The records
// counters grow and continue across the restart, the restart is counted
// with cause task-failure, the per-attempt gauges reset (the rates fall to
// 0 and the watermarks disappear, where the first attempt's would still
// show within the 10 s window), and the checkpoint histogram observes each
// completed checkpoint exactly once (its count equals the completed
// counter, which counts each once).
func TestMetricsAcrossRestart(t *testing.T) {
	t.Parallel()
	cfg := sluice.Config{
		JobName: "restarting", Parallelism: 2, CheckpointDir: t.TempDir(), Logger: quiet,
		Checkpoint: checkpoint.Config{Interval: 20 * time.Millisecond},
		Restart:    restart.FixedDelay{Attempts: 5, Delay: 10 * time.Millisecond},
	}
	env := sluice.New(cfg)
	var armed, blocked atomic.Bool
	gen := blockable[datagen.Record]{datagen.New(datagen.Config{Splits: 2, RatePerSecond: 4000, Keys: 10}), &blocked}
	src := sluice.FromSourceWithWatermarks(env, "gen", sluice.Source[datagen.Record](gen), watermark.ForMonotonousTimestamps(),
		[]sluice.WatermarkOption[datagen.Record]{sluice.WithTimestampAssigner(func(r datagen.Record, _ int64) int64 {
			return t0.UnixNano() + r.Seq*int64(time.Millisecond) // event time is in nanoseconds
		})})
	fm := sluice.FlatMap(src, "fail", func(r datagen.Record, c *sluice.Collector[datagen.Record]) error {
		if armed.CompareAndSwap(true, false) {
			blocked.Store(true) // the next attempt reads nothing
			return errBoom
		}
		c.Collect(r)
		return nil
	}, sluice.StartNewChain())
	sluice.Sink(fm, "out", sluice.DiscardSink[datagen.Record]())
	col, url := serve(t, env, metrics.Info(cfg))

	ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := env.Execute(ctx)
		done <- err
	}()
	const jl = "job_name=restarting"
	before := waitScrape(t, url, "records, rates, watermarks and two checkpoints", func(s scrape) bool {
		return s.v("sluice_task_records_in_total", jl+",task=fail,subtask=0") > 0 &&
			s.v("sluice_task_records_in_per_second", jl+",task=fail,subtask=0") > 0 &&
			s.v("sluice_task_watermark_timestamp_seconds", jl+",task=fail,subtask=0") > 0 &&
			s.v("sluice_checkpoints_completed_total", jl) >= 2
	})
	if got := before.v("sluice_job_restarts_total", jl+",cause=task-failure"); got != 0 {
		t.Fatalf("restarts before the failure: %v", got)
	}
	if before.v("sluice_job_running", jl) != 1 || before.v("sluice_job_uptime_seconds", jl) <= 0 {
		t.Errorf("running %v uptime %v", before.v("sluice_job_running", jl), before.v("sluice_job_uptime_seconds", jl))
	}
	if before.v("sluice_checkpoint_interval_seconds", jl) != 0.02 || before.v("sluice_checkpoint_timeout_seconds", jl) != 60 {
		t.Errorf("interval %v timeout %v", before.v("sluice_checkpoint_interval_seconds", jl), before.v("sluice_checkpoint_timeout_seconds", jl))
	}
	in0 := before.v("sluice_task_records_in_total", jl+",task=fail,subtask=0") + before.v("sluice_task_records_in_total", jl+",task=fail,subtask=1")
	ck0 := before.v("sluice_checkpoints_completed_total", jl)

	armed.Store(true)
	after := waitScrape(t, url, "the restart and two more checkpoints", func(s scrape) bool {
		return s.v("sluice_job_restarts_total", jl+",cause=task-failure") == 1 &&
			s.v("sluice_checkpoints_completed_total", jl) >= ck0+2
	})
	if got := after.v("sluice_job_restarts_total", jl+",cause=other") + after.v("sluice_job_restarts_total", jl+",cause=checkpoint-failure"); got != 0 {
		t.Errorf("restarts of other causes: %v", got)
	}
	// The watermark is event time: t0 plus at most a few seconds of
	// records (one per millisecond per split).
	if wm := before.v("sluice_task_watermark_timestamp_seconds", jl+",task=fail,subtask=0"); wm < float64(t0.Unix()) || wm > float64(t0.Add(time.Hour).Unix()) {
		t.Errorf("watermark %v, want a time shortly after %v (%d)", wm, t0, t0.Unix())
	}
	checkSchema(t, before)
	checkSchema(t, after)
	// The new attempt's gauges: its source reads nothing, so no rate and
	// no watermark, while the counters keep what the first attempt did.
	for _, task := range []string{"gen", "fail"} {
		for _, sub := range []string{"0", "1"} {
			l := jl + ",task=" + task + ",subtask=" + sub
			if v := after.v("sluice_task_records_in_per_second", l); v != 0 {
				t.Errorf("records_in_per_second{%s} = %v in the new attempt, want 0", l, v)
			}
			if v := after.v("sluice_task_records_out_per_second", l); v != 0 && task == "gen" {
				t.Errorf("records_out_per_second{%s} = %v in the new attempt, want 0", l, v)
			}
			if m := after.find("sluice_task_watermark_timestamp_seconds", l); m != nil {
				t.Errorf("watermark{%s} = %v in the new attempt, want none", l, m.GetGauge().GetValue())
			}
		}
	}
	in1 := after.v("sluice_task_records_in_total", jl+",task=fail,subtask=0") + after.v("sluice_task_records_in_total", jl+",task=fail,subtask=1")
	if in1 < in0 {
		t.Errorf("records_in_total went back across the restart: %v then %v", in0, in1)
	}
	if after.v("sluice_job_last_recovery_duration_seconds", jl) <= 0 {
		t.Errorf("last recovery %v, want > 0", after.v("sluice_job_last_recovery_duration_seconds", jl))
	}
	// Every checkpoint completed so far is in the histogram once: the
	// hook runs just after the counter is bumped, so wait for equality;
	// it must never exceed the counter.
	waitScrape(t, url, "the histogram to catch up with the counter", func(s scrape) bool {
		n, c := s.histCount("sluice_checkpoint_duration_seconds", jl), s.v("sluice_checkpoints_completed_total", jl)
		if float64(n) > c {
			t.Fatalf("histogram count %d exceeds checkpoints completed %v", n, c)
		}
		return float64(n) == c
	})

	env.Stop()
	if err := <-done; err != nil {
		t.Fatalf("Execute: %v", err)
	}
	col.SetRunning(env.JobID(), false)
	last := getURL(t, url)
	if last.v("sluice_job_running", jl) != 0 {
		t.Errorf("running after the end: %v", last.v("sluice_job_running", jl))
	}
	if n, c := last.histCount("sluice_checkpoint_duration_seconds", jl), last.v("sluice_checkpoints_completed_total", jl); float64(n) != c {
		t.Errorf("after the end: histogram count %d, checkpoints completed %v", n, c)
	}
}

// blockable is a source whose readers read nothing while blocked is set.
type blockable[T any] struct {
	sluice.Source[T]
	blocked *atomic.Bool
}

// AssignSplit passes the inner source's assignment through.
func (s blockable[T]) AssignSplit(id string, parallelism int) int {
	if a, ok := s.Source.(sluice.SplitAssigner); ok {
		return a.AssignSplit(id, parallelism)
	}
	return 0
}

func (s blockable[T]) NewReader(ctx context.Context, oc *sluice.OperatorContext) (sluice.SourceReader[T], error) {
	r, err := s.Source.NewReader(ctx, oc)
	if err != nil {
		return nil, err
	}
	return &blockableReader[T]{SourceReader: r, blocked: s.blocked, never: make(chan struct{})}, nil
}

type blockableReader[T any] struct {
	sluice.SourceReader[T]
	blocked *atomic.Bool
	never   chan struct{}
}

func (r *blockableReader[T]) Poll(ctx context.Context, out sluice.Emitter[T]) (sluice.PollStatus, error) {
	if r.blocked.Load() {
		return sluice.NothingAvailable, nil
	}
	return r.SourceReader.Poll(ctx, out)
}

func (r *blockableReader[T]) Available() <-chan struct{} {
	if r.blocked.Load() {
		return r.never
	}
	return r.SourceReader.Available()
}
