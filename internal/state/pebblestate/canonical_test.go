package pebblestate_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"testing"
	"time"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/clock"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/internal/state/heap"
	"github.com/sluicehq/sluice/internal/state/pebblestate"
	"github.com/sluicehq/sluice/keygroup"
	"github.com/sluicehq/sluice/state"
)

type sideMaker func(t testing.TB, maxP int, r checkpoint.KeyGroupRange, clk clock.Clock, ttl time.Duration, files []heap.RestoreFile) *side

// fill writes every kind of state and both kinds of timers for key i.
func fill(t testing.TB, s *side, k string, i int) {
	t.Helper()
	if err := s.b.SetCurrentKey(k); err != nil {
		t.Fatal(err)
	}
	s.v.Update(int64(i))
	if i%2 == 0 {
		s.l.Add(fmt.Sprint("a", i))
		s.l.Add(fmt.Sprint("b", i))
	}
	if i%3 == 0 {
		s.m.Put("x", int64(i))
		s.m.Put("y", int64(-i))
	}
	s.r.Add(int64(i))
	s.r.Add(1)
	if i%5 == 0 {
		s.b.RegisterTimer(epoch.Add(time.Duration(i) * time.Second))
		s.b.RegisterEventTimer(int64(i))
	}
}

// check verifies what fill wrote for key i.
func check(t testing.TB, s *side, k string, i int) {
	t.Helper()
	if err := s.b.SetCurrentKey(k); err != nil {
		t.Fatal(err)
	}
	if v, ok := s.v.Value(); !ok || v != int64(i) {
		t.Fatalf("%s: %s: value %d %v, want %d", s.name, k, v, ok, i)
	}
	var wantL []string
	if i%2 == 0 {
		wantL = []string{fmt.Sprint("a", i), fmt.Sprint("b", i)}
	}
	if got := s.l.Get(); !slices.Equal(got, wantL) {
		t.Fatalf("%s: %s: list %v, want %v", s.name, k, got, wantL)
	}
	wantM := 0
	if i%3 == 0 {
		wantM = 2
		if v, ok := s.m.Get("y"); !ok || v != int64(-i) {
			t.Fatalf("%s: %s: map y = %d %v", s.name, k, v, ok)
		}
	}
	if n := s.m.Len(); n != wantM {
		t.Fatalf("%s: %s: map len %d, want %d", s.name, k, n, wantM)
	}
	if v, ok := s.r.Get(); !ok || v != int64(i)+1 {
		t.Fatalf("%s: %s: reducing %d %v, want %d", s.name, k, v, ok, i+1)
	}
}

// filesOf snapshots every side into canonical files.
func filesOf(sides []*side, ranges []checkpoint.KeyGroupRange) []heap.RestoreFile {
	var fs []heap.RestoreFile
	for i, s := range sides {
		d, o := s.snap(1)
		fs = append(fs, heap.RestoreFile{Data: d, Range: ranges[i], Offsets: o})
	}
	return fs
}

