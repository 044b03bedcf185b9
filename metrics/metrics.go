// Package metrics exports the status of running Sluice jobs as Prometheus
// metrics (docs/metrics.md lists them; docs/design.md §8 says how they are
// built).
//
// A Collector reads each job's sluice.JobStatus when it is scraped, so the
// engine's hot path pays nothing for the metrics: the tasks keep their
// counters as they always do, and the collector turns a copy of them into
// constant metrics. Only the two histograms (checkpoint duration and sink
// commit latency) have state of their own, which the collector folds in at
// completion (a hook the engine calls once per completed checkpoint) or at
// scrape time.
//
// A job binary gets the metrics on GET /metrics of its control endpoint
// (job.Main and sluice demo mount them). A program that embeds Sluice as a
// library registers a Collector on its own registry:
//
//	col := metrics.NewCollector()
//	if err := col.Add(env, metrics.Info(env.Config())); err != nil { ... }
//	reg.MustRegister(col)
package metrics

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/clock"
)

// Job is what a Collector reads: a *sluice.Environment.
type Job interface {
	// JobID identifies the run; Add refuses a second job with the same id.
	JobID() string
	// Status returns the job's counters as of now.
	Status() sluice.JobStatus
}

// CheckpointNotifier is implemented by a Job that calls a function once for
// every checkpoint or savepoint it completes (*sluice.Environment does).
// With it the checkpoint duration histogram observes every completed
// checkpoint exactly once, however many complete between two scrapes and
// across restarts; without it the collector reads the coordinator's
// bounded history at each scrape (see Collector).
type CheckpointNotifier interface {
	OnCheckpointComplete(fn func(checkpoint.CheckpointStats))
}

// JobInfo is what a Collector needs to know of a job besides its status.
type JobInfo struct {
	// Name is the job_name label.
	Name string
	// CheckpointInterval and CheckpointTimeout are exported as
	// sluice_checkpoint_interval_seconds and
	// sluice_checkpoint_timeout_seconds, which alert rules compare the
	// checkpoint durations with.
	CheckpointInterval, CheckpointTimeout time.Duration
	// Clock is the job's clock, which its status times come from (uptime
	// and watermark lag are measured against it). Default the wall clock.
	Clock clock.Clock
}

// Info returns the JobInfo of a job configured with cfg (pass
// Environment.Config(), which is what the job runs with): its JobName,
// checkpoint interval (0 when periodic checkpoints are off) and timeout,
// defaults applied, and its clock.
func Info(cfg sluice.Config) JobInfo {
	ck := cfg.Checkpoint.WithDefaults()
	ck.Interval = max(ck.Interval, 0)
	name := cfg.JobName
	if name == "" {
		name = "job"
	}
	return JobInfo{Name: name, CheckpointInterval: ck.Interval, CheckpointTimeout: ck.Timeout, Clock: cfg.Clock}
}

// Collector is a prometheus.Collector over one or more jobs. Every metric
// carries the job_name label. It is safe for concurrent use; scrapes are
// serialised by its mutex (each is a Status call per job and a few
// hundred constant metrics).
//
// The checkpoint duration histogram observes each completed checkpoint or
// savepoint once. For a Job that is a CheckpointNotifier it observes them
// as they complete. For any other Job it reads the coordinator's history
// at each scrape and observes the completed entries it has not observed
// yet, by id (ids only grow within a run, across attempts too); a
// checkpoint that left the history before a scrape saw it (more than
// checkpoint.HistorySize triggered between two scrapes, or completed by an
// attempt that failed before the next scrape) is then missing from the
// histogram, though sluice_checkpoints_completed_total still counts it.
//
// The sink commit latency histogram is fed from SinkStatus at each scrape:
// when n commits happened since the last scrape, it observes the newest
// latency once and the mean of the other n-1 n-1 times, so its count and
// sum are exact and only the spread of those n-1 over buckets is
// approximate.
type Collector struct {
	mu   sync.Mutex
	jobs []*jobState
}

