package heap

import (
	"iter"
	"maps"
)

// Serializing a key group walks its map in the map's order, which is
// unrelated to where the keys' bytes live: with string keys nearly every
// entry's key is a cache miss (about 90% of WriteKeyGroups' time with 1M
// keys), and the encoder, one entry at a time, waits for each miss in turn.
// forEachPrefetched walks the map in chunks instead: it copies a chunk of
// entries out (sequential reads of the map's slots), touches the first byte
// of every string key of the chunk in a tight loop, whose independent loads
// the CPU overlaps, and only then hands the entries to the encoder, which
// finds the keys in cache. The order of the entries is the map's, as before.

// prefetchChunk is the number of entries per chunk: enough independent
// loads to keep the CPU's miss buffers busy, few enough cache lines (one per
// key) to stay in L1/L2 until the encoder reads them.
const prefetchChunk = 256

// scratch holds one chunk of entries; a frozen structure keeps one, used
// only by its snapshot's WriteKeyGroups, of which at most one runs at a time.
type scratch[K comparable, V any] struct {
	ks []K
	vs []V
	// sink keeps touchKeys' loads from being optimized away.
	sink byte
}

// forEachPrefetched calls fn for every entry of m, in chunks whose string
// keys have been touched first.
func forEachPrefetched[K comparable, V any](sc *scratch[K, V], m map[K]V, fn func(K, V)) {
	forEachSeqPrefetched(sc, len(m), maps.All(m), fn)
}

// forEachSeqPrefetched is forEachPrefetched over the n entries of seq.
func forEachSeqPrefetched[K comparable, V any](sc *scratch[K, V], n int, seq iter.Seq2[K, V], fn func(K, V)) {
	if n == 0 {
		return
	}
	if sc.ks == nil {
		sc.ks = make([]K, 0, prefetchChunk)
		sc.vs = make([]V, 0, prefetchChunk)
	}
	ks, vs := sc.ks[:0], sc.vs[:0]
	flush := func() {
		sc.sink += touchKeys(ks)
		for i, k := range ks {
			fn(k, vs[i])
		}
		clear(ks) // drop references to the frozen map's keys and values
		clear(vs)
		ks, vs = ks[:0], vs[:0]
	}
	for k, v := range seq {
		ks = append(ks, k)
		vs = append(vs, v)
		if len(ks) == prefetchChunk {
			flush()
		}
	}
	flush()
}

// touchKeys loads the first byte of every string key, so that the loads miss
// together rather than one after the other. Keys of other types are
// stored in the map's slots, which the walk reads sequentially.
func touchKeys[K comparable](ks []K) (x byte) {
	ss, ok := any(ks).([]string)
	if !ok {
		return 0
	}
	for _, s := range ss {
		if len(s) > 0 {
			x += s[0]
		}
	}
	return x
}
