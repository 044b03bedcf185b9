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
	s := &listState[K, V]{base: b.newBase(name, kindList, o), t: newTable[K, []V](b.r.Len()), vc: c}
	if s.ttl != 0 {
		s.et = newTable[K, int64](b.r.Len())
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
	return s, nil
}

// listState is the heap ListState. A key's list is a slice that Add appends
// to in place. That is safe under copy-on-write even though a cloned
// key-group map shares the slice's array with the frozen one: a snapshot
// reads elements [0, len) of the header it froze, appends write at or past
// the current header's len, which is never shorter, and nothing else writes
// into a stored array (Update stores a fresh copy, Clear drops the header).
type listState[K comparable, V any] struct {
	base[K]
	t  *table[K, []V]
	et *table[K, int64] // expiry times with TTL, nil without (see valueCore)
	vc codec.Codec[V]
	rd codec.DecodeFunc[V] // restore decoder while adopt runs (see valueCore)
}

func (s *listState[K, V]) Get() []V {
	b := s.b
	vs, ok := s.t.maps[b.gi][b.key]
	if !ok {
		return nil
	}
	if s.et != nil && s.et.maps[b.gi][b.key] <= b.now() {
		s.Clear()
		return nil
	}
	// Cap the capacity so a caller's append reallocates rather than writing
	// into the array that later Adds (and snapshots) use.
	return vs[:len(vs):len(vs)]
}

func (s *listState[K, V]) Add(v V) {
	b := s.b
	m := s.t.mut(&b.cow, b.gi)
	vs := m[b.key]
	if s.et != nil {
		em := s.et.mut(&b.cow, b.gi)
		now := b.now()
		if vs != nil && em[b.key] <= now {
			vs = nil // an expired list restarts empty
		}
		em[b.key] = now + s.ttl
	}
	m[b.key] = append(vs, v)
}

func (s *listState[K, V]) Update(vs []V) {
	if len(vs) == 0 {
		s.Clear()
		return
	}
	b := s.b
	s.t.mut(&b.cow, b.gi)[b.key] = slices.Clone(vs)
	if s.et != nil {
		s.et.mut(&b.cow, b.gi)[b.key] = s.expiry()
	}
}

func (s *listState[K, V]) Clear() {
	b := s.b
	if _, ok := s.t.maps[b.gi][b.key]; !ok {
		return
	}
	delete(s.t.mut(&b.cow, b.gi), b.key)
	if s.et != nil {
		delete(s.et.mut(&b.cow, b.gi), b.key)
	}
}

func (s *listState[K, V]) keys(fn func(K)) {
	for _, m := range s.t.maps {
		for k := range m {
			fn(k)
		}
	}
}

func (s *listState[K, V]) numKeys() int { return s.t.entries() }

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
			s.t.maps[gi][k] = vs
			if s.et != nil {
				s.et.maps[gi][k] = exp
			}
		}
	}
	return nil
}

type frozenLists[K comparable, V any] struct {
	meta blockMeta
	maps []map[K][]V
	exps []map[K]int64 // nil without TTL
	kc   codec.KeyCodec[K]
	vc   codec.Codec[V]
	sc   scratch[K, []V]
}

func (f *frozenLists[K, V]) header() blockMeta { return f.meta }

func (f *frozenLists[K, V]) appendGroup(dst []byte, gi int, now int64) []byte {
	var exps map[K]int64
	if f.exps != nil {
		exps = f.exps[gi]
	}
	forEachPrefetched(&f.sc, f.maps[gi], func(k K, vs []V) {
		var exp int64
		if exps != nil {
			if exp = exps[k]; exp <= now {
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
