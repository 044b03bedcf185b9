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
// incompatibility for state written with the old one, unless the old schema
// is declared with ReadsOld. Unmarshal rejects
// truncated data and trailing bytes after the datum.
//
// Schema evolution (docs/design.md §10): each schema given with ReadsOld
// is one an older version of the job wrote its state with. State written
// with it is migrated at restore through Avro schema resolution (fields
// added with defaults, removed, promoted types: the Avro specification's
// rules); New fails if an old schema does not parse or cannot be resolved
// to schema.
func New[T any](schema string, opts ...Option) (codec.FormatCodec[T], error) {
	s, err := avro.Parse(schema)
	if err != nil {
		return nil, fmt.Errorf("avro schema: %w", err)
	}
	f := &format[T]{schema: s, id: idOf(s), readers: sync.Pool{New: func() any { return avro.NewReader(nil, 0) }}}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	for i, old := range o.old {
		ws, err := avro.Parse(old)
		if err != nil {
			return nil, fmt.Errorf("avro old schema %d: %w", i, err)
		}
		rs, err := avro.NewSchemaCompatibility().Resolve(s, ws)
		if err != nil {
			return nil, fmt.Errorf("avro old schema %d (%s) cannot be read with the schema: %w", i, idOf(ws), err)
		}
		if f.olds == nil {
			f.olds = map[codec.ID]avro.Schema{}
		}
		f.olds[idOf(ws)] = rs
	}
	return codec.Framed[T](f), nil
}

// Option configures New.
type Option func(*options)

type options struct{ old []string }

// ReadsOld declares schemas that older versions of the job wrote state
// with: such state migrates at restore (see New).
func ReadsOld(schemas ...string) Option {
	return func(o *options) { o.old = append(o.old, schemas...) }
}

func idOf(s avro.Schema) codec.ID {
	fp := s.Fingerprint()
	return codec.ID{Name: "avro " + hex.EncodeToString(fp[:8]), Version: 1}
}

type format[T any] struct {
	schema  avro.Schema
	id      codec.ID
	readers sync.Pool // *avro.Reader; readers are not safe for concurrent use
	// olds are the resolved schemas that read data of older schemas, by
	// the old schema's ID.
	olds map[codec.ID]avro.Schema
}

// ReadVersion implements codec.EvolvingFormat: data written with an old
// schema given to ReadsOld is read through its resolved schema.
func (f *format[T]) ReadVersion(old codec.ID) (codec.Compatibility, func([]byte) (T, error)) {
	rs, ok := f.olds[old]
	if !ok {
		return codec.Incompatible, nil
	}
	return codec.CompatibleAfterMigration, func(src []byte) (T, error) { return f.unmarshal(rs, src) }
}

func (f *format[T]) CodecID() codec.ID { return f.id }

func (f *format[T]) Marshal(dst []byte, v T) ([]byte, error) {
	b, err := avro.Marshal(f.schema, v)
	if err != nil {
		return dst, fmt.Errorf("avro: %w", err)
	}
	return append(dst, b...), nil
}

func (f *format[T]) Unmarshal(src []byte) (T, error) { return f.unmarshal(f.schema, src) }

func (f *format[T]) unmarshal(schema avro.Schema, src []byte) (T, error) {
	var v T
	rd := f.readers.Get().(*avro.Reader)
	defer func() {
		rd.Reset(nil)
		rd.Error = nil
		f.readers.Put(rd)
	}()
	rd.Reset(src)
	rd.Error = nil
	rd.ReadVal(schema, &v)
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
