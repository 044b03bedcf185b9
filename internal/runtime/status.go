package runtime

import (
	"errors"
	"maps"
	"math"
	"time"

	"github.com/sluicehq/sluice/checkpoint"
)

// The causes of a restart (Status.RestartsByCause); the same strings as
// sluice's Cause* constants.
const (
	CauseTaskFailure       = "task-failure"
	CauseCheckpointFailure = "checkpoint-failure"
	CauseOther             = "other"
)

// Status is a point-in-time view of a running job (docs/design.md §8).
type Status struct {
	// Restarts counts the attempts after the first.
	Restarts int64
	// CheckpointsCompleted and CheckpointsFailed count over every attempt.
	CheckpointsCompleted int64
	CheckpointsFailed    int64
	// LastCheckpointID is the newest checkpoint this run completed, 0 if none.
	LastCheckpointID int64
	// LastRecovery is the time from the last failure to the restarted
	// attempt's tasks running.
	LastRecovery time.Duration
	// Vertices has one entry per vertex, in plan order.
	Vertices []VertexStatus
	// Checkpoints is the current attempt's coordinator statistics, nil
	// before its first step. The Duration of a checkpoint in progress is
	// the time since its trigger as of this Status call.
	Checkpoints *checkpoint.Stats

	// StartedAt is when Run started; AttemptStartedAt when the current
	// attempt's tasks started (zero before).
	StartedAt, AttemptStartedAt time.Time
	// RestartsByCause splits Restarts by the Cause* of the failure.
	RestartsByCause map[string]int64
	// LastFailure is the newest attempt failure; LastRestore the newest
	// restore. Nil if none.
	LastFailure *FailureInfo
	LastRestore *RestoreInfo
	// Edges are the plan's edges with the current fill of their channels.
	Edges []EdgeStatus
	// Sources has one entry per source vertex whose reader reports splits.
	Sources []SourceStatus
	// Sinks has one entry per vertex holding a two-phase-commit sink.
	Sinks []SinkStatus
}

// FailureInfo describes an attempt failure.
type FailureInfo struct {
	At time.Time
	// Vertex and Subtask name the failed task; "" and -1 otherwise.
	Vertex  string
	Subtask int
	Cause   string
	Error   string
}

// RestoreInfo describes the restore of a checkpoint or savepoint.
type RestoreInfo struct {
	// At is when the attempt that restored began; Duration how long until
	// its tasks ran.
	At           time.Time
	Duration     time.Duration
	CheckpointID int64
	Path         string
	Kind         checkpoint.Kind
}

// EdgeStatus is one edge of the plan.
type EdgeStatus struct {
	// From and To are vertex uids.
	From, To     string
	Partitioning string
	// QueueFill is the mean len/cap of the edge's channels now.
	QueueFill float64
}

// SourceStatus is what a source vertex's readers report.
type SourceStatus struct {
	Vertex, Name string
	Splits       []SplitInfo
	// RecordsLagMax is the largest known split lag, -1 if none is known.
	RecordsLagMax int64
	IdleSplits    int
}

// SinkStatus sums a two-phase-commit sink vertex's counters.
type SinkStatus struct {
	Vertex, Name                               string
	TransactionsCommitted, TransactionsAborted int64
	Commits                                    int64
	CommitLatencySum, LastCommitLatency        time.Duration
}

// SubtaskStatus holds one subtask's counters.
type SubtaskStatus struct {
	Index                                int
	RecordsInAttempt, RecordsOutAttempt  int64
	RecordsInTotal, RecordsOutTotal      int64
	BytesInTotal, BytesOutTotal          int64
	BusyNanos, IdleNanos                 int64
	BackpressuredNanos, AlignmentNanos   int64
	BusyRatio, IdleRatio                 float64
	BackpressuredRatio                   float64
	RecordsInRate, RecordsOutRate        float64
	InputQueueFill, OutputQueueFill      float64
	LateRecords, LateDropped, LateToSide int64
	// Watermark is in nanoseconds since the epoch (event time's unit);
	// HasWatermark says whether there is one in the current attempt.
	Watermark    int64
	HasWatermark bool
}

