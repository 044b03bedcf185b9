package pebblestate

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/state"
)

// dbInfo is what a DB records about the backend that wrote it.
type dbInfo struct {
	keyCodec codec.ID
	maxP     int
	r        checkpoint.KeyGroupRange
}

func (i dbInfo) encode() []byte {
	p := appendID(nil, i.keyCodec)
	p = binary.AppendUvarint(p, uint64(i.maxP))
	p = binary.AppendVarint(p, int64(i.r.Start))
	return binary.AppendVarint(p, int64(i.r.End))
}

func decodeInfo(p []byte) (dbInfo, error) {
	var i dbInfo
	id, n, err := readID(p)
	if err != nil {
		return i, errors.New("malformed backend info")
	}
	p = p[n:]
	i.keyCodec = id
	maxP, n := binary.Uvarint(p)
	if n <= 0 {
		return i, errors.New("malformed backend info")
	}
	p = p[n:]
	s, n := binary.Varint(p)
	if n <= 0 {
		return i, errors.New("malformed backend info")
	}
	p = p[n:]
	e, n := binary.Varint(p)
	if n <= 0 {
		return i, errors.New("malformed backend info")
	}
	i.maxP, i.r = int(maxP), checkpoint.KeyGroupRange{Start: int(s), End: int(e)}
	return i, nil
}

// writeInfo records the backend's info in the DB.
func (b *Backend[K]) writeInfo() error {
	v := dbInfo{keyCodec: b.kcID, maxP: b.maxP, r: b.r}.encode()
	if err := b.db.Set(infoKey, v, pebble.NoSync); err != nil {
		return fmt.Errorf("pebblestate: %w", err)
	}
	return nil
}

// saveMeta writes m into the DB.
func (b *Backend[K]) saveMeta(m *stateMeta) {
	if err := b.db.Set(metaKey(m.name), m.encode(), pebble.NoSync); err != nil {
		b.fail(err)
	}
}

// newMeta allocates a state id for a new state and records it.
func (b *Backend[K]) newMeta(name string, k kind, flags byte, codecs []codec.ID, raw bool) (*stateMeta, error) {
	if b.nextSID > maxStateID {
		return nil, fmt.Errorf("%w: state %q: more than %d states", state.ErrIncompatible, name, maxStateID-firstStateID+1)
	}
	m := &stateMeta{name: name, sid: b.nextSID, kind: k, flags: flags, codecs: codecs, raw: raw}
	b.nextSID++
	b.metas[name] = m
	b.saveMeta(m)
	return m, nil
}

// readDBMeta reads the info and state metas of db.
func readDBMeta(r pebble.Reader) (dbInfo, map[string]*stateMeta, error) {
	var info dbInfo
	v, cl, err := r.Get(infoKey)
	if err != nil {
		return info, nil, fmt.Errorf("%w: backend info: %w", state.ErrCorrupt, err)
	}
	info, err = decodeInfo(v)
	cl.Close()
	if err != nil {
		return info, nil, fmt.Errorf("%w: %w", state.ErrCorrupt, err)
	}
	metas := make(map[string]*stateMeta)
	hi := append(append([]byte(nil), statePfx...), 0xFF, 0xFF, 0xFF, 0xFF)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: statePfx, UpperBound: hi})
	if err != nil {
		return info, nil, err
	}
	defer it.Close()
	sids := make(map[uint16]string)
	for ok := it.First(); ok; ok = it.Next() {
		name := string(it.Key()[len(statePfx):])
		m, err := decodeMeta(name, it.Value())
		if err != nil {
			return info, nil, fmt.Errorf("%w: state %q: %w", state.ErrCorrupt, name, err)
		}
		if other, dup := sids[m.sid]; dup {
			return info, nil, fmt.Errorf("%w: states %q and %q share id %d", state.ErrCorrupt, other, name, m.sid)
		}
		sids[m.sid] = name
		metas[name] = m
	}
	return info, metas, it.Error()
}

// loadMeta adopts the metas of the DB just opened.
func (b *Backend[K]) loadMeta() error {
	info, metas, err := readDBMeta(b.db)
	if err != nil {
		return err
	}
	if info.maxP != b.maxP {
		return fmt.Errorf("%w: %w: the checkpoint was written with max parallelism %d, backend has %d (key groups cannot be remapped)",
			state.ErrIncompatible, checkpoint.ErrIncompatible, info.maxP, b.maxP)
	}
	b.metas, b.bySID = metas, nil
	b.nextSID = firstStateID
	for _, m := range metas {
		b.nextSID = max(b.nextSID, m.sid+1)
	}
	return nil
}
