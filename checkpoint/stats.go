package checkpoint

import (
	"slices"
	"time"
)

// HistorySize is how many snapshots Stats.History keeps (the most recent
// ones). Bounded so that a job running for months does not grow the
// coordinator's memory, or the REST answer that serves it (docs/design.md §8).
const HistorySize = 32

// Status is where a checkpoint or savepoint stands.
type Status string

// The statuses of a snapshot.
const (
	StatusInProgress Status = "in-progress"
	StatusCompleted  Status = "completed"
	StatusFailed     Status = "failed"
)

// Stats is a snapshot of the coordinator's counters and recent history, for
// metrics and the dashboard (docs/design.md §8). It is a copy: the caller may keep
// and modify it.
type Stats struct {
	// Completed counts completed checkpoints and savepoints.
	Completed int `json:"completed"`
	// Failed counts checkpoints and savepoints that ended without
	// completing, subsumed ones included.
	Failed int `json:"failed"`
	// Subsumed counts the subset of Failed that were subsumed by a newer
	// completed checkpoint: those are harmless, and an alert on Failed may
	// want to subtract them.
	Subsumed int `json:"subsumed"`
	// InProgress is the number of snapshots pending now.
	InProgress int `json:"inProgress"`
	// ConsecutiveFailures is the number of checkpoint failures since the
	// last completed checkpoint, the count compared with
	// Config.TolerableFailures.
	ConsecutiveFailures int `json:"consecutiveFailures"`
	// LastCompletedID is the id of the most recently completed checkpoint or
	// savepoint; zero if none completed in this coordinator's lifetime.
	LastCompletedID int64 `json:"lastCompletedId"`
	// Retained lists the completed checkpoints that retention keeps, oldest
	// first, including those already in storage when the attempt started. The last
	// one is what a restore would use.
	Retained []int64 `json:"retained"`
	// History holds the last HistorySize snapshots triggered, oldest first.
	History []CheckpointStats `json:"history"`
}

// CheckpointStats describes one checkpoint or savepoint.
type CheckpointStats struct {
	// ID is the checkpoint or savepoint id.
	ID int64 `json:"id"`
	// Kind says whether it is a checkpoint or a savepoint.
	Kind Kind `json:"kind"`
	// Stop is set for a final checkpoint or a stop-with-savepoint.
	Stop bool `json:"stop,omitempty"`
	// Status is in-progress, completed or failed.
	Status Status `json:"status"`
	// TriggeredAt is when the barrier was requested.
	TriggeredAt time.Time `json:"triggeredAt"`
	// CompletedAt is when the snapshot completed or failed; zero while in
	// progress.
	CompletedAt time.Time `json:"completedAt"`
	// Duration is CompletedAt-TriggeredAt, or, while in progress, the time
	// since the trigger as of the coordinator's latest event (Stats.At
	// brings it to a given time).
	Duration time.Duration `json:"duration"`
	// Bytes is the total state size reported in the acks so far.
	Bytes int64 `json:"bytes"`
	// MaxAlignment is the longest barrier alignment among the acks
	// (docs/design.md §3 step 3).
	MaxAlignment time.Duration `json:"maxAlignment"`
	// MaxSyncDuration is the longest synchronous snapshot pause among the
	// acks (docs/design.md §3 step 4).
	MaxSyncDuration time.Duration `json:"maxSyncDuration"`
	// MaxAsyncDuration is the longest asynchronous part (writing the
	// state out) among the acks (docs/design.md §3 step 4).
	MaxAsyncDuration time.Duration `json:"maxAsyncDuration"`
	// FullBytes is the size of the complete state the snapshot describes;
	// IncrementalBytes is what this snapshot wrote anew (equal to FullBytes
	// for a backend that writes everything each time).
	FullBytes        int64 `json:"fullBytes"`
	IncrementalBytes int64 `json:"incrementalBytes"`
	// Acked is how many tasks acked; Total how many must.
	Acked int `json:"acked"`
	Total int `json:"total"`
	// FailureReason is the abort reason's message for a failed snapshot.
	FailureReason string `json:"failureReason,omitempty"`
	// Tasks holds one entry per subtask that acked, in ack order.
	Tasks []TaskCheckpointStats `json:"tasks,omitempty"`
}

// TaskCheckpointStats is one subtask's part of a checkpoint or savepoint:
// what its ack reported.
type TaskCheckpointStats struct {
	// Vertex is the task's vertex uid; Subtask its index.
	Vertex  string `json:"vertex"`
	Subtask int    `json:"subtask"`
	// AckedAt is when the coordinator received the ack.
	AckedAt time.Time `json:"ackedAt"`
	// Duration is from the trigger to the ack.
	Duration time.Duration `json:"duration"`
	// Bytes is the size of the subtask's state in this snapshot.
	Bytes int64 `json:"bytes"`
	// Alignment is the subtask's barrier alignment time; SyncDuration its
	// synchronous snapshot pause; AsyncDuration the asynchronous part.
	Alignment     time.Duration `json:"alignment"`
	SyncDuration  time.Duration `json:"syncDuration"`
	AsyncDuration time.Duration `json:"asyncDuration"`
}

// At returns a copy of s in which the Duration of every snapshot in
// progress is the time from its trigger to now: the coordinator learns the
// time only from its events, so between two of them its own figure stands
// still while the checkpoint goes on. A now before the coordinator's time
// changes nothing.
func (s Stats) At(now time.Time) Stats {
	out := s
	out.Retained = slices.Clone(s.Retained)
	out.History = slices.Clone(s.History)
	for i := range out.History {
		h := &out.History[i]
		h.Tasks = slices.Clone(h.Tasks)
		if h.Status == StatusInProgress {
			h.Duration = max(h.Duration, now.Sub(h.TriggeredAt))
		}
	}
	return out
}
