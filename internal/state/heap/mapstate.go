package heap

import (
	"encoding/binary"
	"iter"
	"maps"

	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/state"
)

// Map registers (or returns the already registered) state.MapState called name,
// whose user keys kc and user values vc encode. Registration rules are those
// of Value. With state.WithTTL every user key expires on its own.
func Map[K comparable, UK comparable, UV any](b *HeapBackend[K], name string, kc codec.Codec[UK], vc codec.Codec[UV], opts ...state.Option) (state.MapState[UK, UV], error) {
	o, old, err := b.prepare(name, kindMap, opts)
	if err != nil {
		return nil, err
	}
	if old != nil {
		s, ok := old.(*mapState[K, UK, UV])
		if !ok {
			return nil, b.typeConflict(name, kindMap)
		}
		return s, nil
	}
	if kc == nil || vc == nil {
		return nil, errNil(name, "user key or value codec")
	}
	s := &mapState[K, UK, UV]{
		base: b.newBase(name, kindMap, o),
		t:    newTable[K, *userMap[UK, UV]](b.r.Len()),
		ukc:  kc,
		uvc:  vc,
	}
	s.codecs = []codec.ID{codec.IDOf(kc), codec.IDOf(vc)}
	err = b.adopt(&s.base, func(w []codec.ID) []codec.Compatibility {
		return []codec.Compatibility{resolveCodec(kc, w, 0, &s.rdk), resolveCodec(vc, w, 1, &s.rdv)}
	}, s.decodeGroup)
	s.rdk, s.rdv = nil, nil
	if err != nil {
		return nil, err
	}
	b.states[name] = s
	return s, nil
}

// userMap is one key's map, stamped with the epoch of its key group's outer
// map in which it was made. Copy-on-write of the outer map copies only the
// pointer to it, so an inner map from an older epoch may be shared with a
// snapshot: writable clones it before the first write. Nested copy-on-write
// keeps Snapshot O(key groups) and a clone O(entries of one key group), the
// same scheme Flink's CopyOnWriteStateMap uses with state versions.
type userMap[UK comparable, UV any] struct {
	m     map[UK]UV
	exp   map[UK]int64 // expiry times with TTL, nil without
	epoch uint64
}

func (s *mapState[K, UK, UV]) newUserMap(size int, epoch uint64) *userMap[UK, UV] {
	um := &userMap[UK, UV]{m: make(map[UK]UV, size), epoch: epoch}
	if s.ttl != 0 {
		um.exp = make(map[UK]int64, size)
	}
	return um
}

// mapState is the heap MapState.
type mapState[K comparable, UK comparable, UV any] struct {
	base[K]
	t   *table[K, *userMap[UK, UV]]
	ukc codec.Codec[UK]
	uvc codec.Codec[UV]
	// rdk and rdv decode restored user keys and values while adopt runs
	// (see valueCore). User keys may migrate: they are not hashed to key
	// groups.
	rdk codec.DecodeFunc[UK]
	rdv codec.DecodeFunc[UV]
}

// current returns the current key's inner map for reading, nil if none.
func (s *mapState[K, UK, UV]) current() *userMap[UK, UV] {
	return s.t.maps[s.b.gi][s.b.key]
}

// writable returns the current key's inner map for writing, creating it or
// cloning it out of a snapshot's reach as needed.
func (s *mapState[K, UK, UV]) writable() *userMap[UK, UV] {
	b := s.b
	outer := s.t.mut(&b.cow, b.gi) // may start a new epoch: call it first
	epoch := s.t.epoch[b.gi]
	um := outer[b.key]
	switch {
	case um == nil:
		um = s.newUserMap(0, epoch)
		outer[b.key] = um
	case um.epoch != epoch:
		um = &userMap[UK, UV]{m: maps.Clone(um.m), exp: maps.Clone(um.exp), epoch: epoch}
		outer[b.key] = um
	}
	return um
}

func (s *mapState[K, UK, UV]) Get(uk UK) (UV, bool) {
	var zero UV
	um := s.current()
	if um == nil {
		return zero, false
	}
	v, ok := um.m[uk]
	if !ok {
		return zero, false
	}
	if um.exp != nil && um.exp[uk] <= s.b.now() {
		s.Remove(uk)
		return zero, false
	}
	return v, true
}

func (s *mapState[K, UK, UV]) Contains(uk UK) bool {
	_, ok := s.Get(uk)
	return ok
}

func (s *mapState[K, UK, UV]) Put(uk UK, uv UV) {
	um := s.writable()
	um.m[uk] = uv
	if um.exp != nil {
		um.exp[uk] = s.expiry()
	}
}