// VertexStatus sums the counters of a vertex's subtasks.
//
// Record counts come in two kinds. The Attempt counts start from zero when
// an attempt starts, so after a restore they count each record the attempt
// handled once: what the job did since the checkpoint it restored. The Total
// counts add up every attempt, so records replayed after a restore are
// counted again each time: the work done, not the input size.
//
// The time counters add up every subtask and every attempt. A subtask's
// running time is split into three disjoint parts, as Flink defines them
// (busyTimeMsPerSecond, idleTimeMsPerSecond, backPressuredTimeMsPerSecond):
// BusyNanos + IdleNanos + BackpressuredNanos is the time the subtasks ran.
type VertexStatus struct {
	Name        string
	UID         string
	Operators   []string
	Parallelism int
	// RecordsInAttempt and RecordsOutAttempt count the current attempt.
	RecordsInAttempt  int64
	RecordsOutAttempt int64
	// RecordsInTotal and RecordsOutTotal count every attempt, replays
	// included.
	RecordsInTotal  int64
	RecordsOutTotal int64
	// BusyNanos is the time spent processing (records, timers, snapshots),
	// backpressured time excluded.
	BusyNanos int64
	// IdleNanos is the time spent waiting for input, control mail or a
	// timer.
	IdleNanos int64
	// BackpressuredNanos is the time spent blocked on a full output channel.
	BackpressuredNanos int64
	// AlignmentNanos is the time from the first barrier of a checkpoint to
	// the last, summed over checkpoints; it overlaps the other three.
	AlignmentNanos int64
	// LateRecords counts the records the task's window operators found
	// late, over every attempt; LateToSide went to a late side output,
	// LateDropped were dropped.
	LateRecords, LateDropped, LateToSide int64
	BytesInTotal, BytesOutTotal          int64
	// The ratios are the subtasks' means over the sliding window, the
	// rates their sums.
	BusyRatio, IdleRatio, BackpressuredRatio float64
	RecordsInRate, RecordsOutRate            float64
	// InputQueueFill and OutputQueueFill are the mean fill of the
	// subtasks' input and output channels.
	InputQueueFill, OutputQueueFill float64
	// Watermark is the smallest subtask watermark (ns), HasWatermark false
	// while a subtask has none.
	Watermark    int64
	HasWatermark bool
	// StateBytes is the vertex's state in the newest completed checkpoint.
	StateBytes int64
	Subtasks   []SubtaskStatus
}

// runInfo is the job's record of its run for Status (under Job.infoMu).
type runInfo struct {
	startedAt, attemptStartedAt time.Time
	byCause                     map[string]int64
	lastFailure                 *FailureInfo
	lastRestore                 *RestoreInfo
	// channels are the current attempt's edges, by edge id.
	channels map[int]any
}

// taskError is the error of a task of the attempt: it names the task, for
// Status.LastFailure, and reads as the error it wraps.
type taskError struct {
	id  checkpoint.TaskID
	err error
}

func (e *taskError) Error() string { return e.err.Error() }
func (e *taskError) Unwrap() error { return e.err }

// checkpointError wraps the failure of an attempt that checkpointing
// caused: failures beyond tolerance, or a failed stop snapshot.
type checkpointError struct{ err error }

func (e *checkpointError) Error() string { return e.err.Error() }
func (e *checkpointError) Unwrap() error { return e.err }

// failed records the failure of an attempt at now and returns its cause.
func (j *Job) failed(err error, now time.Time) string {
	fi := &FailureInfo{At: now, Subtask: -1, Cause: CauseOther, Error: err.Error()}
	var te *taskError
	var ce *checkpointError
	switch {
	case errors.As(err, &te):
		fi.Cause, fi.Vertex, fi.Subtask = CauseTaskFailure, te.id.Vertex, te.id.Subtask
	case errors.As(err, &ce):
		fi.Cause = CauseCheckpointFailure
	}
	j.infoMu.Lock()
	j.info.lastFailure = fi
	j.infoMu.Unlock()
	return fi.Cause
}

// restarted counts a restart after a failure of cause.
func (j *Job) restarted(cause string) {
	j.infoMu.Lock()
	if j.info.byCause == nil {
		j.info.byCause = map[string]int64{}
	}
	j.info.byCause[cause]++
	j.infoMu.Unlock()
	j.restarts.Add(1)
}

func (j *Job) statusWindow() time.Duration {
	if j.cfg.StatusWindow > 0 {
		return j.cfg.StatusWindow
	}
	return DefaultStatusWindow
}

