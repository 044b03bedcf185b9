// Package sluice is a fault-tolerant, stateful stream processor in the mould
// of Apache Flink: you describe a dataflow of typed streams, and Sluice runs
// it in parallel with checkpointed state, replay from replayable sources and
// exactly-once output through two-phase-commit sinks.
//
//	env := sluice.New(sluice.Config{JobName: "count", CheckpointDir: "ckpt"})
//	src := sluice.FromSource(env, "input", datagen.New(datagen.Config{...}))
//	keyed := sluice.KeyBy(src, func(r datagen.Record) string { return r.Key })
//	counts := sluice.Process(keyed, "count", newCounter)
//	sluice.Sink(counts, "output", file.NewSink(...))
//	result, err := env.Execute(ctx)
//
// Every operator has a stable uid (by default its name) under which its
// state is stored in checkpoints and savepoints, so a new version of a job
// can restore an old snapshot. Keyed state is sharded into key groups (the
// job's max parallelism), which is what lets a job be restored at another
// parallelism.
package sluice

import (
	"math"
	"time"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/internal/runtime"
)

// Emitter receives records one call at a time: a source reader's Poll emits
// what it read into one, and chained operators call each other through
// them.
type Emitter[T any] interface {
	// Emit passes v downstream. An error stops the job attempt; the caller
	// returns it.
	Emit(v T) error
}

// JobStatus is a point-in-time view of a running job: its restarts,
// checkpoints and per-task counters (docs/design.md §8). It is a copy; the
// caller may keep it. Counters are over the whole run, every attempt
// included.
type JobStatus struct {
	// Restarts counts the attempts that failed and were restarted.
	Restarts int64
	// CheckpointsCompleted counts the checkpoints completed in this run.
	CheckpointsCompleted int64
	// CheckpointsFailed counts the checkpoints of this run that failed or
	// were declined.
	CheckpointsFailed int64
	// LastCheckpointID is the id of the newest checkpoint this run
	// completed, zero if none.
	LastCheckpointID int64
	// LastCheckpointAt is when checkpoint LastCheckpointID completed, zero
	// if none (the readiness check measures its age).
	LastCheckpointAt time.Time
	// LastRecovery is how long the last restart took, from the failure to
	// the new attempt running; zero if the job never restarted.
	LastRecovery time.Duration
	// Vertices holds the counters of each task (a chain of operators), in
	// plan order.
	Vertices []VertexStatus
	// Checkpoints is the checkpoint coordinator's view: counts, retained
	// checkpoints and recent history. Nil before the first attempt.
	Checkpoints *checkpoint.Stats

	// StartedAt is when Execute started the run (uptime is the time since);
	// AttemptStartedAt when the current attempt's tasks started.
	StartedAt        time.Time
	AttemptStartedAt time.Time // zero before the first attempt's tasks run
	// RestartsByCause splits Restarts by why the attempt ended: one of the
	// Cause* constants.
	RestartsByCause map[string]int64
	// LastFailure is the newest attempt failure, nil if none.
	LastFailure *FailureInfo
	// LastRestore is the newest restore from a checkpoint or savepoint (at
	// start or after a failure), nil if the job never restored.
	LastRestore *RestoreInfo
	// Edges are the shuffles between vertices, in plan order.
	Edges []EdgeStatus
	// Sources has one entry per source vertex that reports its splits.
	Sources []SourceStatus
	// Sinks has one entry per two-phase-commit sink vertex.
	Sinks []SinkStatus
}

// The causes of JobStatus.RestartsByCause.
const (
	// CauseTaskFailure: a task's operator, source or sink failed.
	CauseTaskFailure = "task-failure"
	// CauseCheckpointFailure: more consecutive checkpoint failures than
	// tolerated.
	CauseCheckpointFailure = "checkpoint-failure"
	// CauseOther: anything else (a lost coordinator, storage errors).
	CauseOther = "other"
)

// FailureInfo describes an attempt failure.
type FailureInfo struct {
	// At is when the failure was seen.
	At time.Time
	// Vertex and Subtask name the failed task, empty and -1 when the
	// failure was not a task's.
	Vertex  string
	Subtask int // -1 when the failure was not a task's
	// Cause is one of the Cause* constants.
	Cause string
	// Error is the failure's message.
	Error string
}

