package queries

import (
	"encoding/binary"

	"github.com/sluicehq/sluice/codec"
)

// fieldDecoder reads the fields of a hand-written state codec one after
// the other from src, remembering the first error: a codec's Decode reads
// all its fields and returns d.n, d.err. Decoding happens on restore only.
type fieldDecoder struct {
	src []byte
	n   int
	err error
}

// varint reads a zig-zag varint (binary.AppendVarint).
func (d *fieldDecoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, k := binary.Varint(d.src[d.n:])
	switch {
	case k == 0:
		d.err = codec.ErrTruncated
		return 0
	case k < 0:
		d.err = codec.ErrCorrupt
		return 0
	}
	d.n += k
	return v
}

// uvarint reads a uvarint (binary.AppendUvarint).
func (d *fieldDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, k := binary.Uvarint(d.src[d.n:])
	switch {
	case k == 0:
		d.err = codec.ErrTruncated
		return 0
	case k < 0:
		d.err = codec.ErrCorrupt
		return 0
	}
	d.n += k
	return v
}

// bool reads one byte, 0 or 1.
func (d *fieldDecoder) bool() bool {
	if d.err != nil {
		return false
	}
	v, k, err := codec.Bool.Decode(d.src[d.n:])
	d.n += k
	d.err = err
	return v
}

// string reads a length-prefixed string (codec.String).
func (d *fieldDecoder) string() string {
	if d.err != nil {
		return ""
	}
	v, k, err := codec.String.Decode(d.src[d.n:])
	d.n += k
	d.err = err
	return v
}

// count reads a list length, failing when the remaining input could not
// hold that many elements of at least min bytes each (so corrupt input
// cannot make Decode allocate a huge slice).
func (d *fieldDecoder) count(min int) int {
	l := d.uvarint()
	if d.err == nil && l > uint64((len(d.src)-d.n)/min) {
		d.err = codec.ErrCorrupt
		return 0
	}
	return int(l)
}