// TestCanonicalRescale moves state through canonical files between the
// backends at parallelism 2 → 3 → 1, in both directions, and checks every
// key and timer.
func TestCanonicalRescale(t *testing.T) {
	const maxP, n = 32, 2000
	makers := map[string]sideMaker{"heap": newHeapSide, "pebble": newPebbleSide}
	for _, path := range [][3]string{{"heap", "pebble", "heap"}, {"pebble", "heap", "pebble"}, {"pebble", "pebble", "pebble"}} {
		t.Run(fmt.Sprint(path), func(t *testing.T) {
			clk := clock.NewFake(epoch)
			keys := keysIn(n, maxP, checkpoint.KeyGroupRange{Start: 0, End: maxP - 1})
			var files []heap.RestoreFile
			for stage, par := range []int{2, 3, 1} {
				mk := makers[path[stage]]
				var sides []*side
				var ranges []checkpoint.KeyGroupRange
				for st := range par {
					r := keygroup.RangeFor(st, par, maxP)
					var mine []heap.RestoreFile
					for _, f := range files {
						if f.Range.Intersect(r).Len() > 0 {
							mine = append(mine, f)
						}
					}
					s := mk(t, maxP, r, clk, 0, mine)
					sides, ranges = append(sides, s), append(ranges, r)
				}
				timers, etimers := 0, 0
				for i, k := range keys {
					kg := keygroup.Of(codec.String.Hash(k), maxP)
					s := sides[keygroup.SubtaskFor(kg, par, maxP)]
					if stage == 0 {
						fill(t, s, k, i)
					} else {
						check(t, s, k, i)
					}
				}
				for _, s := range sides {
					timers += s.b.NumTimers()
					etimers += s.b.NumEventTimers()
				}
				if want := n / 5; timers != want || etimers != want {
					t.Fatalf("stage %d: %d timers, %d event timers, want %d", stage, timers, etimers, want)
				}
				files = filesOf(sides, ranges)
			}
			// The last stage's timers fire in time order with their keys.
			s := makers[path[2]](t, maxP, checkpoint.KeyGroupRange{Start: 0, End: maxP - 1}, clk, 0, files)
			var last int64 = -1
			count := 0
			for {
				k, at, ok := s.b.PopEventTimer(1 << 40)
				if !ok {
					break
				}
				if at < last || slices.Index(keys, k) != int(at) {
					t.Fatalf("event timer %s at %d after %d", k, at, last)
				}
				last = at
				count++
			}
			if count != n/5 {
				t.Fatalf("%d event timers fired, want %d", count, n/5)
			}
		})
	}
}

// TestPebbleFileMatchesReference decodes a Pebble snapshot with a decoder
// written from the format's description (docs/design.md §10), as the heap's
// savepoint format test does: header, state table, one checksummed section
// per key group at its offset, and every key in its key group.
func TestPebbleFileMatchesReference(t *testing.T) {
	const maxP = 16
	r := checkpoint.KeyGroupRange{Start: 3, End: 12}
	clk := clock.NewFake(epoch)
	p := newPebbleSide(t, maxP, r, clk, time.Hour, nil)
	keys := keysIn(500, maxP, r)
	for i, k := range keys {
		fill(t, p, k, i)
	}
	data, offs := p.snap(7)
	f, err := refDecode(data)
	if err != nil {
		t.Fatal(err)
	}
	if f.maxP != maxP || f.start != r.Start || f.end != r.End || f.keyCodec != codec.IDOf[string](codec.String).String() {
		t.Fatalf("header %+v", f)
	}
	var names []string
	for _, si := range f.states {
		names = append(names, si.name)
		if si.flags != 1 {
			t.Fatalf("state %s: flags %d, want the TTL flag", si.name, si.flags)
		}
	}
	if !slices.Equal(names, []string{"l", "m", "r", "v"}) {
		t.Fatalf("state table %v", names)
	}
	if len(offs) != r.Len() || len(f.sections) != r.Len() {
		t.Fatalf("%d offsets, %d sections, want %d", len(offs), len(f.sections), r.Len())
	}
	values := 0
	for gi, sec := range f.sections {
		if sec.kg != r.Start+gi || sec.off != offs[gi] {
			t.Fatalf("section %d: key group %d at %d, offsets say %d", gi, sec.kg, sec.off, offs[gi])
		}
		body := sec.states["v"]
		for len(body) > 0 {
			k, n, err := codec.String.Decode(body)
			if err != nil {
				t.Fatal(err)
			}
			if kg := keygroup.Of(codec.String.Hash(k), maxP); kg != sec.kg {
				t.Fatalf("key %s of key group %d in section %d", k, kg, sec.kg)
			}
			body = body[n:]
			_, n, err = codec.Int64.Decode(body)
			if err != nil {
				t.Fatal(err)
			}
			body = body[n:]
			exp, n := binary.Varint(body)
			if n <= 0 || exp != epoch.Add(time.Hour).UnixNano() {
				t.Fatalf("expiry %d", exp)
			}
			body = body[n:]
			values++
		}
	}
	if values != len(keys) {
		t.Fatalf("%d values in the file, want %d", values, len(keys))
	}
}

