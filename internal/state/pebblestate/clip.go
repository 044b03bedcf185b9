package pebblestate

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/sluicehq/sluice/checkpoint"
)

// clip deletes every key group outside the backend's range from a DB that
// was restored whole (it covered old).
func (b *Backend[K]) clip(old checkpoint.KeyGroupRange) error {
	if b.r.Len() == 0 {
		b.delRange(kgKey(0), metaPrefix)
	} else {
		if b.r.Start > 0 {
			b.delRange(kgKey(0), kgKey(b.r.Start))
		}
		b.delRange(kgKey(b.r.End+1), metaPrefix)
	}
	if b.err != nil {
		return b.err
	}
	b.log.Debug("pebble state clipped to the key-group range", "from", fmt.Sprintf("[%d, %d]", old.Start, old.End),
		"to", fmt.Sprintf("[%d, %d]", b.r.Start, b.r.End))
	return nil
}

// copyFrom copies the key groups of the backend's range from the old DB in
// dir (covering old) into the backend's, renumbering state ids by name.
func (b *Backend[K]) copyFrom(dir string, old checkpoint.KeyGroupRange) error {
	in := old.Intersect(b.r)
	if in.Len() == 0 {
		return nil
	}
	db, err := pebble.Open(dir, b.pebbleOptions(true))
	if err != nil {
		return fmt.Errorf("opening %s: %w", dir, err)
	}
	defer db.Close()
	_, metas, err := readDBMeta(db)
	if err != nil {
		return err
	}
	remap := make(map[uint16]uint16)
	for name, m := range metas {
		mine, ok := b.metas[name]
		if !ok {
			if mine, err = b.newMeta(name, m.kind, m.flags, m.codecs, m.raw); err != nil {
				return err
			}
		} else if mine.kind != m.kind || mine.flags != m.flags || mine.raw != m.raw || !sameIDs(mine.codecs, m.codecs) {
			return fmt.Errorf("%w: state %q differs between the restored subtasks (kind, TTL or codecs)", errCorrupt, name)
		}
		remap[m.sid] = mine.sid
	}
	b.bySID = nil
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: kgKey(in.Start), UpperBound: kgKey(in.End + 1)})
	if err != nil {
		return err
	}
	defer it.Close()
	var key []byte
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) < prefixLen {
			return fmt.Errorf("%w: short key", errCorrupt)
		}
		sid := binary.BigEndian.Uint16(k[2:])
		if sid >= firstStateID {
			to, ok := remap[sid]
			if !ok {
				return fmt.Errorf("%w: entry of unknown state id %d", errCorrupt, sid)
			}
			sid = to
		}
		key = append(key[:0], k[:2]...)
		key = binary.BigEndian.AppendUint16(key, sid)
		key = append(key, k[prefixLen:]...)
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		b.set(key, v)
	}
	if err := it.Error(); err != nil {
		return err
	}
	return b.err
}

func sameIDs[T comparable](a, b []T) bool {
	if len(a) != len(b) || (a == nil) != (b == nil) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
