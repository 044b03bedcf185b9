package pebblestate

import (
	"encoding/binary"
	"errors"

	"github.com/cockroachdb/pebble/v2"

	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/state"
)

// List registers (or returns the already registered) state.ListState called
// name, whose elements c encodes. Registration rules are those of Value. A
// key's list is one Pebble value (count, then the elements): Add reads and
// rewrites it, so keep lists short (a window's contents, not a log).
func List[K comparable, V any](b *Backend[K], name string, c codec.Codec[V], opts ...state.Option) (state.ListState[V], error) {
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
	s := &listState[K, V]{stateBase: stateBase[K]{b: b, name: name, ttl: int64(o.TTL)}, vc: c}
	err = b.adopt(&s.stateBase, s, kindList, []codec.ID{codec.IDOf(c)},
		func(w []codec.ID) []codec.Compatibility {
			return []codec.Compatibility{resolveCodec(c, w, 0, &s.rd)}
		}, s.decodeBlob, s.rewrite)
	s.rd = nil
	if err != nil {
		return nil, err
	}
	return s, nil
}

// listState is the Pebble ListState.
type listState[K comparable, V any] struct {
	stateBase[K]
	vc codec.Codec[V]
	rd codec.DecodeFunc[V]
	// lbuf is the scratch value Add builds.
	lbuf []byte
}

var errBadCount = errors.New("element count exceeds the remaining bytes")

// read returns the current key's live list bytes (count and elements),
// copied, or nil.
func (s *listState[K, V]) read(key []byte) []byte {
	b := s.b
	raw, ok := b.getInto(key)
	if !ok {
		return nil
	}
	if s.ttl != 0 {
		if len(raw) < 8 {
			b.fail(s.corrupt(errShort))
			return nil
		}
		if int64(binary.BigEndian.Uint64(raw)) <= b.now() {
			b.del(key)
			return nil
		}
		raw = raw[8:]
	}
	return raw
}

func (s *listState[K, V]) Get() []V {
	b := s.b
	key := b.stateKey(s.sid)
	raw := s.read(key)
	if raw == nil {
		return nil
	}
	vs, err := decodeList(raw, s.vc.Decode)
	if err != nil {
		b.fail(s.corrupt(err))
		return nil
	}
	return vs[:len(vs):len(vs)]
}

func decodeList[V any](raw []byte, dec codec.DecodeFunc[V]) ([]V, error) {
	count, n := binary.Uvarint(raw)
	if n <= 0 || count > uint64(len(raw)-n) {
		return nil, errBadCount
	}
	raw = raw[n:]
	vs := make([]V, 0, count)
	for range count {
		v, n, err := dec(raw)
		if err != nil {
			return nil, err
		}
		raw = raw[n:]
		vs = append(vs, v)
	}
	return vs, nil
}

func (s *listState[K, V]) Add(v V) {
	b := s.b
	key := b.stateKey(s.sid)
	var count uint64
	var elems []byte
	raw, cl, err := b.db.Get(key)
	switch {
	case err == nil:
		body := raw
		live := true
		if s.ttl != 0 {
			if len(raw) < 8 {
				cl.Close()
				b.fail(s.corrupt(errShort))
				return
			}
			live = int64(binary.BigEndian.Uint64(raw)) > b.now()
			body = raw[8:]
		}
		if live {
			c, n := binary.Uvarint(body)
			if n <= 0 {
				cl.Close()
				b.fail(s.corrupt(errBadCount))
				return
			}
			count, elems = c, body[n:]
		}
	case !errors.Is(err, pebble.ErrNotFound):
		b.fail(err)
		return
	}
	out := s.appendExpiry(s.lbuf[:0])
	out = binary.AppendUvarint(out, count+1)
	out = append(out, elems...)
	out = s.vc.Append(out, v)
	if cl != nil {
		cl.Close()
	}
	s.lbuf = out
	b.set(key, out)
}

func (s *listState[K, V]) Update(vs []V) {
	if len(vs) == 0 {
		s.Clear()
		return
	}
	b := s.b
	key := b.stateKey(s.sid)
	out := s.appendExpiry(s.lbuf[:0])
	out = binary.AppendUvarint(out, uint64(len(vs)))
	for _, v := range vs {
		out = s.vc.Append(out, v)
	}
	s.lbuf = out
	b.set(key, out)
}

func (s *listState[K, V]) Clear() { s.b.del(s.b.stateKey(s.sid)) }

// decodeBlob writes a restored canonical body: key count element{count}
// [expiry] repeated.
func (s *listState[K, V]) decodeBlob(kg int, body []byte, hasTTL bool, now int64) error {
	b := s.b
	for len(body) > 0 {
		k, n, err := b.decodeKey(body, kg)
		if err != nil {
			return err
		}
		key := append(appendPrefix(b.kbuf2[:0], kg, s.sid), body[:n]...)
		b.kbuf2 = key
		body = body[n:]
		count, n := binary.Uvarint(body)
		if n <= 0 || count > uint64(len(body)-n) {
			return errEntry(k, errBadCount)
		}
		body = body[n:]
		out := binary.AppendUvarint(s.lbuf[:0], count)
		for range count {
			v, n, err := s.rd(body)
			if err != nil {
				return errEntry(k, err)
			}
			body = body[n:]
			out = s.vc.Append(out, v)
		}
		s.lbuf = out
		exp, n, err := readExpiry(body, hasTTL)
		if err != nil {
			return errEntry(k, err)
		}
		body = body[n:]
		if exp, live := s.restoredExpiry(exp, hasTTL, now); live && count > 0 {
			val := appendExp(b.vbuf[:0], s.ttl, exp)
			val = append(val, out...)
			b.vbuf = val
			b.set(key, val)
		}
	}
	return nil
}

func (s *listState[K, V]) rewrite(key, val []byte, hasTTL bool, now int64) error {
	b := s.b
	exp, val, err := cutExpiry(val, hasTTL)
	if err != nil {
		return err
	}
	vs, err := decodeList(val, s.rd)
	if err != nil {
		return err
	}
	exp, live := s.restoredExpiry(exp, hasTTL, now)
	if !live || len(vs) == 0 {
		b.del(key)
		return nil
	}
	out := appendExp(s.lbuf[:0], s.ttl, exp)
	out = binary.AppendUvarint(out, uint64(len(vs)))
	for _, v := range vs {
		out = s.vc.Append(out, v)
	}
	s.lbuf = out
	b.set(key, out)
	return nil
}
