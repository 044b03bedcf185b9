// Package checkpoint holds what a user configures and reads about
// checkpoints: their Config (docs/design.md §3), the statistics a job's
// status reports, and the metadata that describes a completed checkpoint or
// savepoint. The coordinator that drives them is internal.
package checkpoint

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"maps"
	"slices"
	"strings"
	"time"
)

// FormatVersion is the version of the _metadata format written by this code.
// Readers accept every version up to this one. Version 2 added what a
// checkpoint belongs to (Sources, and per subtask KeyCodec and States:
// docs/design.md §10); a version 1 checkpoint restores with a warning that
// it cannot be checked.
const FormatVersion = 2

// ErrIncompatible means a checkpoint does not belong to the job restoring
// it: another job's sources, an operator uid the job lacks, a state written
// with other codecs. The error wrapping it names the difference. Restarting
// cannot fix it, so the runtime fails the job at once.
var ErrIncompatible = errors.New("checkpoint incompatible with the job")

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
	// Sources identifies what each source operator, by uid, reads (for
	// Kafka: its topics), so that a job reading something else refuses to
	// restore the checkpoint's positions. Absent before version 2, and for
	// sources that do not describe themselves.
	Sources map[string]SourceIdentity `json:"sources,omitempty"`
}

// SourceIdentity describes what a source reads.
type SourceIdentity struct {
	// Type names the kind of source: "kafka", "datagen", "file".
	Type string `json:"type"`
	// Names are what it reads, sorted: Kafka topics, file paths, a
	// generator's parameters.
	Names []string `json:"names"`
}

// Equal reports whether two identities are the same.
func (s SourceIdentity) Equal(o SourceIdentity) bool {
	return s.Type == o.Type && slices.Equal(s.Names, o.Names)
}

// String renders the identity as type[name,...].
func (s SourceIdentity) String() string { return s.Type + "[" + strings.Join(s.Names, ",") + "]" }

// StateInfo describes one keyed state in a subtask's snapshot.
type StateInfo struct {
	Name string `json:"name"`
	// Kind is value, list, map or reducing.
	Kind string `json:"kind"`
	// TTL says whether entries carry expiry times.
	TTL bool `json:"ttl,omitempty"`
	// Codecs are the identities (name@vN) of the state's codecs: the
	// value's; the element's; the user key's and user value's.
	Codecs []string `json:"codecs,omitempty"`
}

// String renders the state as name (kind, codecs).
func (s StateInfo) String() string {
	return s.Name + " (" + s.Kind + " state, " + strings.Join(s.Codecs, ", ") + ")"
}

// States returns the keyed states of an operator, merged over its subtasks
// and sorted by name, with its key codec (empty if none is recorded).
func (o *OperatorState) States() (keyCodec string, states []StateInfo) {
	byName := map[string]StateInfo{}
	if o == nil {
		return "", nil
	}
	for _, st := range o.Subtasks {
		if st == nil {
			continue
		}
		if keyCodec == "" {
			keyCodec = st.KeyCodec
		}
		for _, si := range st.States {
			if _, ok := byName[si.Name]; !ok {
				byName[si.Name] = si
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		states = append(states, byName[name])
	}
	return keyCodec, states
}

// HasState reports whether the operator stored any state: keyed state files
// or operator state entries.
func (o *OperatorState) HasState() bool {
	if o == nil {
		return false
	}
	for _, st := range o.Subtasks {
		if st != nil && (len(st.Keyed) > 0 || len(st.Operator) > 0) {
			return true
		}
	}
	return false
}

// Fingerprint is a short hash of what the checkpoint belongs to: the
// operator uids with their key codecs, states and codecs, the operator
// state names, and the source identities. Two checkpoints of one job graph
// have the same fingerprint; `sluice checkpoints inspect` shows it.
func (m *Metadata) Fingerprint() string {
	h := sha256.New()
	for _, uid := range slices.Sorted(maps.Keys(m.Operators)) {
		op := m.Operators[uid]
		kc, states := op.States()
		h.Write([]byte("op " + uid + " key " + kc + "\n"))
		for _, si := range states {
			h.Write([]byte(" state " + si.String() + "\n"))
		}
		names := map[string]bool{}
		if op != nil {
			for _, st := range op.Subtasks {
				if st != nil {
					for n := range st.Operator {
						names[n] = true
					}
				}
			}
		}
		for _, n := range slices.Sorted(maps.Keys(names)) {
			h.Write([]byte(" operator state " + n + "\n"))
		}
	}
	for _, uid := range slices.Sorted(maps.Keys(m.Sources)) {
		h.Write([]byte("source " + uid + " " + m.Sources[uid].String() + "\n"))
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
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
	// KeyCodec is the identity (name@vN) of the key codec of the keyed
	// state, and States describes its states; both absent before version 2.
	KeyCodec string      `json:"keyCodec,omitempty"`
	States   []StateInfo `json:"states,omitempty"`
	// Operator holds non-keyed (operator) list state, inline: state name to
	// entries. On restore every subtask sees the entries of all old subtasks
	// (union redistribution) and keeps the ones it owns.
	Operator map[string][][]byte `json:"operator,omitempty"`
	// Channels is the channel state of an unaligned checkpoint, on the
	// head operator of a task's chain: the records that were in flight on
	// the task's inputs when it took its snapshot. They are replayed into
	// that subtask before any new input; never redistributed, so a
	// checkpoint that holds any is restored at the same parallelism only.
	Channels []ChannelState `json:"channels,omitempty"`
}

// ChannelState is the in-flight data of one input channel of a task in an
// unaligned checkpoint (docs/design.md §3 "Unaligned checkpoints").
type ChannelState struct {
	// Input is the index of the input channel in the task, Inputs how
	// many the task had (a restore checks that they still match).
	Input  int `json:"input"`
	Inputs int `json:"inputs"`
	// Records is how many records Data holds: each a zig-zag varint
	// timestamp, then the record in the edge's codec.
	Records int64  `json:"records"`
	Data    []byte `json:"data"`
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
	// Format is the file's layout: empty for the canonical keyed-state
	// file (docs/design.md §4), otherwise a state backend's native format
	// (such as "pebble-sst"), which only that backend restores.
	Format string `json:"format,omitempty"`
	// Shared marks a file in the storage's shared area, which several
	// checkpoints may refer to (incremental checkpoints); it is deleted
	// once no retained checkpoint refers to it. Path is then relative to
	// the storage root, not to the checkpoint's directory.
	Shared bool `json:"shared,omitempty"`
}
