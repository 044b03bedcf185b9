package sluice

import (
	"path/filepath"

	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/internal/state/pebblestate"
	"github.com/sluicehq/sluice/state"
)

// pebbleBackend adapts *pebblestate.Backend to keyedBackend.
type pebbleBackend[K comparable] struct{ *pebblestate.Backend[K] }

func (b *pebbleBackend[K]) Snapshot(checkpointID int64) keyedSnapshot {
	return b.Backend.Snapshot(checkpointID)
}

// pebbleMemory is the job's Pebble managed memory in this process: one
// block cache for every subtask's database, and the memtable size of each
// (pebblestate.NewMemory splits StateConfig.MemoryBytes).
type pebbleMemory struct{ m *pebblestate.Memory }

func (m *pebbleMemory) release() { m.m.Release() }

// memory returns the job's Pebble memory, made on first use.
func (s *stateEnv) memory() *pebblestate.Memory {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mem == nil {
		s.mem = &pebbleMemory{m: pebblestate.NewMemory(s.cfg.MemoryBytes, s.dbs)}
	}
	return s.mem.m
}

// newPebbleBackend opens the subtask's Pebble database in
// OperatorContext.LocalDir/db (a temporary directory outside a job), with
// the job's shared block cache.
func newPebbleBackend[K comparable](st *stateEnv, kc codec.KeyCodec[K], oc *OperatorContext) (keyedBackend[K], error) {
	o := st.memory().Options("")
	if oc.LocalDir != "" {
		o.Dir = filepath.Join(oc.LocalDir, "db")
	}
	o.Logger, o.Incremental, o.LocalRecovery = oc.Logger, st.cfg.Incremental, st.cfg.LocalRecovery
	b, err := pebblestate.New(kc, oc.MaxParallelism, oc.KeyGroups, oc.Clock, o)
	if err != nil {
		return nil, err
	}
	return &pebbleBackend[K]{b}, nil
}

func pebbleValue[K comparable, V any](b *pebbleBackend[K], name string, c codec.Codec[V], opts ...state.Option) (state.ValueState[V], error) {
	return pebblestate.Value(b.Backend, name, c, opts...)
}

func pebbleList[K comparable, V any](b *pebbleBackend[K], name string, c codec.Codec[V], opts ...state.Option) (state.ListState[V], error) {
	return pebblestate.List(b.Backend, name, c, opts...)
}

func pebbleMap[K, UK comparable, UV any](b *pebbleBackend[K], name string, kc codec.Codec[UK], vc codec.Codec[UV], opts ...state.Option) (state.MapState[UK, UV], error) {
	return pebblestate.Map(b.Backend, name, kc, vc, opts...)
}

func pebbleReducing[K comparable, V any](b *pebbleBackend[K], name string, c codec.Codec[V], reduce func(a, b V) V, opts ...state.Option) (state.ReducingState[V], error) {
	return pebblestate.Reducing(b.Backend, name, c, reduce, opts...)
}
