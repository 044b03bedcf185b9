// Package state is the keyed state a user function sees (docs/design.md §4):
// Flink-style ValueState, ListState, MapState and ReducingState, with an
// optional TTL. A keyed function registers its states with the sluice
// package's NewValueState, NewListState, NewMapState and NewReducingState;
// the heap backend that keeps them, one hash table per key group so that a
// snapshot can be split by key group and restored at another parallelism, is
// internal.
//
// # The current key
//
// As in Flink, state handles are not indexed by key: the runtime sets the
// current key before it hands a record or a timer to the user's function,
// and every handle reads and writes the current key's entry. Handles belong
// to the task goroutine (docs/design.md §2: a task is one goroutine and a
// mailbox, so state needs no locks): use them only from the function's
// methods, never from a goroutine of its own.
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
type Option interface{ apply(*Options) }

// Options are the settings that a registration's Option values make. A
// state backend reads them with Settings; user code passes Option values
// (WithTTL) instead.
type Options struct {
	// TTL is the time to live given by WithTTL; 0 means none.
	TTL time.Duration
}

// Settings returns the Options that opts make, applied in order to the zero
// Options (a later WithTTL overrides an earlier one). It is how a state
// backend reads a registration's options.
func Settings(opts ...Option) Options {
	var o Options
	for _, opt := range opts {
		opt.apply(&o)
	}
	return o
}

type optionFunc func(*Options)

func (f optionFunc) apply(o *Options) { f(o) }

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
	return optionFunc(func(o *Options) { o.TTL = ttl })
}

// Errors, to test with errors.Is; the errors returned wrap them with the
// state, the key group or the key-group range involved.
var (
	// ErrIncompatible is returned when a state name is registered again as
	// another kind, value type or TTL, or when restored state does not fit
	// the registration.
	ErrIncompatible = errors.New("state: incompatible state registration")
	// ErrCorrupt is returned by a restore, and by the registration that
	// decodes restored state, when the snapshot content is damaged or does
	// not match the codecs.
	ErrCorrupt = errors.New("state: corrupt snapshot")
)
