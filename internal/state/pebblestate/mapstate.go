package pebblestate

import (
	"encoding/binary"
	"errors"
	"iter"

	"github.com/cockroachdb/pebble/v2"

	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/state"
)

// Map registers (or returns the already registered) state.MapState called
// name, whose user keys kc and user values vc encode. Registration rules are
// those of Value. Every user key is its own Pebble entry; with
// state.WithTTL every user key expires on its own.
func Map[K comparable, UK comparable, UV any](b *Backend[K], name string, kc codec.Codec[UK], vc codec.Codec[UV], opts ...state.Option) (state.MapState[UK, UV], error) {
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
	s := &mapState[K, UK, UV]{stateBase: stateBase[K]{b: b, name: name, ttl: int64(o.TTL)}, ukc: kc, uvc: vc}
	err = b.adopt(&s.stateBase, s, kindMap, []codec.ID{codec.IDOf(kc), codec.IDOf(vc)},
		func(w []codec.ID) []codec.Compatibility {
			return []codec.Compatibility{resolveCodec(kc, w, 0, &s.rdk), resolveCodec(vc, w, 1, &s.rdv)}
		}, s.decodeBlob, s.rewrite)
	s.rdk, s.rdv = nil, nil
	if err != nil {
		return nil, err
	}
	return s, nil
}

// mapState is the Pebble MapState.
type mapState[K comparable, UK comparable, UV any] struct {
	stateBase[K]
	ukc codec.Codec[UK]
	uvc codec.Codec[UV]
	rdk codec.DecodeFunc[UK]
	rdv codec.DecodeFunc[UV]
}

// entryKey builds the Pebble key of user key uk under the current key.
func (s *mapState[K, UK, UV]) entryKey(uk UK) []byte {
	b := s.b
	k := s.ukc.Append(b.stateKey(s.sid), uk)
	b.kbuf = k
	return k
}

func (s *mapState[K, UK, UV]) Get(uk UK) (UV, bool) {
	var zero UV
	b := s.b
	key := s.entryKey(uk)
	raw, cl, err := b.db.Get(key)
	if err != nil {
		if !errors.Is(err, pebble.ErrNotFound) {
			b.fail(err)
		}
		return zero, false
	}
	if s.ttl != 0 {
		if len(raw) < 8 {
			cl.Close()
			b.fail(s.corrupt(errShort))
			return zero, false
		}
		if int64(binary.BigEndian.Uint64(raw)) <= b.now() {
			cl.Close()
			b.del(key)
			return zero, false
		}
		raw = raw[8:]
	}
	v, _, err := s.uvc.Decode(raw)
	cl.Close()
	if err != nil {
		b.fail(s.corrupt(err))
		return zero, false
	}
	return v, true
}

func (s *mapState[K, UK, UV]) Contains(uk UK) bool {
	_, ok := s.Get(uk)
	return ok
}

func (s *mapState[K, UK, UV]) Put(uk UK, uv UV) {
	b := s.b
	key := s.entryKey(uk)
	val := s.appendExpiry(b.vbuf[:0])
	val = s.uvc.Append(val, uv)
	b.vbuf = val
	b.set(key, val)
}

func (s *mapState[K, UK, UV]) Remove(uk UK) { s.b.del(s.entryKey(uk)) }

// bounds returns the key range of the current key's entries.
func (s *mapState[K, UK, UV]) bounds() (lo, hi []byte) {
	lo = append([]byte(nil), s.b.stateKey(s.sid)...)
	return lo, prefixEnd(lo)
}

// each calls fn with every live entry of the key range [lo, hi), user key
// and value decoded; it stops when fn returns false.
func (s *mapState[K, UK, UV]) each(lo, hi []byte, decodeValue bool, fn func(UK, UV) bool) {
	b := s.b
	it := b.iter(lo, hi)
	if it == nil {
		return
	}
	defer it.Close()
	var now int64
	if s.ttl != 0 {
		now = b.now()
	}
	for ok := it.First(); ok; ok = it.Next() {
		val := it.Value()
		exp, val, err := cutExpiry(val, s.ttl != 0)
		if err != nil {
			b.fail(s.corrupt(err))
			return
		}
		if s.ttl != 0 && exp <= now {
			continue
		}
		uk, _, err := s.ukc.Decode(it.Key()[len(lo):])
		if err != nil {
			b.fail(s.corrupt(err))
			return
		}
		var uv UV
		if decodeValue {
			if uv, _, err = s.uvc.Decode(val); err != nil {
				b.fail(s.corrupt(err))
				return
			}
		}
		if !fn(uk, uv) {
			return
		}
	}
}