func (s *mapState[K, UK, UV]) Remove(uk UK) {
	um := s.current()
	if um == nil {
		return
	}
	if _, ok := um.m[uk]; !ok {
		return
	}
	um = s.writable()
	delete(um.m, uk)
	delete(um.exp, uk)
	if len(um.m) == 0 {
		// Drop empty maps so that snapshots and NumKeys skip the key.
		delete(s.t.mut(&s.b.cow, s.b.gi), s.b.key)
	}
}

func (s *mapState[K, UK, UV]) All() iter.Seq2[UK, UV] {
	um := s.current()
	return func(yield func(UK, UV) bool) {
		if um == nil {
			return
		}
		var now int64
		if um.exp != nil {
			now = s.b.now()
		}
		for uk, v := range um.m {
			if um.exp != nil && um.exp[uk] <= now {
				continue
			}
			if !yield(uk, v) {
				return
			}
		}
	}
}

// AppendKeys appends the current key's user keys (those not expired) to
// dst, in unspecified order, and returns the extended slice: iteration
// for hot paths, where the closures of All would allocate on every call.
func (s *mapState[K, UK, UV]) AppendKeys(dst []UK) []UK {
	um := s.current()
	if um == nil {
		return dst
	}
	var now int64
	if um.exp != nil {
		now = s.b.now()
	}
	for uk := range um.m {
		if um.exp != nil && um.exp[uk] <= now {
			continue
		}
		dst = append(dst, uk)
	}
	return dst
}

func (s *mapState[K, UK, UV]) Len() int {
	um := s.current()
	if um == nil {
		return 0
	}
	if um.exp == nil {
		return len(um.m)
	}
	now, n := s.b.now(), 0
	for _, exp := range um.exp {
		if exp > now {
			n++
		}
	}
	return n
}

func (s *mapState[K, UK, UV]) Clear() {
	b := s.b
	if s.current() == nil {
		return
	}
	delete(s.t.mut(&b.cow, b.gi), b.key)
}

func (s *mapState[K, UK, UV]) keys(fn func(K)) {
	for _, m := range s.t.maps {
		for k := range m {
			fn(k)
		}
	}
}

func (s *mapState[K, UK, UV]) numKeys() int { return s.t.entries() }

func (s *mapState[K, UK, UV]) freeze(seq int64) frozenState {
	return &frozenMaps[K, UK, UV]{
		meta: s.meta(), maps: s.t.freeze(seq), kc: s.b.kc, ukc: s.ukc, uvc: s.uvc,
	}
}

// decodeGroup decodes a restored key group: key, uvarint count, then count
// times user key, user value, [expiry]; repeated.
func (s *mapState[K, UK, UV]) decodeGroup(gi int, body []byte, hasTTL bool, now int64) error {
	outer := s.t.maps[gi]
	epoch := s.t.epoch[gi]
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
		um := s.newUserMap(int(count), epoch)
		for range count {
			uk, n, err := s.rdk(body)
			if err != nil {
				return errEntry(k, err)
			}
			body = body[n:]
			uv, n, err := s.rdv(body)
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
				um.m[uk] = uv
				if um.exp != nil {
					um.exp[uk] = exp
				}
			}
		}
		if len(um.m) > 0 {
			outer[k] = um
		}
	}
	return nil
}

type frozenMaps[K comparable, UK comparable, UV any] struct {
	meta blockMeta
	maps []map[K]*userMap[UK, UV]
	kc   codec.KeyCodec[K]
	ukc  codec.Codec[UK]
	uvc  codec.Codec[UV]
	sc   scratch[K, *userMap[UK, UV]]
}

func (f *frozenMaps[K, UK, UV]) header() blockMeta { return f.meta }

func (f *frozenMaps[K, UK, UV]) appendGroup(dst []byte, gi int, now int64) []byte {
	forEachPrefetched(&f.sc, f.maps[gi], func(k K, um *userMap[UK, UV]) {
		n := len(um.m)
		if um.exp != nil {
			// Count the live entries first: the count precedes them.
			n = 0
			for _, exp := range um.exp {
				if exp > now {
					n++
				}
			}
		}
		if n == 0 {
			return
		}
		dst = f.kc.Append(dst, k)
		dst = binary.AppendUvarint(dst, uint64(n))
		for uk, v := range um.m {
			var exp int64
			if um.exp != nil {
				if exp = um.exp[uk]; exp <= now {
					continue
				}
			}
			dst = f.ukc.Append(dst, uk)
			dst = f.uvc.Append(dst, v)
			if um.exp != nil {
				dst = binary.AppendVarint(dst, exp)
			}
		}
	})
	return dst
}
