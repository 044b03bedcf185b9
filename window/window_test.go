package window

import (
	"bytes"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// ms is a millisecond in the nanosecond timestamps windows use.
const ms = int64(time.Millisecond)

// TestAssign checks assignment in real units against hand-computed windows.
func TestAssign(t *testing.T) {
	t.Parallel()
	// 2026-12-01T10:00:07.5Z.
	ts := time.Date(2026, 12, 1, 10, 0, 7, 500_000_000, time.UTC).UnixNano()
	at := func(h, m, s int) int64 { return time.Date(2026, 12, 1, h, m, s, 0, time.UTC).UnixNano() }
	tests := []struct {
		name string
		a    Assigner
		ts   int64
		want []Window
	}{
		{"tumbling 1m", Tumbling(time.Minute, 0), ts, []Window{{at(10, 0, 0), at(10, 1, 0)}}},
		{"tumbling 1h offset 15m", Tumbling(time.Hour, 15*time.Minute), ts, []Window{{at(9, 15, 0), at(10, 15, 0)}}},
		{"tumbling 1d offset -8h", Tumbling(24*time.Hour, -8*time.Hour), ts, []Window{{at(-8+24, 0, 0) - 24*int64(time.Hour), at(16, 0, 0)}}},
		{"sliding 10s/5s", Sliding(10*time.Second, 5*time.Second, 0), ts, []Window{
			{at(10, 0, 5), at(10, 0, 15)}, {at(10, 0, 0), at(10, 0, 10)},
		}},
		{"sliding 1m/30s at a boundary", Sliding(time.Minute, 30*time.Second, 0), at(10, 0, 30), []Window{
			{at(10, 0, 30), at(10, 1, 30)}, {at(10, 0, 0), at(10, 1, 0)},
		}},
		{"session 30s", Session(30 * time.Second), ts, []Window{{ts, ts + 30*int64(time.Second)}}},
		{"global", Global(), ts, []Window{GlobalWindow}},
		{"tumbling near max", Tumbling(10, 0), math.MaxInt64, []Window{{math.MaxInt64 - 7, math.MaxInt64}}},
		// MinInt64 mod 10 is 2: the true window [MinInt64-2, MinInt64+8) is
		// clamped, its end kept.
		{"tumbling at min", Tumbling(10, 0), math.MinInt64, []Window{{math.MinInt64, math.MinInt64 + 8}}},
		// (MinInt64+2) mod 5 is 4: windows from MinInt64-2 and MinInt64-7.
		{"sliding at min", Sliding(10, 5, 0), math.MinInt64 + 2, []Window{{math.MinInt64, math.MinInt64 + 8}, {math.MinInt64, math.MinInt64 + 3}}},
		// MinInt64-3 overflows: (MinInt64 mod 10) - 3 = -1, mod 10 = 9.
		{"tumbling offset at min", Tumbling(10, 3), math.MinInt64, []Window{{math.MinInt64, math.MinInt64 + 1}}},
		{"sliding near max", Sliding(10, 5, 0), math.MaxInt64, []Window{{math.MaxInt64 - 2, math.MaxInt64}, {math.MaxInt64 - 7, math.MaxInt64}}},
		{"invalid assigns nothing", Tumbling(0, 0), ts, nil},
	}
	for _, tt := range tests {
		if got := tt.a.Assign(tt.ts, nil); !slices.Equal(got, tt.want) {
			t.Errorf("%s: Assign(%d) = %v, want %v", tt.name, tt.ts, got, tt.want)
		}
	}
	if err := (Assigner{}).Validate(); err == nil {
		t.Error("zero Assigner validates")
	}
	if err := (Trigger{}).Validate(); err == nil {
		t.Error("zero Trigger validates")
	}
}

// TestAssignProperties checks tumbling and sliding assignment on random
// timestamps: every window contains the record, starts are aligned to the
// slide, and no window containing it is missing.
func TestAssignProperties(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	var ws []Window
	for range 10000 {
		slide := 1 + r.Int64N(100)
		size := 1 + r.Int64N(300)
		offset := r.Int64N(2*slide-1) - (slide - 1)
		ts := r.Int64N(1_000_000) - 500_000
		a := Sliding(time.Duration(size), time.Duration(slide), time.Duration(offset))
		if r.IntN(2) == 0 {
			size = slide
			a = Tumbling(time.Duration(size), time.Duration(offset))
		}
		if err := a.Validate(); err != nil {
			t.Fatal(err)
		}
		ws = a.Assign(ts, ws[:0])
		// Brute force: every aligned start s with s <= ts < s+size.
		var want []Window
		for s := StartWithOffset(ts, offset, slide); s > ts-size; s -= slide {
			want = append(want, Window{s, s + size})
		}
		if !slices.Equal(ws, want) {
			t.Fatalf("size %d slide %d offset %d ts %d: got %v want %v", size, slide, offset, ts, ws, want)
		}
		for _, w := range ws {
			if ts < w.Start || ts > w.MaxTimestamp() || ((w.Start-offset)%slide+slide)%slide != 0 {
				t.Fatalf("size %d slide %d offset %d ts %d: window %v", size, slide, offset, ts, w)
			}
		}
		if a.kind == tumbling && len(ws) != 1 {
			t.Fatalf("tumbling gave %d windows", len(ws))
		}
	}
}

// TestAssignAllocs checks that assigning into a reused slice does not
// allocate.
func TestAssignAllocs(t *testing.T) {
	for _, a := range []Assigner{Tumbling(10*time.Second, 0), Sliding(10*time.Second, time.Second, 0), Session(time.Second)} {
		buf := make([]Window, 0, 16)
		ts := int64(0)
		if n := testing.AllocsPerRun(1000, func() {
			ts += ms
			buf = a.Assign(ts, buf[:0])
		}); n != 0 {
			t.Errorf("%v: %v allocations per Assign", a.kind, n)
		}
	}
}

// sessionModel merges all windows added so far, naively.
func sessionModel(ws []Window) []Window {
	ws = slices.Clone(ws)
	slices.SortFunc(ws, func(a, b Window) int { return int(a.Start - b.Start) })
	var out []Window
	for _, w := range ws {
		if n := len(out); n > 0 && out[n-1].Intersects(w) {
			out[n-1] = out[n-1].Cover(w)
			continue
		}
		out = append(out, w)
	}
	return out
}

// TestMergingSetModel drives a MergingSet as the window operator would
// (moving contents between state windows as merges say, retiring windows,
// snapshotting and restoring at random points) and checks after every step
// that its windows are the naive merge of the records' session windows and
// that every window's contents (under its state window) are exactly its
// records.
func TestMergingSetModel(t *testing.T) {
	t.Parallel()
	for seed := range uint64(200) {
		r := rand.New(rand.NewPCG(seed, 7))
		gap := 1 + r.Int64N(20)
		a := Session(time.Duration(gap))
		set := &MergingSet{}
		var added []Window               // windows of live records
		contents := map[Window][]int64{} // state window -> record timestamps
		var ws []Window
		for step := range 200 {
			switch op := r.IntN(20); {
			case op == 0 && set.Len() > 0: // retire a window (fired and purged)
				all := set.Windows(nil)
				w := all[r.IntN(len(all))]
				st, err := set.Remove(w)
				if err != nil {
					t.Fatal(err)
				}
				delete(contents, st)
				added = slices.DeleteFunc(added, func(x Window) bool { return x.Start >= w.Start && x.End <= w.End })
			case op == 1: // checkpoint and restore
				b, err := set.MarshalBinary()
				if err != nil {
					t.Fatal(err)
				}
				set = &MergingSet{}
				if err := set.UnmarshalBinary(b); err != nil {
					t.Fatalf("seed %d step %d: %v", seed, step, err)
				}
			default:
				ts := r.Int64N(500)
				ws = a.Assign(ts, ws[:0])
				actual, m, merged := set.Add(ws[0])
				if merged {
					if m.Result != actual {
						t.Fatalf("merge result %v, actual %v", m.Result, actual)
					}
					for _, sw := range m.MergedStateWindows {
						contents[m.StateWindow] = append(contents[m.StateWindow], contents[sw]...)
						delete(contents, sw)
					}
				}
				st, ok := set.StateWindow(actual)
				if !ok {
					t.Fatalf("no state window for %v", actual)
				}
				contents[st] = append(contents[st], ts)
				added = append(added, ws[0])
			}
			want := sessionModel(added)
			got := set.Windows(nil)
			if !slices.Equal(got, want) {
				t.Fatalf("seed %d step %d: windows %v, want %v", seed, step, got, want)
			}
			if len(contents) != len(got) {
				t.Fatalf("seed %d step %d: %d state windows hold contents, %d windows", seed, step, len(contents), len(got))
			}
			for _, w := range got {
				st, _ := set.StateWindow(w)
				var want []int64
				for _, x := range added {
					if x.Start >= w.Start && x.End <= w.End {
						want = append(want, x.Start)
					}
				}
				have := slices.Clone(contents[st])
				slices.Sort(have)
				slices.Sort(want)
				if !slices.Equal(have, want) {
					t.Fatalf("seed %d step %d: window %v (state %v) holds %v, want %v", seed, step, w, st, have, want)
				}
			}
		}
	}
}

// TestMergingSetUnmarshalErrors checks that corrupt encodings are refused
// with an error, never a panic or a malformed set.
func TestMergingSetUnmarshalErrors(t *testing.T) {
	t.Parallel()
	good := &MergingSet{}
	good.Add(Window{0, 10})
	good.Add(Window{20, 30})
	b, _ := good.MarshalBinary()
	enc := func(vs ...int64) []byte {
		out := []byte{mergingSetVersion, byte(len(vs) / 4)}
		for _, v := range vs {
			out = appendVarint(out, v)
		}
		return out
	}
	tests := map[string][]byte{
		"empty":        nil,
		"version":      append([]byte{2}, b[1:]...),
		"truncated":    b[:len(b)-1],
		"trailing":     append(slices.Clone(b), 0),
		"bad count":    {mergingSetVersion, 0xff},
		"huge count":   {mergingSetVersion, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"empty window": enc(5, 5, 5, 6),
		"empty state":  enc(5, 6, 6, 6),
		"overlapping":  enc(0, 10, 0, 10, 5, 15, 5, 15),
		"touching":     enc(0, 10, 0, 10, 10, 15, 10, 15),
		"unsorted":     enc(20, 30, 20, 30, 0, 10, 0, 10),
	}
	for name, in := range tests {
		s := &MergingSet{}
		s.Add(Window{100, 110})
		if err := s.UnmarshalBinary(in); err == nil {
			t.Errorf("%s: no error", name)
		} else if got := s.Windows(nil); !slices.Equal(got, []Window{{100, 110}}) {
			t.Errorf("%s: failed decode changed the set to %v", name, got)
		}
	}
	s := &MergingSet{}
	if err := s.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	again, _ := s.MarshalBinary()
	if !bytes.Equal(again, b) {
		t.Errorf("round trip changed the encoding: %x, want %x", again, b)
	}
}

func appendVarint(b []byte, v int64) []byte {
	u := uint64(v) << 1
	if v < 0 {
		u = ^u
	}
	for u >= 0x80 {
		b = append(b, byte(u)|0x80)
		u >>= 7
	}
	return append(b, byte(u))
}

// TestStateEncoding round-trips trigger states and refuses corrupt ones.
func TestStateEncoding(t *testing.T) {
	t.Parallel()
	for _, s := range []State{{}, {Count: 7}, {Count: -1, NextFire: math.MinInt64, HasNext: true}, {NextFire: 0, HasNext: true}} {
		b, err := s.AppendBinary(nil)
		if err != nil {
			t.Fatal(err)
		}
		var got State
		if err := got.UnmarshalBinary(b); err != nil || got != s {
			t.Errorf("round trip of %+v: %+v, %v", s, got, err)
		}
		for i := range len(b) {
			if err := got.UnmarshalBinary(b[:i]); err == nil {
				t.Errorf("%+v truncated to %d bytes decodes", s, i)
			}
		}
		if err := got.UnmarshalBinary(append(b, 0)); err == nil {
			t.Errorf("%+v with a trailing byte decodes", s)
		}
	}
	if err := new(State).UnmarshalBinary([]byte{0, 2}); err == nil {
		t.Error("unknown flag decodes")
	}
}

// TestTriggerAllocs checks that trigger decisions do not allocate.
func TestTriggerAllocs(t *testing.T) {
	tr := ContinuousEventTimeTrigger(time.Second)
	w := Window{0, int64(time.Minute)}
	var st State
	ts := int64(0)
	if n := testing.AllocsPerRun(1000, func() {
		ts++
		r, timers := tr.OnElement(ts, w, Now{Watermark: math.MinInt64}, &st)
		if r != Continue || timers.Len() == 0 {
			t.Fatal("unexpected decision")
		}
	}); n != 0 {
		t.Errorf("%v allocations per OnElement", n)
	}
}
