package runtime

// Prefetcher is implemented by an operator input (the Emitter an input
// channel delivers to) that can warm the CPU caches for a batch of records
// before it receives them one by one: a keyed operator looks up every
// record's key in its state first, in one tight loop whose independent
// cache misses the CPU overlaps, so that processing the records finds
// their state in cache (docs/design.md §2). It must change nothing.
//
// records, ts and kgs are the batch's records, their timestamps (nil when
// none has one) and their key groups (nil unless the batch came through a
// key-group writer), parallel; they are only valid during the call.
type Prefetcher[T any] interface {
	Prefetch(records []T, ts []int64, kgs []uint16)
}
