package heap

import (
	"maps"
	"sync"
	"sync/atomic"
)

// cow is the backend's copy-on-write bookkeeping, shared by all its tables.
type cow struct {
	// seq numbers snapshots 1, 2, 3, …; it is the last one taken. Task
	// goroutine only.
	seq int64
	// safe is the task's cached copy of rel.upTo. It only grows, so a stale
	// copy errs on the safe side (an unnecessary clone).
	safe int64
	// clones counts key-group maps cloned because they were frozen; for
	// tests and metrics.
	clones int64
	rel    *releaser
	// changed[gi] is set by the first write to key group index gi after a
	// snapshot (thaw, the slow path of every write: no cost per record),
	// and ver[gi] is the seq of the oldest snapshot holding the group's
	// current contents: Snapshot moves changed into ver. Incremental
	// snapshots reuse a key group's section of an earlier file while
	// ver[gi] is not above that file's snapshot (incremental.go).
	changed []bool
	ver     []int64
}

// releaser carries Snapshot.Release, which may run on any goroutine, to the
// task goroutine: upTo is a watermark such that every snapshot with
// seq <= upTo has been released. The atomic store in release and the load in
// table.thaw order the writer's last read of a frozen map before the task's
// first write to it, which keeps the race detector (and the memory model)
// satisfied without a lock on the hot path.
type releaser struct {
	upTo atomic.Int64
	mu   sync.Mutex
	// pending holds seqs released out of order, above upTo+1.
	pending map[int64]struct{}
}

func (r *releaser) release(seq int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	up := r.upTo.Load()
	if seq <= up {
		return
	}
	if r.pending == nil {
		r.pending = make(map[int64]struct{})
	}
	r.pending[seq] = struct{}{}
	for {
		if _, ok := r.pending[up+1]; !ok {
			break
		}
		delete(r.pending, up+1)
		up++
	}
	r.upTo.Store(up)
}

// table is one state's (or the timers') data: a map per key group of the
// backend's range, indexed by key group minus range start, with
// copy-on-write marks.
type table[KK comparable, E any] struct {
	maps []map[KK]E
	// frozen[i] is the seq of the latest snapshot that holds maps[i], 0 if
	// none may still read it (unseen until the first write of a new
	// table). A frozen map is written only after every
	// snapshot up to frozen[i] has been released; before that the first
	// write clones it.
	frozen []int64
	// epoch[i] counts the clones of maps[i]. MapState stores an inner map
	// per key and stamps it with the epoch it was made in: an inner map
	// from an older epoch may be shared with a snapshot and is cloned
	// before it is written (see mapState.writable).
	epoch []uint64
}

func newTable[KK comparable, E any](groups int) *table[KK, E] {
	t := &table[KK, E]{
		maps:   make([]map[KK]E, groups),
		frozen: make([]int64, groups),
		epoch:  make([]uint64, groups),
	}
	for i := range t.maps {
		t.maps[i] = make(map[KK]E)
		t.frozen[i] = unseen
	}
	return t
}

// unseen is the frozen mark of a new table's maps: no snapshot holds them,
// but their first write takes thaw's slow path all the same, so that it is
// recorded in cow.changed (a state restored and registered after a
// snapshot lands in a new table).
const unseen = -1

// mut returns key group gi's map for writing.
func (t *table[KK, E]) mut(c *cow, gi int) map[KK]E {
	if f := t.frozen[gi]; f != 0 {
		t.thaw(c, gi, f)
	}
	return t.maps[gi]
}

// thaw is mut's slow path, kept out of line so that mut inlines.
//
//go:noinline
func (t *table[KK, E]) thaw(c *cow, gi int, f int64) {
	if c.thawGroup(gi, f) {
		t.maps[gi] = maps.Clone(t.maps[gi])
		t.epoch[gi]++
	}
	t.frozen[gi] = 0
}

// thawGroup records the first write to key group index gi of a table
// frozen by snapshot f, and reports whether the table must clone the
// group's map first: a snapshot still being written holds it.
func (c *cow) thawGroup(gi int, f int64) bool {
	if f > c.safe {
		c.safe = c.rel.upTo.Load()
	}
	clone := f > c.safe
	if clone {
		c.clones++
	}
	if c.changed != nil {
		c.changed[gi] = true
	}
	return clone
}

// freeze marks every map as held by snapshot seq and returns them. O(key
// groups), independent of the number of entries.
func (t *table[KK, E]) freeze(seq int64) []map[KK]E {
	for i := range t.frozen {
		t.frozen[i] = seq
	}
	out := make([]map[KK]E, len(t.maps))
	copy(out, t.maps)
	return out
}

// entries returns the number of entries in all key groups.
func (t *table[KK, E]) entries() int {
	n := 0
	for _, m := range t.maps {
		n += len(m)
	}
	return n
}
