package heap

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/codec"
)

// The keyed-state file format written by WriteKeyGroups (version 2). All
// integers are uvarints unless said otherwise.
//
//	file    = header section*            one section per key group, in range order
//	header  = "SLKG" version:byte maxParallelism start:varint end:varint
//	          keyCodec:id count:uvarint stateInfo{count} crc:u32le
//	stateInfo = name:string kind:byte flags:byte n:uvarint codec:id{n}
//	id      = name:string version:uvarint              a codec.ID
//	string  = length:uvarint bytes
//	section = keyGroup length payload crc:u32le
//	          crc is CRC-32C of keyGroup, length and payload
//	payload = block*
//	block   = 1 name:string kind:byte flags:byte length body     a state's entries
//	        | 2 length body                                       the timers
//	        | 3 length body                                       the event-time timers
//
// States appear in name order and only in key groups where they have
// entries. A body is a sequence of entries, per kind:
//
//	value, reducing: key value [expiry]
//	list:            key count element{count} [expiry]
//	map:             key count (userKey userValue [expiry]){count}
//	timers:          key time:varint  (both kinds)
//
// Keys and values use the state's codecs; expiry (Unix nanoseconds, varint)
// is present iff flags has flagTTL. The header lists every state of the
// snapshot with the identities of its codecs (value; element; user key and
// user value) and the key codec's, so that a restore with other codecs is
// reported as an incompatibility naming both (docs/design.md §10).
// Version 1, read but no longer written, had no key codec and no state
// list in its header. Each section has its own checksum so a
// restore that reads only some key groups still verifies what it reads, and
// so that damage is reported with the key group it hit.
const (
	fileMagic     = "SLKG"
	formatVersion = 2

	tagState  = 1
	tagTimers = 2
	// tagEventTimers was added without a version bump: files without
	// event-time timers are unchanged, and an older reader meeting one
	// reports an unknown block tag.
	tagEventTimers = 3

	flagTTL = 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// blockMeta describes a state block.
type blockMeta struct {
	name  string
	kind  kind
	flags byte
	// codecs are the state's codec identities; nil for state restored from
	// a version 1 file, which did not record them.
	codecs []codec.ID
}

func (s *base[K]) meta() blockMeta {
	m := blockMeta{name: s.name, kind: s.kind, codecs: s.codecs}
	if s.ttl != 0 {
		m.flags |= flagTTL
	}
	return m
}

// groupAppender encodes one key group of a frozen structure.
type groupAppender interface {
	// appendGroup appends the body of key group index gi, leaving out
	// entries expired at now.
	appendGroup(dst []byte, gi int, now int64) []byte
}

// frozenState is one state as a snapshot froze it.
type frozenState interface {
	groupAppender
	header() blockMeta
}

// Snapshot is an immutable view of a backend's keyed state and timers, taken
// by HeapBackend.Snapshot. Its methods are safe to call from any goroutine.
type Snapshot struct {
	id      int64
	seq     int64
	maxP    int
	r       checkpoint.KeyGroupRange
	kcID    codec.ID
	now     int64
	states  []frozenState
	timers  groupAppender
	etimers groupAppender
	rel     *releaser

	// vers is cow.ver as of this snapshot, untracked says some state's
	// changes are not recorded there (window state), inc and prevDone/done
	// chain the backend's snapshots for WriteIncremental (incremental.go).
	vers      []int64
	untracked bool
	inc       *incState
	prevDone  <-chan struct{}
	done      chan struct{}
	doneOnce  sync.Once

	// abandoned is set by Release; a running WriteKeyGroups polls it
	// between key groups.
	abandoned atomic.Bool
	mu        sync.Mutex
	writing   bool // a WriteKeyGroups is running
	released  bool // Release was called
}

// Snapshot is the synchronous part of a checkpoint: it freezes the map of
// every key group of every state and of the timers, and returns. It copies
// no entries, so its cost is O(states × key groups), microseconds however
// many keys there are; writes that follow clone a frozen key group's map
// first (see the package comment). Restored state not yet registered is
// included as it was restored.
//
// Every Snapshot must eventually be released, whether it was written or
// abandoned: until then, the first write to each key group after each later
// snapshot clones its map too.
func (b *HeapBackend[K]) Snapshot(checkpointID int64) *Snapshot {
	b.cow.seq++
	seq := b.cow.seq
	for gi, c := range b.cow.changed {
		if c {
			b.cow.ver[gi], b.cow.changed[gi] = seq, false
		}
	}
	s := &Snapshot{
		id:      checkpointID,
		seq:     seq,
		maxP:    b.maxP,
		r:       b.r,
		kcID:    b.kcID,
		now:     b.now(),
		states:  make([]frozenState, 0, len(b.states)+len(b.raw)),
		timers:  b.timers.freeze(seq, b.kc),
		etimers: b.etimers.freeze(seq, b.kc),
		rel:     b.cow.rel,
		vers:    slices.Clone(b.cow.ver),
		inc:     b.inc,
		done:    make(chan struct{}),
	}
	s.prevDone, b.inc.last = b.inc.last, s.done
	for _, st := range b.states {
		s.states = append(s.states, st.freeze(seq))
		if u, ok := st.(interface{ untracked() bool }); ok && u.untracked() {
			s.untracked = true
		}
	}
	for _, rs := range b.raw {
		s.states = append(s.states, rs)
	}
	slices.SortFunc(s.states, func(x, y frozenState) int { return cmp.Compare(x.header().name, y.header().name) })
	var extras []eventTimerSource
	for _, st := range s.states {
		if x, ok := st.(eventTimerSource); ok {
			extras = append(extras, x)
		}
	}
	if extras != nil {
		s.etimers = &joinedTimers{base: s.etimers, extras: extras}
	}
	return s
}

// CheckpointID returns the id the snapshot was taken for.
func (s *Snapshot) CheckpointID() int64 { return s.id }

// KeyGroupRange returns the key groups the snapshot covers.
func (s *Snapshot) KeyGroupRange() checkpoint.KeyGroupRange { return s.r }

// WriteKeyGroups is the asynchronous part of a checkpoint: it serializes the
// snapshot to w, key group by key group in range order (states by name, then
// timers), and returns where each key group's section begins:
// keyGroupOffsets[i] is the offset of key group KeyGroupRange().Start+i, as
// checkpoint.StateHandle.KeyGroupOffsets wants. Expired TTL entries are left
// out.
//
// (It is not called WriteTo because its results differ from io.WriterTo's,
// which go vet enforces for that name.)
//
// It buffers one key group's section at a time and reuses its buffers, so it
// allocates per key group, not per entry. It returns ErrReleased if the
// snapshot is released before or while it runs, and an error if another
// WriteKeyGroups of the same snapshot is running.
func (s *Snapshot) WriteKeyGroups(w io.Writer) (keyGroupOffsets []int64, err error) {
	s.mu.Lock()
	switch {
	case s.released:
		s.mu.Unlock()
		return nil, ErrReleased
	case s.writing:
		s.mu.Unlock()
		return nil, errors.New("state: WriteKeyGroups already running for this snapshot")
	}
	s.writing = true
	s.mu.Unlock()
	defer s.endWrite()
	return s.write(w, nil)
}

// header returns the file header: magic, version, max parallelism, range,
// key codec and state table, with its checksum.
func (s *Snapshot) header() []byte {
	head := make([]byte, 0, 64)
	head = append(head, fileMagic...)
	head = append(head, formatVersion)
	head = binary.AppendUvarint(head, uint64(s.maxP))
	head = binary.AppendVarint(head, int64(s.r.Start))
	head = binary.AppendVarint(head, int64(s.r.End))
	head = appendID(head, s.kcID)
	head = binary.AppendUvarint(head, uint64(len(s.states)))
	for _, st := range s.states {
		m := st.header()
		head = appendString(head, m.name)
		head = append(head, byte(m.kind), m.flags)
		head = binary.AppendUvarint(head, uint64(len(m.codecs)))
		for _, id := range m.codecs {
			head = appendID(head, id)
		}
	}
	return binary.LittleEndian.AppendUint32(head, crc32.Checksum(head, castagnoli))
}

// write writes the header and the section of every key group index for
// which skip is nil or false; skipped key groups get offset -1 (the file
// does not serve them). With skip nil the file is the canonical keyed-state
// file.
func (s *Snapshot) write(w io.Writer, skip func(gi int) bool) (keyGroupOffsets []int64, err error) {
	bw := bufio.NewWriterSize(w, 256<<10)
	head := s.header()
	if _, err := bw.Write(head); err != nil {
		return nil, err
	}
	off := int64(len(head))

	offsets := make([]int64, s.r.Len())
	var payload, body []byte
	for gi := range offsets {
		if s.abandoned.Load() {
			return nil, ErrReleased
		}
		if skip != nil && skip(gi) {
			offsets[gi] = -1
			continue
		}
		offsets[gi] = off
		payload = payload[:0]
		for _, st := range s.states {
			if body, err = appendGroup(st, body[:0], gi, s.now); err != nil {
				return nil, err
			}
			if len(body) == 0 {
				continue
			}
			m := st.header()
			payload = append(payload, tagState)
			payload = binary.AppendUvarint(payload, uint64(len(m.name)))
			payload = append(payload, m.name...)
			payload = append(payload, byte(m.kind), m.flags)
			payload = binary.AppendUvarint(payload, uint64(len(body)))
			payload = append(payload, body...)
		}
		if body = s.timers.appendGroup(body[:0], gi, s.now); len(body) > 0 {
			payload = append(payload, tagTimers)
			payload = binary.AppendUvarint(payload, uint64(len(body)))
			payload = append(payload, body...)
		}
		if body = s.etimers.appendGroup(body[:0], gi, s.now); len(body) > 0 {
			payload = append(payload, tagEventTimers)
			payload = binary.AppendUvarint(payload, uint64(len(body)))
			payload = append(payload, body...)
		}
		head = binary.AppendUvarint(head[:0], uint64(s.r.Start+gi))
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
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	return offsets, nil
}

// appendGroup appends a state's key group, turning the panic of a codec
// whose encoding failed (codec.EncodeError: JSON, Protobuf, Avro) into an
// error naming the state, which fails the checkpoint.
func appendGroup(st frozenState, dst []byte, gi int, now int64) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			ee, ok := r.(*codec.EncodeError)
			if !ok {
				panic(r)
			}
			err = fmt.Errorf("state %q: %w", st.header().name, ee)
		}
	}()
	return st.appendGroup(dst, gi, now), nil
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendID(dst []byte, id codec.ID) []byte {
	dst = appendString(dst, id.Name)
	return binary.AppendUvarint(dst, uint64(id.Version))
}

