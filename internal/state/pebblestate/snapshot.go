package pebblestate

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/internal/state/heap"
)

// The canonical keyed-state file (format 2, docs/design.md §4 and §10),
// byte for byte as internal/state/heap/snapshot.go describes it.
const (
	fileMagic     = "SLKG"
	formatVersion = 2

	tagState       = 1
	tagTimers      = 2
	tagEventTimers = 3
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Snapshot is an immutable view of a backend's keyed state and timers, taken
// by Backend.Snapshot: a Pebble snapshot for WriteKeyGroups and, with
// Options.Incremental or LocalRecovery, a local Pebble checkpoint (hard
// links) for WriteIncremental. Its methods are safe to call from any
// goroutine.
type Snapshot struct {
	id     int64
	maxP   int
	r      checkpoint.KeyGroupRange
	kcID   codec.ID
	keyLen func([]byte) (int, error)
	metas  []stateMeta // by name
	now    int64

	dbMu   *sync.RWMutex
	snap   *pebble.Snapshot
	chkDir string // the local checkpoint, "" if none
	// keepLocal is the local-recovery directory (Options.LocalRecovery)
	// into which WriteIncremental moves chkDir, "" if none.
	keepLocal string
	err       error // a storage error of the backend before the snapshot
	// chkErr is the failure of the local checkpoint, which only
	// WriteIncremental needs.
	chkErr error
	inc    *incremental
	owner  func(*Snapshot)

	abandoned atomic.Bool
	mu        sync.Mutex
	writing   bool
	released  bool
}

// Snapshot is the synchronous part of a checkpoint or savepoint. It runs a
// TTL sweep step, commits the pending writes and takes a Pebble snapshot
// (O(1)); with Options.Incremental or LocalRecovery it also flushes the
// memtable and takes a Pebble checkpoint into a local directory (hard links,
// O(files)), which WriteIncremental uploads. A failure here is returned by
// the snapshot's writers. Every Snapshot must be released.
func (b *Backend[K]) Snapshot(checkpointID int64) *Snapshot {
	s := &Snapshot{
		id: checkpointID, maxP: b.maxP, r: b.r, kcID: b.kcID, now: b.now(),
		dbMu: &b.dbMu, inc: b.inc,
	}
	kc := b.kc
	s.keyLen = func(p []byte) (int, error) {
		_, n, err := kc.Decode(p)
		return n, err
	}
	if b.closed {
		s.err = errors.New("pebblestate: snapshot of a closed backend")
		s.released = true
		return s
	}
	b.sweep(snapshotSweep)
	for _, m := range b.metas {
		s.metas = append(s.metas, *m)
	}
	slices.SortFunc(s.metas, func(x, y stateMeta) int { return cmp.Compare(x.name, y.name) })
	s.err = b.err
	s.snap = b.db.NewSnapshot()
	if s.err == nil && (b.o.Incremental || b.o.LocalRecovery) {
		b.inc.mu.Lock()
		b.inc.seq++
		seq := b.inc.seq
		b.inc.mu.Unlock()
		dir := filepath.Join(b.dir+".chk", fmt.Sprintf("%d-%d", checkpointID, seq))
		if err := b.db.Flush(); err != nil {
			s.chkErr = fmt.Errorf("pebblestate: flush for checkpoint %d: %w", checkpointID, err)
		} else if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			s.chkErr = fmt.Errorf("pebblestate: %w", err)
		} else if err := b.db.Checkpoint(dir); err != nil {
			s.chkErr = fmt.Errorf("pebblestate: local checkpoint %d: %w", checkpointID, err)
		} else {
			s.chkDir = dir
			if b.o.LocalRecovery {
				s.keepLocal = b.localRoot()
			}
		}
	}
	b.liveMu.Lock()
	b.live[s] = struct{}{}
	b.liveMu.Unlock()
	s.owner = func(s *Snapshot) {
		b.liveMu.Lock()
		delete(b.live, s)
		b.liveMu.Unlock()
	}
	return s
}

// CheckpointID returns the id the snapshot was taken for.
func (s *Snapshot) CheckpointID() int64 { return s.id }

// KeyGroupRange returns the key groups the snapshot covers.
func (s *Snapshot) KeyGroupRange() checkpoint.KeyGroupRange { return s.r }

// KeyCodec returns the identity of the key codec, as name@vN.
func (s *Snapshot) KeyCodec() string { return s.kcID.String() }

