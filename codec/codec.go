// Package codec encodes the values Sluice keeps in state snapshots and sends
// on the wire, without reflection (docs/design.md §4: "codecs are explicit").
//
// A Codec appends to a caller-owned buffer and decodes from the front of a
// byte slice, so a snapshot writer can encode millions of entries into one
// reused buffer without allocating per entry. A KeyCodec also hashes keys;
// the hash decides a key's key group (package keygroup), so it must be the
// same in every process, on every machine and in every release: the hashes
// of the built-in key codecs are pinned by golden tests.
//
// Encodings of the built-ins, chosen for compact snapshots of typical state
// (counters, sums, ids) rather than for fixed-width speed:
//
//   - String, Bytes: uvarint length, then the bytes.
//   - Int64, Int, Int32: zig-zag varint (encoding/binary's AppendVarint), so
//     small magnitudes of either sign take one or two bytes.
//   - Uint64, Uint32: uvarint.
//   - Float64: 8 bytes, little-endian IEEE 754 bits (varints would not
//     shrink typical floats, whose low mantissa bits are busy).
//   - Bool: one byte, 0 or 1; any other byte is corrupt.
//   - List(c): uvarint element count, then each element with c.
//
// Decoding never panics: short input yields ErrTruncated and malformed input
// (varint overflow, out-of-range value, impossible length) ErrCorrupt, both
// possibly wrapped with detail, so test with errors.Is.
package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Codec encodes values of T for state snapshots and the wire. No reflection.
type Codec[T any] interface {
	// Append appends the encoding of v to dst and returns the extended
	// slice.
	Append(dst []byte, v T) []byte
	// Decode decodes one value from the front of src and reports how many
	// bytes it consumed. Short or corrupt input yields an error, never a
	// panic. Decoded values never alias src, so src may be reused.
	Decode(src []byte) (v T, n int, err error)
}

// KeyCodec is a Codec for keys that also hashes them, stably across processes
// and machines: key groups are derived from the hash, and a snapshot taken by
// one process is restored by another. Never implement Hash with a randomly
// seeded hash such as hash/maphash's default seed.
type KeyCodec[K comparable] interface {
	Codec[K]
	// Hash returns the key's 64-bit hash. Equal keys must have equal hashes.
	Hash(K) uint64
}

// Errors returned (possibly wrapped) by Decode.
var (
	// ErrTruncated means the input ended in the middle of a value.
	ErrTruncated = errors.New("codec: truncated input")
	// ErrCorrupt means the input is not a valid encoding.
	ErrCorrupt = errors.New("codec: corrupt input")
)

// Pre-wrapped errors, so the common failure paths do not allocate either.
var (
	errVarintOverflow = fmt.Errorf("%w: varint overflows 64 bits", ErrCorrupt)
	errInt32Range     = fmt.Errorf("%w: value out of int32 range", ErrCorrupt)
	errUint32Range    = fmt.Errorf("%w: value out of uint32 range", ErrCorrupt)
	errIntRange       = fmt.Errorf("%w: value out of int range", ErrCorrupt)
	errUintRange      = fmt.Errorf("%w: value out of the unsigned type's range", ErrCorrupt)
	errBool           = fmt.Errorf("%w: bool byte is neither 0 nor 1", ErrCorrupt)
	errLength         = fmt.Errorf("%w: length exceeds input", ErrCorrupt)
)

// The built-in codecs. Every one is stateless and safe for concurrent use.
var (
	// String encodes a string as its uvarint length and bytes, and hashes it
	// with a wyhash-style 64-bit hash (see HashString).
	String KeyCodec[string] = stringCodec{}
	// Int64 encodes as a zig-zag varint; its hash is the value itself
	// (keygroup.Of mixes the bits).
	Int64 KeyCodec[int64] = int64Codec{}
	// Int encodes like Int64, so an int snapshot reads on any platform; a
	// value that does not fit the platform's int is ErrCorrupt.
	Int KeyCodec[int] = intCodec{}
	// Int32 encodes like Int64 and rejects values outside int32.
	Int32 KeyCodec[int32] = int32Codec{}
	// Uint64 encodes as a uvarint; its hash is the value itself.
	Uint64 KeyCodec[uint64] = uint64Codec{}
	// Uint32 encodes as a uvarint and rejects values outside uint32.
	Uint32 KeyCodec[uint32] = uint32Codec{}
	// Float64 encodes the IEEE 754 bits as 8 little-endian bytes. Its hash
	// is the bit pattern with -0 folded onto +0, because -0 == +0 as Go map
	// keys and equal keys must hash alike. (NaN keys are legal but, as in Go
	// maps, never equal to themselves: avoid them.)
	Float64 KeyCodec[float64] = float64Codec{}
	// Bool encodes as one byte, 0 or 1; its hash is 0 or 1.
	Bool KeyCodec[bool] = boolCodec{}
	// Bytes encodes a byte slice as its uvarint length and bytes. Nil and
	// empty slices both decode as nil. Decode copies, so the result does not
	// pin the (possibly large) input buffer. It is not a KeyCodec: slices
	// are not comparable; use String keys for binary ids.
	Bytes Codec[[]byte] = bytesCodec{}
)

