package window

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// MergingSet is the set of merging (session) windows of one key, with
// Flink's MergingWindowSet semantics: every window maps to a "state
// window", the namespace under which its contents live in keyed state.
// When windows merge, the result keeps the state window of one of them, so
// only the contents of the others move, and the one that stays never
// does. The windows of a set never intersect each other.
//
// The engine keeps one MergingSet per key in keyed state (AppendBinary,
// UnmarshalBinary), so merges continue across a checkpoint and restore. A
// MergingSet is not safe for concurrent use.
type MergingSet struct {
	entries []entry // sorted by Start; pairwise not Intersecting
	merged  []Window
	states  []Window
}

type entry struct {
	w     Window
	state Window
}

// Merge describes the merge one Add caused. Its slices are reused by the
// next Add.
type Merge struct {
	// Result is the window the merge produced, the one Add returned.
	Result Window
	// Merged are the windows of the set that merged into Result (the new
	// window is not among them: it had no state). The engine folds their
	// trigger states into Result's and clears their timers and trigger
	// state.
	Merged []Window
	// StateWindow is the state window of Result: the state window of the
	// earliest merged window, whose contents stay where they are.
	StateWindow Window
	// MergedStateWindows are the state windows of the other merged
	// windows: the engine merges their contents into StateWindow and
	// clears them.
	MergedStateWindows []Window
}

// Add adds the window of a new record and merges it with every window of
// the set it intersects. It returns the window the record now belongs to,
// whose contents live under StateWindow(actual), and whether windows of
// the set merged (merge then says which). A new window that merges with
// nothing is its own state window; one inside an existing window merges
// nothing and returns it.
func (s *MergingSet) Add(w Window) (actual Window, merge Merge, merged bool) {
	// The first window ending at or after w.Start; since windows are
	// disjoint and sorted by Start they are sorted by End too.
	i, _ := slices.BinarySearchFunc(s.entries, w.Start, func(e entry, start int64) int {
		if e.w.End < start {
			return -1
		}
		return 1
	})
	j := i
	for j < len(s.entries) && s.entries[j].w.Intersects(w) {
		j++
	}
	switch {
	case i == j:
		s.entries = slices.Insert(s.entries, i, entry{w: w, state: w})
		return w, Merge{}, false
	case j == i+1 && s.entries[i].w.Cover(w) == s.entries[i].w:
		return s.entries[i].w, Merge{}, false
	}
	result := w
	s.merged, s.states = s.merged[:0], s.states[:0]
	for _, e := range s.entries[i:j] {
		result = result.Cover(e.w)
		s.merged = append(s.merged, e.w)
		s.states = append(s.states, e.state)
	}
	state := s.entries[i].state
	s.entries[i] = entry{w: result, state: state}
	s.entries = slices.Delete(s.entries, i+1, j)
	return result, Merge{Result: result, Merged: s.merged, StateWindow: state, MergedStateWindows: s.states[1:]}, true
}

// StateWindow returns the state window of w, a window of the set.
func (s *MergingSet) StateWindow(w Window) (Window, bool) {
	if i, ok := s.find(w); ok {
		return s.entries[i].state, true
	}
	return Window{}, false
}

// Remove drops w from the set (it fired and was purged, was cleaned up,
// or is late) and returns its state window, whose contents the engine
// clears.
func (s *MergingSet) Remove(w Window) (Window, error) {
	i, ok := s.find(w)
	if !ok {
		return Window{}, fmt.Errorf("window: remove of %v, not in the merging set", w)
	}
	state := s.entries[i].state
	s.entries = slices.Delete(s.entries, i, i+1)
	return state, nil
}

func (s *MergingSet) find(w Window) (int, bool) {
	i, ok := slices.BinarySearchFunc(s.entries, w.Start, func(e entry, start int64) int {
		switch {
		case e.w.Start < start:
			return -1
		case e.w.Start > start:
			return 1
		}
		return 0
	})
	return i, ok && s.entries[i].w == w
}

// Len returns the number of windows.
func (s *MergingSet) Len() int { return len(s.entries) }

// Windows appends the windows of the set, earliest first, to dst.
func (s *MergingSet) Windows(dst []Window) []Window {
	for _, e := range s.entries {
		dst = append(dst, e.w)
	}
	return dst
}

// mergingSetVersion is the first byte of the encoding, so that a later
// format can be told apart (docs/design.md §10).
const mergingSetVersion = 1

// AppendBinary appends the encoding of the set to dst: a version byte,
// the number of windows, then each window and its state window as four
// varints.
func (s *MergingSet) AppendBinary(dst []byte) ([]byte, error) {
	dst = append(dst, mergingSetVersion)
	dst = binary.AppendUvarint(dst, uint64(len(s.entries)))
	for _, e := range s.entries {
		dst = binary.AppendVarint(dst, e.w.Start)
		dst = binary.AppendVarint(dst, e.w.End)
		dst = binary.AppendVarint(dst, e.state.Start)
		dst = binary.AppendVarint(dst, e.state.End)
	}
	return dst, nil
}

// MarshalBinary returns the encoding of AppendBinary.
func (s *MergingSet) MarshalBinary() ([]byte, error) { return s.AppendBinary(nil) }

// UnmarshalBinary replaces the set with the decoding of b, checking that
// it is well formed (sorted, disjoint, non-empty windows).
func (s *MergingSet) UnmarshalBinary(b []byte) error {
	if len(b) == 0 {
		return errors.New("window: merging set encoding is empty")
	}
	if b[0] != mergingSetVersion {
		return fmt.Errorf("window: merging set encoding version %d unknown (want %d)", b[0], mergingSetVersion)
	}
	b = b[1:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) { // every entry takes at least four bytes
		return errors.New("window: merging set encoding has a bad window count")
	}
	b = b[k:]
	entries := make([]entry, 0, n)
	var v [4]int64
	for range n {
		for j := range v {
			x, k := binary.Varint(b)
			if k <= 0 {
				return errors.New("window: merging set encoding truncated")
			}
			v[j], b = x, b[k:]
		}
		e := entry{w: Window{Start: v[0], End: v[1]}, state: Window{Start: v[2], End: v[3]}}
		if e.w.Start >= e.w.End || e.state.Start >= e.state.End {
			return fmt.Errorf("window: merging set encoding holds empty window %v (state %v)", e.w, e.state)
		}
		if l := len(entries); l > 0 && entries[l-1].w.End >= e.w.Start {
			return fmt.Errorf("window: merging set encoding holds %v after %v: not sorted and disjoint", e.w, entries[l-1].w)
		}
		entries = append(entries, e)
	}
	if len(b) != 0 {
		return fmt.Errorf("window: merging set encoding has %d trailing bytes", len(b))
	}
	s.entries = entries
	return nil
}

// CopyFrom makes s a copy of o (nil: empty), reusing s's memory, so that
// an engine keeping sets in copy-on-write state can change a copy and
// leave the stored set, which a snapshot may hold, untouched.
func (s *MergingSet) CopyFrom(o *MergingSet) {
	s.entries = s.entries[:0]
	if o != nil {
		s.entries = append(s.entries, o.entries...)
	}
}
