package pebblestate

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/sluicehq/sluice/codec"
)

// The key layout. Every Pebble key of state or timers begins with the key
// group (2 bytes, big-endian) and a state id (2 bytes, big-endian), so that
// a key-group range is one contiguous key range and, within a key group,
// every state is one contiguous range:
//
//	value, reducing: kg sid key                 → [expiry:8] value
//	list:            kg sid key                 → [expiry:8] count:uvarint element{count}
//	map:             kg sid key userKey         → [expiry:8] userValue
//	raw (restored, not yet registered): kg sid  → the canonical file's body of the state in kg
//	timers:          kg 0 time:8 key            → (empty)
//	event timers:    kg 1 time:8 key            → (empty)
//
// key and userKey are the codecs' encodings, which are prefix-free (a
// codec decodes from the front of a slice), so the keys of one key sort
// together after its prefix. expiry (Unix nanoseconds, big-endian) is
// present iff the state has a TTL; timer times are big-endian with the sign
// bit flipped, so they sort by time. The backend's own records sit under
// the key group 0xFFFF, outside every key-group range:
//
//	0xFFFF 'I'       → the backend info (key codec, max parallelism, range)
//	0xFFFF 'S' name  → a state's meta (stateMeta)
const (
	prefixLen = 4
	// maxKeyGroups is the largest max parallelism: key group 0xFFFF is
	// the backend's own.
	maxKeyGroups = 0xFFFF

	sidTimers      uint16 = 0
	sidEventTimers uint16 = 1
	firstStateID   uint16 = 2
	// maxStateID is the largest state id; sid+1 must still fit.
	maxStateID uint16 = 0xFFFE
)

var (
	metaPrefix = []byte{0xFF, 0xFF}
	infoKey    = []byte{0xFF, 0xFF, 'I'}
	statePfx   = []byte{0xFF, 0xFF, 'S'}
)

func appendPrefix(dst []byte, kg int, sid uint16) []byte {
	return append(dst, byte(kg>>8), byte(kg), byte(sid>>8), byte(sid))
}

// kgKey is the first key of key group kg (exclusive upper bound of kg-1).
func kgKey(kg int) []byte { return []byte{byte(kg >> 8), byte(kg)} }

func appendTime(dst []byte, t int64) []byte {
	return binary.BigEndian.AppendUint64(dst, uint64(t)^(1<<63))
}

func readTime(b []byte) int64 { return int64(binary.BigEndian.Uint64(b) ^ (1 << 63)) }

// kind is a state's kind, numbered as in the canonical file.
type kind uint8

const (
	kindValue    kind = 1
	kindList     kind = 2
	kindMap      kind = 3
	kindReducing kind = 4
)

func (k kind) String() string {
	switch k {
	case kindValue:
		return "value"
	case kindList:
		return "list"
	case kindMap:
		return "map"
	case kindReducing:
		return "reducing"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

func parseKind(s string) (kind, bool) {
	for k := kindValue; k <= kindReducing; k++ {
		if k.String() == s {
			return k, true
		}
	}
	return 0, false
}

const flagTTL = 1

// stateMeta describes one state the DB holds.
type stateMeta struct {
	name  string
	sid   uint16
	kind  kind
	flags byte // flagTTL: the entries carry an expiry
	// codecs are the identities of the codecs the entries are encoded
	// with (nil: unknown, from a version 1 file).
	codecs []codec.ID
	// raw: the entries are canonical bodies per key group, not yet
	// decoded (restored, never registered).
	raw bool
}

func (m *stateMeta) ttl() bool { return m.flags&flagTTL != 0 }

func (m *stateMeta) encode() []byte {
	p := binary.BigEndian.AppendUint16(nil, m.sid)
	p = append(p, byte(m.kind), m.flags)
	if m.raw {
		p = append(p, 1)
	} else {
		p = append(p, 0)
	}
	if m.codecs == nil {
		p = append(p, 0)
	} else {
		p = append(p, 1)
		p = binary.AppendUvarint(p, uint64(len(m.codecs)))
		for _, id := range m.codecs {
			p = appendID(p, id)
		}
	}
	return p
}

var errBadMeta = errors.New("malformed state meta")

func decodeMeta(name string, p []byte) (*stateMeta, error) {
	if len(p) < 6 {
		return nil, errBadMeta
	}
	m := &stateMeta{name: name, sid: binary.BigEndian.Uint16(p), kind: kind(p[2]), flags: p[3], raw: p[4] == 1}
	if m.kind < kindValue || m.kind > kindReducing || m.sid < firstStateID || m.sid > maxStateID {
		return nil, errBadMeta
	}
	if p[5] == 1 {
		p = p[6:]
		n, k := binary.Uvarint(p)
		if k <= 0 || n > uint64(len(p)) {
			return nil, errBadMeta
		}
		p = p[k:]
		m.codecs = []codec.ID{}
		for range n {
			id, k, err := readID(p)
			if err != nil {
				return nil, errBadMeta
			}
			p = p[k:]
			m.codecs = append(m.codecs, id)
		}
	}
	return m, nil
}

func metaKey(name string) []byte { return append(append([]byte(nil), statePfx...), name...) }

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendID(dst []byte, id codec.ID) []byte {
	dst = appendString(dst, id.Name)
	return binary.AppendUvarint(dst, uint64(id.Version))
}

func readString(p []byte) (string, int, error) {
	l, n := binary.Uvarint(p)
	if n <= 0 || l > uint64(len(p)-n) {
		return "", 0, errors.New("bad string")
	}
	return string(p[n : n+int(l)]), n + int(l), nil
}

func readID(p []byte) (codec.ID, int, error) {
	name, n, err := readString(p)
	if err != nil {
		return codec.ID{}, 0, err
	}
	v, m := binary.Uvarint(p[n:])
	if m <= 0 || v > 1<<31 {
		return codec.ID{}, 0, errors.New("bad codec version")
	}
	return codec.ID{Name: name, Version: int(v)}, n + m, nil
}
