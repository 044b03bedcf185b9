package heap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/state"
	"github.com/sluicehq/sluice/window"
)

// wk is the pair key of the tests, encoded as the window operator's:
// the key, then the window's bounds; hashed by the key alone.
type wk struct {
	k string
	w window.Window
}

type wkCodec struct{}

func appendWin(dst []byte, w window.Window) []byte {
	return binary.AppendVarint(binary.AppendVarint(dst, w.Start), w.End)
}

func (wkCodec) Append(dst []byte, k wk) []byte { return appendWin(codec.String.Append(dst, k.k), k.w) }
func (wkCodec) Hash(k wk) uint64               { return codec.String.Hash(k.k) }
func (wkCodec) CodecID() codec.ID              { return codec.ID{Name: "test-window-key", Version: 1} }

func (wkCodec) Decode(src []byte) (wk, int, error) {
	k, n, err := codec.String.Decode(src)
	if err != nil {
		return wk{}, 0, err
	}
	s, a := binary.Varint(src[n:])
	e, b := binary.Varint(src[n+max(a, 0):])
	if a <= 0 || b <= 0 {
		return wk{}, 0, codec.ErrTruncated
	}
	return wk{k: k, w: window.Window{Start: s, End: e}}, n + a + b, nil
}

func newWM(t *testing.T, r checkpoint.KeyGroupRange, slide int64, files ...RestoreFile) (*HeapBackend[wk], *WindowMajor[wk, string, int64]) {
	t.Helper()
	b := NewHeapBackend[wk](wkCodec{}, 128, r, nil)
	if err := b.Restore(files); err != nil {
		t.Fatal(err)
	}
	s, err := NewWindowMajor(b, "window-acc", codec.Int64, codec.String.Hash,
		func(k string, w window.Window) wk { return wk{k, w} }, func(p wk) (string, window.Window) { return p.k, p.w },
		PairEncoding[string]{AppendKey: codec.String.Append, AppendWindow: appendWin}, slide, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return b, s
}

func win(i int64) window.Window {
	return window.Window{Start: i * int64(10*time.Second), End: (i + 1) * int64(10*time.Second)}
}

// contents returns every (key, window) → value of s.
func contents(s *WindowMajor[wk, string, int64]) map[wk]int64 {
	out := map[wk]int64{}
	for sw, t := range s.panes {
		for _, m := range t.maps {
			for k, v := range m.all() {
				out[wk{k, sw}] = v
			}
		}
	}
	return out
}

// TestWindowMajorSnapshot: a snapshot holds the state as it was when
// taken while the task goes on writing (the same maps, new windows,
// dropped windows) during the asynchronous write, which the race detector
// checks; it restores into window-major state split across two subtasks
// (rescale), with each window's fired mark, and into the generic layout:
// a value per (key, window) and per key the window's end timer unless it
// fired and its cleanup timer.
func TestWindowMajorSnapshot(t *testing.T) {
	_, s := newWM(t, full128, 0)
	keys := universe(2000)
	for i, k := range keys {
		for w := range int64(3) {
			gi, err := s.Group(k)
			if err != nil {
				t.Fatal(err)
			}
			if !s.HasPane(win(w)) {
				s.AddWindow(win(w), false)
			}
			s.Put(win(w), gi, s.KeyHash(k), k, int64(i)+100*w)
		}
	}
	// Window 0 fires (its end passed), window 1 not yet.
	if w, fire, clean, ok := s.PopDue(win(0).MaxTimestamp()); !ok || fire == nil || clean || w != win(0) {
		t.Fatalf("PopDue = %v %v %v %v", w, fire, clean, ok)
	}
	want := contents(s)
	snap := s.b.Snapshot(1)
	// The snapshot is released only after the task's writes below, so
	// every written key group is still held by it and must be cloned,
	// however fast the writer is.
	done := asyncWrite(snap, false)
	// The task goes on while the writer runs.
	for i, k := range keys {
		gi, _ := s.Group(k)
		s.Put(win(0), gi, s.KeyHash(k), k, -1)
		s.Put(win(3), gi, s.KeyHash(k), k, int64(i))
	}
	s.AddWindow(win(3), false)
	s.DropPane(win(2))
	f := (<-done).file(t)
	snap.Release()
	if c := s.b.CopyOnWriteClones(); c == 0 {
		t.Error("no key-group map was cloned: the writes went to maps the snapshot held")
	}

	// Rescale into two halves.
	got := map[wk]int64{}
	fired := map[window.Window]bool{}
	for _, r := range []checkpoint.KeyGroupRange{{Start: 0, End: 63}, {Start: 64, End: 127}} {
		_, s2 := newWM(t, r, 0, f)
		for k, v := range contents(s2) {
			got[k] = v
		}
		for w, wt := range s2.wins {
			// Every key group holds keys of every window here.
			for _, f := range wt.fired {
				if f != wt.fired[0] {
					t.Fatalf("window %v fired in some key groups only: %v", w, wt.fired)
				}
			}
			fired[w] = wt.fired[0]
		}
	}
	if len(got) != len(want) {
		t.Fatalf("restored %d entries, want %d", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("restored %v = %d, want %d", k, got[k], v)
		}
	}
	if len(fired) != 3 || !fired[win(0)] || fired[win(1)] || fired[win(2)] {
		t.Fatalf("restored windows (fired): %v", fired)
	}

	// The generic layout: values and timers.
	b := NewHeapBackend[wk](wkCodec{}, 128, full128, nil)
	if err := b.Restore([]RestoreFile{f}); err != nil {
		t.Fatal(err)
	}
	v, err := Value(b, "window-acc", codec.Int64)
	if err != nil {
		t.Fatal(err)
	}
	for k, x := range want {
		if err := b.SetCurrentKey(k); err != nil {
			t.Fatal(err)
		}
		if y, ok := v.Value(); !ok || y != x {
			t.Fatalf("generic %v = %d %v, want %d", k, y, ok, x)
		}
	}
	timers := map[string]int{}
	for {
		k, at, ok := b.PopEventTimer(math.MaxInt64)
		if !ok {
			break
		}
		kind := "cleanup"
		if at == k.w.MaxTimestamp() {
			kind = "end"
		} else if at != k.w.MaxTimestamp()+int64(2*time.Second) {
			t.Fatalf("timer of %v at %d", k, at)
		}
		timers[fmt.Sprintf("%d %s", k.w.Start/int64(10*time.Second), kind)]++
	}
	n := len(keys)
	wantT := map[string]int{"0 cleanup": n, "1 end": n, "1 cleanup": n, "2 end": n, "2 cleanup": n}
	if fmt.Sprint(timers) != fmt.Sprint(wantT) {
		t.Fatalf("generic timers %v, want %v", timers, wantT)
	}
}

// TestWindowMajorRefusesForeignTimers: a restored event-time timer before
// its window's end (written by another trigger) is refused, not misread.
func TestWindowMajorRefusesForeignTimers(t *testing.T) {
	b := NewHeapBackend[wk](wkCodec{}, 128, full128, nil)
	v, err := Value(b, "window-acc", codec.Int64)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SetCurrentKey(wk{"a", win(1)}); err != nil {
		t.Fatal(err)
	}
	v.Update(1)
	b.RegisterEventTimer(win(1).Start + 5)
	snap := b.Snapshot(1)
	f := writeSnap(t, snap)
	snap.Release()
	b2 := NewHeapBackend[wk](wkCodec{}, 128, full128, nil)
	if err := b2.Restore([]RestoreFile{f}); err != nil {
		t.Fatal(err)
	}
	_, err = NewWindowMajor(b2, "window-acc", codec.Int64, codec.String.Hash,
		func(k string, w window.Window) wk { return wk{k, w} }, func(p wk) (string, window.Window) { return p.k, p.w },
		PairEncoding[string]{AppendKey: codec.String.Append, AppendWindow: appendWin}, 0, 0)
	if !errors.Is(err, state.ErrIncompatible) || !strings.Contains(err.Error(), "another trigger") {
		t.Fatalf("NewWindowMajor: %v, want an incompatibility naming the trigger", err)
	}
}

// TestWindowMajorFiredPerKeyGroup: restoring the files of two subtasks of
// which only one had fired a window (their watermarks differed) fires the
// window again for the other's key groups only.
func TestWindowMajorFiredPerKeyGroup(t *testing.T) {
	halves := []checkpoint.KeyGroupRange{{Start: 0, End: 63}, {Start: 64, End: 127}}
	var files []RestoreFile
	for h, r := range halves {
		_, s := newWM(t, r, 0)
		for _, k := range universe(2000) {
			gi, err := s.Group(k)
			if err != nil {
				continue // the other half's key
			}
			if !s.HasPane(win(1)) {
				s.AddWindow(win(1), false)
			}
			s.Put(win(1), gi, s.KeyHash(k), k, 1)
		}
		if h == 0 {
			if _, fire, _, ok := s.PopDue(win(1).MaxTimestamp()); !ok || fire == nil {
				t.Fatal("window did not fire")
			}
		}
		snap := s.b.Snapshot(1)
		files = append(files, writeSnap(t, snap))
		snap.Release()
	}
	_, s := newWM(t, full128, 0, files...)
	w, fire, clean, ok := s.PopDue(win(1).MaxTimestamp())
	if !ok || w != win(1) || clean || len(fire) != 128 {
		t.Fatalf("PopDue = %v %v %v %v", w, fire, clean, ok)
	}
	for gi, f := range fire {
		if f != (gi >= 64) {
			t.Fatalf("key group %d fires: %v, want %v", gi, f, gi >= 64)
		}
	}
}
