// Package checkpoint holds the checkpoint coordinator (a deterministic state
// machine, docs/design.md §3) and the metadata that describes a completed checkpoint
// or savepoint.
package checkpoint

import "time"

// FormatVersion is the version of the _metadata format written by this code.
// Readers accept every version up to this one.
const FormatVersion = 1

// Kind says whether a snapshot is a periodic checkpoint or a user-triggered
// savepoint.
type Kind string

// The kinds of snapshot.
const (
	KindCheckpoint Kind = "checkpoint"
	KindSavepoint  Kind = "savepoint"
)

// TaskID names one subtask of a task (a chain of operators) in the job graph.
// Vertex is the uid of the chain's head operator.
type TaskID struct {
	Vertex  string `json:"vertex"`
	Subtask int    `json:"subtask"`
}

// Metadata is the content of a checkpoint's _metadata file: everything needed
// to restore a job, per operator uid.
type Metadata struct {
	Version        int                       `json:"version"`
	CheckpointID   int64                     `json:"checkpointId"`
	Kind           Kind                      `json:"kind"`
	JobName        string                    `json:"jobName"`
	TriggeredAt    time.Time                 `json:"triggeredAt"`
	CompletedAt    time.Time                 `json:"completedAt"`
	MaxParallelism int                       `json:"maxParallelism"`
	Operators      map[string]*OperatorState `json:"operators"`
}

// OperatorState is the state of every subtask of one operator, by uid.
type OperatorState struct {
	Parallelism int             `json:"parallelism"`
	Subtasks    []*SubtaskState `json:"subtasks"`
}

// SubtaskState is what one subtask of one operator snapshotted.
type SubtaskState struct {
	Subtask int `json:"subtask"`
	// KeyGroups is the inclusive key-group range the subtask owned; only
	// meaningful when Keyed is set.
	KeyGroups KeyGroupRange `json:"keyGroups"`
	// Keyed holds the keyed state files of the subtask, usually one.
	Keyed []StateHandle `json:"keyed,omitempty"`
	// Operator holds non-keyed (operator) list state, inline: state name to
	// entries. On restore every subtask sees the entries of all old subtasks
	// (union redistribution) and keeps the ones it owns.
	Operator map[string][][]byte `json:"operator,omitempty"`
}

// KeyGroupRange is an inclusive range of key groups [Start, End]. An empty
// range has End < Start.
type KeyGroupRange struct {
	Start int `json:"start"`
	End   int `json:"end"`
}

// Contains reports whether kg lies in r.
func (r KeyGroupRange) Contains(kg int) bool { return kg >= r.Start && kg <= r.End }

// Len returns the number of key groups in r.
func (r KeyGroupRange) Len() int {
	if r.End < r.Start {
		return 0
	}
	return r.End - r.Start + 1
}

// Intersect returns the key groups both ranges contain.
func (r KeyGroupRange) Intersect(o KeyGroupRange) KeyGroupRange {
	s, e := max(r.Start, o.Start), min(r.End, o.End)
	if e < s {
		return KeyGroupRange{Start: 0, End: -1}
	}
	return KeyGroupRange{Start: s, End: e}
}

// StateHandle points at one state file in checkpoint storage.
type StateHandle struct {
	// Path is relative to the checkpoint storage root.
	Path string `json:"path"`
	// Size is the file's length in bytes.
	Size int64 `json:"size"`
	// CRC32C is the Castagnoli checksum of the whole file.
	CRC32C uint32 `json:"crc32c"`
	// KeyGroupOffsets, for keyed state, gives the byte offset of each key
	// group's section, for key groups KeyGroups.Start.. in order, so that a
	// restore at another parallelism reads only the key groups it owns.
	KeyGroupOffsets []int64 `json:"keyGroupOffsets,omitempty"`
}