// RestoreInfo describes a restore.
type RestoreInfo struct {
	// At is when the restore began; Duration how long until the restored
	// tasks ran.
	At       time.Time
	Duration time.Duration // from At to the restored tasks running
	// CheckpointID and Path name what was restored; Kind is "checkpoint"
	// or "savepoint".
	CheckpointID int64
	Path         string          // the checkpoint's or savepoint's directory
	Kind         checkpoint.Kind // checkpoint or savepoint
}

// EdgeStatus is a shuffle between two vertices.
type EdgeStatus struct {
	// From and To are vertex uids.
	From, To string
	// Partitioning is "forward", "hash", "rebalance" or "broadcast".
	Partitioning string
	// QueueFill is the mean fill of the edge's channels, 0 to 1.
	QueueFill float64
}

// SourceStatus is one source vertex's view of its splits (for Kafka, its
// partitions).
type SourceStatus struct {
	// Vertex is the vertex uid; Name the source's name.
	Vertex, Name string
	// Splits has one entry per split being read.
	Splits []SplitStatus
	// RecordsLagMax is the largest known Lag over the splits, -1 if none
	// is known.
	RecordsLagMax int64
	// IdleSplits counts the splits marked idle.
	IdleSplits int
}

// SplitStatus is one split of a source.
type SplitStatus struct {
	// Split is the split id; Topic and Partition are set for Kafka.
	Split     string
	Topic     string // Kafka only
	Partition int32  // Kafka only
	// Subtask is the subtask reading it.
	Subtask int
	// Next is the position of the next record; End the split's end as last
	// seen (Kafka: the last stable offset under read_committed), -1 if
	// unknown; Lag is End-Next, -1 if unknown.
	Next, End, Lag int64
	// Watermark is the split's watermark, zero if none yet.
	Watermark time.Time
	// Idle says the split is marked idle.
	Idle bool
}

// SinkStatus is one two-phase-commit sink vertex, over every attempt.
type SinkStatus struct {
	// Vertex is the vertex uid; Name the sink's name.
	Vertex, Name string
	// TransactionsCommitted and TransactionsAborted count transactions.
	TransactionsCommitted int64
	TransactionsAborted   int64 // aborted by the sink: a failed or abandoned checkpoint's
	// Commits and CommitLatencySum give the mean commit latency (from the
	// checkpoint's completion to the commit done); LastCommitLatency is the
	// newest one.
	Commits           int64
	CommitLatencySum  time.Duration // over the Commits
	LastCommitLatency time.Duration // the newest commit's (the largest over the subtasks' newest)
}

// SubtaskStatus holds one subtask's counters (see VertexStatus for their
// meaning: these are one subtask's, not sums).
type SubtaskStatus struct {
	Index                                int       // the subtask's index
	RecordsInAttempt, RecordsOutAttempt  int64     // in the current attempt
	RecordsInTotal, RecordsOutTotal      int64     // over every attempt
	BytesInTotal, BytesOutTotal          int64     // serialized bytes, sources and sinks only
	BusyNanos, IdleNanos                 int64     // over every attempt
	BackpressuredNanos, AlignmentNanos   int64     // over every attempt
	BusyRatio, IdleRatio                 float64   // over the sliding window
	BackpressuredRatio                   float64   // over the sliding window
	RecordsInRate, RecordsOutRate        float64   // records per second over the window
	InputQueueFill, OutputQueueFill      float64   // mean channel fill now, 0 to 1
	Watermark                            time.Time // zero if none yet in this attempt
	LateRecords, LateDropped, LateToSide int64     // over every attempt
}