// uvarint decodes a uvarint from the front of src, mapping
// encoding/binary's n<=0 conventions to errors.
func uvarint(src []byte) (uint64, int, error) {
	v, n := binary.Uvarint(src)
	if n > 0 {
		return v, n, nil
	}
	if n == 0 {
		return 0, 0, ErrTruncated
	}
	return 0, 0, errVarintOverflow
}

func varint(src []byte) (int64, int, error) {
	v, n := binary.Varint(src)
	if n > 0 {
		return v, n, nil
	}
	if n == 0 {
		return 0, 0, ErrTruncated
	}
	return 0, 0, errVarintOverflow
}

// lengthPrefixed returns the l bytes following a uvarint length l.
func lengthPrefixed(src []byte) (body []byte, n int, err error) {
	l, h, err := uvarint(src)
	if err != nil {
		return nil, 0, err
	}
	// Compare in uint64 so a huge length cannot overflow int.
	if l > uint64(len(src)-h) {
		return nil, 0, ErrTruncated
	}
	return src[h : h+int(l)], h + int(l), nil
}

type stringCodec struct{}

func (stringCodec) Append(dst []byte, v string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(v)))
	return append(dst, v...)
}

func (stringCodec) Decode(src []byte) (string, int, error) {
	b, n, err := lengthPrefixed(src)
	if err != nil {
		return "", 0, err
	}
	return string(b), n, nil
}

func (stringCodec) Hash(v string) uint64 { return HashString(v) }

type bytesCodec struct{}

func (bytesCodec) Append(dst []byte, v []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(v)))
	return append(dst, v...)
}

func (bytesCodec) Decode(src []byte) ([]byte, int, error) {
	b, n, err := lengthPrefixed(src)
	if err != nil {
		return nil, 0, err
	}
	if len(b) == 0 {
		return nil, n, nil
	}
	return append([]byte(nil), b...), n, nil
}

type int64Codec struct{}

func (int64Codec) Append(dst []byte, v int64) []byte     { return binary.AppendVarint(dst, v) }
func (int64Codec) Decode(src []byte) (int64, int, error) { return varint(src) }
func (int64Codec) Hash(v int64) uint64                   { return uint64(v) }

type intCodec struct{}

func (intCodec) Append(dst []byte, v int) []byte { return binary.AppendVarint(dst, int64(v)) }

func (intCodec) Decode(src []byte) (int, int, error) {
	v, n, err := varint(src)
	if err != nil {
		return 0, 0, err
	}
	if int64(int(v)) != v { // only possible where int is 32 bits
		return 0, 0, errIntRange
	}
	return int(v), n, nil
}

func (intCodec) Hash(v int) uint64 { return uint64(int64(v)) }

type int32Codec struct{}

func (int32Codec) Append(dst []byte, v int32) []byte { return binary.AppendVarint(dst, int64(v)) }

func (int32Codec) Decode(src []byte) (int32, int, error) {
	v, n, err := varint(src)
	if err != nil {
		return 0, 0, err
	}
	if int64(int32(v)) != v {
		return 0, 0, errInt32Range
	}
	return int32(v), n, nil
}

// Hash sign-extends, so Int32, Int and Int64 keys of equal value share a key
// group: changing a key's integer width does not move its state.
func (int32Codec) Hash(v int32) uint64 { return uint64(int64(v)) }

type uint64Codec struct{}

func (uint64Codec) Append(dst []byte, v uint64) []byte     { return binary.AppendUvarint(dst, v) }
func (uint64Codec) Decode(src []byte) (uint64, int, error) { return uvarint(src) }
func (uint64Codec) Hash(v uint64) uint64                   { return v }

