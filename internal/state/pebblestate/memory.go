package pebblestate

import (
	"github.com/cockroachdb/pebble/v2"
)

// Memory is one managed-memory budget (Config.State.MemoryBytes) split into
// a block cache shared by every Pebble DB of the job in the process and the
// memtables of each DB (docs/state-pebble.md).
//
// Sizing: a DB holds at most two memtables of MemTableSize at a time (one
// being written, one being flushed), so n DBs use up to 2 × n ×
// MemTableSize of memtable memory, and the block cache gets the rest. NewMemory
// gives the memtables a quarter of the budget, MemTableSize = budget / (8 ×
// n), clamped to [1 MiB, 64 MiB], and the cache what remains (at least 8
// MiB). Pebble's other memory (iterators, index and filter blocks not in
// the cache, compaction buffers) is small next to these but not bounded by
// the budget: count about 10 MiB per DB on top. For 10M keys of a few
// dozen bytes each, a budget of 64 MiB keeps the index and filter blocks
// and the hot data blocks cached; more cache means fewer reads from disk
// for keys that do not fit.
type Memory struct {
	// Cache is the shared block cache: pass it in Options.Cache.
	Cache *pebble.Cache
	// MemTableSize is the memtable size of each DB: pass it in
	// Options.MemTableSize.
	MemTableSize uint64
}

// NewMemory splits totalBytes among a shared block cache and the memtables
// of dbs DBs (the job's keyed operator subtasks in this process; 1 if
// less). Release it once every DB using it is closed.
func NewMemory(totalBytes int64, dbs int) *Memory {
	dbs = max(dbs, 1)
	mt := totalBytes / int64(8*dbs)
	mt = min(max(mt, 1<<20), 64<<20)
	cacheBytes := max(totalBytes-2*int64(dbs)*mt, 8<<20)
	return &Memory{Cache: pebble.NewCache(cacheBytes), MemTableSize: uint64(mt)}
}

// Options returns Options for a DB in dir using this budget.
func (m *Memory) Options(dir string) Options {
	return Options{Dir: dir, Cache: m.Cache, MemTableSize: m.MemTableSize}
}

// CacheBytes returns the block cache's capacity.
func (m *Memory) CacheBytes() int64 { return m.Cache.MaxSize() }

// Release drops the budget's reference to the cache; the DBs keep theirs
// until they close.
func (m *Memory) Release() {
	if m.Cache != nil {
		m.Cache.Unref()
		m.Cache = nil
	}
}
