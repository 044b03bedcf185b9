package heap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/keygroup"
	"github.com/sluicehq/sluice/state"
)

// RestoreFile is one keyed-state file of a checkpoint, as one old subtask
// wrote it with WriteKeyGroups.
type RestoreFile struct {
	// Data is the whole file. Restore keeps references into it (restored
	// state stays raw until registered), so do not modify it afterwards.
	Data []byte
	// Range is the key-group range the file covers (the old subtask's).
	Range checkpoint.KeyGroupRange
	// Offsets are the key-group offsets WriteKeyGroups returned for it, or
	// WriteIncremental's handle: -1 for a key group the file does not serve.
	Offsets []int64
}

// rawState is restored state whose codecs are not known yet: one body per
// key group index, nil where the key group had no entries. Until the state
// is registered, snapshots write the bodies back unchanged, so state of an
// operator that does not (yet) register it survives checkpoints, as in
// Flink.
type rawState struct {
	meta   blockMeta
	groups [][]byte
}

func (r *rawState) header() blockMeta { return r.meta }

func (r *rawState) appendGroup(dst []byte, gi int, _ int64) []byte {
	return append(dst, r.groups[gi]...)
}

var (
	errBadCount = errors.New("element count exceeds the remaining bytes")
	errBadTime  = errors.New("bad timer time")
)

// Restore loads the key groups of the backend's range from files, which may
// come from any number of old subtasks with any ranges (rescaling): each
// file's overlap with the backend's range is read, through its offsets, and
// the rest skipped. Timers are decoded at once; state entries stay raw until
// their state is registered, which decodes them with its codecs.
//
// Restore must be called at most once, before any state is registered or
// timer set. Damaged content (checksum, structure, a key in the wrong key
// group, a key group in two files) is an error wrapping state.ErrCorrupt naming
// the file, the key group and, where it applies, the state; after an error
// the backend must be discarded.
func (b *HeapBackend[K]) Restore(files []RestoreFile) error {
	if b.restored || len(b.states) > 0 || b.timers.live > 0 || b.etimers.live > 0 {
		return errors.New("state: Restore must be called once, before any state is registered or timer set")
	}
	b.restored = true
	seen := make([]bool, b.r.Len())
	covered := make([]bool, b.r.Len())
	for fi := range files {
		if err := b.restoreFile(fi, &files[fi], seen, covered); err != nil {
			return err
		}
	}
	// Files of an incremental checkpoint serve some key groups each (-1
	// offsets for the others); together they serve every key group.
	for gi := range seen {
		if covered[gi] && !seen[gi] {
			return fmt.Errorf("%w: key group %d: no restore file serves it (every file covering it has offset -1)", state.ErrCorrupt, b.r.Start+gi)
		}
	}
	b.timers.rebuild()
	b.etimers.rebuild()
	return nil
}