type refState struct {
	name  string
	kind  byte
	flags byte
}

type refSection struct {
	kg     int
	off    int64
	states map[string][]byte
	timers []byte
}

type refFile struct {
	maxP, start, end int
	keyCodec         string
	states           []refState
	sections         []refSection
}

// refDecode reads a keyed-state file from its description alone.
func refDecode(d []byte) (*refFile, error) {
	tab := crc32.MakeTable(crc32.Castagnoli)
	p := 0
	fail := errors.New("malformed")
	uv := func() uint64 {
		v, n := binary.Uvarint(d[p:])
		if n <= 0 {
			panic(fail)
		}
		p += n
		return v
	}
	sv := func() int64 {
		v, n := binary.Varint(d[p:])
		if n <= 0 {
			panic(fail)
		}
		p += n
		return v
	}
	str := func() string {
		l := int(uv())
		s := string(d[p : p+l])
		p += l
		return s
	}
	f := &refFile{}
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("%v", r)
			}
		}()
		if string(d[:4]) != "SLKG" || d[4] != 2 {
			panic("bad magic or version")
		}
		p = 5
		f.maxP, f.start, f.end = int(uv()), int(sv()), int(sv())
		f.keyCodec = fmt.Sprintf("%s@v%d", str(), uv())
		for range uv() {
			s := refState{name: str(), kind: d[p], flags: d[p+1]}
			p += 2
			for range uv() {
				str()
				uv()
			}
			f.states = append(f.states, s)
		}
		if binary.LittleEndian.Uint32(d[p:]) != crc32.Checksum(d[:p], tab) {
			panic("header checksum")
		}
		p += 4
		for p < len(d) {
			sec := refSection{off: int64(p), states: map[string][]byte{}}
			start := p
			sec.kg = int(uv())
			l := int(uv())
			payload := d[p : p+l]
			p += l
			if binary.LittleEndian.Uint32(d[p:]) != crc32.Checksum(d[start:p], tab) {
				panic(fmt.Sprintf("key group %d checksum", sec.kg))
			}
			p += 4
			for q := 0; q < len(payload); {
				tag := payload[q]
				q++
				var name string
				if tag == 1 {
					nl, n := binary.Uvarint(payload[q:])
					q += n
					name = string(payload[q : q+int(nl)])
					q += int(nl) + 2
				}
				bl, n := binary.Uvarint(payload[q:])
				q += n
				body := payload[q : q+int(bl)]
				q += int(bl)
				switch tag {
				case 1:
					sec.states[name] = body
				case 2, 3:
					sec.timers = append(sec.timers, body...)
				default:
					panic(fmt.Sprintf("tag %d", tag))
				}
			}
			f.sections = append(f.sections, sec)
		}
	}()
	return f, err
}