// All iterates over the current key's live entries, in user-key byte
// order. It reads them all before the first yield, so writes during the
// iteration are not seen.
func (s *mapState[K, UK, UV]) All() iter.Seq2[UK, UV] {
	lo, hi := s.bounds()
	return func(yield func(UK, UV) bool) {
		var uks []UK
		var uvs []UV
		s.each(lo, hi, true, func(uk UK, uv UV) bool {
			uks = append(uks, uk)
			uvs = append(uvs, uv)
			return true
		})
		for i, uk := range uks {
			if !yield(uk, uvs[i]) {
				return
			}
		}
	}
}

// AppendKeys appends the current key's live user keys to dst, in user-key
// byte order, and returns the extended slice (heap's map state has the
// same method, for hot paths).
func (s *mapState[K, UK, UV]) AppendKeys(dst []UK) []UK {
	lo, hi := s.bounds()
	s.each(lo, hi, false, func(uk UK, _ UV) bool {
		dst = append(dst, uk)
		return true
	})
	return dst
}

func (s *mapState[K, UK, UV]) Len() int {
	b := s.b
	lo, hi := s.bounds()
	it := b.iter(lo, hi)
	if it == nil {
		return 0
	}
	defer it.Close()
	var now int64
	if s.ttl != 0 {
		now = b.now()
	}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		if s.ttl != 0 {
			exp, _, err := cutExpiry(it.Value(), true)
			if err != nil {
				b.fail(s.corrupt(err))
				return n
			}
			if exp <= now {
				continue
			}
		}
		n++
	}
	return n
}

func (s *mapState[K, UK, UV]) Clear() {
	lo, hi := s.bounds()
	s.b.delRange(lo, hi)
}

// decodeBlob writes a restored canonical body: key count (userKey
// userValue [expiry]){count}, repeated.
func (s *mapState[K, UK, UV]) decodeBlob(kg int, body []byte, hasTTL bool, now int64) error {
	b := s.b
	for len(body) > 0 {
		k, n, err := b.decodeKey(body, kg)
		if err != nil {
			return err
		}
		pre := append(appendPrefix(nil, kg, s.sid), body[:n]...)
		body = body[n:]
		count, n := binary.Uvarint(body)
		if n <= 0 || count > uint64(len(body)-n) {
			return errEntry(k, errBadCount)
		}
		body = body[n:]
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
				key := s.ukc.Append(append(b.kbuf2[:0], pre...), uk)
				b.kbuf2 = key
				val := appendExp(b.vbuf[:0], s.ttl, exp)
				val = s.uvc.Append(val, uv)
				b.vbuf = val
				b.set(key, val)
			}
		}
	}
	return nil
}

// rewrite re-encodes one native entry. A migrated user key codec may
// change the user key's bytes, so the entry moves.
func (s *mapState[K, UK, UV]) rewrite(key, val []byte, hasTTL bool, now int64) error {
	b := s.b
	_, n, err := b.kc.Decode(key[prefixLen:])
	if err != nil {
		return err
	}
	pre := key[:prefixLen+n]
	uk, _, err := s.rdk(key[prefixLen+n:])
	if err != nil {
		return err
	}
	exp, val, err := cutExpiry(val, hasTTL)
	if err != nil {
		return err
	}
	uv, _, err := s.rdv(val)
	if err != nil {
		return err
	}
	b.del(key)
	exp, live := s.restoredExpiry(exp, hasTTL, now)
	if !live {
		return nil
	}
	nk := s.ukc.Append(append(b.kbuf2[:0], pre...), uk)
	b.kbuf2 = nk
	out := appendExp(b.vbuf[:0], s.ttl, exp)
	out = s.uvc.Append(out, uv)
	b.vbuf = out
	b.set(nk, out)
	return nil
}

// prefixEnd returns the smallest key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xFF {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
