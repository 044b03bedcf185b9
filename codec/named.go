package codec

import (
	"reflect"
	"unsafe"
)

// Codecs for named types whose underlying type is a built-in, such as
//
//	type UserID string
//	type Shard int32
//
// Each has the encoding, hash and ID of the built-in codec of its
// underlying type, so a key can change between string and UserID without
// moving its key group or invalidating a snapshot. The ~ constraints make
// the conversions plain Go conversions: no reflection, no allocation.

// StringOf returns the key codec of a string type: String's encoding, hash
// and ID.
func StringOf[T ~string]() KeyCodec[T] { return stringOf[T]{} }

type stringOf[T ~string] struct{}

func (stringOf[T]) Append(dst []byte, v T) []byte { return String.Append(dst, string(v)) }
func (stringOf[T]) Decode(src []byte) (T, int, error) {
	s, n, err := String.Decode(src)
	return T(s), n, err
}
func (stringOf[T]) Hash(v T) uint64 { return HashString(string(v)) }
func (stringOf[T]) CodecID() ID     { return stringCodec{}.CodecID() }

// IntOf returns the key codec of a signed integer type of any width: Int64's
// zig-zag varint, its hash (the sign-extended value) and its ID. Decoding a
// value outside T's range is ErrCorrupt.
func IntOf[T ~int | ~int8 | ~int16 | ~int32 | ~int64]() KeyCodec[T] { return intOf[T]{} }

type intOf[T ~int | ~int8 | ~int16 | ~int32 | ~int64] struct{}

func (intOf[T]) Append(dst []byte, v T) []byte { return Int64.Append(dst, int64(v)) }
func (intOf[T]) Decode(src []byte) (T, int, error) {
	v, n, err := varint(src)
	if err != nil {
		return 0, 0, err
	}
	if int64(T(v)) != v {
		return 0, 0, errIntRange
	}
	return T(v), n, nil
}
func (intOf[T]) Hash(v T) uint64 { return uint64(int64(v)) }
func (intOf[T]) CodecID() ID     { return idVarint }

// UintOf returns the key codec of an unsigned integer type of any width:
// Uint64's uvarint, hash and ID. Decoding a value outside T's range is
// ErrCorrupt.
func UintOf[T ~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64]() KeyCodec[T] { return uintOf[T]{} }

type uintOf[T ~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64] struct{}

func (uintOf[T]) Append(dst []byte, v T) []byte { return Uint64.Append(dst, uint64(v)) }
func (uintOf[T]) Decode(src []byte) (T, int, error) {
	v, n, err := uvarint(src)
	if err != nil {
		return 0, 0, err
	}
	if uint64(T(v)) != v {
		return 0, 0, errUintRange
	}
	return T(v), n, nil
}
func (uintOf[T]) Hash(v T) uint64 { return uint64(v) }
func (uintOf[T]) CodecID() ID     { return idUvarint }

// FloatOf returns the key codec of a float64 type: Float64's encoding, hash
// and ID.
func FloatOf[T ~float64]() KeyCodec[T] { return floatOf[T]{} }

type floatOf[T ~float64] struct{}

func (floatOf[T]) Append(dst []byte, v T) []byte { return Float64.Append(dst, float64(v)) }
func (floatOf[T]) Decode(src []byte) (T, int, error) {
	v, n, err := Float64.Decode(src)
	return T(v), n, err
}
func (floatOf[T]) Hash(v T) uint64 { return Float64.Hash(float64(v)) }
func (floatOf[T]) CodecID() ID     { return float64Codec{}.CodecID() }

// BoolOf returns the key codec of a bool type: Bool's encoding, hash and ID.
func BoolOf[T ~bool]() KeyCodec[T] { return boolOf[T]{} }

type boolOf[T ~bool] struct{}

