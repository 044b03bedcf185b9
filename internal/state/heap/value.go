package heap

import (
	"encoding/binary"

	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/state"
)

// Value registers (or returns the already registered) state.ValueState called
// name, whose values c encodes. Register states in the operator's Open,
// after Restore: restored entries of the state are decoded here.
//
// Registering a name again with the same kind, value type and TTL returns
// the same state; anything else is an error wrapping state.ErrIncompatible that
// names the state. Restored content that c cannot decode is an error
// wrapping state.ErrCorrupt that names the state and the key group.
func Value[K comparable, V any](b *HeapBackend[K], name string, c codec.Codec[V], opts ...state.Option) (state.ValueState[V], error) {
	o, old, err := b.prepare(name, kindValue, opts)
	if err != nil {
		return nil, err
	}
	if old != nil {
		s, ok := old.(*valueState[K, V])
		if !ok {
			return nil, b.typeConflict(name, kindValue)
		}
		return s, nil
	}
	s := &valueState[K, V]{newValueCore(b, name, kindValue, o, c)}
	if err := s.register(); err != nil {
		return nil, err
	}
	return s, nil
}

// Reducing registers (or returns the already registered) state.ReducingState
// called name, folding added values with reduce. Registration rules are
// those of Value; a state registered again keeps its first reduce function.
func Reducing[K comparable, V any](b *HeapBackend[K], name string, c codec.Codec[V], reduce func(a, b V) V, opts ...state.Option) (state.ReducingState[V], error) {
	o, old, err := b.prepare(name, kindReducing, opts)
	if err != nil {
		return nil, err
	}
	if old != nil {
		s, ok := old.(*reducingState[K, V])
		if !ok {
			return nil, b.typeConflict(name, kindReducing)
		}
		return s, nil
	}
	if reduce == nil {
		return nil, errNil(name, "reduce function")
	}
	s := &reducingState[K, V]{valueCore: newValueCore(b, name, kindReducing, o, c), reduce: reduce}
	if err := s.register(); err != nil {
		return nil, err
	}
	return s, nil
}

// valueCore stores one value per key; ValueState and ReducingState share it
// and its snapshot format. Its tables are hmaps (docs/design.md §6): the
// backend holds the current key's slot hash, from the hash the partitioner
// computed, so a read finds the key's slot with no hashing and, with string
// keys, mostly without reading the key's bytes (equal keys usually share
// them); a write after a read updates the slot found in cache.
type valueCore[K comparable, V any] struct {
	base[K]
	t *hmapTable[K, V]
	// et holds the expiry times (Unix ns) with TTL, nil without. A parallel
	// table rather than a (value, expiry) pair in t keeps the common no-TTL
	// case lean.
	et *hmapTable[K, int64]
	vc codec.Codec[V]
	// rd decodes restored values while adopt runs: vc's Decode, or the
	// reader of an older encoding (codec.Resolve).
	rd codec.DecodeFunc[V]
}

func newValueCore[K comparable, V any](b *HeapBackend[K], name string, k kind, o state.Options, c codec.Codec[V]) valueCore[K, V] {
	s := valueCore[K, V]{base: b.newBase(name, k, o), t: newHmapTable[K, V](b.r.Len(), nil), vc: c}
	if s.ttl != 0 {
		s.et = newHmapTable[K, int64](b.r.Len(), nil)
	}
	return s
}

// adopt checks the codec and decodes restored content, if any. The outer
// handle's register then stores the handle itself in the backend, so that
// re-registration finds the right type.
func (s *valueCore[K, V]) adopt() error {
	if s.vc == nil {
		return errNil(s.name, "value codec")
	}
	s.codecs = []codec.ID{codec.IDOf(s.vc)}
	defer func() { s.rd = nil }()
	return s.b.adopt(&s.base, func(w []codec.ID) []codec.Compatibility {
		return []codec.Compatibility{resolveCodec(s.vc, w, 0, &s.rd)}
	}, s.decodeGroup)
}

func (s *valueCore[K, V]) get() (V, bool) {
	b := s.b
	v, ok := s.t.maps[b.gi].get(b.h, b.key)
	if ok && s.et != nil && s.expired() {
		s.clear() // lazy TTL cleanup
		var zero V
		return zero, false
	}
	return v, ok
}

// expired reports whether the current key's entry has expired (TTL only).
func (s *valueCore[K, V]) expired() bool {
	b := s.b
	exp, _ := s.et.maps[b.gi].get(b.h, b.key)
	return exp <= b.now()
}

func (s *valueCore[K, V]) put(v V) {
	b := s.b
	s.t.mut(&b.cow, b.gi).put(b.h, b.key, v)
	if s.et != nil {
		s.et.mut(&b.cow, b.gi).put(b.h, b.key, s.expiry())
	}
}

