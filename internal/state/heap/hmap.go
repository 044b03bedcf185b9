package heap

import "iter"

// hmap is the hash map of a key group of a window state or of a value or
// reducing state (docs/design.md §14, §6):
// open addressing with linear probing over one slice of slots, each slot
// holding an entry's key, value and slot hash. The caller gives the hash
// (slotHash of the key's hash): the partitioner hashed each record's key
// once for its key group, and the state reuses that hash rather than
// hashing the key again. Against a Go map it finds
// an entry with one probe into one cache line, updates it in place
// (upsert: one lookup where a map needs a read and a write), compares
// hashes before keys, and walks its entries in memory order, which the
// snapshot's encoder reads sequentially. A window's state is dropped whole
// (WindowMajor.DropPane); a value state's entry is removed by backward-shift
// deletion (remove), which leaves no tombstones behind.
type hmap[K comparable, V any] struct {
	slots []hslot[K, V]
	n     int
	// shift is 64 - log2(len(slots)): an entry's home slot is the top bits
	// of its hash.
	shift uint
}

// hslot is one slot; h == 0 marks it empty (slotHash never returns 0).
type hslot[K comparable, V any] struct {
	h uint64
	k K
	v V
}

// hmapMinSlots is the smallest table; hmapLoad/hmapLoadDiv is the highest
// load a table reaches before it doubles.
const (
	hmapMinSlots = 8
	hmapLoad     = 3
	hmapLoadDiv  = 4
)

// newHmap returns an empty map sized for hint entries without growing.
func newHmap[K comparable, V any](hint int) *hmap[K, V] {
	n, shift := hmapMinSlots, uint(61)
	for n*hmapLoad/hmapLoadDiv < hint {
		n <<= 1
		shift--
	}
	return &hmap[K, V]{slots: make([]hslot[K, V], n), shift: shift}
}

// slotHash returns the slot hash of a key whose hash is kh, never 0, the
// empty slot's mark. A table indexes by its top bits; multiplying by 2^64
// divided by the golden ratio (Fibonacci hashing) fills them from every bit
// of kh, which may be weak (an integer's identity).
func slotHash(kh uint64) uint64 { return kh*0x9e3779b97f4a7c15 | 1 }

// Len returns the number of entries.
func (m *hmap[K, V]) Len() int { return m.n }

// find returns the slot of k, or the empty slot where k belongs.
func (m *hmap[K, V]) find(h uint64, k K) *hslot[K, V] {
	mask := uint64(len(m.slots) - 1)
	for i := h >> m.shift; ; i = (i + 1) & mask {
		s := &m.slots[i]
		if s.h == h && s.k == k || s.h == 0 {
			return s
		}
	}
}

// get returns the value of k, whose slot hash is h, and whether k is
// present.
func (m *hmap[K, V]) get(h uint64, k K) (V, bool) {
	s := m.find(h, k)
	return s.v, s.h != 0
}

// upsert returns a pointer to the value of k, whose slot hash is h,
// inserting the zero value if k is absent, and whether k was present. The
// pointer is valid until the next insertion.
func (m *hmap[K, V]) upsert(h uint64, k K) (*V, bool) {
	s := m.find(h, k)
	if s.h != 0 {
		return &s.v, true
	}
	if (m.n+1)*hmapLoadDiv > len(m.slots)*hmapLoad {
		m.grow()
		s = m.find(h, k)
	}
	s.h, s.k = h, k
	m.n++
	return &s.v, false
}

// put sets the value of k, whose slot hash is h.
func (m *hmap[K, V]) put(h uint64, k K, v V) {
	p, _ := m.upsert(h, k)
	*p = v
}