// VertexStatus sums the counters of one task's subtasks.
type VertexStatus struct {
	// Name is the name of the chain's first operator.
	Name string
	// Parallelism is the task's number of subtasks.
	Parallelism int
	// RecordsInAttempt counts the records the task received in the current
	// attempt: since the restored checkpoint, each record once.
	RecordsInAttempt int64
	// RecordsOutAttempt counts the records the task emitted downstream in
	// the current attempt.
	RecordsOutAttempt int64
	// RecordsInTotal counts the records the task received over every
	// attempt of this run: replayed records are counted again, so after a
	// restart it exceeds the input (docs/design.md §8).
	RecordsInTotal int64
	// RecordsOutTotal counts the records the task emitted over every
	// attempt, replays included.
	RecordsOutTotal int64
	// BusyNanos is the time the subtasks spent processing (records,
	// timers, snapshots), summed; backpressured time is not included.
	// Busy, idle and backpressured time are disjoint and add up to the
	// subtasks' running time, as Flink defines them.
	BusyNanos int64
	// IdleNanos is the time the subtasks waited for input, control mail or
	// a timer, summed.
	IdleNanos int64
	// BackpressuredNanos is the time the subtasks were blocked on a full
	// output edge, summed.
	BackpressuredNanos int64
	// AlignmentNanos is the time the subtasks spent aligning checkpoint
	// barriers (first barrier to last), summed; it overlaps the other
	// three.
	AlignmentNanos int64
	// LateRecords counts the records the task's window operators found
	// late, past the allowed lateness of all their windows, and those its
	// interval joins found at or below the watermark, over every attempt
	// (replays counted again): sent to the late side output, or dropped
	// when there is none (docs/design.md §14).
	LateRecords int64

	// UID is the vertex's uid (its first operator's); Operators the names
	// of the operators chained in it, in order.
	UID       string
	Operators []string // the chained operators' names, head first
	// LateDropped and LateToSide split LateRecords: dropped, or sent to
	// the late side output.
	LateDropped, LateToSide int64
	// BytesInTotal and BytesOutTotal count serialized bytes where records
	// are (de)serialized: read by a source, written by a sink; zero
	// elsewhere.
	BytesInTotal, BytesOutTotal int64
	// BusyRatio, IdleRatio and BackpressuredRatio are the shares of time
	// over the recent sliding window (docs/design.md §8), averaged over the
	// subtasks: disjoint, summing to 1 once the window has data.
	BusyRatio, IdleRatio, BackpressuredRatio float64
	// RecordsInRate and RecordsOutRate are records per second over the
	// same window, summed over the subtasks.
	RecordsInRate, RecordsOutRate float64
	// InputQueueFill and OutputQueueFill are the mean fill of the input
	// and output channels, 0 to 1.
	InputQueueFill, OutputQueueFill float64
	// Watermark is the smallest subtask watermark, zero if none yet.
	Watermark time.Time
	// StateBytes is the vertex's state size in the last completed
	// checkpoint.
	StateBytes int64
	// Subtasks holds each subtask's counters.
	Subtasks []SubtaskStatus
}

