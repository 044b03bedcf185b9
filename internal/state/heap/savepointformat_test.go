package heap_test

// The savepoint format test (docs/design.md §10): the keyed-state file the
// heap backend writes is the canonical savepoint format, and this file
// reads it with a decoder written from the format's description alone, not
// from the heap backend's internals (this is package heap_test: it sees
// only the exported API). Another backend (Pebble) that writes and reads
// this format is restorable from and into the heap backend; the decoder here
// is the reference its tests can use.

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/internal/state/heap"
	"github.com/sluicehq/sluice/keygroup"
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// spCodecID is a codec identity as the format stores it.
type spCodecID struct {
	Name    string
	Version uint64
}

// spStateInfo is one entry of the header's state table.
type spStateInfo struct {
	Name   string
	Kind   byte // 1 value, 2 list, 3 map, 4 reducing
	Flags  byte // 1: entries carry an expiry
	Codecs []spCodecID
}

// spFile is a decoded keyed-state file.
type spFile struct {
	MaxParallelism int
	Start, End     int
	KeyCodec       spCodecID
	States         []spStateInfo
	// Groups holds each key group's blocks, by key group.
	Groups map[int]spGroup
}

type spGroup struct {
	States      map[string][]byte // state name → entry bytes (the body)
	Timers      []byte
	EventTimers []byte
}

type spReader struct {
	p   []byte
	err error
}

func (r *spReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, args...)
	}
}

func (r *spReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.p)
	if n <= 0 {
		r.fail("bad uvarint")
		r.p = nil
		return 0
	}
	r.p = r.p[n:]
	return v
}

func (r *spReader) varint() int64 {
	v, n := binary.Varint(r.p)
	if n <= 0 {
		r.fail("bad varint")
		r.p = nil
		return 0
	}
	r.p = r.p[n:]
	return v
}

func (r *spReader) bytes(n uint64) []byte {
	if uint64(len(r.p)) < n {
		r.fail("truncated: want %d bytes, have %d", n, len(r.p))
		r.p = nil
		return nil
	}
	b := r.p[:n]
	r.p = r.p[n:]
	return b
}

func (r *spReader) byte() byte {
	b := r.bytes(1)
	if b == nil {
		return 0
	}
	return b[0]
}

func (r *spReader) str() string { return string(r.bytes(r.uvarint())) }

func (r *spReader) id() spCodecID { return spCodecID{Name: r.str(), Version: r.uvarint()} }

// decodeSavepointFile reads a keyed-state file by its description in
// docs/design.md §10, checking both checksums.
func decodeSavepointFile(data []byte) (*spFile, error) {
	r := &spReader{p: data}
	if string(r.bytes(4)) != "SLKG" {
		return nil, errors.New("bad magic")
	}
	if v := r.byte(); v != 2 {
		return nil, fmt.Errorf("version %d, want 2", v)
	}
	f := &spFile{Groups: map[int]spGroup{}}
	f.MaxParallelism = int(r.uvarint())
	f.Start, f.End = int(r.varint()), int(r.varint())
	f.KeyCodec = r.id()
	n := r.uvarint()
	for range n {
		si := spStateInfo{Name: r.str(), Kind: r.byte(), Flags: r.byte()}
		for range r.uvarint() {
			si.Codecs = append(si.Codecs, r.id())
		}
		f.States = append(f.States, si)
	}
	headLen := len(data) - len(r.p)
	sum := binary.LittleEndian.Uint32(r.bytes(4))
	if r.err == nil && sum != crc32.Checksum(data[:headLen], crcTable) {
		return nil, errors.New("header checksum mismatch")
	}
	for len(r.p) > 0 && r.err == nil {
		start := r.p
		kg := int(r.uvarint())
		payload := r.bytes(r.uvarint())
		covered := start[:len(start)-len(r.p)]
		sum := binary.LittleEndian.Uint32(r.bytes(4))
		if r.err == nil && sum != crc32.Checksum(covered, crcTable) {
			return nil, fmt.Errorf("key group %d: checksum mismatch", kg)
		}
		if kg < f.Start || kg > f.End {
			return nil, fmt.Errorf("key group %d outside %d..%d", kg, f.Start, f.End)
		}
		g := spGroup{States: map[string][]byte{}}
		pr := &spReader{p: payload}
		for len(pr.p) > 0 && pr.err == nil {
			switch tag := pr.byte(); tag {
			case 1:
				name := pr.str()
				pr.byte() // kind, as in the state table
				pr.byte() // flags
				g.States[name] = pr.bytes(pr.uvarint())
			case 2:
				g.Timers = pr.bytes(pr.uvarint())
			case 3:
				g.EventTimers = pr.bytes(pr.uvarint())
			default:
				return nil, fmt.Errorf("key group %d: unknown block tag %d", kg, tag)
			}
		}
		if pr.err != nil {
			return nil, fmt.Errorf("key group %d: %w", kg, pr.err)
		}
		f.Groups[kg] = g
	}
	if r.err != nil {
		return nil, r.err
	}
	return f, nil
}

