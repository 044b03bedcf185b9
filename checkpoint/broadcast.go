package checkpoint

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// BroadcastStatePrefix starts the operator state name (SubtaskState.Operator)
// under which a broadcast state is stored: "broadcast/" and the state's
// name. Every subtask writes one entry per broadcast state, its own copy
// (docs/design.md §4).
const BroadcastStatePrefix = "broadcast/"

// BroadcastFormat is the layout version of broadcast state entries.
const BroadcastFormat = 1

// CodecRef is a codec identity as a checkpoint records it: codec.ID's name
// and version (this package does not import package codec).
type CodecRef struct {
	Name    string
	Version int
}

// String renders the identity as name@vN, as codec.ID does.
func (c CodecRef) String() string { return fmt.Sprintf("%s@v%d", c.Name, c.Version) }

// BroadcastHeader is the start of a broadcast state entry: the layout
// version (uvarint), the identities of the key and value codecs (each its
// name as a uvarint length and bytes, then its version as a uvarint), and
// the number of key/value pairs that follow (uvarint), each encoded with
// the codecs. The codecs are recorded so that a restore with other codecs
// is refused before decoding (docs/design.md §10), and so that `sluice
// checkpoints inspect` can show them.
type BroadcastHeader struct {
	KeyCodec   CodecRef
	ValueCodec CodecRef
	Entries    uint64
}

var (
	// ErrBroadcastFormat is returned (wrapped) by ParseBroadcastHeader for
	// an entry of a layout version this release does not read.
	ErrBroadcastFormat = errors.New("unknown broadcast state entry format")
	// ErrBroadcastHeader is returned (wrapped) by ParseBroadcastHeader for
	// a truncated or malformed header.
	ErrBroadcastHeader = errors.New("corrupt broadcast state header")
)

// Append appends the header to dst.
func (h BroadcastHeader) Append(dst []byte) []byte {
	dst = binary.AppendUvarint(dst, BroadcastFormat)
	for _, c := range []CodecRef{h.KeyCodec, h.ValueCodec} {
		dst = binary.AppendUvarint(dst, uint64(len(c.Name)))
		dst = append(dst, c.Name...)
		dst = binary.AppendUvarint(dst, uint64(c.Version))
	}
	return binary.AppendUvarint(dst, h.Entries)
}

// ParseBroadcastHeader decodes the header at the start of entry and returns
// it with the number of bytes it took. A truncated or malformed header is
// an error wrapping ErrBroadcastHeader, another layout version one wrapping
// ErrBroadcastFormat.
func ParseBroadcastHeader(entry []byte) (BroadcastHeader, int, error) {
	var h BroadcastHeader
	off := 0
	uvarint := func(what string) (uint64, error) {
		v, n := binary.Uvarint(entry[off:])
		if n <= 0 {
			return 0, fmt.Errorf("%w: %s at byte %d", ErrBroadcastHeader, what, off)
		}
		off += n
		return v, nil
	}
	f, err := uvarint("format")
	if err != nil {
		return h, 0, err
	}
	if f != BroadcastFormat {
		return h, 0, fmt.Errorf("%w %d (this release reads format %d)", ErrBroadcastFormat, f, BroadcastFormat)
	}
	for _, c := range []*CodecRef{&h.KeyCodec, &h.ValueCodec} {
		l, err := uvarint("codec name length")
		if err != nil {
			return h, 0, err
		}
		if l > uint64(len(entry)-off) {
			return h, 0, fmt.Errorf("%w: codec name of %d bytes, %d left", ErrBroadcastHeader, l, len(entry)-off)
		}
		c.Name = string(entry[off : off+int(l)])
		off += int(l)
		v, err := uvarint("codec version")
		if err != nil {
			return h, 0, err
		}
		if v > 1<<31 {
			return h, 0, fmt.Errorf("%w: codec version %d", ErrBroadcastHeader, v)
		}
		c.Version = int(v)
	}
	cnt, err := uvarint("entry count")
	if err != nil {
		return h, 0, err
	}
	if cnt > uint64(len(entry)-off) {
		// Every pair takes at least one byte: a larger count is corrupt
		// (and must not make a decoder allocate for it).
		return h, 0, fmt.Errorf("%w: %d entries in %d bytes", ErrBroadcastHeader, cnt, len(entry)-off)
	}
	h.Entries = cnt
	return h, off, nil
}

// String renders the header as "keys <codec>, values <codec>, <n> entries".
func (h BroadcastHeader) String() string {
	unit := "entries"
	if h.Entries == 1 {
		unit = "entry"
	}
	return fmt.Sprintf("keys %s, values %s, %d %s", h.KeyCodec, h.ValueCodec, h.Entries, unit)
}
