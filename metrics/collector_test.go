package metrics_test

import (
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/clock"
	"github.com/sluicehq/sluice/metrics"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// fakeJob is a Job whose status the test sets.
type fakeJob struct {
	id string
	mu sync.Mutex
	st sluice.JobStatus
}

func (f *fakeJob) JobID() string { return f.id }

func (f *fakeJob) Status() sluice.JobStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

func (f *fakeJob) set(fn func(st *sluice.JobStatus)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(&f.st)
}

// notifyingJob is a fakeJob with the checkpoint hook.
type notifyingJob struct {
	fakeJob
	hooks []func(checkpoint.CheckpointStats)
}

func (n *notifyingJob) OnCheckpointComplete(fn func(checkpoint.CheckpointStats)) {
	n.hooks = append(n.hooks, fn)
}

func (n *notifyingJob) complete(cs checkpoint.CheckpointStats) {
	for _, fn := range n.hooks {
		fn(cs)
	}
}

// newHandler returns the /metrics handler of a fresh collector over j.
func newHandler(t *testing.T, j metrics.Job, info metrics.JobInfo) (*metrics.Collector, http.Handler) {
	t.Helper()
	col := metrics.NewCollector()
	if err := col.Add(j, info); err != nil {
		t.Fatal(err)
	}
	reg, err := metrics.NewRegistry(col)
	if err != nil {
		t.Fatal(err)
	}
	return col, metrics.Handler(reg, nil)
}

func completed(id int64, trig time.Time, d time.Duration) checkpoint.CheckpointStats {
	return checkpoint.CheckpointStats{ID: id, Kind: checkpoint.KindCheckpoint, Status: checkpoint.StatusCompleted,
		TriggeredAt: trig, CompletedAt: trig.Add(d), Duration: d}
}

// fullStatus is a status with every field the collector reads set.
func fullStatus() sluice.JobStatus {
	wm := t0.Add(-3 * time.Second)
	return sluice.JobStatus{
		Restarts: 3, CheckpointsCompleted: 7, CheckpointsFailed: 2, LastCheckpointID: 9,
		LastRecovery: 1500 * time.Millisecond,
		StartedAt:    t0.Add(-time.Minute), AttemptStartedAt: t0.Add(-10 * time.Second),
		RestartsByCause: map[string]int64{sluice.CauseTaskFailure: 2, sluice.CauseCheckpointFailure: 1},
		Checkpoints: &checkpoint.Stats{Completed: 1, InProgress: 1, History: []checkpoint.CheckpointStats{
			func() checkpoint.CheckpointStats {
				c := completed(8, t0.Add(-5*time.Second), 2*time.Second)
				c.FullBytes, c.IncrementalBytes = 4096, 1024
				c.MaxAlignment, c.MaxSyncDuration, c.MaxAsyncDuration = 100*time.Millisecond, 20*time.Millisecond, 700*time.Millisecond
				return c
			}(),
			{ID: 9, Kind: checkpoint.KindCheckpoint, Status: checkpoint.StatusInProgress, TriggeredAt: t0.Add(-750 * time.Millisecond), Duration: 750 * time.Millisecond},
		}},
		Vertices: []sluice.VertexStatus{
			{Name: "kafka", UID: "src", Parallelism: 2, Watermark: wm, StateBytes: 100, Subtasks: []sluice.SubtaskStatus{
				{Index: 0, RecordsInTotal: 10, RecordsOutTotal: 10, BytesInTotal: 1000, BusyRatio: 0.25, IdleRatio: 0.25, BackpressuredRatio: 0.5,
					RecordsInRate: 5, RecordsOutRate: 5, OutputQueueFill: 0.75, Watermark: wm},
				{Index: 1, RecordsInTotal: 20, RecordsOutTotal: 20, BusyRatio: 1},
			}},
			{Name: "window", UID: "win", Parallelism: 1, LateDropped: 4, LateToSide: 6, StateBytes: 5000, Subtasks: []sluice.SubtaskStatus{
				{Index: 0, RecordsInTotal: 30, RecordsOutTotal: 3, InputQueueFill: 0.5, IdleRatio: 1},
			}},
			{Name: "sink", UID: "out", Parallelism: 1, Subtasks: []sluice.SubtaskStatus{{Index: 0, RecordsInTotal: 3, BytesOutTotal: 99}}},
		},
		Sources: []sluice.SourceStatus{{Vertex: "src", Name: "kafka", RecordsLagMax: 40, IdleSplits: 1, Splits: []sluice.SplitStatus{
			{Split: "in-0", Topic: "in", Partition: 0, Subtask: 0, Next: 10, End: 50, Lag: 40},
			{Split: "in-1", Topic: "in", Partition: 1, Subtask: 1, Next: 5, End: 5, Lag: 0, Idle: true},
			{Split: "in-2", Topic: "in", Partition: 2, Subtask: 0, Next: 0, End: -1, Lag: -1},
		}}},
		Sinks: []sluice.SinkStatus{{Vertex: "out", Name: "sink", TransactionsCommitted: 5, TransactionsAborted: 1,
			Commits: 1, CommitLatencySum: 30 * time.Millisecond, LastCommitLatency: 30 * time.Millisecond}},
	}
}

// TestCollectorExportsStatus: every metric of the status comes out with the
// value, type and labels docs/metrics.md gives it.
func TestCollectorExportsStatus(t *testing.T) {
	t.Parallel()
	j := &fakeJob{id: "j1", st: fullStatus()}
	clk := clock.NewFake(t0)
	_, h := newHandler(t, j, metrics.JobInfo{Name: "orders", CheckpointInterval: 5 * time.Second, CheckpointTimeout: time.Minute, Clock: clk})
	s := get(t, h)

	const jl = "job_name=orders"
	checks := []struct {
		name, labels string
		want         float64
	}{
		{"sluice_job_uptime_seconds", jl, 60},
		{"sluice_job_restarts_total", jl + ",cause=task-failure", 2},
		{"sluice_job_restarts_total", jl + ",cause=checkpoint-failure", 1},
		{"sluice_job_restarts_total", jl + ",cause=other", 0},
		{"sluice_job_last_recovery_duration_seconds", jl, 1.5},
		{"sluice_job_running", jl, 1},
		{"sluice_checkpoint_last_duration_seconds", jl, 2},
		{"sluice_checkpoint_in_progress_duration_seconds", jl, 0.75},
		{"sluice_checkpoint_last_size_bytes", jl + ",kind=full", 4096},
		{"sluice_checkpoint_last_size_bytes", jl + ",kind=incremental", 1024},
		{"sluice_checkpoint_last_alignment_seconds", jl, 0.1},
		{"sluice_checkpoint_last_sync_seconds", jl, 0.02},
		{"sluice_checkpoint_last_async_seconds", jl, 0.7},
		{"sluice_checkpoints_completed_total", jl, 7},
		{"sluice_checkpoints_failed_total", jl, 2},
		{"sluice_checkpoints_in_progress", jl, 1},
		{"sluice_checkpoint_last_completed_timestamp_seconds", jl, float64(t0.Add(-3 * time.Second).Unix())},
		{"sluice_checkpoint_interval_seconds", jl, 5},
		{"sluice_checkpoint_timeout_seconds", jl, 60},
		{"sluice_task_records_in_total", jl + ",task=kafka,subtask=1", 20},
		{"sluice_task_records_out_total", jl + ",task=window,subtask=0", 3},
		{"sluice_task_bytes_in_total", jl + ",task=kafka,subtask=0", 1000},
		{"sluice_task_bytes_out_total", jl + ",task=sink,subtask=0", 99},
		{"sluice_task_records_in_per_second", jl + ",task=kafka,subtask=0", 5},
		{"sluice_task_records_out_per_second", jl + ",task=kafka,subtask=0", 5},
		{"sluice_task_busy_ratio", jl + ",task=kafka,subtask=0", 0.25},
		{"sluice_task_idle_ratio", jl + ",task=kafka,subtask=0", 0.25},
		{"sluice_task_backpressured_ratio", jl + ",task=kafka,subtask=0", 0.5},
		{"sluice_task_input_queue_fill_ratio", jl + ",task=window,subtask=0", 0.5},
		{"sluice_task_output_queue_fill_ratio", jl + ",task=kafka,subtask=0", 0.75},
		{"sluice_task_watermark_timestamp_seconds", jl + ",task=kafka,subtask=0", float64(t0.Add(-3 * time.Second).Unix())},
		{"sluice_task_state_bytes", jl + ",task=window", 5000},
		{"sluice_window_late_records_dropped_total", jl + ",task=window", 4},
		{"sluice_window_late_records_side_output_total", jl + ",task=window", 6},
		{"sluice_source_consumer_lag_records", jl + ",source=kafka,topic=in,partition=0", 40},
		{"sluice_source_consumer_lag_records", jl + ",source=kafka,topic=in,partition=1", 0},
		{"sluice_source_records_lag_max", jl + ",source=kafka", 40},
		{"sluice_source_watermark_timestamp_seconds", jl + ",source=kafka", float64(t0.Add(-3 * time.Second).Unix())},
		{"sluice_source_watermark_lag_seconds", jl + ",source=kafka", 3},
		{"sluice_source_idle_splits", jl + ",source=kafka", 1},
		{"sluice_sink_transactions_committed_total", jl + ",sink=sink", 5},
		{"sluice_sink_transactions_aborted_total", jl + ",sink=sink", 1},
		{"sluice_sink_last_commit_latency_seconds", jl + ",sink=sink", 0.03},
	}
	for _, c := range checks {
		if got := s.value(t, c.name, c.labels); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%s{%s} = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// A split whose lag is unknown has no series (not a made-up 0).
	if m := s.find("sluice_source_consumer_lag_records", "partition=2"); m != nil {
		t.Errorf("lag of a split with unknown end exported: %v", m)
	}
	// Only subtask 0 of the source has a watermark.
	if m := s.find("sluice_task_watermark_timestamp_seconds", "task=kafka,subtask=1"); m != nil {
		t.Errorf("watermark of a subtask without one exported: %v", m)
	}
	if hh := s.hist(t, "sluice_checkpoint_duration_seconds", jl); hh.GetSampleCount() != 1 || hh.GetSampleSum() != 2 {
		t.Errorf("checkpoint histogram: count %d sum %v, want 1 and 2", hh.GetSampleCount(), hh.GetSampleSum())
	}
	if hh := s.hist(t, "sluice_sink_commit_latency_seconds", jl+",sink=sink"); hh.GetSampleCount() != 1 || math.Abs(hh.GetSampleSum()-0.03) > 1e-9 {
		t.Errorf("commit histogram: count %d sum %v, want 1 and 0.03", hh.GetSampleCount(), hh.GetSampleSum())
	}

	defs := checkSchema(t, s)
	for name := range defs {
		if s[name] == nil {
			t.Errorf("%s defined but not exported for a full status", name)
		}
	}
	// The Go and process collectors are on the registry.
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if s[name] == nil {
			t.Errorf("%s missing", name)
		}
	}
}

// TestCheckpointHistogramFromHistory: without the hook, each completed
// checkpoint of the coordinator's history is observed once, whatever the
// number of scrapes, in whatever order checkpoints and savepoints complete,
// and across a restart whose coordinator starts a new history.
func TestCheckpointHistogramFromHistory(t *testing.T) {
	t.Parallel()
	j := &fakeJob{id: "j"}
	_, h := newHandler(t, j, metrics.JobInfo{Name: "j"})
	count := func() (uint64, float64) {
		hh := get(t, h).hist(t, "sluice_checkpoint_duration_seconds", "job_name=j")
		return hh.GetSampleCount(), hh.GetSampleSum()
	}
	if n, _ := count(); n != 0 {
		t.Fatalf("histogram before any checkpoint: %d", n)
	}
	sp := checkpoint.CheckpointStats{ID: 2, Kind: checkpoint.KindSavepoint, Status: checkpoint.StatusInProgress, TriggeredAt: t0}
	j.set(func(st *sluice.JobStatus) {
		st.Checkpoints = &checkpoint.Stats{History: []checkpoint.CheckpointStats{completed(1, t0, time.Second), sp, completed(3, t0, 3*time.Second)}}
	})
	for range 3 {
		if n, sum := count(); n != 2 || sum != 4 {
			t.Fatalf("after checkpoints 1 and 3: count %d sum %v, want 2 and 4", n, sum)
		}
	}
	// The savepoint triggered before checkpoint 3 completes after it.
	j.set(func(st *sluice.JobStatus) {
		st.Checkpoints.History[1].Status = checkpoint.StatusCompleted
		st.Checkpoints.History[1].Duration = 10 * time.Second
	})
	if n, sum := count(); n != 3 || sum != 14 {
		t.Fatalf("after savepoint 2: count %d sum %v, want 3 and 14", n, sum)
	}
	// A restart: the new coordinator's history holds only its own ids.
	j.set(func(st *sluice.JobStatus) {
		st.Checkpoints = &checkpoint.Stats{}
	})
	if n, _ := count(); n != 3 {
		t.Fatalf("after the restart: count %d, want 3", n)
	}
	j.set(func(st *sluice.JobStatus) {
		st.Checkpoints = &checkpoint.Stats{History: []checkpoint.CheckpointStats{completed(5, t0, 500*time.Millisecond)}}
	})
	if n, sum := count(); n != 4 || sum != 14.5 {
		t.Fatalf("after checkpoint 5: count %d sum %v, want 4 and 14.5", n, sum)
	}
	// The histogram's buckets: 0.5 s is in le=0.5 (inclusive), 1 s in
	// le=1, 3 s in le=5, 10 s in le=10.
	hh := get(t, h).hist(t, "sluice_checkpoint_duration_seconds", "job_name=j")
	want := map[float64]uint64{0.25: 0, 0.5: 1, 1: 2, 2.5: 2, 5: 3, 10: 4, 600: 4}
	for _, b := range hh.GetBucket() {
		if w, ok := want[b.GetUpperBound()]; ok && b.GetCumulativeCount() != w {
			t.Errorf("bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), w)
		}
	}
}

// TestCheckpointHistogramHook: a job with the hook has each checkpoint
// observed when it completes, once, even when more than HistorySize
// complete between two scrapes, and its history is not read again.
func TestCheckpointHistogramHook(t *testing.T) {
	t.Parallel()
	j := &notifyingJob{fakeJob: fakeJob{id: "j"}}
	_, h := newHandler(t, j, metrics.JobInfo{Name: "j"})
	var hist []checkpoint.CheckpointStats
	n := checkpoint.HistorySize + 8
	for i := 1; i <= n; i++ {
		cs := completed(int64(i), t0, time.Second)
		j.complete(cs)
		hist = append(hist, cs)
	}
	j.set(func(st *sluice.JobStatus) {
		st.Checkpoints = &checkpoint.Stats{History: hist[len(hist)-checkpoint.HistorySize:]}
		st.CheckpointsCompleted = int64(n)
	})
	for range 2 {
		s := get(t, h)
		hh := s.hist(t, "sluice_checkpoint_duration_seconds", "job_name=j")
		if hh.GetSampleCount() != uint64(n) || hh.GetSampleSum() != float64(n) {
			t.Fatalf("count %d sum %v, want %d each", hh.GetSampleCount(), hh.GetSampleSum(), n)
		}
		if got := s.value(t, "sluice_checkpoints_completed_total", ""); got != float64(n) {
			t.Fatalf("completed_total %v, want %d", got, n)
		}
	}
}

// TestSinkCommitLatency: the commit histogram's count and sum follow the
// sink's counters exactly, however many commits happened between scrapes.
func TestSinkCommitLatency(t *testing.T) {
	t.Parallel()
	j := &fakeJob{id: "j"}
	_, h := newHandler(t, j, metrics.JobInfo{Name: "j"})
	sink := func(commits int64, sum, last time.Duration) {
		j.set(func(st *sluice.JobStatus) {
			st.Sinks = []sluice.SinkStatus{{Vertex: "out", Name: "kafka-out", Commits: commits, CommitLatencySum: sum, LastCommitLatency: last}}
		})
	}
	check := func(n uint64, sum float64, le0_01 uint64) {
		t.Helper()
		hh := get(t, h).hist(t, "sluice_sink_commit_latency_seconds", "sink=kafka-out")
		if hh.GetSampleCount() != n || math.Abs(hh.GetSampleSum()-sum) > 1e-9 {
			t.Fatalf("count %d sum %v, want %d and %v", hh.GetSampleCount(), hh.GetSampleSum(), n, sum)
		}
		for _, b := range hh.GetBucket() {
			if b.GetUpperBound() == 0.01 && b.GetCumulativeCount() != le0_01 {
				t.Fatalf("le=0.01: %d, want %d", b.GetCumulativeCount(), le0_01)
			}
		}
	}
	sink(0, 0, 0)
	check(0, 0, 0)
	sink(1, 5*time.Millisecond, 5*time.Millisecond)
	check(1, 0.005, 1)
	check(1, 0.005, 1)
	// Three more: 4 ms, 6 ms (mean 5 ms) and the newest, 200 ms.
	sink(4, 215*time.Millisecond, 200*time.Millisecond)
	check(4, 0.215, 3)
}

// TestRestartCauses: restarts the status does not attribute count as
// other, so the causes add up to the restarts; all three causes are
// always present, so a rate over them starts at the first restart.
func TestRestartCauses(t *testing.T) {
	t.Parallel()
	j := &fakeJob{id: "j"}
	_, h := newHandler(t, j, metrics.JobInfo{Name: "j"})
	s := get(t, h)
	for _, c := range []string{"task-failure", "checkpoint-failure", "other"} {
		if v := s.value(t, "sluice_job_restarts_total", "cause="+c); v != 0 {
			t.Errorf("%s before any restart: %v", c, v)
		}
	}
	j.set(func(st *sluice.JobStatus) {
		st.Restarts = 4
		st.RestartsByCause = map[string]int64{sluice.CauseTaskFailure: 2, sluice.CauseOther: 1}
	})
	s = get(t, h)
	if v := s.value(t, "sluice_job_restarts_total", "cause=task-failure"); v != 2 {
		t.Errorf("task-failure %v, want 2", v)
	}
	if v := s.value(t, "sluice_job_restarts_total", "cause=other"); v != 2 {
		t.Errorf("other %v, want 2 (1 + 1 unattributed)", v)
	}
}

// TestCollectorJobs: several jobs share a collector, told apart by
// job_name; a duplicate id or name is refused; SetRunning and Remove act on
// one job.
func TestCollectorJobs(t *testing.T) {
	t.Parallel()
	a, b := &fakeJob{id: "a"}, &fakeJob{id: "b"}
	col := metrics.NewCollector()
	if err := col.Add(a, metrics.JobInfo{Name: "alpha"}); err != nil {
		t.Fatal(err)
	}
	if err := col.Add(b, metrics.JobInfo{Name: "beta"}); err != nil {
		t.Fatal(err)
	}
	if err := col.Add(&fakeJob{id: "a"}, metrics.JobInfo{Name: "gamma"}); err == nil {
		t.Error("a second job with id a accepted")
	}
	if err := col.Add(&fakeJob{id: "c"}, metrics.JobInfo{Name: "alpha"}); err == nil || !strings.Contains(err.Error(), "job_name") {
		t.Errorf("a second job named alpha: %v, want an error naming job_name", err)
	}
	if err := col.Add(&fakeJob{id: "d"}, metrics.JobInfo{}); err == nil {
		t.Error("a job without a name accepted")
	}
	reg, err := metrics.NewRegistry(col)
	if err != nil {
		t.Fatal(err)
	}
	h := metrics.Handler(reg, nil)
	col.SetRunning("b", false)
	s := get(t, h)
	if s.value(t, "sluice_job_running", "job_name=alpha") != 1 || s.value(t, "sluice_job_running", "job_name=beta") != 0 {
		t.Errorf("running: %s", s.series("sluice_job_running"))
	}
	col.Remove("a")
	s = get(t, h)
	if s.find("sluice_job_running", "job_name=alpha") != nil || s.find("sluice_job_running", "job_name=beta") == nil {
		t.Errorf("after Remove(a): %s", s.series("sluice_job_running"))
	}
}

// TestTaskNamesUnique: two tasks of one name get distinct task labels, so
// the scrape does not fail on duplicate series.
func TestTaskNamesUnique(t *testing.T) {
	t.Parallel()
	j := &fakeJob{id: "j", st: sluice.JobStatus{Vertices: []sluice.VertexStatus{
		{Name: "map", UID: "m1", Subtasks: []sluice.SubtaskStatus{{RecordsInTotal: 1}}},
		{Name: "map", UID: "m2", Subtasks: []sluice.SubtaskStatus{{RecordsInTotal: 2}}},
	}}}
	_, h := newHandler(t, j, metrics.JobInfo{Name: "j"})
	s := get(t, h)
	if s.value(t, "sluice_task_records_in_total", "task=map (m1)") != 1 || s.value(t, "sluice_task_records_in_total", "task=map (m2)") != 2 {
		t.Errorf("records: %s", s.series("sluice_task_records_in_total"))
	}
}

// checkSchema checks every sluice_ series of s against the collector's
// definitions (docs/metrics.md): defined, of its type, with exactly its
// labels (so never the label job, which Prometheus owns). It returns the
// definitions by name.
func checkSchema(t *testing.T, s scrape) map[string]metrics.Def {
	t.Helper()
	defs := map[string]metrics.Def{}
	for _, d := range metrics.Defs() {
		defs[d.Name] = d
	}
	for name, mf := range s {
		if !strings.HasPrefix(name, "sluice_") {
			continue
		}
		d, ok := defs[name]
		if !ok {
			t.Errorf("%s exported but not defined", name)
			continue
		}
		if got := strings.ToLower(mf.GetType().String()); got != d.Type {
			t.Errorf("%s has type %s, want %s", name, got, d.Type)
		}
		for _, m := range mf.GetMetric() {
			var names []string
			for _, l := range m.GetLabel() {
				names = append(names, l.GetName())
			}
			if strings.Join(names, ",") != strings.Join(slices.Sorted(slices.Values(d.Labels)), ",") {
				t.Errorf("%s{%s}: labels %v, want %v", name, labels(m), names, d.Labels)
			}
		}
	}
	return defs
}