// decodeEntries splits a body with the user's codecs: fn gets each key and
// the rest of the entry decoded by kind.
func decodeValues[V any](t *testing.T, body []byte, vc codec.Codec[V]) map[string]V {
	t.Helper()
	out := map[string]V{}
	for len(body) > 0 {
		k, n, err := codec.String.Decode(body)
		if err != nil {
			t.Fatal(err)
		}
		body = body[n:]
		v, n, err := vc.Decode(body)
		if err != nil {
			t.Fatal(err)
		}
		body = body[n:]
		out[k] = v
	}
	return out
}

func decodeTimers(t *testing.T, body []byte) map[string][]int64 {
	t.Helper()
	out := map[string][]int64{}
	r := &spReader{}
	for len(body) > 0 {
		k, n, err := codec.String.Decode(body)
		if err != nil {
			t.Fatal(err)
		}
		r.p = body[n:]
		ts := r.varint()
		body = r.p
		out[k] = append(out[k], ts)
	}
	return out
}

// TestSavepointFormatRoundTrip writes value, list and map state and both
// kinds of timers of many keys with the heap backend, decodes the file with
// the independent decoder above, and checks every entry, the state table
// with its codec identities, the key group of every key, and the offsets.
func TestSavepointFormatRoundTrip(t *testing.T) {
	const maxP = 16
	r := checkpoint.KeyGroupRange{Start: 4, End: 11}
	be := heap.NewHeapBackend(codec.String, maxP, r, nil)
	count, err := heap.Value(be, "count", codec.Int64)
	if err != nil {
		t.Fatal(err)
	}
	seen, err := heap.List(be, "seen", codec.String)
	if err != nil {
		t.Fatal(err)
	}
	attrs, err := heap.Map(be, "attrs", codec.String, codec.Int64)
	if err != nil {
		t.Fatal(err)
	}
	wantCount := map[string]int64{}
	wantList := map[string][]string{}
	wantMap := map[string]map[string]int64{}
	wantTimers := map[string][]int64{}
	wantETimers := map[string][]int64{}
	for i := range 3000 {
		k := fmt.Sprintf("key-%d", i)
		kg := keygroup.Of(codec.String.Hash(k), maxP)
		if kg < r.Start || kg > r.End {
			continue
		}
		if err := be.SetCurrentKey(k); err != nil {
			t.Fatal(err)
		}
		count.Update(int64(i))
		wantCount[k] = int64(i)
		if i%3 == 0 {
			seen.Add("a" + k)
			seen.Add("b" + k)
			wantList[k] = []string{"a" + k, "b" + k}
		}
		if i%5 == 0 {
			attrs.Put("x", int64(i*2))
			wantMap[k] = map[string]int64{"x": int64(i * 2)}
		}
		if i%7 == 0 {
			ts := time.Unix(0, int64(i)*1000)
			be.RegisterTimer(ts)
			wantTimers[k] = []int64{ts.UnixNano()}
			be.RegisterEventTimer(int64(i) * 10)
			wantETimers[k] = []int64{int64(i) * 10}
		}
	}
	sn := be.Snapshot(1)
	defer sn.Release()
	var buf bytes.Buffer
	offsets, err := sn.WriteKeyGroups(&buf)
	if err != nil {
		t.Fatal(err)
	}
	f, err := decodeSavepointFile(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if f.MaxParallelism != maxP || f.Start != r.Start || f.End != r.End || f.KeyCodec != (spCodecID{"string", 1}) {
		t.Fatalf("header %+v", f)
	}
	wantInfos := []spStateInfo{
		{Name: "attrs", Kind: 3, Codecs: []spCodecID{{"string", 1}, {"zigzag-varint", 1}}},
		{Name: "count", Kind: 1, Codecs: []spCodecID{{"zigzag-varint", 1}}},
		{Name: "seen", Kind: 2, Codecs: []spCodecID{{"string", 1}}},
	}
	if fmt.Sprint(f.States) != fmt.Sprint(wantInfos) {
		t.Fatalf("state table %+v, want %+v", f.States, wantInfos)
	}
	if len(offsets) != r.Len() {
		t.Fatalf("%d offsets for %d key groups", len(offsets), r.Len())
	}
	for i, off := range offsets {
		kg, _ := binary.Uvarint(buf.Bytes()[off:])
		if int(kg) != r.Start+i {
			t.Fatalf("offset %d points at key group %d, want %d", i, kg, r.Start+i)
		}
	}
	gotCount := map[string]int64{}
	gotList := map[string][]string{}
	gotMap := map[string]map[string]int64{}
	gotTimers := map[string][]int64{}
	gotETimers := map[string][]int64{}
	for kg, g := range f.Groups {
		check := func(k string) {
			if got := keygroup.Of(codec.String.Hash(k), maxP); got != kg {
				t.Fatalf("key %q in section of key group %d, belongs to %d", k, kg, got)
			}
		}
		for k, v := range decodeValues(t, g.States["count"], codec.Int64) {
			check(k)
			gotCount[k] = v
		}
		lists := decodeListBody(t, g.States["seen"])
		for k, v := range lists {
			check(k)
			gotList[k] = v
		}
		for k, v := range decodeMapBody(t, g.States["attrs"]) {
			check(k)
			gotMap[k] = v
		}
		for k, v := range decodeTimers(t, g.Timers) {
			check(k)
			gotTimers[k] = append(gotTimers[k], v...)
		}
		for k, v := range decodeTimers(t, g.EventTimers) {
			check(k)
			gotETimers[k] = append(gotETimers[k], v...)
		}
	}
	if !maps.Equal(gotCount, wantCount) || len(wantCount) == 0 {
		t.Fatalf("value state: %d entries decoded, want %d", len(gotCount), len(wantCount))
	}
	if !maps.EqualFunc(gotList, wantList, slices.Equal) {
		t.Fatalf("list state differs: %d vs %d keys", len(gotList), len(wantList))
	}
	if !maps.EqualFunc(gotMap, wantMap, maps.Equal) {
		t.Fatalf("map state differs: %d vs %d keys", len(gotMap), len(wantMap))
	}
	if !maps.EqualFunc(gotTimers, wantTimers, slices.Equal) || !maps.EqualFunc(gotETimers, wantETimers, slices.Equal) {
		t.Fatalf("timers differ: %d/%d processing, %d/%d event time", len(gotTimers), len(wantTimers), len(gotETimers), len(wantETimers))
	}
}

func decodeListBody(t *testing.T, body []byte) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	r := &spReader{}
	for len(body) > 0 {
		k, n, err := codec.String.Decode(body)
		if err != nil {
			t.Fatal(err)
		}
		r.p = body[n:]
		cnt := r.uvarint()
		body = r.p
		for range cnt {
			v, n, err := codec.String.Decode(body)
			if err != nil {
				t.Fatal(err)
			}
			body = body[n:]
			out[k] = append(out[k], v)
		}
	}
	return out
}