// jobState is what the collector keeps per job.
type jobState struct {
	job  Job
	info JobInfo
	// running is cleared by SetRunning(false).
	running bool
	// notified: the job calls the checkpoint hook, so the history is not
	// read.
	notified bool
	// ckMu guards ckHist and last, which the hook updates from the job
	// master loop: it must not wait for a scrape in progress.
	ckMu   sync.Mutex
	ckHist *hist
	// seen holds the ids observed from the history, pruned below the
	// oldest id of the history read.
	seen map[int64]bool
	// last is the newest completed checkpoint observed in this run, kept
	// across attempts (the coordinator's history starts empty with each).
	last *checkpoint.CheckpointStats
	// sinks are the commit latency histograms and the counts already
	// folded in, by sink vertex uid.
	sinks map[string]*sinkState
}

type sinkState struct {
	h       *hist
	commits int64
	sum     time.Duration
}

// NewCollector returns a collector over no job yet.
func NewCollector() *Collector { return &Collector{} }

// Add adds a job. Its metrics carry job_name=info.Name; a job with the id
// or the name of one already added is refused (their series would
// collide). A CheckpointNotifier job gets the collector's hook: add it
// before it executes so that no checkpoint is missed.
func (c *Collector) Add(j Job, info JobInfo) error {
	if info.Name == "" {
		return errors.New("metrics: a job needs a name (job_name)")
	}
	if info.Clock == nil {
		info.Clock = clock.Real{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.jobs {
		if s.job.JobID() == j.JobID() {
			return fmt.Errorf("metrics: job %s already added", j.JobID())
		}
		if s.info.Name == info.Name {
			return fmt.Errorf("metrics: a job named %q already added (job_name must be unique)", info.Name)
		}
	}
	s := &jobState{job: j, info: info, running: true, ckHist: newHist(checkpointBuckets),
		seen: map[int64]bool{}, sinks: map[string]*sinkState{}}
	if n, ok := j.(CheckpointNotifier); ok {
		s.notified = true
		n.OnCheckpointComplete(func(cs checkpoint.CheckpointStats) {
			s.ckMu.Lock()
			defer s.ckMu.Unlock()
			s.observe(cs)
		})
	}
	c.jobs = append(c.jobs, s)
	return nil
}

// SetRunning sets sluice_job_running of job id: Add sets it, the program
// clears it when Execute returned (the metrics stay until Remove).
func (c *Collector) SetRunning(id string, running bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.jobs {
		if s.job.JobID() == id {
			s.running = running
		}
	}
}

// Remove drops job id and its series.
func (c *Collector) Remove(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, s := range c.jobs {
		if s.job.JobID() == id {
			c.jobs = append(c.jobs[:i], c.jobs[i+1:]...)
			return
		}
	}
}

// Describe sends the descriptor of every metric.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDefs {
		ch <- d.desc
	}
}

// Collect reads the status of every job and sends its metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.jobs {
		s.collect(ch)
	}
}

// NewRegistry returns a registry with the Go runtime and process
// collectors and cs.
func NewRegistry(cs ...prometheus.Collector) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	all := append([]prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	}, cs...)
	for _, col := range all {
		if err := reg.Register(col); err != nil {
			return nil, fmt.Errorf("metrics: register: %w", err)
		}
	}
	return reg, nil
}

