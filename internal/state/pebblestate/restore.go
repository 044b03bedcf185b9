package pebblestate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/internal/state/heap"
	"github.com/sluicehq/sluice/state"
)

// Restore loads the key groups of the backend's range from canonical
// keyed-state files (written by the heap backend or by this one), which may
// come from any number of old subtasks with any ranges: each file's overlap
// with the backend's range is read through its offsets. Timers are written
// at once; a state's entries are kept as its canonical body per key group
// (one Pebble value) until the state is registered, which decodes them with
// its codecs — as the heap backend keeps them raw — so a state restored but
// never registered is written back unchanged by every snapshot.
//
// Restore must be called at most once, before any state is registered or
// timer set. Damaged content is an error wrapping state.ErrCorrupt naming
// the file and the key group; after an error discard the backend.
func (b *Backend[K]) Restore(files []heap.RestoreFile) error {
	if err := b.checkFresh(); err != nil {
		return err
	}
	b.restored = true
	seen := make([]bool, b.r.Len())
	rcodecs := make(map[string][]codec.ID)
	for fi := range files {
		if err := b.restoreFile(fi, &files[fi], seen, rcodecs); err != nil {
			return err
		}
	}
	if b.err != nil {
		return b.err
	}
	return b.rebuildTimers()
}

func (b *Backend[K]) checkFresh() error {
	if b.restored || len(b.states) > 0 || b.timers.live > 0 || b.etimers.live > 0 || b.closed {
		return errors.New("state: Restore must be called once, before any state is registered or timer set")
	}
	return nil
}

func (b *Backend[K]) restoreFile(fi int, f *heap.RestoreFile, seen []bool, rcodecs map[string][]codec.ID) error {
	fail := func(kg int, format string, args ...any) error {
		where := fmt.Sprintf("restore file %d", fi)
		if kg >= 0 {
			where += fmt.Sprintf(", key group %d", kg)
		}
		return fmt.Errorf("%w: %s: %s", state.ErrCorrupt, where, fmt.Sprintf(format, args...))
	}
	d := f.Data
	if len(d) < len(fileMagic)+1 || string(d[:len(fileMagic)]) != fileMagic {
		return fail(-1, "not a keyed-state file")
	}
	version := d[len(fileMagic)]
	if version < 1 || version > formatVersion {
		return fail(-1, "format version %d, this code reads 1 to %d", version, formatVersion)
	}
	p := len(fileMagic) + 1
	maxP, n := binary.Uvarint(d[p:])
	if n <= 0 {
		return fail(-1, "bad header")
	}
	p += n
	start, n := binary.Varint(d[p:])
	if n <= 0 {
		return fail(-1, "bad header")
	}
	p += n
	end, n := binary.Varint(d[p:])
	if n <= 0 || len(d)-p-n < 4 {
		return fail(-1, "bad header")
	}
	p += n
	var keyCodec codec.ID
	var infos []stateMeta
	if version >= 2 {
		var err error
		if keyCodec, infos, n, err = readStateTable(d[p:]); err != nil || len(d)-p-n < 4 {
			return fail(-1, "bad header: state table: %v", err)
		}
		p += n
	}
	if binary.LittleEndian.Uint32(d[p:]) != crc32.Checksum(d[:p], castagnoli) {
		return fail(-1, "header checksum mismatch")
	}
	if maxP != uint64(b.maxP) {
		return fmt.Errorf("%w: restore file %d was written with max parallelism %d, backend has %d (key groups cannot be remapped)",
			state.ErrIncompatible, fi, maxP, b.maxP)
	}
	if version >= 2 {
		if r := b.resolveKey(keyCodec); r.Outcome == heap.Refused {
			return refusal(r)
		}
		for _, m := range infos {
			if _, ok := rcodecs[m.name]; !ok {
				rcodecs[m.name] = m.codecs
			}
		}
	}
	if start != int64(f.Range.Start) || end != int64(f.Range.End) {
		return fail(-1, "file covers key groups [%d, %d], RestoreFile.Range says [%d, %d]", start, end, f.Range.Start, f.Range.End)
	}
	if len(f.Offsets) != f.Range.Len() {
		return fail(-1, "%d offsets for %d key groups", len(f.Offsets), f.Range.Len())
	}
	in := f.Range.Intersect(b.r)
	for kg := in.Start; kg <= in.End; kg++ {
		gi := kg - b.r.Start
		if seen[gi] {
			return fail(kg, "key group restored from two files")
		}
		seen[gi] = true
		off := f.Offsets[kg-f.Range.Start]
		if off < 0 || off >= int64(len(d)) {
			return fail(kg, "offset %d outside the file (%d bytes)", off, len(d))
		}
		sec := d[off:]
		gotKG, n1 := binary.Uvarint(sec)
		if n1 <= 0 {
			return fail(kg, "truncated section")
		}
		plen, n2 := binary.Uvarint(sec[n1:])
		if n2 <= 0 || plen > uint64(len(sec)-n1-n2) || uint64(len(sec)-n1-n2)-plen < 4 {
			return fail(kg, "truncated section")
		}
		h := n1 + n2
		payload := sec[h : h+int(plen)]
		if binary.LittleEndian.Uint32(sec[h+int(plen):]) != crc32.Checksum(sec[:h+int(plen)], castagnoli) {
			return fail(kg, "checksum mismatch")
		}
		if gotKG != uint64(kg) {
			return fail(kg, "section is for key group %d", gotKG)
		}
		if err := b.restoreSection(kg, payload, rcodecs); err != nil {
			return fmt.Errorf("%w: restore file %d, key group %d: %w", state.ErrCorrupt, fi, kg, err)
		}
		if b.err != nil {
			return b.err
		}
	}
	return nil
}

