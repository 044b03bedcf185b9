package httpapi

import (
	"cmp"
	"math"
	"slices"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
)

// The JSON answers of the read routes. Durations are integer milliseconds
// in fields ending in Ms; times are RFC 3339 strings, omitted when unknown;
// watermarks are milliseconds since the Unix epoch, omitted when none yet.

// Backpressure levels of a task, as Flink's web UI shows them, from its
// backpressured ratio over the sliding window (docs/design.md §8): OK below
// LowBackpressure, LOW below HighBackpressure, HIGH from there.
const (
	LevelOK   = "OK"
	LevelLow  = "LOW"
	LevelHigh = "HIGH"

	LowBackpressure  = 0.10
	HighBackpressure = 0.30
)

// BackpressureLevel returns the level of a backpressured ratio.
func BackpressureLevel(ratio float64) string {
	switch {
	case ratio >= HighBackpressure:
		return LevelHigh
	case ratio >= LowBackpressure:
		return LevelLow
	}
	return LevelOK
}

// JobOverview is the answer of GET /api/v1/jobs/{id}.
type JobOverview struct {
	ID              string           `json:"id"`
	Name            string           `json:"name"`
	Status          string           `json:"status"`
	StartedAt       time.Time        `json:"startedAt,omitzero"`
	UptimeMs        int64            `json:"uptimeMs"`
	Restarts        int64            `json:"restarts"`
	RestartsByCause map[string]int64 `json:"restartsByCause"`
	LastRecoveryMs  int64            `json:"lastRecoveryMs"`
	Checkpoints     CheckpointCounts `json:"checkpoints"`
	Vertices        []VertexView     `json:"vertices"`
	Edges           []EdgeView       `json:"edges"`
	Sources         []SourceView     `json:"sources"`
	Sinks           []SinkView       `json:"sinks"`
}

// CheckpointCounts are a job's checkpoint counters: Completed, Failed and
// LastCompletedID over the whole run; InProgress, Subsumed,
// ConsecutiveFailures and Retained from the current attempt's coordinator.
type CheckpointCounts struct {
	Completed           int64   `json:"completed"`
	Failed              int64   `json:"failed"`
	InProgress          int     `json:"inProgress"`
	Subsumed            int     `json:"subsumed"`
	ConsecutiveFailures int     `json:"consecutiveFailures"`
	LastCompletedID     int64   `json:"lastCompletedId"`
	Retained            []int64 `json:"retained"`
}

// VertexView is one task (a chain of operators) summed over its subtasks.
type VertexView struct {
	ID                 string   `json:"id"`
	Name               string   `json:"name"`
	Operators          []string `json:"operators"`
	Parallelism        int      `json:"parallelism"`
	RecordsInTotal     int64    `json:"recordsInTotal"`
	RecordsOutTotal    int64    `json:"recordsOutTotal"`
	RecordsInAttempt   int64    `json:"recordsInAttempt"`
	RecordsOutAttempt  int64    `json:"recordsOutAttempt"`
	BytesInTotal       int64    `json:"bytesInTotal"`
	BytesOutTotal      int64    `json:"bytesOutTotal"`
	RecordsInRate      float64  `json:"recordsInRate"`
	RecordsOutRate     float64  `json:"recordsOutRate"`
	BusyRatio          float64  `json:"busyRatio"`
	IdleRatio          float64  `json:"idleRatio"`
	BackpressuredRatio float64  `json:"backpressuredRatio"`
	BackpressureLevel  string   `json:"backpressureLevel"`
	BusyMs             int64    `json:"busyMs"`
	IdleMs             int64    `json:"idleMs"`
	BackpressuredMs    int64    `json:"backpressuredMs"`
	AlignmentMs        int64    `json:"alignmentMs"`
	InputQueueFill     float64  `json:"inputQueueFill"`
	OutputQueueFill    float64  `json:"outputQueueFill"`
	Watermark          *int64   `json:"watermark,omitempty"`
	LateRecords        int64    `json:"lateRecords"`
	LateDropped        int64    `json:"lateDropped"`
	LateToSide         int64    `json:"lateToSide"`
	StateBytes         int64    `json:"stateBytes"`
}

// VertexDetail is the answer of GET /api/v1/jobs/{id}/vertices/{vid}: the
// vertex and each of its subtasks.
type VertexDetail struct {
	VertexView
	Subtasks []SubtaskView `json:"subtasks"`
}

