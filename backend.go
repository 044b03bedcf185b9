package sluice

import (
	"fmt"
	"sync"

	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/internal/state/heap"
	"github.com/sluicehq/sluice/state"
)

// The state backends (docs/design.md §4). Config.State.Backend picks one
// per job; every keyed operator makes its subtask's backend with
// newKeyedBackend in Open and closes it in Close.

// Backend names (Config.State.Backend).
const (
	// StateBackendHeap keeps keyed state in Go maps: fastest, but the state of
	// every subtask in the process must fit in memory.
	StateBackendHeap = "heap"
	// StateBackendPebble keeps keyed state in a Pebble LSM tree per subtask on
	// local disk, with one memory budget (StateConfig.MemoryBytes) for its
	// block cache and memtables: for state larger than memory.
	StateBackendPebble = "pebble"
)

// defaultStateBackend is StateConfig.Backend's default. Only the package's
// tests change it (SLUICE_TEST_STATE_BACKEND, export_test.go), to run
// every job of the suite on another backend.
var defaultStateBackend = StateBackendHeap

// heapBackend adapts *heap.HeapBackend to keyedBackend.
type heapBackend[K comparable] struct {
	*heap.HeapBackend[K]
}

func newHeapBackend[K comparable](h *heap.HeapBackend[K]) heapBackend[K] {
	return heapBackend[K]{h}
}

func (b heapBackend[K]) Snapshot(checkpointID int64) keyedSnapshot {
	return b.HeapBackend.Snapshot(checkpointID)
}

func (heapBackend[K]) Close() error { return nil }

// newKeyedBackend makes the backend of one keyed operator subtask as the
// job's state configuration says. A restore check (PlanOnly) always plans
// on the heap backend: the resolution of codecs and kinds is the same in
// every backend, and a check must not create databases.
func newKeyedBackend[K comparable](st *stateEnv, kc codec.KeyCodec[K], oc *OperatorContext) (keyedBackend[K], error) {
	if st == nil || oc.plan != nil || st.cfg.Backend != StateBackendPebble {
		return newHeapBackend(heap.NewHeapBackend(kc, oc.MaxParallelism, oc.KeyGroups, oc.Clock)), nil
	}
	return newPebbleBackend(st, kc, oc)
}

// errNoBackend is returned by a registration on a backend it does not
// know (a wiring bug).
func errNoBackend(b any) error {
	return fmt.Errorf("sluice: keyed state registration: unknown state backend %T", b)
}

// stateEnv is what the keyed operators of one job share in this process:
// the state configuration (defaults applied) and, for the Pebble backend,
// the managed memory (one block cache for every subtask's database),
// made when the first database opens and released when the job ends.
type stateEnv struct {
	cfg StateConfig
	// dbs is the number of keyed operator subtasks of the job (set at
	// Execute): the memory budget's memtables are split among them.
	dbs int

	mu  sync.Mutex
	mem *pebbleMemory
}

// close releases the shared memory once Execute is done with the job.
func (s *stateEnv) close() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mem != nil {
		s.mem.release()
		s.mem = nil
	}
}

// The registrations, dispatched on the backend's type: NewValueState and
// its siblings, and the window operator's own states.

func newValueState[K comparable, V any](b keyedBackend[K], name string, c codec.Codec[V], opts ...state.Option) (state.ValueState[V], error) {
	switch b := b.(type) {
	case heapBackend[K]:
		return heap.Value(b.HeapBackend, name, c, opts...)
	case *pebbleBackend[K]:
		return pebbleValue(b, name, c, opts...)
	}
	return nil, errNoBackend(b)
}

func newListState[K comparable, V any](b keyedBackend[K], name string, c codec.Codec[V], opts ...state.Option) (state.ListState[V], error) {
	switch b := b.(type) {
	case heapBackend[K]:
		return heap.List(b.HeapBackend, name, c, opts...)
	case *pebbleBackend[K]:
		return pebbleList(b, name, c, opts...)
	}
	return nil, errNoBackend(b)
}

func newMapState[K, UK comparable, UV any](b keyedBackend[K], name string, kc codec.Codec[UK], vc codec.Codec[UV], opts ...state.Option) (state.MapState[UK, UV], error) {
	switch b := b.(type) {
	case heapBackend[K]:
		return heap.Map(b.HeapBackend, name, kc, vc, opts...)
	case *pebbleBackend[K]:
		return pebbleMap(b, name, kc, vc, opts...)
	}
	return nil, errNoBackend(b)
}

func newReducingState[K comparable, V any](b keyedBackend[K], name string, c codec.Codec[V], reduce func(a, b V) V, opts ...state.Option) (state.ReducingState[V], error) {
	switch b := b.(type) {
	case heapBackend[K]:
		return heap.Reducing(b.HeapBackend, name, c, reduce, opts...)
	case *pebbleBackend[K]:
		return pebbleReducing(b, name, c, reduce, opts...)
	}
	return nil, errNoBackend(b)
}

// checkpointListener is implemented by a backend that must learn which
// checkpoints completed (Pebble's incremental checkpoints reuse the files
// of the last completed one).
type checkpointListener interface {
	NotifyCheckpointComplete(id int64)
}

// notifyBackend passes a completed checkpoint on to b.
func notifyBackend[K comparable](b keyedBackend[K], id int64) {
	if l, ok := b.(checkpointListener); ok {
		l.NotifyCheckpointComplete(id)
	}
}
