package codec

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
)

// Format encodes whole values, one value per byte slice, in a standard
// format (JSON, Protobuf, Avro): the shape of a Kafka record's value, where
// the record delimits the bytes. Unlike a Codec's, its encoding can fail.
// FormatCodec frames a Format so that it can also serve as a Codec for
// state.
type Format[T any] interface {
	Identified
	// Marshal appends the encoding of v to dst.
	Marshal(dst []byte, v T) ([]byte, error)
	// Unmarshal decodes the value that is the whole of src; trailing
	// bytes are an error. The value does not alias src.
	Unmarshal(src []byte) (T, error)
}

// FormatCodec is a Format that is also a Codec, usable both for records
// (package connector/kafka takes a Format for its deserializers and
// serializers) and for state.
type FormatCodec[T any] interface {
	Format[T]
	Codec[T]
}

// EvolvingFormat is implemented by a Format that can read whole values
// written by other (older) encodings, as Avro can through schema
// resolution. A Framed codec of it is Evolving, with the framing applied.
type EvolvingFormat[T any] interface {
	Format[T]
	// ReadVersion says how a value written with identity old (never equal
	// to CodecID()) is read: as Evolving.ReadVersion, with unmarshal
	// decoding the whole of src.
	ReadVersion(old ID) (c Compatibility, unmarshal func(src []byte) (T, error))
}

// EncodeError is the value a FormatCodec's Append panics with when its
// Format cannot encode a value (Codec.Append has no error result). The state
// snapshot writer recovers it and fails the checkpoint with an error naming
// the state, so the job reports it rather than crashing.
type EncodeError struct {
	// Codec is the identity of the codec that failed.
	Codec ID
	// Err is the Format's error.
	Err error
}

func (e *EncodeError) Error() string { return fmt.Sprintf("codec %s: encode: %v", e.Codec, e.Err) }

// Unwrap returns the Format's error.
func (e *EncodeError) Unwrap() error { return e.Err }

// Framed makes a FormatCodec of f: as a Codec it writes a uvarint length and
// then f's encoding, and panics with *EncodeError where f fails (see
// EncodeError). Its ID is f's.
func Framed[T any](f Format[T]) FormatCodec[T] { return framed[T]{f} }

type framed[T any] struct{ f Format[T] }

func (c framed[T]) CodecID() ID                             { return c.f.CodecID() }
func (c framed[T]) Marshal(dst []byte, v T) ([]byte, error) { return c.f.Marshal(dst, v) }
func (c framed[T]) Unmarshal(src []byte) (T, error)         { return c.f.Unmarshal(src) }

func (c framed[T]) Append(dst []byte, v T) []byte {
	// Encode after a maximal length prefix, then move the body down to
	// the actual prefix length: one pass, no temporary buffer.
	start := len(dst)
	dst = append(dst, make([]byte, binary.MaxVarintLen64)...)
	out, err := c.f.Marshal(dst, v)
	if err != nil {
		panic(&EncodeError{Codec: c.f.CodecID(), Err: err})
	}
	body := len(out) - start - binary.MaxVarintLen64
	var hdr [binary.MaxVarintLen64]byte
	h := binary.PutUvarint(hdr[:], uint64(body))
	copy(out[start:], hdr[:h])
	copy(out[start+h:], out[start+binary.MaxVarintLen64:])
	return out[:start+h+body]
}

// ReadVersion makes a Framed codec Evolving when its Format is an
// EvolvingFormat; for any other Format it is Incompatible.
func (c framed[T]) ReadVersion(old ID) (Compatibility, DecodeFunc[T]) {
	ef, ok := c.f.(EvolvingFormat[T])
	if !ok {
		return Incompatible, nil
	}
	comp, unmarshal := ef.ReadVersion(old)
	switch {
	case comp == CompatibleAsIs:
		return CompatibleAsIs, nil
	case comp != CompatibleAfterMigration || unmarshal == nil:
		return Incompatible, nil
	}
	return CompatibleAfterMigration, func(src []byte) (T, int, error) {
		var zero T
		b, n, err := lengthPrefixed(src)
		if err != nil {
			return zero, 0, err
		}
		v, err := unmarshal(b)
		if err != nil {
			return zero, 0, fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		return v, n, nil
	}
}

func (c framed[T]) Decode(src []byte) (T, int, error) {
	b, n, err := lengthPrefixed(src)
	if err != nil {
		var zero T
		return zero, 0, err
	}
	v, err := c.f.Unmarshal(b)
	if err != nil {
		var zero T
		return zero, 0, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return v, n, nil
}

// JSON returns the JSON FormatCodec of T, with encoding/json: convenient
// for evolving structs (unknown fields are ignored, missing ones zero) and
// readable in a hex dump, but it reflects and allocates per value: prefer
// Struct for large, hot state. Its ID is "json" version 1 whatever T is,
// because JSON decodes across struct changes.
func JSON[T any]() FormatCodec[T] { return framed[T]{jsonFormat[T]{}} }

type jsonFormat[T any] struct{}

func (jsonFormat[T]) CodecID() ID { return ID{Name: "json", Version: 1} }

func (jsonFormat[T]) Marshal(dst []byte, v T) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return dst, fmt.Errorf("json: %w", err)
	}
	return append(dst, b...), nil
}

func (jsonFormat[T]) Unmarshal(src []byte) (T, error) {
	var v T
	if err := json.Unmarshal(src, &v); err != nil {
		var zero T
		return zero, fmt.Errorf("json: %w", err)
	}
	return v, nil
}
