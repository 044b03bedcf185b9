package sluice

// WindowLeftovers returns what the subtasks of the window operator
// producing s left in keyed state and timers at the end of input, summed
// over subtasks and attempts that ended their input.
func WindowLeftovers[T any](s Stream[T]) (keys, eventTimers, procTimers int64) {
	p := s.n.winProbe
	return p.keys.Load(), p.eventTimers.Load(), p.procTimers.Load()
}