// States describes the snapshot's states, sorted by name, for the
// checkpoint metadata (`sluice checkpoints inspect` shows them, and a
// restore checks them: docs/design.md §10).
func (s *Snapshot) States() []checkpoint.StateInfo {
	out := make([]checkpoint.StateInfo, 0, len(s.states))
	for _, st := range s.states {
		m := st.header()
		si := checkpoint.StateInfo{Name: m.name, Kind: m.kind.String(), TTL: m.flags&flagTTL != 0}
		for _, id := range m.codecs {
			si.Codecs = append(si.Codecs, id.String())
		}
		out = append(out, si)
	}
	return out
}

// KeyCodec returns the identity of the key codec, as name@vN.
func (s *Snapshot) KeyCodec() string { return s.kcID.String() }

// endWrite hands a Release that arrived during the write to the backend,
// now that the frozen maps are no longer read.
func (s *Snapshot) endWrite() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writing = false
	s.finish()
	if s.released {
		s.releaseLocked()
	}
}

// finish tells the next snapshot's WriteIncremental that this one will not
// write (any more).
func (s *Snapshot) finish() {
	if s.done != nil {
		s.doneOnce.Do(func() { close(s.done) })
	}
}

// Release tells the backend that the snapshot is done with, written or
// abandoned, so the task may write its frozen maps in place again. It may be
// called from any goroutine and at any time: during a WriteKeyGroups it
// abandons the write, which stops at the next key group with ErrReleased,
// and the backend is told only once the writer has stopped reading. Later
// calls are no-ops. Every snapshot must be released (see
// HeapBackend.Snapshot).
func (s *Snapshot) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.released {
		return
	}
	s.released = true
	s.abandoned.Store(true)
	if !s.writing {
		s.finish()
		s.releaseLocked()
	}
}

func (s *Snapshot) releaseLocked() {
	s.rel.release(s.seq)
	// Drop the frozen maps now rather than when the caller drops the
	// Snapshot: the copies the task made since are the live ones, and the
	// frozen ones may be a whole backend's worth of memory.
	s.states, s.timers, s.etimers = nil, nil, nil
}