func decodeMapBody(t *testing.T, body []byte) map[string]map[string]int64 {
	t.Helper()
	out := map[string]map[string]int64{}
	r := &spReader{}
	for len(body) > 0 {
		k, n, err := codec.String.Decode(body)
		if err != nil {
			t.Fatal(err)
		}
		r.p = body[n:]
		cnt := r.uvarint()
		body = r.p
		m := map[string]int64{}
		for range cnt {
			uk, n, err := codec.String.Decode(body)
			if err != nil {
				t.Fatal(err)
			}
			body = body[n:]
			uv, n, err := codec.Int64.Decode(body)
			if err != nil {
				t.Fatal(err)
			}
			body = body[n:]
			m[uk] = uv
		}
		out[k] = m
	}
	return out
}

// TestSavepointFormatGolden pins the bytes of a small file: one key with a
// value and an event-time timer. A change to them is a change of the
// savepoint format, which needs a version bump and a reader for the old
// one (docs/design.md §10), not a silent edit of this golden.
func TestSavepointFormatGolden(t *testing.T) {
	be := heap.NewHeapBackend(codec.String, 4, checkpoint.KeyGroupRange{Start: 0, End: 3}, nil)
	v, err := heap.Value(be, "count", codec.Int64)
	if err != nil {
		t.Fatal(err)
	}
	if err := be.SetCurrentKey("k"); err != nil {
		t.Fatal(err)
	}
	v.Update(7)
	be.RegisterEventTimer(1000)
	sn := be.Snapshot(1)
	defer sn.Release()
	var buf bytes.Buffer
	if _, err := sn.WriteKeyGroups(&buf); err != nil {
		t.Fatal(err)
	}
	got := hex.EncodeToString(buf.Bytes())
	if got != savepointGolden {
		t.Fatalf("keyed-state file bytes changed:\n got %s\nwant %s", got, savepointGolden)
	}
	// And the golden reads with the reference decoder.
	data, _ := hex.DecodeString(savepointGolden)
	f, err := decodeSavepointFile(data)
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, g := range f.Groups {
		if b := g.States["count"]; len(b) > 0 {
			if vals := decodeValues(t, b, codec.Int64); vals["k"] != 7 {
				t.Fatalf("golden value %v", vals)
			}
			if ts := decodeTimers(t, g.EventTimers); !slices.Equal(ts["k"], []int64{1000}) {
				t.Fatalf("golden timers %v", ts)
			}
			found = true
		}
	}
	if !found {
		t.Fatal("golden has no entry")
	}
}

const savepointGolden = "534c4b470204000606737472696e67010105636f756e740100010d7a69677a61672d766172696e7401c0934c680000d27761f101130105636f756e74010003016b0e0304016bd00fc7f036c302003c4724d603004bdf86c5"
