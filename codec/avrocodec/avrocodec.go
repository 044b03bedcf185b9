// Package avrocodec is the Avro format of package codec: Avro binary data of
// one schema (no container-file header, no schema-registry framing) as Kafka
// record values and as state (docs/design.md §10), with
// github.com/hamba/avro/v2.
package avrocodec

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/hamba/avro/v2"

	"github.com/sluicehq/sluice/codec"
)

// New returns the FormatCodec of T for the Avro schema; T is typically a
// struct with `avro:"field"` tags, or map[string]any. It fails if the schema
// does not parse.
//
// Its ID is "avro <first 8 bytes of the schema's SHA-256 fingerprint, hex>"
// version 1: Avro data can only be read with the schema that wrote it (or
// through schema resolution, which needs both), so any schema change is an
// incompatibility for state written with the old one. Unmarshal rejects
// truncated data and trailing bytes after the datum.
func New[T any](schema string) (codec.FormatCodec[T], error) {
	s, err := avro.Parse(schema)
	if err != nil {
		return nil, fmt.Errorf("avro schema: %w", err)
	}
	fp := s.Fingerprint()
	return codec.Framed[T](&format[T]{
		schema:  s,
		id:      codec.ID{Name: "avro " + hex.EncodeToString(fp[:8]), Version: 1},
		readers: sync.Pool{New: func() any { return avro.NewReader(nil, 0) }},
	}), nil
}

type format[T any] struct {
	schema  avro.Schema
	id      codec.ID
	readers sync.Pool // *avro.Reader; readers are not safe for concurrent use
}

func (f *format[T]) CodecID() codec.ID { return f.id }

func (f *format[T]) Marshal(dst []byte, v T) ([]byte, error) {
	b, err := avro.Marshal(f.schema, v)
	if err != nil {
		return dst, fmt.Errorf("avro: %w", err)
	}
	return append(dst, b...), nil
}

func (f *format[T]) Unmarshal(src []byte) (T, error) {
	var v T
	rd := f.readers.Get().(*avro.Reader)
	defer func() {
		rd.Reset(nil)
		rd.Error = nil
		f.readers.Put(rd)
	}()
	rd.Reset(src)
	rd.Error = nil
	rd.ReadVal(f.schema, &v)
	// avro.Unmarshal treats running out of input as success; decoding
	// through a Reader lets truncated data count as an error.
	if rd.Error != nil {
		var zero T
		if errors.Is(rd.Error, io.EOF) {
			return zero, errors.New("avro: value truncated")
		}
		return zero, fmt.Errorf("avro: %w", rd.Error)
	}
	if rd.Peek(); rd.Error == nil {
		var zero T
		return zero, errors.New("avro: trailing bytes after the datum")
	}
	return v, nil
}
