package codec

import (
	"errors"
	"fmt"
	"strings"
	"sync"
)

// Field is one field of a struct type T, for Struct: its name, how to reach
// it in a *T, and its codec. Make one with FieldOf.
type Field[T any] struct {
	name   string
	id     ID
	append func(dst []byte, v *T) []byte
	decode func(src []byte, v *T) (int, error)
}

// FieldOf describes field name of T, reached through ref (which returns a
// pointer to the field of the struct it is given) and encoded with c:
//
//	codec.FieldOf("clicks", func(s *Session) *int64 { return &s.Clicks }, codec.Int64)
//
// ref is an ordinary function, so the field is read and written without
// reflection; it must return a pointer into its argument.
func FieldOf[T, F any](name string, ref func(*T) *F, c Codec[F]) Field[T] {
	f := Field[T]{name: name}
	if ref == nil || c == nil {
		return f // Struct reports it
	}
	f.id = IDOf(c)
	f.append = func(dst []byte, v *T) []byte { return c.Append(dst, *ref(v)) }
	f.decode = func(src []byte, v *T) (int, error) {
		x, n, err := c.Decode(src)
		if err != nil {
			return 0, err
		}
		*ref(v) = x
		return n, nil
	}
	return f
}

// Struct returns a binary codec for the struct type T composed of field
// codecs: a value is its fields' encodings one after the other, in the order
// given, with no names or tags, so a snapshot of a struct costs what its
// fields cost. Fields of T left out are not stored (they decode as zero).
//
// Its ID is "struct <name>{<field>:<field codec ID>,...}" version 1: adding,
// removing, reordering or retyping a field changes it, and a restore of a
// snapshot written with the old layout reports the change instead of
// misreading bytes (docs/design.md §10). name names the type in that ID;
// keep it when renaming the Go type. It is Evolving: state written with an
// earlier layout of the same name is migrated at restore when every old
// field is still there with its codec (fields added, at any position, or
// reordered), and refused otherwise (see ReadVersion).
//
// It fails if name is empty, a field has no name, ref or codec, or two
// fields share a name. Encoding and decoding call each field's codec through
// a function value: no reflection, and no allocation beyond what the field
// codecs allocate (decoded strings and slices). BenchmarkStruct measures it
// against a hand-written codec and JSON.
func Struct[T any](name string, fields ...Field[T]) (Codec[T], error) {
	var errs []error
	if name == "" {
		errs = append(errs, errors.New("codec.Struct: empty struct name"))
	}
	seen := map[string]bool{}
	var id strings.Builder
	id.WriteString("struct " + name + "{")
	declared := true
	for i, f := range fields {
		switch {
		case f.name == "":
			errs = append(errs, fmt.Errorf("codec.Struct %s: field %d has no name", name, i))
		case f.append == nil:
			errs = append(errs, fmt.Errorf("codec.Struct %s: field %q has a nil ref or codec", name, f.name))
		case seen[f.name]:
			errs = append(errs, fmt.Errorf("codec.Struct %s: field %q given twice", name, f.name))
		}
		seen[f.name] = true
		if i > 0 {
			id.WriteByte(',')
		}
		id.WriteString(f.name + ":" + f.id.String())
		declared = declared && f.id.Declared()
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	id.WriteByte('}')
	sc := &structCodec[T]{name: name, fields: fields, id: ID{Name: id.String()}}
	sc.scratch.New = func() any { return new(T) }
	if declared {
		sc.id.Version = 1
	}
	return sc, nil
}

type structCodec[T any] struct {
	name   string
	fields []Field[T]
	id     ID
	// scratch holds *T values for the field functions to work on: they
	// are opaque closures, so a pointer to a local T would move it to the
	// heap on every call. A pool keeps the steady state allocation-free
	// and the codec safe for concurrent use.
	scratch sync.Pool
}

func (s *structCodec[T]) Append(dst []byte, v T) []byte {
	p := s.scratch.Get().(*T)
	*p = v
	for i := range s.fields {
		dst = s.fields[i].append(dst, p)
	}
	var zero T
	*p = zero // do not pin v's strings and slices
	s.scratch.Put(p)
	return dst
}

func (s *structCodec[T]) Decode(src []byte) (T, int, error) { return s.decodeFields(src, nil) }

// decodeFields decodes the fields of indexes order, in that order (all
// fields in their order when nil): the layout an older version wrote, for
// ReadVersion. Fields not in order stay zero.
func (s *structCodec[T]) decodeFields(src []byte, order []int) (T, int, error) {
	p := s.scratch.Get().(*T)
	defer s.scratch.Put(p)
	var zero T
	*p = zero
	n := 0
	count := len(s.fields)
	if order != nil {
		count = len(order)
	}
	for j := range count {
		i := j
		if order != nil {
			i = order[j]
		}
		m, err := s.fields[i].decode(src[n:], p)
		if err != nil {
			*p = zero
			return zero, 0, fmt.Errorf("field %s: %w", s.fields[i].name, err)
		}
		n += m
	}
	v := *p
	*p = zero
	return v, n, nil
}

func (s *structCodec[T]) CodecID() ID { return s.id }