// States describes the snapshot's states, sorted by name, for the
// checkpoint metadata, as heap.Snapshot.States does.
func (s *Snapshot) States() []checkpoint.StateInfo {
	out := make([]checkpoint.StateInfo, 0, len(s.metas))
	for _, m := range s.metas {
		si := checkpoint.StateInfo{Name: m.name, Kind: m.kind.String(), TTL: m.ttl()}
		for _, id := range m.codecs {
			si.Codecs = append(si.Codecs, id.String())
		}
		out = append(out, si)
	}
	return out
}

// begin starts a writer; end must follow.
func (s *Snapshot) begin() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.err != nil:
		return s.err
	case s.released:
		return heap.ErrReleased
	case s.writing:
		return errors.New("state: a writer is already running for this snapshot")
	}
	s.writing = true
	return nil
}

func (s *Snapshot) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writing = false
	if s.released {
		s.releaseLocked()
	}
}

// Release tells the backend that the snapshot is done with, written or
// abandoned. It may be called from any goroutine and at any time: during a
// write it abandons it, which stops with heap.ErrReleased, and the Pebble
// snapshot is closed once the writer stopped. Later calls are no-ops.
func (s *Snapshot) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.released {
		return
	}
	s.released = true
	s.abandoned.Store(true)
	if !s.writing {
		s.releaseLocked()
	}
}

func (s *Snapshot) releaseLocked() {
	if s.snap != nil {
		s.snap.Close()
		s.snap = nil
	}
	if s.chkDir != "" {
		os.RemoveAll(s.chkDir)
		s.chkDir = ""
	}
	if s.owner != nil {
		s.owner(s)
		s.owner = nil
	}
}

