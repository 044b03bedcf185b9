package checkpoint

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/sluicehq/sluice/codec"
)

// BroadcastStatePrefix starts the operator state name (SubtaskState.Operator)
// under which a broadcast state is stored: "broadcast/" and the state's
// name. Every subtask writes one entry per broadcast state, its own copy
// (docs/design.md §4).
const BroadcastStatePrefix = "broadcast/"

// BroadcastFormat is the layout version of broadcast state entries.
const BroadcastFormat = 1

// BroadcastHeader is the start of a broadcast state entry: the layout
// version (uvarint), the identities of the key and value codecs (each its
// name as a uvarint-length string and its version as a uvarint), and the
// number of key/value pairs that follow (uvarint), each encoded with the
// codecs. The codecs are recorded so that a restore with other codecs is
// refused before decoding (docs/design.md §10) and so that `sluice
// checkpoints inspect` can show them.
type BroadcastHeader struct {
	KeyCodec   codec.ID
	ValueCodec codec.ID
	Entries    uint64
}

// ErrBroadcastFormat is returned (wrapped) by ParseBroadcastHeader for an
// entry of a layout version this release does not read.
var ErrBroadcastFormat = errors.New("unknown broadcast state entry format")

// Append appends the header to dst.
func (h BroadcastHeader) Append(dst []byte) []byte {
	dst = binary.AppendUvarint(dst, BroadcastFormat)
	dst = appendID(dst, h.KeyCodec)
	dst = appendID(dst, h.ValueCodec)
	return binary.AppendUvarint(dst, h.Entries)
}

func appendID(b []byte, id codec.ID) []byte {
	b = codec.String.Append(b, id.Name)
	return binary.AppendUvarint(b, uint64(id.Version))
}

// ParseBroadcastHeader decodes the header at the start of entry and returns
// it with the number of bytes it took. A truncated or malformed header is
// an error wrapping codec.ErrTruncated or codec.ErrCorrupt; another layout
// version one wrapping ErrBroadcastFormat.
func ParseBroadcastHeader(entry []byte) (BroadcastHeader, int, error) {
	var h BroadcastHeader
	f, n := binary.Uvarint(entry)
	if n <= 0 {
		return h, 0, fmt.Errorf("broadcast state header: %w", codec.ErrTruncated)
	}
	if f != BroadcastFormat {
		return h, 0, fmt.Errorf("%w %d (this release reads format %d)", ErrBroadcastFormat, f, BroadcastFormat)
	}
	off := n
	for _, id := range []*codec.ID{&h.KeyCodec, &h.ValueCodec} {
		name, n, err := codec.String.Decode(entry[off:])
		if err != nil {
			return h, 0, fmt.Errorf("broadcast state header: %w", err)
		}
		off += n
		v, n := binary.Uvarint(entry[off:])
		if n <= 0 || v > 1<<31 {
			return h, 0, fmt.Errorf("broadcast state header: codec version: %w", codec.ErrCorrupt)
		}
		off += n
		*id = codec.ID{Name: name, Version: int(v)}
	}
	cnt, n := binary.Uvarint(entry[off:])
	if n <= 0 {
		return h, 0, fmt.Errorf("broadcast state header: entry count: %w", codec.ErrTruncated)
	}
	off += n
	if cnt > uint64(len(entry)-off) {
		// Every pair takes at least one byte: a larger count is corrupt
		// (and must not make the decoder allocate for it).
		return h, 0, fmt.Errorf("broadcast state header: %d entries in %d bytes: %w", cnt, len(entry)-off, codec.ErrCorrupt)
	}
	h.Entries = cnt
	return h, off, nil
}

// String renders the header as "keys <id>, values <id>, <n> entries".
func (h BroadcastHeader) String() string {
	unit := "entries"
	if h.Entries == 1 {
		unit = "entry"
	}
	return fmt.Sprintf("keys %s, values %s, %d %s", h.KeyCodec, h.ValueCodec, h.Entries, unit)
}