// remove deletes k, whose slot hash is h, and reports whether it was
// present. The entries after it in its probe run move back over the hole
// when their home slot allows it, so that every entry stays reachable from
// its home slot without passing an empty slot.
func (m *hmap[K, V]) remove(h uint64, k K) bool {
	mask := uint64(len(m.slots) - 1)
	hole := h >> m.shift
	for {
		s := &m.slots[hole]
		if s.h == 0 {
			return false
		}
		if s.h == h && s.k == k {
			break
		}
		hole = (hole + 1) & mask
	}
	for j := (hole + 1) & mask; m.slots[j].h != 0; j = (j + 1) & mask {
		// The entry at j may fill the hole if the hole lies between its
		// home slot and j, cyclically: it is at least as far from home.
		home := m.slots[j].h >> m.shift
		if (j-home)&mask >= (j-hole)&mask {
			m.slots[hole] = m.slots[j]
			hole = j
		}
	}
	m.slots[hole] = hslot[K, V]{}
	m.n--
	return true
}

// grow doubles the slots and reinserts every entry.
//
//go:noinline
func (m *hmap[K, V]) grow() {
	old := m.slots
	m.slots = make([]hslot[K, V], 2*len(old))
	m.shift--
	mask := uint64(len(m.slots) - 1)
	for j := range old {
		o := &old[j]
		if o.h == 0 {
			continue
		}
		i := o.h >> m.shift
		for m.slots[i].h != 0 {
			i = (i + 1) & mask
		}
		m.slots[i] = *o
	}
}

// clone returns a copy that shares nothing with m.
func (m *hmap[K, V]) clone() *hmap[K, V] {
	c := *m
	c.slots = append([]hslot[K, V](nil), m.slots...)
	return &c
}

// all yields every entry in slot order.
func (m *hmap[K, V]) all() iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		for i := range m.slots {
			s := &m.slots[i]
			if s.h != 0 && !yield(s.k, s.v) {
				return
			}
		}
	}
}

// hmapTable is a window state's table: an hmap per key group of the
// backend's range, with the copy-on-write marks of table (table.go).
type hmapTable[K comparable, V any] struct {
	maps   []*hmap[K, V]
	frozen []int64
}

// newHmapTable returns a table of groups empty maps, map gi sized for
// hints[gi] entries when hints is not nil.
func newHmapTable[K comparable, V any](groups int, hints []int) *hmapTable[K, V] {
	t := &hmapTable[K, V]{maps: make([]*hmap[K, V], groups), frozen: make([]int64, groups)}
	for i := range t.maps {
		hint := 0
		if hints != nil {
			hint = hints[i]
		}
		t.maps[i] = newHmap[K, V](hint)
		t.frozen[i] = unseen
	}
	return t
}

// mut returns key group gi's map for writing.
func (t *hmapTable[K, V]) mut(c *cow, gi int) *hmap[K, V] {
	if f := t.frozen[gi]; f != 0 {
		t.thaw(c, gi, f)
	}
	return t.maps[gi]
}

//go:noinline
func (t *hmapTable[K, V]) thaw(c *cow, gi int, f int64) {
	if c.thawGroup(gi, f) {
		t.maps[gi] = t.maps[gi].clone()
	}
	t.frozen[gi] = 0
}

// freeze marks every map as held by snapshot seq and returns them.
func (t *hmapTable[K, V]) freeze(seq int64) []*hmap[K, V] {
	for i := range t.frozen {
		t.frozen[i] = seq
	}
	return append([]*hmap[K, V](nil), t.maps...)
}

// entries returns the number of entries in all key groups.
func (t *hmapTable[K, V]) entries() int {
	n := 0
	for _, m := range t.maps {
		n += m.n
	}
	return n
}

// prefetchSlots loads the home slot of every key of a batch in t, given by
// key group (start is the backend's first; others are skipped) and hash,
// and returns a sum of what it loaded (HeapBackend.Prefetch).
func prefetchSlots[K comparable, V any](t *hmapTable[K, V], kgs []uint16, hs []uint64, start int) (x uint64) {
	maps := t.maps
	for i, kg := range kgs[:len(hs)] {
		gi := int(kg) - start
		if uint(gi) >= uint(len(maps)) {
			continue
		}
		m := maps[gi]
		x += m.slots[slotHash(hs[i])>>m.shift].h
	}
	return x
}