func (boolOf[T]) Append(dst []byte, v T) []byte { return Bool.Append(dst, bool(v)) }
func (boolOf[T]) Decode(src []byte) (T, int, error) {
	v, n, err := Bool.Decode(src)
	return T(v), n, err
}
func (boolOf[T]) Hash(v T) uint64 { return Bool.Hash(bool(v)) }
func (boolOf[T]) CodecID() ID     { return boolCodec{}.CodecID() }

// BytesOf returns the codec of a byte-slice type: Bytes' encoding and ID.
func BytesOf[T ~[]byte]() Codec[T] { return bytesOf[T]{} }

type bytesOf[T ~[]byte] struct{}

func (bytesOf[T]) Append(dst []byte, v T) []byte { return Bytes.Append(dst, []byte(v)) }
func (bytesOf[T]) Decode(src []byte) (T, int, error) {
	v, n, err := Bytes.Decode(src)
	return T(v), n, err
}
func (bytesOf[T]) CodecID() ID { return bytesCodec{}.CodecID() }

// underlying returns the built-in codec of T's underlying type, for a
// named T that For cannot match exactly. It inspects T once with package
// reflect; the codec it returns converts values with unsafe pointer casts
// between types of identical layout (a named type and its underlying
// type), so the per-value path has neither reflection nor allocation.
func underlying[T any]() (Codec[T], bool) {
	t := reflect.TypeFor[T]()
	var c any
	switch t.Kind() {
	case reflect.String:
		c = viaKey[T, string]{String}
	case reflect.Int64:
		c = viaKey[T, int64]{Int64}
	case reflect.Int:
		c = viaKey[T, int]{Int}
	case reflect.Int32:
		c = viaKey[T, int32]{Int32}
	case reflect.Int16:
		c = viaKey[T, int16]{IntOf[int16]()}
	case reflect.Int8:
		c = viaKey[T, int8]{IntOf[int8]()}
	case reflect.Uint64:
		c = viaKey[T, uint64]{Uint64}
	case reflect.Uint:
		c = viaKey[T, uint]{UintOf[uint]()}
	case reflect.Uint32:
		c = viaKey[T, uint32]{Uint32}
	case reflect.Uint16:
		c = viaKey[T, uint16]{UintOf[uint16]()}
	case reflect.Uint8:
		c = viaKey[T, uint8]{UintOf[uint8]()}
	case reflect.Float64:
		c = viaKey[T, float64]{Float64}
	case reflect.Bool:
		c = viaKey[T, bool]{Bool}
	case reflect.Slice:
		if t.Elem().Kind() != reflect.Uint8 {
			return nil, false
		}
		c = via[T, []byte]{Bytes}
	default:
		return nil, false
	}
	return c.(Codec[T]), true
}

// via adapts a Codec[U] to a T whose underlying type is U's.
type via[T, U any] struct{ c Codec[U] }

func (v via[T, U]) Append(dst []byte, x T) []byte {
	return v.c.Append(dst, *(*U)(unsafe.Pointer(&x)))
}

func (v via[T, U]) Decode(src []byte) (T, int, error) {
	u, n, err := v.c.Decode(src)
	return *(*T)(unsafe.Pointer(&u)), n, err
}

func (v via[T, U]) CodecID() ID { return IDOf(v.c) }

// viaKey adapts a KeyCodec[U] to a T whose underlying type is U's.
type viaKey[T any, U comparable] struct{ c KeyCodec[U] }

func (v viaKey[T, U]) Append(dst []byte, x T) []byte {
	return v.c.Append(dst, *(*U)(unsafe.Pointer(&x)))
}

func (v viaKey[T, U]) Decode(src []byte) (T, int, error) {
	u, n, err := v.c.Decode(src)
	return *(*T)(unsafe.Pointer(&u)), n, err
}

func (v viaKey[T, U]) Hash(x T) uint64 { return v.c.Hash(*(*U)(unsafe.Pointer(&x))) }
func (v viaKey[T, U]) CodecID() ID     { return IDOf[U](v.c) }
