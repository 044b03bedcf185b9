package pebblestate

import (
	"bytes"
	"encoding/binary"
	"github.com/cockroachdb/pebble/v2"
)

// Background TTL cleanup. Pebble has no public compaction filter, so expired
// entries that are never read again would stay forever (they are left out
// of snapshots, but they occupy the DB). Instead the backend sweeps: every
// sweepEvery writes, and at every Snapshot, it walks the next slice of the
// key space (sweepStep entries of states with a TTL, from a cursor that
// wraps around the key-group range) and deletes the expired entries it
// meets. A key space of n entries is thus swept in about
// n/sweepStep × sweepEvery writes plus snapshots; each step costs one
// iterator and sweepStep entry reads, about 1/4 entry read per write.
const (
	sweepEvery = 1024
	sweepStep  = 256
	// snapshotSweep entries are swept at each Snapshot.
	snapshotSweep = 4096
)

// sweep walks up to n entries of TTL states from the cursor, deleting the
// expired ones, and moves the cursor on.
func (b *Backend[K]) sweep(n int) {
	if b.ttlStates == 0 || b.r.Len() == 0 {
		return
	}
	lo, hi := kgKey(b.r.Start), kgKey(b.r.End+1)
	start := b.sweepAt
	if bytes.Compare(start, lo) < 0 || bytes.Compare(start, hi) >= 0 {
		start = lo
	}
	it := b.iter(lo, hi)
	if it == nil {
		return
	}
	now := b.now()
	var dead [][]byte
	visited := 0
	ok := it.SeekGE(start)
	wrapped := false
	for visited < n {
		if !ok {
			if wrapped {
				break
			}
			wrapped = true
			ok = it.First()
			continue
		}
		k := it.Key()
		if len(k) < prefixLen {
			ok = it.Next()
			continue
		}
		sid := binary.BigEndian.Uint16(k[2:])
		ttl := false
		if sid >= firstStateID {
			if m := b.metaBySID(sid); m != nil && !m.raw && m.ttl() {
				ttl = true
			}
		}
		if !ttl {
			// Skip the rest of this state in this key group.
			ok = it.SeekGE(appendPrefix(nil, int(binary.BigEndian.Uint16(k)), sid+1))
			continue
		}
		visited++
		if v := it.Value(); len(v) >= 8 && int64(binary.BigEndian.Uint64(v)) <= now {
			dead = append(dead, append([]byte(nil), k...))
		}
		ok = it.Next()
	}
	if ok {
		b.sweepAt = append(b.sweepAt[:0], it.Key()...)
	} else {
		b.sweepAt = b.sweepAt[:0]
	}
	if err := it.Close(); err != nil {
		b.fail(err)
		return
	}
	for _, k := range dead {
		if err := b.db.Delete(k, pebble.NoSync); err != nil {
			b.fail(err)
			return
		}
	}
	b.swept += int64(len(dead))
}

// metaBySID returns the meta of the state with id sid, nil if none.
func (b *Backend[K]) metaBySID(sid uint16) *stateMeta {
	if b.bySID == nil || len(b.bySID) != len(b.metas) {
		b.bySID = make(map[uint16]*stateMeta, len(b.metas))
		for _, m := range b.metas {
			b.bySID[m.sid] = m
		}
	}
	return b.bySID[sid]
}

// SweptEntries returns how many expired entries the background TTL sweep
// has deleted; a metric, and for tests.
func (b *Backend[K]) SweptEntries() int64 { return b.swept }
