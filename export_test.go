package sluice

import "os"

// WindowLeftovers returns what the subtasks of the window operator
// producing s left in keyed state and timers at the end of input, summed
// over subtasks and attempts that ended their input.
func WindowLeftovers[T any](s Stream[T]) (keys, eventTimers, procTimers int64) {
	p := s.n.winProbe
	return p.keys.Load(), p.eventTimers.Load(), p.procTimers.Load()
}

// WindowGeneric keeps the window operator built from ws off its fast path
// (window_fast.go), for differential tests.
func WindowGeneric[K comparable, T any](ws WindowedStream[K, T]) WindowedStream[K, T] {
	ws.generic = true
	return ws
}

// WindowFastSubtasks returns how many subtasks of the window operator
// producing s opened on the fast path.
func WindowFastSubtasks[T any](s Stream[T]) int64 { return s.n.winProbe.fast.Load() }

func init() {
	// SLUICE_TEST_STATE_BACKEND=pebble runs every job of the package's
	// tests that does not choose a backend on that one.
	if b := os.Getenv("SLUICE_TEST_STATE_BACKEND"); b != "" {
		defaultStateBackend = b
	}
}