type uint32Codec struct{}

func (uint32Codec) Append(dst []byte, v uint32) []byte { return binary.AppendUvarint(dst, uint64(v)) }

func (uint32Codec) Decode(src []byte) (uint32, int, error) {
	v, n, err := uvarint(src)
	if err != nil {
		return 0, 0, err
	}
	if v > 1<<32-1 {
		return 0, 0, errUint32Range
	}
	return uint32(v), n, nil
}

func (uint32Codec) Hash(v uint32) uint64 { return uint64(v) }

type float64Codec struct{}

func (float64Codec) Append(dst []byte, v float64) []byte {
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(v))
}

func (float64Codec) Decode(src []byte) (float64, int, error) {
	if len(src) < 8 {
		return 0, 0, ErrTruncated
	}
	return math.Float64frombits(binary.LittleEndian.Uint64(src)), 8, nil
}

func (float64Codec) Hash(v float64) uint64 {
	if v == 0 { // fold -0 onto +0
		return 0
	}
	return math.Float64bits(v)
}

type boolCodec struct{}

func (boolCodec) Append(dst []byte, v bool) []byte {
	if v {
		return append(dst, 1)
	}
	return append(dst, 0)
}

func (boolCodec) Decode(src []byte) (bool, int, error) {
	if len(src) < 1 {
		return false, 0, ErrTruncated
	}
	switch src[0] {
	case 0:
		return false, 1, nil
	case 1:
		return true, 1, nil
	}
	return false, 0, errBool
}

func (boolCodec) Hash(v bool) uint64 {
	if v {
		return 1
	}
	return 0
}

// List returns a codec for slices of T: a uvarint element count, then every
// element encoded with c. Nil and empty slices both decode as nil.
//
// A count larger than the remaining input is rejected as corrupt before any
// allocation, so a flipped length byte cannot make Decode allocate gigabytes;
// this requires c to encode every value in at least one byte, which all the
// built-ins do.
func List[T any](c Codec[T]) Codec[[]T] { return listCodec[T]{c} }

type listCodec[T any] struct{ c Codec[T] }

func (l listCodec[T]) Append(dst []byte, vs []T) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(vs)))
	for _, v := range vs {
		dst = l.c.Append(dst, v)
	}
	return dst
}

func (l listCodec[T]) Decode(src []byte) ([]T, int, error) {
	count, n, err := uvarint(src)
	if err != nil {
		return nil, 0, err
	}
	if count > uint64(len(src)-n) {
		return nil, 0, errLength
	}
	if count == 0 {
		return nil, n, nil
	}
	out := make([]T, 0, int(count))
	for range count {
		v, m, err := l.c.Decode(src[n:])
		if err != nil {
			return nil, 0, err
		}
		out = append(out, v)
		n += m
	}
	return out, n, nil
}

// For returns the built-in codec for T, and false if there is none. Besides
// the built-in types it matches every type whose underlying type is one of
// them or another integer width (`type UserID string`, `type Shard int16`,
// `type Blob []byte`), with the encoding, hash and ID of the underlying
// type's codec; a named type is inspected once, with package reflect, and
// its codec then converts values without reflection or allocation. Struct,
// map and other composite types have no built-in codec: see Struct, JSON
// and List.
func For[T any]() (Codec[T], bool) {
	var c any
	// Switching on a typed nil pointer rather than on a zero T works for
	// every T, including interface types, and involves no reflection.
	switch any((*T)(nil)).(type) {
	case *string:
		c = String
	case *int64:
		c = Int64
	case *int:
		c = Int
	case *int32:
		c = Int32
	case *uint64:
		c = Uint64
	case *uint32:
		c = Uint32
	case *float64:
		c = Float64
	case *bool:
		c = Bool
	case *[]byte:
		c = Bytes
	default:
		return underlying[T]()
	}
	return c.(Codec[T]), true
}

// KeyFor returns the built-in key codec for K, and false if there is none.
// Like For it also matches named types whose underlying type is a built-in
// one; every built-in codec of a comparable type is a KeyCodec.
func KeyFor[K comparable]() (KeyCodec[K], bool) {
	c, ok := For[K]()
	if !ok {
		return nil, false
	}
	kc, ok := c.(KeyCodec[K])
	return kc, ok
}