// TestUnregisteredStateSurvives restores a heap file with a state the
// Pebble job does not register: Unregistered names it, every snapshot
// writes it back unchanged, and a heap job registering it again finds it.
func TestUnregisteredStateSurvives(t *testing.T) {
	const maxP = 8
	r := checkpoint.KeyGroupRange{Start: 0, End: maxP - 1}
	hb := heap.NewHeapBackend(codec.String, maxP, r, nil)
	old, err := heap.Map(hb, "old", codec.String, codec.Int64, state.WithTTL(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	keys := keysIn(100, maxP, r)
	for i, k := range keys {
		hb.SetCurrentKey(k)
		old.Put("a", int64(i))
	}
	sn := hb.Snapshot(1)
	var buf bytes.Buffer
	offs, err := sn.WriteKeyGroups(&buf)
	sn.Release()
	if err != nil {
		t.Fatal(err)
	}
	pb, err := pebblestate.New(codec.String, maxP, r, nil, pebblestate.Options{Dir: t.TempDir() + "/db"})
	if err != nil {
		t.Fatal(err)
	}
	defer pb.Close()
	if err := pb.Restore([]heap.RestoreFile{{Data: buf.Bytes(), Range: r, Offsets: offs}}); err != nil {
		t.Fatal(err)
	}
	if _, err := pebblestate.Value(pb, "new", codec.Int64); err != nil {
		t.Fatal(err)
	}
	if got := pb.Unregistered(); !slices.Equal(got, []string{"old"}) {
		t.Fatalf("Unregistered %v", got)
	}
	data := buf.Bytes()
	for id := range int64(2) { // twice: written back unchanged each time
		ps := pb.Snapshot(2 + id)
		var pbuf bytes.Buffer
		if offs, err = ps.WriteKeyGroups(&pbuf); err != nil {
			t.Fatal(err)
		}
		infos := ps.States()
		ps.Release()
		if len(infos) != 2 || infos[1].Name != "old" || infos[1].Kind != "map" || !infos[1].TTL || len(infos[1].Codecs) != 2 {
			t.Fatalf("States %+v", infos)
		}
		data = pbuf.Bytes()
	}
	hb2 := heap.NewHeapBackend(codec.String, maxP, r, nil)
	if err := hb2.Restore([]heap.RestoreFile{{Data: data, Range: r, Offsets: offs}}); err != nil {
		t.Fatal(err)
	}
	old2, err := heap.Map(hb2, "old", codec.String, codec.Int64, state.WithTTL(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		hb2.SetCurrentKey(k)
		if v, ok := old2.Get("a"); !ok || v != int64(i) {
			t.Fatalf("%s: %d %v, want %d", k, v, ok, i)
		}
	}
}

// TestCorruptCanonicalInput flips and truncates every few bytes of a file:
// Restore (or the registration that decodes) returns an error, never
// panics, and never silently restores different content.
func TestCorruptCanonicalInput(t *testing.T) {
	const maxP = 8
	r := checkpoint.KeyGroupRange{Start: 0, End: maxP - 1}
	clk := clock.NewFake(epoch)
	src := newHeapSide(t, maxP, r, clk, 0, nil)
	keys := keysIn(40, maxP, r)
	for i, k := range keys {
		fill(t, src, k, i)
	}
	data, offs := src.snap(1)
	try := func(d []byte) (err error) {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("panic: %v", p)
			}
		}()
		b, err := pebblestate.New(codec.String, maxP, r, clk, pebblestate.Options{Dir: t.TempDir() + "/db"})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if err := b.Restore([]heap.RestoreFile{{Data: d, Range: r, Offsets: offs}}); err != nil {
			return err
		}
		s := &side{name: "pebble", b: b}
		if s.v, err = pebblestate.Value(b, "v", codec.Int64); err != nil {
			return err
		}
		if s.l, err = pebblestate.List(b, "l", codec.String); err != nil {
			return err
		}
		if s.m, err = pebblestate.Map(b, "m", codec.String, codec.Int64); err != nil {
			return err
		}
		if s.r, err = pebblestate.Reducing(b, "r", codec.Int64, sum); err != nil {
			return err
		}
		for i, k := range keys {
			check(t, s, k, i)
		}
		return nil
	}
	if err := try(data); err != nil {
		t.Fatalf("intact file: %v", err)
	}
	for i := 0; i < len(data); i += 7 {
		d := slices.Clone(data)
		d[i] ^= 0x40
		if err := try(d); err == nil {
			t.Fatalf("flipped byte %d: no error", i)
		} else if !errors.Is(err, state.ErrCorrupt) && !errors.Is(err, state.ErrIncompatible) {
			t.Fatalf("flipped byte %d: %v", i, err)
		}
	}
	for _, n := range []int{0, 3, 10, len(data) / 2, len(data) - 1} {
		if err := try(data[:n]); err == nil {
			t.Fatalf("truncated to %d: no error", n)
		}
	}
}
