package codec

import (
	"fmt"
	"strings"
)

// Schema evolution (docs/design.md §10). A snapshot records the ID of every
// state's codecs. When a job restores state written with a codec of another
// ID, the state's codec decides, once per state and restore, how to read it
// (as Flink's TypeSerializerSnapshot.resolveSchemaCompatibility does): as
// is, after migration, or not at all. Migration happens at restore: every
// entry is decoded with the old reader and kept as the new type, so the next
// checkpoint writes the new encoding.

// Compatibility is a codec's verdict on data written with a codec of
// another identity.
type Compatibility uint8

// The verdicts, as Flink's TypeSerializerSchemaCompatibility names them.
const (
	// Incompatible: the data cannot be read; the restore is refused,
	// naming the state and both codec IDs. It is the zero value.
	Incompatible Compatibility = iota
	// CompatibleAsIs: the codec's Decode reads the old bytes unchanged
	// (the version changed for values the old one never wrote, say).
	CompatibleAsIs
	// CompatibleAfterMigration: the old bytes are read with a decoder of
	// their own and become values of the new type.
	CompatibleAfterMigration
)

// String returns "incompatible", "compatible as is" or "compatible after
// migration".
func (c Compatibility) String() string {
	switch c {
	case Incompatible:
		return "incompatible"
	case CompatibleAsIs:
		return "compatible as is"
	case CompatibleAfterMigration:
		return "compatible after migration"
	}
	return fmt.Sprintf("Compatibility(%d)", uint8(c))
}

// DecodeFunc decodes one value from the front of src, as Codec.Decode.
type DecodeFunc[T any] func(src []byte) (v T, n int, err error)

// Evolving is implemented by a codec that can read data written by other
// (older) encodings: a Struct that gained a field, a codec built with
// Evolve, an Avro codec given its old schemas. Implement it on your own
// codecs to migrate state at restore instead of losing it.
type Evolving[T any] interface {
	Codec[T]
	Identified
	// ReadVersion says how data written with a codec of identity old
	// (never equal to CodecID()) is read: CompatibleAsIs, the codec's own
	// Decode reads it; CompatibleAfterMigration, read decodes it (a nil
	// read counts as Incompatible); Incompatible, it cannot be read. It is
	// called once per state and restore, never per value.
	ReadVersion(old ID) (c Compatibility, read DecodeFunc[T])
}

// Resolve decides how codec c reads data written with a codec of identity
// written, the one rule the restore and `check` both apply
// (docs/design.md §10): equal IDs, or an undeclared one on either side
// (only decoding can tell), read as is with c.Decode; otherwise an
// Evolving c decides, and any other codec is Incompatible. The decoder is
// nil when the verdict is Incompatible.
func Resolve[T any](c Codec[T], written ID) (Compatibility, DecodeFunc[T]) {
	now := IDOf(c)
	if written == now || !written.Declared() || !now.Declared() {
		return CompatibleAsIs, c.Decode
	}
	ev, ok := c.(Evolving[T])
	if !ok {
		return Incompatible, nil
	}
	switch comp, read := ev.ReadVersion(written); {
	case comp == CompatibleAsIs:
		return CompatibleAsIs, c.Decode
	case comp == CompatibleAfterMigration && read != nil:
		return CompatibleAfterMigration, read
	}
	return Incompatible, nil
}

// Migration is one older encoding an Evolve codec reads: make it with From
// or AsIs.
type Migration[T any] struct {
	id     ID
	compat Compatibility
	read   DecodeFunc[T]
}

// From declares that data written with old is read with it and converted
// to the new type with migrate:
//
//	codec.Evolve(sessionV2, codec.From(sessionV1, func(s SessionV1) Session {
//		return Session{User: s.User, Clicks: s.Clicks, Region: "unknown"}
//	}))
//
// migrate runs once per restored value.
func From[T, O any](old Codec[O], migrate func(O) T) Migration[T] {
	if old == nil || migrate == nil {
		return Migration[T]{} // Evolve's ReadVersion finds no reader: incompatible
	}
	return Migration[T]{id: IDOf(old), compat: CompatibleAfterMigration, read: func(src []byte) (T, int, error) {
		o, n, err := old.Decode(src)
		if err != nil {
			var zero T
			return zero, 0, err
		}
		return migrate(o), n, nil
	}}
}

// AsIs declares that data written with a codec of identity old is read
// unchanged by the new codec's Decode: its encoding changed only for values
// the old one never wrote.
func AsIs[T any](old ID) Migration[T] { return Migration[T]{id: old, compat: CompatibleAsIs} }

// Evolve returns a codec that encodes and decodes like c, with c's ID, and
// also reads the older encodings listed (Evolving). If c is Evolving
// itself, identities the list does not name are left to c. It is not a
// KeyCodec: keys must not migrate, since a migrated key could hash to
// another key group.
func Evolve[T any](c Codec[T], from ...Migration[T]) Evolving[T] {
	return &evolved[T]{c: c, id: IDOf(c), from: from}
}

type evolved[T any] struct {
	c    Codec[T]
	id   ID
	from []Migration[T]
}

func (e *evolved[T]) Append(dst []byte, v T) []byte     { return e.c.Append(dst, v) }
func (e *evolved[T]) Decode(src []byte) (T, int, error) { return e.c.Decode(src) }
func (e *evolved[T]) CodecID() ID                       { return e.id }

func (e *evolved[T]) ReadVersion(old ID) (Compatibility, DecodeFunc[T]) {
	for _, m := range e.from {
		if m.id == old && m.compat != Incompatible {
			return m.compat, m.read
		}
	}
	if ev, ok := e.c.(Evolving[T]); ok {
		return ev.ReadVersion(old)
	}
	return Incompatible, nil
}

// ReadVersion lets a Struct read data written with an earlier layout of
// the same struct name: every field of the old layout must still exist,
// by name, with the same codec ID; fields may have been added (they decode
// as zero) or reordered. A removed or retyped field is Incompatible: its
// bytes cannot be skipped without its codec (declare the conversion with
// Evolve and From, keeping the old Struct).
func (s *structCodec[T]) ReadVersion(old ID) (Compatibility, DecodeFunc[T]) {
	if old.Version != 1 {
		return Incompatible, nil
	}
	body, ok := strings.CutPrefix(old.Name, "struct "+s.name+"{")
	if !ok {
		return Incompatible, nil
	}
	if body, ok = strings.CutSuffix(body, "}"); !ok {
		return Incompatible, nil
	}
	order := make([]int, 0, len(s.fields)) // non-nil: nil means every field
	used := make([]bool, len(s.fields))
	for _, f := range splitTopLevel(body) {
		name, id, ok := strings.Cut(f, ":")
		if !ok {
			return Incompatible, nil
		}
		i := s.field(name)
		if i < 0 || used[i] || s.fields[i].id.String() != id {
			return Incompatible, nil
		}
		used[i] = true
		order = append(order, i)
	}
	return CompatibleAfterMigration, func(src []byte) (T, int, error) { return s.decodeFields(src, order) }
}

// field returns the index of the field called name, or -1.
func (s *structCodec[T]) field(name string) int {
	for i := range s.fields {
		if s.fields[i].name == name {
			return i
		}
	}
	return -1
}

// splitTopLevel splits a struct ID's field list at the commas outside
// brackets (field IDs nest: list(string@v1)@v1, struct p{x:…,y:…}@v1).
func splitTopLevel(s string) []string {
	if s == "" {
		return nil
	}
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(', '{', '[':
			depth++
		case ')', '}', ']':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}