// restoreSection files a key group's blocks: state bodies as raw values,
// timers decoded.
func (b *Backend[K]) restoreSection(kg int, p []byte, rcodecs map[string][]codec.ID) error {
	bad := errors.New("malformed block")
	var names map[string]bool
	for len(p) > 0 {
		tag := p[0]
		p = p[1:]
		switch tag {
		case tagState:
			l, n := binary.Uvarint(p)
			if n <= 0 || l > uint64(len(p)-n) || len(p)-n-int(l) < 2 {
				return bad
			}
			name := string(p[n : n+int(l)])
			p = p[n+int(l):]
			k, flags := kind(p[0]), p[1]
			p = p[2:]
			if k < kindValue || k > kindReducing || flags&^flagTTL != 0 {
				return fmt.Errorf("state %q: unknown kind %d or flags %#x", name, k, flags)
			}
			m := b.metas[name]
			if m == nil {
				var err error
				if m, err = b.newMeta(name, k, flags, rcodecs[name], true); err != nil {
					return err
				}
			}
			if m.kind != k || m.flags != flags {
				return fmt.Errorf("state %q: kind %s flags %#x, elsewhere %s flags %#x", name, k, flags, m.kind, m.flags)
			}
			body, rest, err := cutBody(p)
			if err != nil || names[name] {
				return fmt.Errorf("state %q: %w", name, bad)
			}
			if names == nil {
				names = make(map[string]bool)
			}
			names[name] = true
			b.set(appendPrefix(b.kbuf2[:0], kg, m.sid), body)
			p = rest
		case tagTimers, tagEventTimers:
			what, sid := "timers", sidTimers
			if tag == tagEventTimers {
				what, sid = "event-time timers", sidEventTimers
			}
			body, rest, err := cutBody(p)
			if err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			p = rest
			if err := b.restoreTimers(kg, sid, body); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
		default:
			return fmt.Errorf("unknown block tag %d", tag)
		}
	}
	return nil
}

// restoreTimers writes a restored key group's timers: key, varint time,
// repeated.
func (b *Backend[K]) restoreTimers(kg int, sid uint16, body []byte) error {
	for len(body) > 0 {
		k, n, err := b.decodeKey(body, kg)
		if err != nil {
			return err
		}
		enc := body[:n]
		body = body[n:]
		t, n := binary.Varint(body)
		if n <= 0 {
			return errEntry(k, errors.New("bad timer time"))
		}
		body = body[n:]
		key := appendPrefix(b.kbuf2[:0], kg, sid)
		key = appendTime(key, t)
		key = append(key, enc...)
		b.kbuf2 = key
		b.set(key, nil)
	}
	return nil
}

func cutBody(p []byte) (body, rest []byte, err error) {
	l, n := binary.Uvarint(p)
	if n <= 0 || l == 0 || l > uint64(len(p)-n) {
		return nil, nil, errors.New("malformed block length")
	}
	return p[n : n+int(l)], p[n+int(l):], nil
}

// readStateTable reads the key codec and state list of a version 2 header.
func readStateTable(p []byte) (keyCodec codec.ID, infos []stateMeta, n int, err error) {
	keyCodec, n, err = readID(p)
	if err != nil {
		return keyCodec, nil, 0, err
	}
	count, m := binary.Uvarint(p[n:])
	if m <= 0 || count > uint64(len(p)-n-m) {
		return keyCodec, nil, 0, errors.New("bad state count")
	}
	n += m
	for range count {
		var sm stateMeta
		var name string
		name, m, err = readString(p[n:])
		if err != nil || len(p)-n-m < 3 {
			return keyCodec, nil, 0, errors.New("bad state entry")
		}
		n += m
		sm.name, sm.kind, sm.flags = name, kind(p[n]), p[n+1]
		n += 2
		nc, m := binary.Uvarint(p[n:])
		if m <= 0 || nc > uint64(len(p)-n-m) {
			return keyCodec, nil, 0, errors.New("bad codec count")
		}
		n += m
		sm.codecs = []codec.ID{}
		for range nc {
			id, m, err := readID(p[n:])
			if err != nil {
				return keyCodec, nil, 0, err
			}
			n += m
			sm.codecs = append(sm.codecs, id)
		}
		infos = append(infos, sm)
	}
	return keyCodec, infos, n, nil
}

// restoredRange checks a native DB's recorded range against what a
// restore expects.
func checkRange(want, got checkpoint.KeyGroupRange) error {
	if want != got {
		return fmt.Errorf("%w: the DB covers key groups [%d, %d], its checkpoint says [%d, %d]", state.ErrCorrupt, got.Start, got.End, want.Start, want.End)
	}
	return nil
}
