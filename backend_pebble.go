package sluice

import (
	"errors"

	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/state"
)

// pebbleMemory is the job's Pebble managed memory in this process.
type pebbleMemory struct{}

func (m *pebbleMemory) release() {}

// pebbleBackend is the Pebble backend (stub until it is built).
type pebbleBackend[K comparable] struct{ keyedBackend[K] }

var errNoPebble = errors.New("state.backend: pebble is not built yet")

// newPebbleBackend opens the subtask's Pebble database.
func newPebbleBackend[K comparable](st *stateEnv, kc codec.KeyCodec[K], oc *OperatorContext) (keyedBackend[K], error) {
	return nil, errNoPebble
}

func pebbleValue[K comparable, V any](b *pebbleBackend[K], name string, c codec.Codec[V], opts ...state.Option) (state.ValueState[V], error) {
	return nil, errNoPebble
}

func pebbleList[K comparable, V any](b *pebbleBackend[K], name string, c codec.Codec[V], opts ...state.Option) (state.ListState[V], error) {
	return nil, errNoPebble
}

func pebbleMap[K, UK comparable, UV any](b *pebbleBackend[K], name string, kc codec.Codec[UK], vc codec.Codec[UV], opts ...state.Option) (state.MapState[UK, UV], error) {
	return nil, errNoPebble
}

func pebbleReducing[K comparable, V any](b *pebbleBackend[K], name string, c codec.Codec[V], reduce func(a, b V) V, opts ...state.Option) (state.ReducingState[V], error) {
	return nil, errNoPebble
}