// Handler serves g in the Prometheus text format (or OpenMetrics, as the
// scraper asks). A gathering error is logged to log (default
// slog.Default()) and what could be gathered is still served.
func Handler(g prometheus.Gatherer, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:      slogPrinter{log},
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// slogPrinter is promhttp's error log on a slog.Logger.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.log.Warn("metrics: " + fmt.Sprint(v...)) }

// observe folds a completed checkpoint into the histogram and the last
// checkpoint's gauges.
func (s *jobState) observe(cs checkpoint.CheckpointStats) {
	s.ckHist.add(cs.Duration.Seconds())
	if s.last == nil || cs.ID > s.last.ID {
		cs.Tasks = nil
		s.last = &cs
	}
}

// readHistory observes the completed checkpoints of the history not seen
// yet, for a job without the hook.
func (s *jobState) readHistory(st *checkpoint.Stats) {
	if st == nil || s.notified {
		return
	}
	if len(st.History) > 0 {
		oldest := st.History[0].ID
		for id := range s.seen {
			if id < oldest {
				delete(s.seen, id)
			}
		}
	} else {
		clear(s.seen)
	}
	for _, h := range st.History {
		if h.Status != checkpoint.StatusCompleted || s.seen[h.ID] {
			continue
		}
		s.seen[h.ID] = true
		s.observe(h)
	}
}

func (s *jobState) collect(ch chan<- prometheus.Metric) {
	st := s.job.Status()
	now := s.info.Clock.Now()
	job := s.info.Name
	g := func(d *metricDef, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d.desc, d.kind, v, append([]string{job}, labels...)...)
	}

	// Job.
	if !st.StartedAt.IsZero() {
		g(mUptime, max(0, now.Sub(st.StartedAt).Seconds()))
	}
	known := int64(0)
	for _, cause := range []string{sluice.CauseTaskFailure, sluice.CauseCheckpointFailure, sluice.CauseOther} {
		known += st.RestartsByCause[cause]
	}
	for cause, n := range st.RestartsByCause {
		switch cause {
		case sluice.CauseTaskFailure, sluice.CauseCheckpointFailure, sluice.CauseOther:
		default:
			g(mRestarts, float64(n), cause)
			known += n
		}
	}
	// A restart whose cause the status does not say counts as other, so
	// that the causes add up to the restarts.
	other := st.RestartsByCause[sluice.CauseOther] + max(0, st.Restarts-known)
	g(mRestarts, float64(st.RestartsByCause[sluice.CauseTaskFailure]), sluice.CauseTaskFailure)
	g(mRestarts, float64(st.RestartsByCause[sluice.CauseCheckpointFailure]), sluice.CauseCheckpointFailure)
	g(mRestarts, float64(other), sluice.CauseOther)
	g(mLastRecovery, st.LastRecovery.Seconds())
	g(mRunning, b2f(s.running))

	// Checkpoints.
	s.ckMu.Lock()
	s.readHistory(st.Checkpoints)
	ch <- s.ckHist.metric(mCkDuration.desc, job)
	last := checkpoint.CheckpointStats{}
	if s.last != nil {
		last = *s.last
	}
	s.ckMu.Unlock()
	var inProgress time.Duration
	pending := 0
	if cs := st.Checkpoints; cs != nil {
		pending = cs.InProgress
		for _, h := range cs.History {
			if h.Status == checkpoint.StatusInProgress {
				inProgress = max(inProgress, h.Duration)
			}
		}
	}
	g(mCkInProgress, inProgress.Seconds())
	g(mCkPending, float64(pending))
	g(mCkLastDuration, last.Duration.Seconds())
	g(mCkLastSize, float64(last.FullBytes), "full")
	g(mCkLastSize, float64(last.IncrementalBytes), "incremental")
	g(mCkLastAlign, last.MaxAlignment.Seconds())
	g(mCkLastSync, last.MaxSyncDuration.Seconds())
	g(mCkLastAsync, last.MaxAsyncDuration.Seconds())
	g(mCkLastTime, unixSeconds(last.CompletedAt))
	g(mCkCompleted, float64(st.CheckpointsCompleted))
	g(mCkFailed, float64(st.CheckpointsFailed))
	g(mCkInterval, s.info.CheckpointInterval.Seconds())
	g(mCkTimeout, s.info.CheckpointTimeout.Seconds())

	// Tasks.
	names := taskNames(st.Vertices)
	wmByUID := map[string]time.Time{}
	for i, v := range st.Vertices {
		task := names[i]
		wmByUID[v.UID] = v.Watermark
		for _, sub := range v.Subtasks {
			idx := strconv.Itoa(sub.Index)
			g(mRecIn, float64(sub.RecordsInTotal), task, idx)
			g(mRecOut, float64(sub.RecordsOutTotal), task, idx)
			g(mBytesIn, float64(sub.BytesInTotal), task, idx)
			g(mBytesOut, float64(sub.BytesOutTotal), task, idx)
			g(mRateIn, sub.RecordsInRate, task, idx)
			g(mRateOut, sub.RecordsOutRate, task, idx)
			g(mBusy, sub.BusyRatio, task, idx)
			g(mIdle, sub.IdleRatio, task, idx)
			g(mBackpress, sub.BackpressuredRatio, task, idx)
			g(mInQueue, sub.InputQueueFill, task, idx)
			g(mOutQueue, sub.OutputQueueFill, task, idx)
			if !sub.Watermark.IsZero() {
				g(mTaskWM, unixSeconds(sub.Watermark), task, idx)
			}
		}
		g(mStateBytes, float64(v.StateBytes), task)
		g(mLateDropped, float64(v.LateDropped), task)
		g(mLateToSide, float64(v.LateToSide), task)
	}

	// Sources.
	for _, src := range st.Sources {
		for _, sp := range src.Splits {
			if sp.Lag < 0 {
				continue
			}
			topic, part := sp.Topic, sp.Split
			if topic != "" {
				part = strconv.Itoa(int(sp.Partition))
			}
			g(mLag, float64(sp.Lag), src.Name, topic, part)
		}
		if src.RecordsLagMax >= 0 && len(src.Splits) > 0 {
			g(mLagMax, float64(src.RecordsLagMax), src.Name)
		}
		if wm := wmByUID[src.Vertex]; !wm.IsZero() {
			g(mSourceWM, unixSeconds(wm), src.Name)
			g(mSourceLag, max(0, now.Sub(wm).Seconds()), src.Name)
		}
		g(mIdleSplit, float64(src.IdleSplits), src.Name)
	}

	// Sinks.
	for _, sk := range st.Sinks {
		ss := s.sinks[sk.Vertex]
		if ss == nil {
			ss = &sinkState{h: newHist(commitBuckets)}
			s.sinks[sk.Vertex] = ss
		}
		ss.fold(sk)
		g(mTxCommitted, float64(sk.TransactionsCommitted), sk.Name)
		g(mTxAborted, float64(sk.TransactionsAborted), sk.Name)
		ch <- ss.h.metric(mCommitLat.desc, job, sk.Name)
		g(mLastCommitLa, sk.LastCommitLatency.Seconds(), sk.Name)
	}
}

// fold observes the commits of sk not folded in yet.
func (ss *sinkState) fold(sk sluice.SinkStatus) {
	n := sk.Commits - ss.commits
	sum := sk.CommitLatencySum - ss.sum
	if n < 0 || sum < 0 {
		// The counters went back (they should not): start again from them.
		ss.commits, ss.sum = sk.Commits, sk.CommitLatencySum
		return
	}
	if n == 0 {
		return
	}
	ss.commits, ss.sum = sk.Commits, sk.CommitLatencySum
	lastLat := min(sk.LastCommitLatency, sum)
	ss.h.add(lastLat.Seconds())
	if n > 1 {
		ss.h.addN((sum-lastLat).Seconds()/float64(n-1), uint64(n-1))
	}
}

// taskNames returns the task label of each vertex: its name, or, when two
// vertices share a name, the name and the uid.
func taskNames(vs []sluice.VertexStatus) []string {
	count := map[string]int{}
	for _, v := range vs {
		count[v.Name]++
	}
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.Name
		if count[v.Name] > 1 {
			id := v.UID
			if id == "" {
				id = strconv.Itoa(i)
			}
			out[i] = v.Name + " (" + id + ")"
		}
	}
	return out
}

func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