func (b *HeapBackend[K]) restoreFile(fi int, f *RestoreFile, seen, covered []bool) error {
	fail := func(kg int, format string, args ...any) error {
		where := fmt.Sprintf("restore file %d", fi)
		if kg >= 0 {
			where += fmt.Sprintf(", key group %d", kg)
		}
		return fmt.Errorf("%w: %s: %s", state.ErrCorrupt, where, fmt.Sprintf(format, args...))
	}
	d := f.Data
	// Header.
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
	var infos []blockMeta
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
		if r := b.resolveKey(keyCodec); r.Outcome == Refused {
			return refusal(r)
		}
		for _, m := range infos {
			if _, ok := b.rcodecs[m.name]; !ok {
				b.rcodecs[m.name] = m.codecs
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
		covered[gi] = true
		off := f.Offsets[kg-f.Range.Start]
		if off == -1 {
			continue // an incremental checkpoint's file that does not serve kg
		}
		if seen[gi] {
			return fail(kg, "key group restored from two files")
		}
		seen[gi] = true
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
		if err := b.restoreSection(gi, payload); err != nil {
			return fmt.Errorf("%w: restore file %d, key group %d: %w", state.ErrCorrupt, fi, kg, err)
		}
	}
	return nil
}

// restoreSection files a key group's blocks: states as raw bodies, timers
// decoded.
func (b *HeapBackend[K]) restoreSection(gi int, p []byte) error {
	bad := errors.New("malformed block")
	for len(p) > 0 {
		tag := p[0]
		p = p[1:]
		var m blockMeta
		switch tag {
		case tagState:
			l, n := binary.Uvarint(p)
			if n <= 0 || l > uint64(len(p)-n) || len(p)-n-int(l) < 2 {
				return bad
			}
			name := p[n : n+int(l)]
			p = p[n+int(l):]
			m = blockMeta{kind: kind(p[0]), flags: p[1]}
			p = p[2:]
			if m.kind < kindValue || m.kind > kindReducing || m.flags&^flagTTL != 0 {
				return fmt.Errorf("state %q: unknown kind %d or flags %#x", name, m.kind, m.flags)
			}
			rs := b.raw[string(name)] // no allocation for the lookup
			if rs == nil {
				m.name = string(name)
				m.codecs = b.rcodecs[m.name]
				rs = &rawState{meta: m, groups: make([][]byte, b.r.Len())}
				b.raw[m.name] = rs
			}
			if rs.meta.kind != m.kind || rs.meta.flags != m.flags {
				return fmt.Errorf("state %q: kind %s flags %#x, elsewhere %s flags %#x", name, m.kind, m.flags, rs.meta.kind, rs.meta.flags)
			}
			body, rest, err := cutBody(p)
			if err != nil || rs.groups[gi] != nil {
				return fmt.Errorf("state %q: %w", name, bad)
			}
			rs.groups[gi], p = body, rest
		case tagTimers:
			body, rest, err := cutBody(p)
			if err != nil {
				return fmt.Errorf("timers: %w", err)
			}
			p = rest
			if err := b.timers.decodeGroup(b, gi, body); err != nil {
				return fmt.Errorf("timers: %w", err)
			}
		case tagEventTimers:
			body, rest, err := cutBody(p)
			if err != nil {
				return fmt.Errorf("event-time timers: %w", err)
			}
			p = rest
			if err := b.etimers.decodeGroup(b, gi, body); err != nil {
				return fmt.Errorf("event-time timers: %w", err)
			}
		default:
			return fmt.Errorf("unknown block tag %d", tag)
		}
	}
	return nil
}

// cutBody splits a uvarint length-prefixed body off p.
func cutBody(p []byte) (body, rest []byte, err error) {
	l, n := binary.Uvarint(p)
	if n <= 0 || l == 0 || l > uint64(len(p)-n) {
		return nil, nil, errors.New("malformed block length")
	}
	return p[n : n+int(l)], p[n+int(l):], nil
}

// readStateTable reads the key codec and state list of a version 2 header.
func readStateTable(p []byte) (keyCodec codec.ID, infos []blockMeta, n int, err error) {
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
		var bm blockMeta
		var name string
		name, m, err = readString(p[n:])
		if err != nil || len(p)-n-m < 3 {
			return keyCodec, nil, 0, errors.New("bad state entry")
		}
		n += m
		bm.name, bm.kind, bm.flags = name, kind(p[n]), p[n+1]
		n += 2
		nc, m := binary.Uvarint(p[n:])
		if m <= 0 || nc > uint64(len(p)-n-m) {
			return keyCodec, nil, 0, errors.New("bad codec count")
		}
		n += m
		for range nc {
			id, m, err := readID(p[n:])
			if err != nil {
				return keyCodec, nil, 0, err
			}
			n += m
			bm.codecs = append(bm.codecs, id)
		}
		infos = append(infos, bm)
	}
	return keyCodec, infos, n, nil
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

// codecRoles names a state's codecs, by kind, for error messages.
func codecRoles(k kind) []string {
	switch k {
	case kindList:
		return []string{"element"}
	case kindMap:
		return []string{"user key", "user value"}
	}
	return []string{"value"}
}

// codecMismatch describes how the codecs a state was written with differ
// from those it is registered with, or returns "" if they are the same.
func codecMismatch(k kind, written, now []codec.ID, compatible func(w, n codec.ID) bool) string {
	if written == nil { // a version 1 file: nothing recorded
		return ""
	}
	roles := codecRoles(k)
	var diffs []string
	for i := range max(len(written), len(now)) {
		var w, n codec.ID
		if i < len(written) {
			w = written[i]
		}
		if i < len(now) {
			n = now[i]
		}
		if !compatible(w, n) {
			role := "codec"
			if i < len(roles) {
				role = roles[i] + " codec"
			}
			diffs = append(diffs, fmt.Sprintf("%s %s, the job now uses %s", role, w, n))
		}
	}
	return strings.Join(diffs, "; ")
}

// adopt decodes the restored entries of state s being registered, if any,
// with decode, and forgets the raw bytes. It first resolves the codecs the
// entries were written with against s's (docs/design.md §10): resolve, given
// the written IDs, sets the state's restore decoders (codec.Resolve: the
// codec's own Decode, or an older version's reader for a migration) and
// returns a verdict per codec; resolveState turns them into the outcome. A
// refusal names both IDs without decoding. Where an ID is undeclared only
// decoding can tell, and a failure is reported as an incompatibility if the
// IDs differ, as corruption if they are equal. In planning mode
// (PlanRestore) the outcome is recorded instead.
func (b *HeapBackend[K]) adopt(s *base[K], resolve func(written []codec.ID) []codec.Compatibility,
	decode func(gi int, body []byte, hasTTL bool, now int64) error) error {
	name := s.name
	rs, ok := b.raw[name]
	if !ok {
		if b.planning {
			b.plan = append(b.plan, resolveState(name, nil, s.kind, s.codecs, nil))
		}
		return nil
	}
	var verdicts []codec.Compatibility
	if rs.meta.kind == s.kind {
		verdicts = resolve(rs.meta.codecs)
	}
	r := resolveState(name, &rs.meta, s.kind, s.codecs, verdicts)
	if b.planning {
		b.plan = append(b.plan, r)
		delete(b.raw, name)
		return nil
	}
	if r.Outcome == Refused {
		return refusal(r)
	}
	now := b.now()
	for gi, body := range rs.groups {
		if body == nil {
			continue
		}
		if err := decode(gi, body, rs.meta.flags&flagTTL != 0, now); err != nil {
			if d := codecMismatch(s.kind, rs.meta.codecs, s.codecs, func(w, n codec.ID) bool { return w == n }); d != "" && r.Outcome == AsIs {
				return fmt.Errorf("%w: %w: %s state %q was written with %s, which cannot read it (key group %d: %w)",
					state.ErrIncompatible, checkpoint.ErrIncompatible, s.kind, name, d, b.r.Start+gi, err)
			}
			return fmt.Errorf("%w: state %q, key group %d: %w", state.ErrCorrupt, name, b.r.Start+gi, err)
		}
	}
	delete(b.raw, name)
	return nil
}

// decodeKey decodes a key from the front of src and checks that it belongs
// to key group index gi: a key codec whose hash changed since the snapshot
// would otherwise silently file state under the wrong key group.
func (b *HeapBackend[K]) decodeKey(src []byte, gi int) (K, int, error) {
	k, n, err := b.kc.Decode(src)
	if err != nil {
		return k, 0, fmt.Errorf("key: %w", err)
	}
	if kg := keygroup.Of(b.kc.Hash(k), b.maxP); kg != b.r.Start+gi {
		return k, 0, fmt.Errorf("key %v hashes to key group %d", k, kg)
	}
	return k, n, nil
}

// restoredExpiry maps a restored entry's expiry to this registration's TTL:
// it reports false for an entry already expired, gives entries snapshotted
// without TTL a full TTL from now, and drops expiries if TTL is now off.
func (s *base[K]) restoredExpiry(exp int64, hasTTL bool, now int64) (int64, bool) {
	switch {
	case hasTTL && exp <= now:
		return 0, false
	case s.ttl == 0:
		return 0, true
	case !hasTTL:
		return now + s.ttl, true
	}
	return exp, true
}

// readExpiry reads an entry's expiry if the block has them.
func readExpiry(src []byte, hasTTL bool) (int64, int, error) {
	if !hasTTL {
		return 0, 0, nil
	}
	exp, n := binary.Varint(src)
	if n <= 0 {
		return 0, 0, errors.New("bad expiry")
	}
	return exp, n, nil
}

func errEntry[K any](k K, err error) error { return fmt.Errorf("entry for key %v: %w", k, err) }

func errNil(name, what string) error {
	return fmt.Errorf("%w: state %q: nil %s", state.ErrIncompatible, name, what)
}