// jobStatus copies the runtime's status into the public type.
func jobStatus(s runtime.Status) JobStatus {
	js := JobStatus{
		Restarts:             s.Restarts,
		CheckpointsCompleted: s.CheckpointsCompleted,
		CheckpointsFailed:    s.CheckpointsFailed,
		LastCheckpointID:     s.LastCheckpointID,
		LastCheckpointAt:     s.LastCheckpointAt,
		LastRecovery:         s.LastRecovery,
		Checkpoints:          s.Checkpoints,
		StartedAt:            s.StartedAt,
		AttemptStartedAt:     s.AttemptStartedAt,
		RestartsByCause:      s.RestartsByCause,
	}
	if f := s.LastFailure; f != nil {
		js.LastFailure = &FailureInfo{At: f.At, Vertex: f.Vertex, Subtask: f.Subtask, Cause: f.Cause, Error: f.Error}
	}
	if r := s.LastRestore; r != nil {
		js.LastRestore = &RestoreInfo{At: r.At, Duration: r.Duration, CheckpointID: r.CheckpointID, Path: r.Path, Kind: r.Kind}
	}
	for _, e := range s.Edges {
		js.Edges = append(js.Edges, EdgeStatus{From: e.From, To: e.To, Partitioning: e.Partitioning, QueueFill: e.QueueFill})
	}
	for _, src := range s.Sources {
		ss := SourceStatus{Vertex: src.Vertex, Name: src.Name, RecordsLagMax: src.RecordsLagMax, IdleSplits: src.IdleSplits}
		for _, sp := range src.Splits {
			st := SplitStatus{Split: sp.Split, Topic: sp.Topic, Partition: sp.Partition, Subtask: sp.Subtask,
				Next: sp.Next, End: sp.End, Lag: sp.Lag, Idle: sp.Idle}
			if sp.HasWatermark {
				st.Watermark = time.Unix(0, sp.Watermark)
			}
			ss.Splits = append(ss.Splits, st)
		}
		js.Sources = append(js.Sources, ss)
	}
	for _, k := range s.Sinks {
		js.Sinks = append(js.Sinks, SinkStatus{Vertex: k.Vertex, Name: k.Name, TransactionsCommitted: k.TransactionsCommitted,
			TransactionsAborted: k.TransactionsAborted, Commits: k.Commits, CommitLatencySum: k.CommitLatencySum,
			LastCommitLatency: k.LastCommitLatency})
	}
	for _, v := range s.Vertices {
		vs := VertexStatus{
			Name: v.Name, Parallelism: v.Parallelism,
			RecordsInAttempt: v.RecordsInAttempt, RecordsOutAttempt: v.RecordsOutAttempt,
			RecordsInTotal: v.RecordsInTotal, RecordsOutTotal: v.RecordsOutTotal,
			BusyNanos: v.BusyNanos, IdleNanos: v.IdleNanos, BackpressuredNanos: v.BackpressuredNanos,
			AlignmentNanos: v.AlignmentNanos, LateRecords: v.LateRecords,
			UID: v.UID, Operators: v.Operators, LateDropped: v.LateDropped, LateToSide: v.LateToSide,
			BytesInTotal: v.BytesInTotal, BytesOutTotal: v.BytesOutTotal,
			BusyRatio: v.BusyRatio, IdleRatio: v.IdleRatio, BackpressuredRatio: v.BackpressuredRatio,
			RecordsInRate: v.RecordsInRate, RecordsOutRate: v.RecordsOutRate,
			InputQueueFill: v.InputQueueFill, OutputQueueFill: v.OutputQueueFill,
			Watermark: watermarkTime(v.Watermark, v.HasWatermark), StateBytes: v.StateBytes,
		}
		for _, st := range v.Subtasks {
			vs.Subtasks = append(vs.Subtasks, SubtaskStatus{
				Index:            st.Index,
				RecordsInAttempt: st.RecordsInAttempt, RecordsOutAttempt: st.RecordsOutAttempt,
				RecordsInTotal: st.RecordsInTotal, RecordsOutTotal: st.RecordsOutTotal,
				BytesInTotal: st.BytesInTotal, BytesOutTotal: st.BytesOutTotal,
				BusyNanos: st.BusyNanos, IdleNanos: st.IdleNanos,
				BackpressuredNanos: st.BackpressuredNanos, AlignmentNanos: st.AlignmentNanos,
				BusyRatio: st.BusyRatio, IdleRatio: st.IdleRatio, BackpressuredRatio: st.BackpressuredRatio,
				RecordsInRate: st.RecordsInRate, RecordsOutRate: st.RecordsOutRate,
				InputQueueFill: st.InputQueueFill, OutputQueueFill: st.OutputQueueFill,
				Watermark:   watermarkTime(st.Watermark, st.HasWatermark),
				LateRecords: st.LateRecords, LateDropped: st.LateDropped, LateToSide: st.LateToSide,
			})
		}
		js.Vertices = append(js.Vertices, vs)
	}
	return js
}

// watermarkTime is a watermark (nanoseconds since the epoch, as every
// event time: docs/design.md §14) as a time, zero when there is none yet
// or it is the end of event time's sentinel.
func watermarkTime(ns int64, ok bool) time.Time {
	if !ok || ns == math.MinInt64 || ns == math.MaxInt64 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// Collector collects the outputs of a user function. It remembers the first
// downstream error, which the operator returns after the function.
type Collector[T any] struct {
	out Emitter[T]
	err error
}

// Collect emits v downstream.
func (c *Collector[T]) Collect(v T) {
	if c.err == nil {
		c.err = c.out.Emit(v)
	}
}

func (c *Collector[T]) take() error {
	err := c.err
	c.err = nil
	return err
}