// SubtaskView is one subtask's counters.
type SubtaskView struct {
	Index              int     `json:"index"`
	RecordsInTotal     int64   `json:"recordsInTotal"`
	RecordsOutTotal    int64   `json:"recordsOutTotal"`
	RecordsInAttempt   int64   `json:"recordsInAttempt"`
	RecordsOutAttempt  int64   `json:"recordsOutAttempt"`
	BytesInTotal       int64   `json:"bytesInTotal"`
	BytesOutTotal      int64   `json:"bytesOutTotal"`
	RecordsInRate      float64 `json:"recordsInRate"`
	RecordsOutRate     float64 `json:"recordsOutRate"`
	BusyRatio          float64 `json:"busyRatio"`
	IdleRatio          float64 `json:"idleRatio"`
	BackpressuredRatio float64 `json:"backpressuredRatio"`
	BackpressureLevel  string  `json:"backpressureLevel"`
	BusyMs             int64   `json:"busyMs"`
	IdleMs             int64   `json:"idleMs"`
	BackpressuredMs    int64   `json:"backpressuredMs"`
	AlignmentMs        int64   `json:"alignmentMs"`
	InputQueueFill     float64 `json:"inputQueueFill"`
	OutputQueueFill    float64 `json:"outputQueueFill"`
	Watermark          *int64  `json:"watermark,omitempty"`
	LateRecords        int64   `json:"lateRecords"`
	LateDropped        int64   `json:"lateDropped"`
	LateToSide         int64   `json:"lateToSide"`
}

// EdgeView is a shuffle between two vertices (by vertex id).
type EdgeView struct {
	From         string  `json:"from"`
	To           string  `json:"to"`
	Partitioning string  `json:"partitioning"`
	QueueFill    float64 `json:"queueFill"`
}

// SourceView is a source vertex's splits (Kafka: partitions) and lag.
type SourceView struct {
	ID            string      `json:"id"`
	Name          string      `json:"name"`
	RecordsLagMax int64       `json:"recordsLagMax"`
	IdleSplits    int         `json:"idleSplits"`
	Splits        []SplitView `json:"splits"`
}

// SplitView is one split of a source; End and Lag are -1 when unknown.
type SplitView struct {
	Split     string `json:"split"`
	Topic     string `json:"topic,omitempty"`
	Partition int32  `json:"partition"`
	Subtask   int    `json:"subtask"`
	Next      int64  `json:"next"`
	End       int64  `json:"end"`
	Lag       int64  `json:"lag"`
	Watermark *int64 `json:"watermark,omitempty"`
	Idle      bool   `json:"idle"`
}

// SinkView is a two-phase-commit sink vertex's transactions.
type SinkView struct {
	ID                    string `json:"id"`
	Name                  string `json:"name"`
	TransactionsCommitted int64  `json:"transactionsCommitted"`
	TransactionsAborted   int64  `json:"transactionsAborted"`
	Commits               int64  `json:"commits"`
	MeanCommitLatencyMs   int64  `json:"meanCommitLatencyMs"`
	LastCommitLatencyMs   int64  `json:"lastCommitLatencyMs"`
}

// Plan is the answer of GET /api/v1/jobs/{id}/plan: the job graph.
type Plan struct {
	Vertices []PlanVertex `json:"vertices"`
	Edges    []PlanEdge   `json:"edges"`
}

// PlanVertex is a vertex of the plan.
type PlanVertex struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Operators   []string `json:"operators"`
	Parallelism int      `json:"parallelism"`
}

// PlanEdge is an edge of the plan.
type PlanEdge struct {
	From         string `json:"from"`
	To           string `json:"to"`
	Partitioning string `json:"partitioning"`
}

// CheckpointOverview is the answer of GET /api/v1/jobs/{id}/checkpoints.
type CheckpointOverview struct {
	Counts CheckpointCounts  `json:"counts"`
	Latest LatestCheckpoints `json:"latest"`
	// History is the current attempt's recent snapshots, oldest first
	// (at most checkpoint.HistorySize).
	History []CheckpointSummary `json:"history"`
}

// LatestCheckpoints names the newest completed checkpoint, failed
// checkpoint and savepoint of the history, and the latest restore; each is
// null when there is none.
type LatestCheckpoints struct {
	Completed *CheckpointSummary `json:"completed"`
	Failed    *CheckpointSummary `json:"failed"`
	Savepoint *CheckpointSummary `json:"savepoint"`
	Restored  *RestoreView       `json:"restored"`
}