// fillSum accumulates the fill of channels.
type fillSum struct {
	sum float64
	n   int
}

func (f *fillSum) add(n, c int) {
	if c > 0 {
		f.sum += float64(n) / float64(c)
	}
	f.n++
}

func (f fillSum) mean() float64 {
	if f.n == 0 {
		return 0
	}
	return f.sum / float64(f.n)
}

type subKey struct{ vertex, sub int }

// Status returns the job's counters (docs/design.md §8). The ratios and
// rates are over the sliding window Config.StatusWindow that ends now; the
// call also samples the counters for later windows.
func (j *Job) Status() Status {
	now := j.clock.Now()
	s := Status{
		Restarts:             j.restarts.Load(),
		CheckpointsCompleted: j.completed.Load(),
		CheckpointsFailed:    j.failedCP.Load(),
		LastCheckpointID:     j.lastCompleted.Load(),
		LastRecovery:         time.Duration(j.lastRecovery.Load()),
	}
	if cs := j.coordStats.Load(); cs != nil {
		st := cs.At(now)
		s.Checkpoints = &st
	}
	j.infoMu.Lock()
	s.StartedAt, s.AttemptStartedAt = j.info.startedAt, j.info.attemptStartedAt
	s.RestartsByCause = maps.Clone(j.info.byCause)
	if f := j.info.lastFailure; f != nil {
		c := *f
		s.LastFailure = &c
	}
	if r := j.info.lastRestore; r != nil {
		c := *r
		s.LastRestore = &c
	}
	channels := j.info.channels
	j.infoMu.Unlock()
	if s.RestartsByCause == nil {
		s.RestartsByCause = map[string]int64{}
	}

	// Queue fill: per edge, and per subtask on each side.
	inFill, outFill := map[subKey]*fillSum{}, map[subKey]*fillSum{}
	at := func(m map[subKey]*fillSum, k subKey) *fillSum {
		f := m[k]
		if f == nil {
			f = &fillSum{}
			m[k] = f
		}
		return f
	}
	for _, e := range j.plan.Edges {
		es := EdgeStatus{From: j.plan.Vertices[e.From].UID, To: j.plan.Vertices[e.To].UID, Partitioning: e.Partitioning.String()}
		if qf, ok := channels[e.ID].(queueFiller); ok {
			up, down := qf.dims()
			var ef fillSum
			for u := 0; u < up; u++ {
				for d := 0; d < down; d++ {
					if e.Partitioning == Forward && up == down && u != d {
						continue
					}
					n, c := qf.fill(u, d)
					ef.add(n, c)
					at(outFill, subKey{e.From, u}).add(n, c)
					at(inFill, subKey{e.To, d}).add(n, c)
				}
			}
			es.QueueFill = ef.mean()
		}
		s.Edges = append(s.Edges, es)
	}

	meta := j.lastMeta.Load()
	w := j.statusWindow()
	for _, v := range j.plan.Vertices {
		vs := VertexStatus{Name: v.Name, UID: v.UID, Parallelism: v.Parallelism, HasWatermark: v.Parallelism > 0, Watermark: math.MaxInt64}
		vs.Operators = append([]string(nil), v.Names...)
		if len(vs.Operators) == 0 {
			vs.Operators = append([]string(nil), v.UIDs...)
		}
		var src *SourceStatus
		var sink *SinkStatus
		for i := 0; i < v.Parallelism; i++ {
			st := j.taskStats(checkpoint.TaskID{Vertex: v.UID, Subtask: i})
			win := st.Window(now, w)
			ss := SubtaskStatus{
				Index:            i,
				RecordsInAttempt: st.AttemptRecordsIn(), RecordsOutAttempt: st.AttemptRecordsOut(),
				RecordsInTotal: win.Now.RecordsIn, RecordsOutTotal: win.Now.RecordsOut,
				BytesInTotal: st.BytesIn.Load(), BytesOutTotal: st.BytesOut.Load(),
				BusyNanos: win.Now.Busy, IdleNanos: win.Now.Idle, BackpressuredNanos: win.Now.BP,
				AlignmentNanos: st.AlignmentNanos.Load(),
				BusyRatio:      win.Busy, IdleRatio: win.Idle, BackpressuredRatio: win.Backpressured,
				RecordsInRate: win.RecordsInRate, RecordsOutRate: win.RecordsOutRate,
				LateRecords: st.LateRecords.Load(), LateToSide: st.LateToSide.Load(),
			}
			ss.LateDropped = max(ss.LateRecords-ss.LateToSide, 0)
			if f := inFill[subKey{v.ID, i}]; f != nil {
				ss.InputQueueFill = f.mean()
			}
			if f := outFill[subKey{v.ID, i}]; f != nil {
				ss.OutputQueueFill = f.mean()
			}
			ss.Watermark, ss.HasWatermark = st.Watermark()
			if ss.HasWatermark {
				vs.Watermark = min(vs.Watermark, ss.Watermark)
			} else {
				vs.HasWatermark = false
			}
			vs.RecordsInAttempt += ss.RecordsInAttempt
			vs.RecordsOutAttempt += ss.RecordsOutAttempt
			vs.RecordsInTotal += ss.RecordsInTotal
			vs.RecordsOutTotal += ss.RecordsOutTotal
			vs.BytesInTotal += ss.BytesInTotal
			vs.BytesOutTotal += ss.BytesOutTotal
			vs.BusyNanos += ss.BusyNanos
			vs.IdleNanos += ss.IdleNanos
			vs.BackpressuredNanos += ss.BackpressuredNanos
			vs.AlignmentNanos += ss.AlignmentNanos
			vs.LateRecords += ss.LateRecords
			vs.LateToSide += ss.LateToSide
			vs.LateDropped += ss.LateDropped
			vs.BusyRatio += ss.BusyRatio / float64(v.Parallelism)
			vs.IdleRatio += ss.IdleRatio / float64(v.Parallelism)
			vs.BackpressuredRatio += ss.BackpressuredRatio / float64(v.Parallelism)
			vs.RecordsInRate += ss.RecordsInRate
			vs.RecordsOutRate += ss.RecordsOutRate
			vs.InputQueueFill += ss.InputQueueFill / float64(v.Parallelism)
			vs.OutputQueueFill += ss.OutputQueueFill / float64(v.Parallelism)
			vs.Subtasks = append(vs.Subtasks, ss)

			if splits, ok := st.Splits(); ok {
				if src == nil {
					src = &SourceStatus{Vertex: v.UID, Name: v.Name, RecordsLagMax: -1}
				}
				for _, sp := range splits {
					src.Splits = append(src.Splits, sp)
					if sp.Lag >= 0 {
						src.RecordsLagMax = max(src.RecordsLagMax, sp.Lag)
					}
					if sp.Idle {
						src.IdleSplits++
					}
				}
			}
			if name, ok := st.Sink(); ok {
				if sink == nil {
					sink = &SinkStatus{Vertex: v.UID, Name: name}
				}
				sink.TransactionsCommitted += st.TxCommitted.Load()
				sink.TransactionsAborted += st.TxAborted.Load()
				sink.Commits += st.Commits.Load()
				sink.CommitLatencySum += time.Duration(st.CommitNanos.Load())
				if l := time.Duration(st.LastCommitNanos.Load()); l > 0 {
					// The newest among the subtasks is not known; the
					// largest of their newest is the one worth seeing.
					sink.LastCommitLatency = max(sink.LastCommitLatency, l)
				}
			}
		}
		if !vs.HasWatermark {
			vs.Watermark = math.MinInt64
		}
		if meta != nil {
			vs.StateBytes = stateBytes(meta, v.UIDs)
		}
		s.Vertices = append(s.Vertices, vs)
		if src != nil {
			s.Sources = append(s.Sources, *src)
		}
		if sink != nil {
			s.Sinks = append(s.Sinks, *sink)
		}
	}
	return s
}

// stateBytes is the size of the state of the operators uids in m: their
// keyed state files and their operator state.
func stateBytes(m *checkpoint.Metadata, uids []string) int64 {
	var n int64
	for _, uid := range uids {
		os := m.Operators[uid]
		if os == nil {
			continue
		}
		for _, st := range os.Subtasks {
			if st == nil {
				continue
			}
			for _, h := range st.Keyed {
				n += h.Size
			}
			for _, es := range st.Operator {
				for _, e := range es {
					n += int64(len(e))
				}
			}
		}
	}
	return n
}
