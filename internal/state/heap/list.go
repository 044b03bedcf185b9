package heap

import (
	"encoding/binary"
	"slices"

	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/state"
)

// List registers (or returns the already registered) state.ListState called name,
// whose elements c encodes. Registration rules are those of Value.
func List[K comparable, V any](b *HeapBackend[K], name string, c codec.Codec[V], opts ...state.Option) (state.ListState[V], error) {
	o, old, err := b.prepare(name, kindList, opts)
	if err != nil {
		return nil, err
	}
	if old != nil {
		s, ok := old.(*listState[K, V])
		if !ok {
			return nil, b.typeConflict(name, kindList)
		}
		return s, nil
	}
	if c == nil {
		return nil, errNil(name, "element codec")
	}
	s := &listState[K, V]{base: b.newBase(name, kindList, o), t: newHmapTable[K, []V](b.r.Len(), nil), vc: c}
	if s.ttl != 0 {
		s.et = newHmapTable[K, int64](b.r.Len(), nil)
	}
	s.codecs = []codec.ID{codec.IDOf(c)}
	err = b.adopt(&s.base, func(w []codec.ID) []codec.Compatibility {
		return []codec.Compatibility{resolveCodec(c, w, 0, &s.rd)}
	}, s.decodeGroup)
	s.rd = nil
	if err != nil {
		return nil, err
	}
	b.states[name] = s
	b.pfs = append(b.pfs, s)
	return s, nil
}

// listState is the heap ListState, on hmaps like valueCore. A key's list is
// a slice that Add appends to in place. That is safe under copy-on-write
// even though a cloned key-group table shares the slice's array with the
// frozen one: a snapshot
// reads elements [0, len) of the header it froze, appends write at or past
// the current header's len, which is never shorter, and nothing else writes
// into a stored array (Update stores a fresh copy, Clear drops the header).
type listState[K comparable, V any] struct {
	base[K]
	t  *hmapTable[K, []V]
	et *hmapTable[K, int64] // expiry times with TTL, nil without (see valueCore)
	vc codec.Codec[V]
	rd codec.DecodeFunc[V] // restore decoder while adopt runs (see valueCore)
}

func (s *listState[K, V]) Get() []V {
	b := s.b
	vs, ok := s.t.maps[b.gi].get(b.h, b.key)
	if !ok {
		return nil
	}
	if s.et != nil {
		if exp, _ := s.et.maps[b.gi].get(b.h, b.key); exp <= b.now() {
			s.Clear()
			return nil
		}
	}
	// Cap the capacity so a caller's append reallocates rather than writing
	// into the array that later Adds (and snapshots) use.
	return vs[:len(vs):len(vs)]
}

func (s *listState[K, V]) Add(v V) {
	b := s.b
	p, _ := s.t.mut(&b.cow, b.gi).upsert(b.h, b.key)
	if s.et != nil {
		e, _ := s.et.mut(&b.cow, b.gi).upsert(b.h, b.key)
		now := b.now()
		if *p != nil && *e <= now {
			*p = nil // an expired list restarts empty
		}
		*e = now + s.ttl
	}
	*p = append(*p, v)
}

func (s *listState[K, V]) Update(vs []V) {
	if len(vs) == 0 {
		s.Clear()
		return
	}
	b := s.b
	s.t.mut(&b.cow, b.gi).put(b.h, b.key, slices.Clone(vs))
	if s.et != nil {
		s.et.mut(&b.cow, b.gi).put(b.h, b.key, s.expiry())
	}
}

func (s *listState[K, V]) Clear() {
	b := s.b
	if _, ok := s.t.maps[b.gi].get(b.h, b.key); !ok {
		return
	}
	s.t.mut(&b.cow, b.gi).remove(b.h, b.key)
	if s.et != nil {
		s.et.mut(&b.cow, b.gi).remove(b.h, b.key)
	}
}

func (s *listState[K, V]) keys(fn func(K)) {
	for _, m := range s.t.maps {
		for k := range m.all() {
			fn(k)
		}
	}
}

func (s *listState[K, V]) numKeys() int { return s.t.entries() }

func (s *listState[K, V]) prefetch(kgs []uint16, hs []uint64, start int) uint64 {
	return prefetchSlots(s.t, kgs, hs, start)
}

func (s *listState[K, V]) freeze(seq int64) frozenState {
	f := &frozenLists[K, V]{meta: s.meta(), maps: s.t.freeze(seq), kc: s.b.kc, vc: s.vc}
	if s.et != nil {
		f.exps = s.et.freeze(seq)
	}
	return f
}

// decodeGroup decodes a restored key group: key, uvarint count, elements,
// [expiry], repeated.
func (s *listState[K, V]) decodeGroup(gi int, body []byte, hasTTL bool, now int64) error {
	for len(body) > 0 {
		k, n, err := s.b.decodeKey(body, gi)
		if err != nil {
			return err
		}
		body = body[n:]
		count, n := binary.Uvarint(body)
		if n <= 0 || count > uint64(len(body)-n) {
			return errEntry(k, errBadCount)
		}
		body = body[n:]
		vs := make([]V, 0, count)
		for range count {
			v, n, err := s.rd(body)
			if err != nil {
				return errEntry(k, err)
			}
			body = body[n:]
			vs = append(vs, v)
		}
		exp, n, err := readExpiry(body, hasTTL)
		if err != nil {
			return errEntry(k, err)
		}
		body = body[n:]
		if exp, live := s.restoredExpiry(exp, hasTTL, now); live && len(vs) > 0 {
			h := slotHash(s.b.kc.Hash(k))
			s.t.maps[gi].put(h, k, vs)
			if s.et != nil {
				s.et.maps[gi].put(h, k, exp)
			}
		}
	}
	return nil
}

type frozenLists[K comparable, V any] struct {
	meta blockMeta
	maps []*hmap[K, []V]
	exps []*hmap[K, int64] // nil without TTL
	kc   codec.KeyCodec[K]
	vc   codec.Codec[V]
	sc   scratch[K, []V]
}

func (f *frozenLists[K, V]) header() blockMeta { return f.meta }

func (f *frozenLists[K, V]) appendGroup(dst []byte, gi int, now int64) []byte {
	var exps *hmap[K, int64]
	if f.exps != nil {
		exps = f.exps[gi]
	}
	m := f.maps[gi]
	forEachSeqPrefetched(&f.sc, m.n, m.all(), func(k K, vs []V) {
		var exp int64
		if exps != nil {
			if exp, _ = exps.get(slotHash(f.kc.Hash(k)), k); exp <= now {
				return
			}
		}
		dst = f.kc.Append(dst, k)
		dst = binary.AppendUvarint(dst, uint64(len(vs)))
		for _, v := range vs {
			dst = f.vc.Append(dst, v)
		}
		if exps != nil {
			dst = binary.AppendVarint(dst, exp)
		}
	})
	return dst
}