// WriteKeyGroups writes the snapshot as the canonical keyed-state file
// (format 2, docs/design.md §4), which the heap backend reads too, and
// returns where each key group's section begins. Within a section the
// states come by name and their entries in key byte order; expired TTL
// entries are left out, restored states never registered are written back
// as they were restored. It buffers one key group at a time.
func (s *Snapshot) WriteKeyGroups(w io.Writer) (keyGroupOffsets []int64, err error) {
	if err := s.begin(); err != nil {
		return nil, err
	}
	// end (which may close the Pebble snapshot) runs before RUnlock, so
	// that Close cannot close the DB first.
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	defer s.end()
	bw := bufio.NewWriterSize(w, 256<<10)
	head := make([]byte, 0, 64)
	head = append(head, fileMagic...)
	head = append(head, formatVersion)
	head = binary.AppendUvarint(head, uint64(s.maxP))
	head = binary.AppendVarint(head, int64(s.r.Start))
	head = binary.AppendVarint(head, int64(s.r.End))
	head = appendID(head, s.kcID)
	head = binary.AppendUvarint(head, uint64(len(s.metas)))
	for _, m := range s.metas {
		head = appendString(head, m.name)
		head = append(head, byte(m.kind), m.flags)
		head = binary.AppendUvarint(head, uint64(len(m.codecs)))
		for _, id := range m.codecs {
			head = appendID(head, id)
		}
	}
	head = binary.LittleEndian.AppendUint32(head, crc32.Checksum(head, castagnoli))
	if _, err := bw.Write(head); err != nil {
		return nil, err
	}
	off := int64(len(head))
	offsets := make([]int64, s.r.Len())
	if s.r.Len() == 0 {
		return offsets, bw.Flush()
	}
	it, err := s.snap.NewIter(&pebble.IterOptions{LowerBound: kgKey(s.r.Start), UpperBound: kgKey(s.r.End + 1)})
	if err != nil {
		return nil, fmt.Errorf("pebblestate: %w", err)
	}
	defer it.Close()
	e := &encoder{s: s, it: it}
	var payload []byte
	for gi := range offsets {
		if s.abandoned.Load() {
			return nil, heap.ErrReleased
		}
		kg := s.r.Start + gi
		offsets[gi] = off
		payload = payload[:0]
		for i := range s.metas {
			m := &s.metas[i]
			body, err := e.stateBody(kg, m)
			if err != nil {
				return nil, err
			}
			if len(body) == 0 {
				continue
			}
			payload = append(payload, tagState)
			payload = appendString(payload, m.name)
			payload = append(payload, byte(m.kind), m.flags)
			payload = binary.AppendUvarint(payload, uint64(len(body)))
			payload = append(payload, body...)
		}
		for _, t := range [...]struct {
			sid uint16
			tag byte
		}{{sidTimers, tagTimers}, {sidEventTimers, tagEventTimers}} {
			body, err := e.timerBody(kg, t.sid)
			if err != nil {
				return nil, err
			}
			if len(body) > 0 {
				payload = append(payload, t.tag)
				payload = binary.AppendUvarint(payload, uint64(len(body)))
				payload = append(payload, body...)
			}
		}
		head = binary.AppendUvarint(head[:0], uint64(kg))
		head = binary.AppendUvarint(head, uint64(len(payload)))
		var sum [4]byte
		binary.LittleEndian.PutUint32(sum[:], crc32.Update(crc32.Checksum(head, castagnoli), castagnoli, payload))
		bw.Write(head) // bufio errors are sticky: the last Write reports them
		bw.Write(payload)
		if _, err := bw.Write(sum[:]); err != nil {
			return nil, err
		}
		off += int64(len(head) + len(payload) + len(sum))
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("pebblestate: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	return offsets, nil
}

// encoder turns native entries into canonical bodies, reusing its buffers.
type encoder struct {
	s    *Snapshot
	it   *pebble.Iterator
	body []byte
	ents []byte // one key's map entries
	cur  []byte // the current map key's encoding
}

// stateBody returns the canonical body of state m in key group kg.
func (e *encoder) stateBody(kg int, m *stateMeta) ([]byte, error) {
	lo := appendPrefix(nil, kg, m.sid)
	e.body = e.body[:0]
	now, ttl := e.s.now, m.ttl()
	fail := func(err error) error {
		return fmt.Errorf("%w: state %q, key group %d: %w", errCorruptDB, m.name, kg, err)
	}
	if m.raw {
		if e.it.SeekGE(lo) && bytes.Equal(e.it.Key(), lo) {
			v, err := e.it.ValueAndErr()
			if err != nil {
				return nil, err
			}
			e.body = append(e.body, v...)
		}
		return e.body, nil
	}
	var count uint64
	e.cur = e.cur[:0]
	flushKey := func() {
		if count > 0 {
			e.body = append(e.body, e.cur...)
			e.body = binary.AppendUvarint(e.body, count)
			e.body = append(e.body, e.ents...)
		}
		count, e.ents = 0, e.ents[:0]
	}
	for ok := e.it.SeekGE(lo); ok; ok = e.it.Next() {
		k := e.it.Key()
		if len(k) < prefixLen || !bytes.Equal(k[:prefixLen], lo) {
			break
		}
		rest := k[prefixLen:]
		v, err := e.it.ValueAndErr()
		if err != nil {
			return nil, err
		}
		exp, v, err := cutExpiry(v, ttl)
		if err != nil {
			return nil, fail(err)
		}
		live := !ttl || exp > now
		switch m.kind {
		case kindValue, kindReducing, kindList:
			if !live {
				continue
			}
			e.body = append(e.body, rest...)
			e.body = append(e.body, v...) // value, or count and elements
			if ttl {
				e.body = binary.AppendVarint(e.body, exp)
			}
		case kindMap:
			if len(e.cur) == 0 || !bytes.HasPrefix(rest, e.cur) {
				flushKey()
				n, err := e.s.keyLen(rest)
				if err != nil {
					return nil, fail(err)
				}
				e.cur = append(e.cur[:0], rest[:n]...)
			}
			if !live {
				continue
			}
			e.ents = append(e.ents, rest[len(e.cur):]...)
			e.ents = append(e.ents, v...)
			if ttl {
				e.ents = binary.AppendVarint(e.ents, exp)
			}
			count++
		}
	}
	if m.kind == kindMap {
		flushKey()
	}
	return e.body, nil
}

// timerBody returns the canonical body of the timers sid in key group kg:
// key time:varint, repeated, in time order.
func (e *encoder) timerBody(kg int, sid uint16) ([]byte, error) {
	lo := appendPrefix(nil, kg, sid)
	e.body = e.body[:0]
	for ok := e.it.SeekGE(lo); ok; ok = e.it.Next() {
		k := e.it.Key()
		if len(k) < prefixLen || !bytes.Equal(k[:prefixLen], lo) {
			break
		}
		if len(k) < prefixLen+8 {
			return nil, fmt.Errorf("%w: key group %d: malformed timer key", errCorruptDB, kg)
		}
		e.body = append(e.body, k[prefixLen+8:]...)
		e.body = binary.AppendVarint(e.body, readTime(k[prefixLen:]))
	}
	return e.body, nil
}

var errCorruptDB = errors.New("pebblestate: corrupt entry in the DB")