// update sets the current key's value to f of its value (and whether it
// had one, unexpired) with one probe of the table: Add's read-modify-write.
func (s *valueCore[K, V]) update(f func(old V, ok bool) V) {
	b := s.b
	if s.et != nil {
		v, ok := s.get()
		s.put(f(v, ok))
		return
	}
	p, ok := s.t.mut(&b.cow, b.gi).upsert(b.h, b.key)
	*p = f(*p, ok)
}

func (s *valueCore[K, V]) clear() {
	b := s.b
	if _, ok := s.t.maps[b.gi].get(b.h, b.key); !ok {
		return // nothing to do: do not clone a frozen map for it
	}
	s.t.mut(&b.cow, b.gi).remove(b.h, b.key)
	if s.et != nil {
		s.et.mut(&b.cow, b.gi).remove(b.h, b.key)
	}
}

func (s *valueCore[K, V]) keys(fn func(K)) {
	for _, m := range s.t.maps {
		for k := range m.all() {
			fn(k)
		}
	}
}

func (s *valueCore[K, V]) numKeys() int { return s.t.entries() }

func (s *valueCore[K, V]) prefetch(kgs []uint16, hs []uint64, start int) uint64 {
	return prefetchSlots(s.t, kgs, hs, start)
}

func (s *valueCore[K, V]) freeze(seq int64) frozenState {
	f := &frozenValues[K, V]{meta: s.meta(), maps: s.t.freeze(seq), kc: s.b.kc, vc: s.vc}
	if s.et != nil {
		f.exps = s.et.freeze(seq)
	}
	return f
}

// decodeGroup decodes a restored key group: key, value, [expiry] repeated.
func (s *valueCore[K, V]) decodeGroup(gi int, body []byte, hasTTL bool, now int64) error {
	for len(body) > 0 {
		k, n, err := s.b.decodeKey(body, gi)
		if err != nil {
			return err
		}
		body = body[n:]
		v, n, err := s.rd(body)
		if err != nil {
			return errEntry(k, err)
		}
		body = body[n:]
		exp, n, err := readExpiry(body, hasTTL)
		if err != nil {
			return errEntry(k, err)
		}
		body = body[n:]
		if exp, live := s.restoredExpiry(exp, hasTTL, now); live {
			h := slotHash(s.b.kc.Hash(k))
			s.t.maps[gi].put(h, k, v)
			if s.et != nil {
				s.et.maps[gi].put(h, k, exp)
			}
		}
	}
	return nil
}

// frozenValues is a value or reducing state as a snapshot saw it.
type frozenValues[K comparable, V any] struct {
	meta blockMeta
	maps []*hmap[K, V]
	exps []*hmap[K, int64] // nil without TTL
	kc   codec.KeyCodec[K]
	vc   codec.Codec[V]
	sc   scratch[K, V]
}

func (f *frozenValues[K, V]) header() blockMeta { return f.meta }

func (f *frozenValues[K, V]) appendGroup(dst []byte, gi int, now int64) []byte {
	m := f.maps[gi]
	if f.exps == nil {
		forEachSeqPrefetched(&f.sc, m.n, m.all(), func(k K, v V) {
			dst = f.kc.Append(dst, k)
			dst = f.vc.Append(dst, v)
		})
		return dst
	}
	exps := f.exps[gi]
	forEachSeqPrefetched(&f.sc, m.n, m.all(), func(k K, v V) {
		exp, _ := exps.get(slotHash(f.kc.Hash(k)), k)
		if exp <= now {
			return // cleanupFullSnapshot: expired entries are not written
		}
		dst = f.kc.Append(dst, k)
		dst = f.vc.Append(dst, v)
		dst = binary.AppendVarint(dst, exp)
	})
	return dst
}

// valueState is the heap ValueState.
type valueState[K comparable, V any] struct{ valueCore[K, V] }

func (s *valueState[K, V]) register() error {
	if err := s.adopt(); err != nil {
		return err
	}
	s.b.states[s.name] = s
	s.b.pfs = append(s.b.pfs, &s.valueCore)
	return nil
}

func (s *valueState[K, V]) Value() (V, bool) { return s.get() }
func (s *valueState[K, V]) Update(v V)       { s.put(v) }
func (s *valueState[K, V]) Clear()           { s.clear() }

// reducingState is the heap ReducingState.
type reducingState[K comparable, V any] struct {
	valueCore[K, V]
	reduce func(a, b V) V
}

func (s *reducingState[K, V]) register() error {
	if err := s.adopt(); err != nil {
		return err
	}
	s.b.states[s.name] = s
	s.b.pfs = append(s.b.pfs, &s.valueCore)
	return nil
}

func (s *reducingState[K, V]) Get() (V, bool) { return s.get() }
func (s *reducingState[K, V]) Clear()         { s.clear() }

func (s *reducingState[K, V]) Add(v V) {
	s.update(func(old V, ok bool) V {
		if ok {
			return s.reduce(old, v)
		}
		return v
	})
}
