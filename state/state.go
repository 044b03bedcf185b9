// Package state is Sluice's keyed state (docs/design.md §4): Flink-style ValueState,
// ListState, MapState and ReducingState with optional TTL, processing-time
// timers per key, and a heap backend that keeps everything in Go maps, one
// map per key group, so that a snapshot can be split by key group and
// restored at another parallelism.
//
// # The current key
//
// As in Flink, state handles are not indexed by key: the runtime calls
// HeapBackend.SetCurrentKey before it hands a record or a timer to the user's
// function, and every handle reads and writes the current key's entry. All
// methods of a backend and of its state handles belong to the task goroutine
// (docs/design.md §2: a task is one goroutine and a mailbox, so state needs no
// locks). The only exceptions are Snapshot.WriteKeyGroups and
// Snapshot.Release, which run on the asynchronous snapshot writer.
//
// # Snapshots: short synchronous part, asynchronous write (docs/design.md §11)
//
// HeapBackend.Snapshot freezes the current map of every key group of every
// state and returns at once: it copies map references, never entries, so its
// pause does not grow with the number of keys. The task then keeps
// processing; the first write to a frozen key group clones that group's map
// (about keys/maxParallelism entries) and writes the clone, so the frozen map
// the writer is serializing never changes. Release tells the backend, through
// an atomic watermark, that the frozen maps may be written in place again.
// This is the per-key-group flavour of Flink's CopyOnWriteStateMap.
//
// # Aliasing
//
// Values are stored as given: do not mutate a slice, map or pointee after
// passing it to Update or Put, nor one returned by Value or Get, because a
// snapshot may be serializing it. ListState.Update copies its argument, and
// ListState.Get returns a slice whose capacity equals its length, so
// appending to it never writes into the stored list.
package state

import (
	"errors"
	"fmt"
	"iter"
	"time"
)

// ValueState holds one value per key.
type ValueState[V any] interface {
	// Value returns the current key's value and whether there is one. An
	// expired value (see WithTTL) is reported as absent.
	Value() (V, bool)
	// Update sets the current key's value.
	Update(V)
	// Clear removes the current key's value.
	Clear()
}

// ListState holds a list of values per key.
type ListState[V any] interface {
	// Get returns the current key's list, nil if it has none. The slice is
	// the stored one (its capacity is its length): read it, do not modify
	// its elements; it stays valid after later writes.
	Get() []V
	// Add appends v to the current key's list.
	Add(V)
	// Update replaces the current key's list with a copy of vs; an empty vs
	// clears it, as in Flink.
	Update(vs []V)
	// Clear removes the current key's list.
	Clear()
}

// MapState holds a map per key.
type MapState[UK comparable, UV any] interface {
	// Get returns the value of user key uk under the current key.
	Get(uk UK) (UV, bool)
	// Put sets the value of user key uk under the current key.
	Put(uk UK, uv UV)
	// Remove deletes user key uk under the current key.
	Remove(uk UK)
	// Contains reports whether user key uk is set under the current key.
	Contains(uk UK) bool
	// All iterates over the current key's entries in unspecified order,
	// skipping expired ones. Writes during the iteration may or may not be
	// seen, as with a Go map.
	All() iter.Seq2[UK, UV]
	// Len returns the number of the current key's entries. With a TTL it
	// counts the live ones, which takes a pass over the entries.
	Len() int
	// Clear removes all of the current key's entries.
	Clear()
}

// ReducingState folds the values added for a key into one with a reduce
// function, like Flink's ReducingState.
type ReducingState[V any] interface {
	// Get returns the current key's reduced value and whether there is one.
	Get() (V, bool)
	// Add folds v into the current key's value: reduce(old, v), or v if
	// there is none.
	Add(V)
	// Clear removes the current key's value.
	Clear()
}

// Option configures one state at registration.
type Option interface{ apply(*options) }

type options struct {
	ttl time.Duration
}

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

// WithTTL gives the state a time to live, as Flink's StateTtlConfig with
// UpdateType.OnCreateAndWrite and StateVisibility.NeverReturnExpired: an
// entry expires ttl after it was last written (created, updated, added to)
// by the backend's clock; reads do not extend it. Expired entries are never
// returned; they are removed lazily when the task reads them, and left out
// of every snapshot (Flink's cleanupFullSnapshot).
//
// The granularity is one entry: a key's value for ValueState and
// ReducingState, a key's whole list for ListState (any Add refreshes the
// whole list; Flink tracks each element), and one user key for MapState.
//
// Default: no TTL (0). Use it to bound state whose keys stop arriving, such
// as sessions or de-duplication sets; it costs one clock read per access.
func WithTTL(ttl time.Duration) Option {
	return optionFunc(func(o *options) { o.ttl = ttl })
}

// Errors, to test with errors.Is; the errors returned wrap them with the
// state, the key group or the key-group range involved.
var (
	// ErrKeyGroupOutOfRange is returned by SetCurrentKey for a key whose key
	// group this backend does not own: records were routed to the wrong
	// subtask, a runtime bug that must fail the task rather than corrupt
	// another subtask's state.
	ErrKeyGroupOutOfRange = errors.New("state: key group not in the backend's range")
	// ErrIncompatible is returned when a state name is registered again as
	// another kind, value type or TTL, or when restored state does not fit
	// the registration.
	ErrIncompatible = errors.New("state: incompatible state registration")
	// ErrCorrupt is returned by Restore and by the registration that decodes
	// restored state when the snapshot content is damaged or does not match
	// the codecs.
	ErrCorrupt = errors.New("state: corrupt snapshot")
	// ErrReleased is returned by WriteKeyGroups on a released snapshot,
	// whose frozen maps may already have been overwritten.
	ErrReleased = errors.New("state: snapshot already released")
)

// kind is a state's kind, as recorded in snapshots.
type kind uint8

const (
	kindValue    kind = 1
	kindList     kind = 2
	kindMap      kind = 3
	kindReducing kind = 4
)

func (k kind) String() string {
	switch k {
	case kindValue:
		return "value"
	case kindList:
		return "list"
	case kindMap:
		return "map"
	case kindReducing:
		return "reducing"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}
