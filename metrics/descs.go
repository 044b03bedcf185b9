package metrics

import "github.com/prometheus/client_golang/prometheus"

// The label names (docs/metrics.md). job_name, never job: Prometheus sets
// job on every series of a scrape target.
const (
	labelJob       = "job_name"
	labelCause     = "cause"
	labelKind      = "kind"
	labelTask      = "task"
	labelSubtask   = "subtask"
	labelSource    = "source"
	labelTopic     = "topic"
	labelPartition = "partition"
	labelSink      = "sink"
)

// metricDef is one metric the collector exports.
type metricDef struct {
	name   string
	kind   prometheus.ValueType // GaugeValue, CounterValue; histograms: see histogram
	hist   bool
	help   string
	labels []string
	desc   *prometheus.Desc
}

func def(name string, kind prometheus.ValueType, help string, labels ...string) *metricDef {
	return &metricDef{name: name, kind: kind, help: help, labels: append([]string{labelJob}, labels...)}
}

func histDef(name, help string, labels ...string) *metricDef {
	d := def(name, prometheus.UntypedValue, help, labels...)
	d.hist = true
	return d
}

const (
	gauge   = prometheus.GaugeValue
	counter = prometheus.CounterValue
)

// Every metric of the collector. The Help strings are short; docs/metrics.md
// has the full meaning of each (a test checks the two lists agree).
var (
	mUptime       = def("sluice_job_uptime_seconds", gauge, "Time since the job's run started.")
	mRestarts     = def("sluice_job_restarts_total", counter, "Attempts that failed and were restarted, by cause.", labelCause)
	mLastRecovery = def("sluice_job_last_recovery_duration_seconds", gauge, "Time from the last failure to the restarted tasks running; 0 if the job never restarted.")
	mRunning      = def("sluice_job_running", gauge, "1 while the job runs, 0 once it ended.")

	mCkDuration     = histDef("sluice_checkpoint_duration_seconds", "Duration of completed checkpoints and savepoints, trigger to completion, each observed once.")
	mCkLastDuration = def("sluice_checkpoint_last_duration_seconds", gauge, "Duration of the newest completed checkpoint or savepoint; 0 if none.")
	mCkInProgress   = def("sluice_checkpoint_in_progress_duration_seconds", gauge, "Time since the trigger of the oldest checkpoint in progress; 0 if none.")
	mCkLastSize     = def("sluice_checkpoint_last_size_bytes", gauge, "State size of the newest completed checkpoint: full (all state it describes) or incremental (written anew).", labelKind)
	mCkLastAlign    = def("sluice_checkpoint_last_alignment_seconds", gauge, "Longest barrier alignment of the newest completed checkpoint.")
	mCkLastSync     = def("sluice_checkpoint_last_sync_seconds", gauge, "Longest synchronous snapshot pause of the newest completed checkpoint.")
	mCkLastAsync    = def("sluice_checkpoint_last_async_seconds", gauge, "Longest asynchronous snapshot part of the newest completed checkpoint.")
	mCkCompleted    = def("sluice_checkpoints_completed_total", counter, "Checkpoints and savepoints completed over the run.")
	mCkFailed       = def("sluice_checkpoints_failed_total", counter, "Checkpoints and savepoints that failed, were declined or subsumed, over the run.")
	mCkPending      = def("sluice_checkpoints_in_progress", gauge, "Checkpoints and savepoints in progress now.")
	mCkLastTime     = def("sluice_checkpoint_last_completed_timestamp_seconds", gauge, "Unix time the newest checkpoint or savepoint completed; 0 if none in this run.")
	mCkInterval     = def("sluice_checkpoint_interval_seconds", gauge, "The configured checkpoint interval.")
	mCkTimeout      = def("sluice_checkpoint_timeout_seconds", gauge, "The configured checkpoint timeout.")

	mRecIn       = def("sluice_task_records_in_total", counter, "Records the subtask received, over every attempt (replays counted again).", labelTask, labelSubtask)
	mRecOut      = def("sluice_task_records_out_total", counter, "Records the subtask emitted, over every attempt (replays counted again).", labelTask, labelSubtask)
	mBytesIn     = def("sluice_task_bytes_in_total", counter, "Serialized bytes the subtask read (sources), over every attempt.", labelTask, labelSubtask)
	mBytesOut    = def("sluice_task_bytes_out_total", counter, "Serialized bytes the subtask wrote (sinks), over every attempt.", labelTask, labelSubtask)
	mRateIn      = def("sluice_task_records_in_per_second", gauge, "Records received per second over the sliding window.", labelTask, labelSubtask)
	mRateOut     = def("sluice_task_records_out_per_second", gauge, "Records emitted per second over the sliding window.", labelTask, labelSubtask)
	mBusy        = def("sluice_task_busy_ratio", gauge, "Share of the sliding window the subtask was busy.", labelTask, labelSubtask)
	mIdle        = def("sluice_task_idle_ratio", gauge, "Share of the sliding window the subtask waited for input.", labelTask, labelSubtask)
	mBackpress   = def("sluice_task_backpressured_ratio", gauge, "Share of the sliding window the subtask was blocked on a full output.", labelTask, labelSubtask)
	mInQueue     = def("sluice_task_input_queue_fill_ratio", gauge, "Mean fill of the subtask's input channels, 0 to 1.", labelTask, labelSubtask)
	mOutQueue    = def("sluice_task_output_queue_fill_ratio", gauge, "Mean fill of the subtask's output channels, 0 to 1.", labelTask, labelSubtask)
	mTaskWM      = def("sluice_task_watermark_timestamp_seconds", gauge, "The subtask's current watermark as Unix time; absent before the first.", labelTask, labelSubtask)
	mStateBytes  = def("sluice_task_state_bytes", gauge, "The task's state size in the last completed checkpoint.", labelTask)
	mLateDropped = def("sluice_window_late_records_dropped_total", counter, "Late records the task's window operators and interval joins dropped, over every attempt.", labelTask)
	mLateToSide  = def("sluice_window_late_records_side_output_total", counter, "Late records the task's window operators and interval joins sent to the late side output, over every attempt.", labelTask)

	mLag       = def("sluice_source_consumer_lag_records", gauge, "Records between the split's next position and its end (Kafka: the last stable offset); absent while unknown.", labelSource, labelTopic, labelPartition)
	mLagMax    = def("sluice_source_records_lag_max", gauge, "Largest known consumer lag over the source's splits; absent while none is known.", labelSource)
	mSourceWM  = def("sluice_source_watermark_timestamp_seconds", gauge, "The source task's watermark as Unix time; absent before the first.", labelSource)
	mSourceLag = def("sluice_source_watermark_lag_seconds", gauge, "Time between now and the source's watermark; absent before the first.", labelSource)
	mIdleSplit = def("sluice_source_idle_splits", gauge, "Splits of the source marked idle.", labelSource)

	mTxCommitted  = def("sluice_sink_transactions_committed_total", counter, "Sink transactions committed, over every attempt.", labelSink)
	mTxAborted    = def("sluice_sink_transactions_aborted_total", counter, "Sink transactions aborted, over every attempt.", labelSink)
	mCommitLat    = histDef("sluice_sink_commit_latency_seconds", "Time from a checkpoint's completion to the sink's commit done.", labelSink)
	mLastCommitLa = def("sluice_sink_last_commit_latency_seconds", gauge, "Latency of the sink's newest commit; 0 if none.", labelSink)
)

// allDefs lists every metric, in the order docs/metrics.md lists them.
var allDefs = []*metricDef{
	mUptime, mRestarts, mLastRecovery, mRunning,
	mCkDuration, mCkLastDuration, mCkInProgress, mCkLastSize, mCkLastAlign, mCkLastSync, mCkLastAsync,
	mCkCompleted, mCkFailed, mCkPending, mCkLastTime, mCkInterval, mCkTimeout,
	mRecIn, mRecOut, mBytesIn, mBytesOut, mRateIn, mRateOut, mBusy, mIdle, mBackpress, mInQueue, mOutQueue,
	mTaskWM, mStateBytes, mLateDropped, mLateToSide,
	mLag, mLagMax, mSourceWM, mSourceLag, mIdleSplit,
	mTxCommitted, mTxAborted, mCommitLat, mLastCommitLa,
}

func init() {
	for _, d := range allDefs {
		d.desc = prometheus.NewDesc(d.name, d.help, d.labels, nil)
	}
}
