package codec

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// ID is a codec's stable identity: the name of its encoding and a version
// that changes whenever the encoding does. Snapshots record the ID of every
// state's codecs, so that a job restoring a snapshot with other codecs gets
// an error naming both instead of a decoding failure (docs/design.md §10).
//
// IDs name encodings, not Go types: the Int64, Int and Int32 codecs share
// the ID "zigzag-varint" v1, because changing a counter from int32 to int64
// keeps its snapshots readable; a named type (`type UserID string`) has the
// ID of the built-in codec of its underlying type.
type ID struct {
	// Name names the encoding: "string", "zigzag-varint", "list(string)",
	// "json", "struct point{x:zigzag-varint,y:zigzag-varint}".
	Name string `json:"name"`
	// Version is the version of the encoding, at least 1 for codecs that
	// declare an ID; 0 marks an identity derived from the value type of a
	// codec that declares none (see IDOf).
	Version int `json:"version"`
}

// String renders the ID as name@vN, the form logs, errors and
// `sluice checkpoints inspect` show.
func (id ID) String() string { return fmt.Sprintf("%s@v%d", id.Name, id.Version) }

// Declared reports whether the codec declared its ID (Version ≥ 1), as
// opposed to IDOf deriving one from the value type.
func (id ID) Declared() bool { return id.Version >= 1 }

// Identified is implemented by codecs that declare a stable identity. Every
// codec of this package does; implement it on your own codecs so that a
// change of encoding is reported as such on restore. Bump the version
// whenever Append's output changes.
type Identified interface {
	// CodecID returns the codec's identity. It must return the same ID
	// for the life of the process and across releases that keep the
	// encoding.
	CodecID() ID
}

// IDOf returns c's identity: its CodecID if it implements Identified, else
// an undeclared ID (Version 0) named "go:" and the Go type of T. It is
// meant for registration time, not for every value (the fallback uses
// reflection).
func IDOf[T any](c Codec[T]) ID {
	if i, ok := c.(Identified); ok {
		return i.CodecID()
	}
	return ID{Name: "go:" + reflect.TypeFor[T]().String()}
}

// Compatible reports whether data written with a codec of identity written
// can be read by a codec of identity now: the IDs are equal, or one of them
// is undeclared, in which case only decoding can tell.
func Compatible(written, now ID) bool {
	if !written.Declared() || !now.Declared() {
		return true
	}
	return written == now
}

func (stringCodec) CodecID() ID  { return ID{Name: "string", Version: 1} }
func (bytesCodec) CodecID() ID   { return ID{Name: "bytes", Version: 1} }
func (int64Codec) CodecID() ID   { return idVarint }
func (intCodec) CodecID() ID     { return idVarint }
func (int32Codec) CodecID() ID   { return idVarint }
func (uint64Codec) CodecID() ID  { return idUvarint }
func (uint32Codec) CodecID() ID  { return idUvarint }
func (float64Codec) CodecID() ID { return ID{Name: "float64-le", Version: 1} }
func (boolCodec) CodecID() ID    { return ID{Name: "bool", Version: 1} }

var (
	idVarint  = ID{Name: "zigzag-varint", Version: 1}
	idUvarint = ID{Name: "uvarint", Version: 1}
)

// CodecID of a list is "list(<element ID>)", version 1; an element codec
// without a declared ID makes the list's undeclared too.
func (l listCodec[T]) CodecID() ID {
	e := IDOf(l.c)
	if !e.Declared() {
		return ID{Name: "list(" + e.Name + ")"}
	}
	return ID{Name: "list(" + e.String() + ")", Version: 1}
}

// ParseID parses an ID in the form String renders, name@vN (the name may
// itself contain @, as nested IDs do).
func ParseID(s string) (ID, error) {
	i := strings.LastIndex(s, "@v")
	if i < 0 {
		return ID{}, fmt.Errorf("codec ID %q: no @v<version>", s)
	}
	v, err := strconv.Atoi(s[i+2:])
	if err != nil || v < 0 {
		return ID{}, fmt.Errorf("codec ID %q: bad version", s)
	}
	return ID{Name: s[:i], Version: v}, nil
}