// CheckpointSummary is one checkpoint or savepoint of the history.
type CheckpointSummary struct {
	ID               int64     `json:"id"`
	Kind             string    `json:"kind"`
	Stop             bool      `json:"stop"`
	Status           string    `json:"status"`
	TriggeredAt      time.Time `json:"triggeredAt,omitzero"`
	CompletedAt      time.Time `json:"completedAt,omitzero"`
	DurationMs       int64     `json:"durationMs"`
	Bytes            int64     `json:"bytes"`
	FullBytes        int64     `json:"fullBytes"`
	IncrementalBytes int64     `json:"incrementalBytes"`
	AlignmentMs      int64     `json:"alignmentMs"`
	SyncMs           int64     `json:"syncMs"`
	AsyncMs          int64     `json:"asyncMs"`
	Acked            int       `json:"acked"`
	Total            int       `json:"total"`
	FailureReason    string    `json:"failureReason,omitempty"`
}

// CheckpointDetail is the answer of GET /api/v1/jobs/{id}/checkpoints/{cid}.
type CheckpointDetail struct {
	CheckpointSummary
	// Tasks has one entry per subtask that acked, by vertex then subtask.
	Tasks []TaskCheckpointView `json:"tasks"`
}

// TaskCheckpointView is one subtask's part of a checkpoint.
type TaskCheckpointView struct {
	Vertex      string    `json:"vertex"`
	Subtask     int       `json:"subtask"`
	AckedAt     time.Time `json:"ackedAt,omitzero"`
	DurationMs  int64     `json:"durationMs"`
	Bytes       int64     `json:"bytes"`
	AlignmentMs int64     `json:"alignmentMs"`
	SyncMs      int64     `json:"syncMs"`
	AsyncMs     int64     `json:"asyncMs"`
}

// TriggerCheckpointResponse is the answer of POST
// /api/v1/jobs/{id}/checkpoints.
type TriggerCheckpointResponse struct {
	ID int64 `json:"id"`
}

// Exceptions is the answer of GET /api/v1/jobs/{id}/exceptions.
type Exceptions struct {
	Failure *FailureView `json:"failure"`
	Restore *RestoreView `json:"restore"`
}

// FailureView is the newest attempt failure. Vertex and Subtask are
// omitted when the failure was not a task's.
type FailureView struct {
	At      time.Time `json:"at,omitzero"`
	Vertex  string    `json:"vertex,omitempty"`
	Subtask *int      `json:"subtask,omitempty"`
	Cause   string    `json:"cause"`
	Error   string    `json:"error"`
}

// RestoreView is the newest restore.
type RestoreView struct {
	At           time.Time `json:"at,omitzero"`
	DurationMs   int64     `json:"durationMs"`
	CheckpointID int64     `json:"checkpointId"`
	Path         string    `json:"path"`
	Kind         string    `json:"kind"`
}

// CancelResponse is the answer of POST /api/v1/jobs/{id}/cancel.
type CancelResponse struct {
	Status string `json:"status"`
}

// HealthResponse is the answer of GET /healthz and of a ready GET /readyz.
type HealthResponse struct {
	Status string `json:"status"`
}

func ms(d time.Duration) int64 { return d.Milliseconds() }

func nanosMs(n int64) int64 { return n / int64(time.Millisecond) }

// finite keeps a ratio or rate encodable: JSON has no NaN or infinity.
func finite(f float64) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return f
}

// watermarkMs is a watermark as epoch milliseconds, nil when none.
func watermarkMs(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	v := t.UnixMilli()
	return &v
}

