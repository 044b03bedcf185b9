package pebblestate

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/state"
)

// Value registers (or returns the already registered) state.ValueState called
// name, whose values c encodes, with heap.Value's rules: register states in
// the operator's Open, after Restore; registering a name again with the same
// kind, value type and TTL returns the same state, anything else is an error
// wrapping state.ErrIncompatible; restored content that c cannot decode is an
// error wrapping state.ErrCorrupt naming the state and the key group.
func Value[K comparable, V any](b *Backend[K], name string, c codec.Codec[V], opts ...state.Option) (state.ValueState[V], error) {
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
	if c == nil {
		return nil, errNil(name, "value codec")
	}
	s := &valueState[K, V]{valueCore[K, V]{stateBase: stateBase[K]{b: b, name: name, ttl: int64(o.TTL)}, vc: c}}
	if err := s.register(kindValue, s); err != nil {
		return nil, err
	}
	return s, nil
}

// Reducing registers (or returns the already registered) state.ReducingState
// called name, folding added values with reduce. Registration rules are
// those of Value; a state registered again keeps its first reduce function.
func Reducing[K comparable, V any](b *Backend[K], name string, c codec.Codec[V], reduce func(a, b V) V, opts ...state.Option) (state.ReducingState[V], error) {
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
	if c == nil {
		return nil, errNil(name, "value codec")
	}
	s := &reducingState[K, V]{valueCore: valueCore[K, V]{stateBase: stateBase[K]{b: b, name: name, ttl: int64(o.TTL)}, vc: c}, reduce: reduce}
	if err := s.register(kindReducing, s); err != nil {
		return nil, err
	}
	return s, nil
}

// valueCore stores one value per key; ValueState and ReducingState share it.
type valueCore[K comparable, V any] struct {
	stateBase[K]
	vc codec.Codec[V]
	rd codec.DecodeFunc[V] // restore decoder while adopt runs
}

func (s *valueCore[K, V]) register(k kind, h registered[K]) error {
	s.rd = nil
	defer func() { s.rd = nil }()
	return s.b.adopt(&s.stateBase, h, k, []codec.ID{codec.IDOf(s.vc)},
		func(w []codec.ID) []codec.Compatibility {
			return []codec.Compatibility{resolveCodec(s.vc, w, 0, &s.rd)}
		}, s.decodeBlob, s.rewrite)
}

var errShort = errors.New("entry shorter than its expiry")

func (s *valueCore[K, V]) get() (V, bool) {
	var zero V
	b := s.b
	key := b.stateKey(s.sid)
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
			b.del(key) // lazy TTL cleanup
			return zero, false
		}
		raw = raw[8:]
	}
	v, _, err := s.vc.Decode(raw)
	cl.Close()
	if err != nil {
		b.fail(s.corrupt(err))
		return zero, false
	}
	return v, true
}

func (s *stateBase[K]) corrupt(err error) error {
	return fmt.Errorf("%w: state %q, key %v: %w", state.ErrCorrupt, s.name, s.b.key, err)
}

// appendExpiry starts a value with its expiry, if the state has a TTL.
func (s *stateBase[K]) appendExpiry(dst []byte) []byte {
	if s.ttl == 0 {
		return dst
	}
	return binary.BigEndian.AppendUint64(dst, uint64(s.b.now()+s.ttl))
}

func (s *valueCore[K, V]) put(v V) {
	b := s.b
	key := b.stateKey(s.sid)
	val := s.appendExpiry(b.vbuf[:0])
	val = s.vc.Append(val, v)
	b.vbuf = val
	b.set(key, val)
}

func (s *valueCore[K, V]) clear() { s.b.del(s.b.stateKey(s.sid)) }

// decodeBlob writes the entries of a restored canonical body of key group
// kg: key value [expiry] repeated.
func (s *valueCore[K, V]) decodeBlob(kg int, body []byte, hasTTL bool, now int64) error {
	b := s.b
	for len(body) > 0 {
		k, n, err := b.decodeKey(body, kg)
		if err != nil {
			return err
		}
		key := append(appendPrefix(b.kbuf2[:0], kg, s.sid), body[:n]...)
		b.kbuf2 = key
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
			val := appendExp(b.vbuf[:0], s.ttl, exp)
			val = s.vc.Append(val, v)
			b.vbuf = val
			b.set(key, val)
		}
	}
	return nil
}

// rewrite re-encodes one native entry (key rest after the prefix, value
// val) written with other codecs or another TTL setting.
func (s *valueCore[K, V]) rewrite(key, val []byte, hasTTL bool, now int64) error {
	b := s.b
	exp, val, err := cutExpiry(val, hasTTL)
	if err != nil {
		return err
	}
	v, _, err := s.rd(val)
	if err != nil {
		return err
	}
	exp, live := s.restoredExpiry(exp, hasTTL, now)
	if !live {
		b.del(key)
		return nil
	}
	out := appendExp(b.vbuf[:0], s.ttl, exp)
	out = s.vc.Append(out, v)
	b.vbuf = out
	b.set(key, out)
	return nil
}

// valueState is the Pebble ValueState.
type valueState[K comparable, V any] struct{ valueCore[K, V] }

func (s *valueState[K, V]) Value() (V, bool) { return s.get() }
func (s *valueState[K, V]) Update(v V)       { s.put(v) }
func (s *valueState[K, V]) Clear()           { s.clear() }

// reducingState is the Pebble ReducingState.
type reducingState[K comparable, V any] struct {
	valueCore[K, V]
	reduce func(a, b V) V
}

func (s *reducingState[K, V]) Get() (V, bool) { return s.get() }
func (s *reducingState[K, V]) Clear()         { s.clear() }

func (s *reducingState[K, V]) Add(v V) {
	if old, ok := s.get(); ok {
		v = s.reduce(old, v)
	}
	s.put(v)
}

// appendExp starts a value with expiry exp if ttl is set.
func appendExp(dst []byte, ttl, exp int64) []byte {
	if ttl == 0 {
		return dst
	}
	return binary.BigEndian.AppendUint64(dst, uint64(exp))
}

// cutExpiry splits a native value into its expiry and the rest.
func cutExpiry(val []byte, hasTTL bool) (int64, []byte, error) {
	if !hasTTL {
		return 0, val, nil
	}
	if len(val) < 8 {
		return 0, nil, errShort
	}
	return int64(binary.BigEndian.Uint64(val)), val[8:], nil
}