// vertexID is a vertex's id in the routes: its uid, or its name when the
// status does not say the uid.
func vertexID(v sluice.VertexStatus) string {
	return cmp.Or(v.UID, v.Name)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func vertexView(v sluice.VertexStatus) VertexView {
	ops := v.Operators
	if len(ops) == 0 {
		ops = []string{v.Name}
	}
	return VertexView{
		ID: vertexID(v), Name: v.Name, Operators: slices.Clone(ops), Parallelism: v.Parallelism,
		RecordsInTotal: v.RecordsInTotal, RecordsOutTotal: v.RecordsOutTotal,
		RecordsInAttempt: v.RecordsInAttempt, RecordsOutAttempt: v.RecordsOutAttempt,
		BytesInTotal: v.BytesInTotal, BytesOutTotal: v.BytesOutTotal,
		RecordsInRate: finite(v.RecordsInRate), RecordsOutRate: finite(v.RecordsOutRate),
		BusyRatio: finite(v.BusyRatio), IdleRatio: finite(v.IdleRatio),
		BackpressuredRatio: finite(v.BackpressuredRatio), BackpressureLevel: BackpressureLevel(finite(v.BackpressuredRatio)),
		BusyMs: nanosMs(v.BusyNanos), IdleMs: nanosMs(v.IdleNanos),
		BackpressuredMs: nanosMs(v.BackpressuredNanos), AlignmentMs: nanosMs(v.AlignmentNanos),
		InputQueueFill: finite(v.InputQueueFill), OutputQueueFill: finite(v.OutputQueueFill),
		Watermark:   watermarkMs(v.Watermark),
		LateRecords: v.LateRecords, LateDropped: v.LateDropped, LateToSide: v.LateToSide,
		StateBytes: v.StateBytes,
	}
}

func subtaskView(s sluice.SubtaskStatus) SubtaskView {
	return SubtaskView{
		Index:          s.Index,
		RecordsInTotal: s.RecordsInTotal, RecordsOutTotal: s.RecordsOutTotal,
		RecordsInAttempt: s.RecordsInAttempt, RecordsOutAttempt: s.RecordsOutAttempt,
		BytesInTotal: s.BytesInTotal, BytesOutTotal: s.BytesOutTotal,
		RecordsInRate: finite(s.RecordsInRate), RecordsOutRate: finite(s.RecordsOutRate),
		BusyRatio: finite(s.BusyRatio), IdleRatio: finite(s.IdleRatio),
		BackpressuredRatio: finite(s.BackpressuredRatio), BackpressureLevel: BackpressureLevel(finite(s.BackpressuredRatio)),
		BusyMs: nanosMs(s.BusyNanos), IdleMs: nanosMs(s.IdleNanos),
		BackpressuredMs: nanosMs(s.BackpressuredNanos), AlignmentMs: nanosMs(s.AlignmentNanos),
		InputQueueFill: finite(s.InputQueueFill), OutputQueueFill: finite(s.OutputQueueFill),
		Watermark:   watermarkMs(s.Watermark),
		LateRecords: s.LateRecords, LateDropped: s.LateDropped, LateToSide: s.LateToSide,
	}
}

func checkpointCounts(st sluice.JobStatus) CheckpointCounts {
	c := CheckpointCounts{
		Completed: st.CheckpointsCompleted, Failed: st.CheckpointsFailed,
		LastCompletedID: st.LastCheckpointID, Retained: []int64{},
	}
	if cs := st.Checkpoints; cs != nil {
		c.InProgress, c.Subsumed, c.ConsecutiveFailures = cs.InProgress, cs.Subsumed, cs.ConsecutiveFailures
		c.Retained = nonNil(slices.Clone(cs.Retained))
	}
	return c
}

func overview(id, name, status string, st sluice.JobStatus, now time.Time) JobOverview {
	o := JobOverview{
		ID: id, Name: name, Status: status, StartedAt: st.StartedAt,
		Restarts: st.Restarts, RestartsByCause: map[string]int64{}, LastRecoveryMs: ms(st.LastRecovery),
		Checkpoints: checkpointCounts(st),
		Vertices:    []VertexView{}, Edges: []EdgeView{}, Sources: []SourceView{}, Sinks: []SinkView{},
	}
	if !st.StartedAt.IsZero() && now.After(st.StartedAt) {
		o.UptimeMs = ms(now.Sub(st.StartedAt))
	}
	for k, v := range st.RestartsByCause {
		o.RestartsByCause[k] = v
	}
	for _, v := range st.Vertices {
		o.Vertices = append(o.Vertices, vertexView(v))
	}
	for _, e := range st.Edges {
		o.Edges = append(o.Edges, EdgeView{From: e.From, To: e.To, Partitioning: e.Partitioning, QueueFill: finite(e.QueueFill)})
	}
	for _, s := range st.Sources {
		sv := SourceView{ID: s.Vertex, Name: s.Name, RecordsLagMax: s.RecordsLagMax, IdleSplits: s.IdleSplits, Splits: []SplitView{}}
		for _, p := range s.Splits {
			sv.Splits = append(sv.Splits, SplitView{
				Split: p.Split, Topic: p.Topic, Partition: p.Partition, Subtask: p.Subtask,
				Next: p.Next, End: p.End, Lag: p.Lag, Watermark: watermarkMs(p.Watermark), Idle: p.Idle,
			})
		}
		o.Sources = append(o.Sources, sv)
	}
	for _, s := range st.Sinks {
		var mean int64
		if s.Commits > 0 {
			mean = ms(s.CommitLatencySum / time.Duration(s.Commits))
		}
		o.Sinks = append(o.Sinks, SinkView{
			ID: s.Vertex, Name: s.Name, TransactionsCommitted: s.TransactionsCommitted,
			TransactionsAborted: s.TransactionsAborted, Commits: s.Commits,
			MeanCommitLatencyMs: mean, LastCommitLatencyMs: ms(s.LastCommitLatency),
		})
	}
	return o
}

func plan(st sluice.JobStatus) Plan {
	p := Plan{Vertices: []PlanVertex{}, Edges: []PlanEdge{}}
	for _, v := range st.Vertices {
		vv := vertexView(v)
		p.Vertices = append(p.Vertices, PlanVertex{ID: vv.ID, Name: vv.Name, Operators: vv.Operators, Parallelism: vv.Parallelism})
	}
	for _, e := range st.Edges {
		p.Edges = append(p.Edges, PlanEdge{From: e.From, To: e.To, Partitioning: e.Partitioning})
	}
	return p
}

func summary(c checkpoint.CheckpointStats) CheckpointSummary {
	return CheckpointSummary{
		ID: c.ID, Kind: string(c.Kind), Stop: c.Stop, Status: string(c.Status),
		TriggeredAt: c.TriggeredAt, CompletedAt: c.CompletedAt, DurationMs: ms(c.Duration),
		Bytes: c.Bytes, FullBytes: c.FullBytes, IncrementalBytes: c.IncrementalBytes,
		AlignmentMs: ms(c.MaxAlignment), SyncMs: ms(c.MaxSyncDuration), AsyncMs: ms(c.MaxAsyncDuration),
		Acked: c.Acked, Total: c.Total, FailureReason: c.FailureReason,
	}
}

func detail(c checkpoint.CheckpointStats) CheckpointDetail {
	d := CheckpointDetail{CheckpointSummary: summary(c), Tasks: []TaskCheckpointView{}}
	for _, t := range c.Tasks {
		d.Tasks = append(d.Tasks, TaskCheckpointView{
			Vertex: t.Vertex, Subtask: t.Subtask, AckedAt: t.AckedAt, DurationMs: ms(t.Duration),
			Bytes: t.Bytes, AlignmentMs: ms(t.Alignment), SyncMs: ms(t.SyncDuration), AsyncMs: ms(t.AsyncDuration),
		})
	}
	slices.SortStableFunc(d.Tasks, func(a, b TaskCheckpointView) int {
		return cmp.Or(cmp.Compare(a.Vertex, b.Vertex), cmp.Compare(a.Subtask, b.Subtask))
	})
	return d
}

func restoreView(r *sluice.RestoreInfo) *RestoreView {
	if r == nil {
		return nil
	}
	return &RestoreView{At: r.At, DurationMs: ms(r.Duration), CheckpointID: r.CheckpointID, Path: r.Path, Kind: string(r.Kind)}
}

func failureView(f *sluice.FailureInfo) *FailureView {
	if f == nil {
		return nil
	}
	v := &FailureView{At: f.At, Vertex: f.Vertex, Cause: f.Cause, Error: f.Error}
	if f.Vertex != "" && f.Subtask >= 0 {
		sub := f.Subtask
		v.Subtask = &sub
	}
	return v
}

func checkpointOverview(st sluice.JobStatus) CheckpointOverview {
	o := CheckpointOverview{Counts: checkpointCounts(st), History: []CheckpointSummary{}}
	o.Latest.Restored = restoreView(st.LastRestore)
	if st.Checkpoints == nil {
		return o
	}
	for _, c := range st.Checkpoints.History {
		s := summary(c)
		o.History = append(o.History, s)
		switch {
		case c.Kind == checkpoint.KindSavepoint && c.Status == checkpoint.StatusCompleted:
			o.Latest.Savepoint = &s
		case c.Status == checkpoint.StatusCompleted:
			o.Latest.Completed = &s
		case c.Status == checkpoint.StatusFailed:
			o.Latest.Failed = &s
		}
	}
	return o
}
