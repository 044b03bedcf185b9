package heap

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/internal/runtime"
)

// Incremental checkpoints of the heap backend, by key group
// (docs/design.md §4). A checkpoint's keyed state is then several files,
// each serving some key groups of the subtask: a key group unchanged since
// the previous incremental write of this backend keeps its section in the
// file that holds it, and only the changed key groups are written, into one
// new shared file. Every file is a keyed-state file of the canonical format
// (same header); its handle's KeyGroupOffsets are -1 for the key groups it
// does not serve in that checkpoint, so a restore, at any parallelism,
// reads each key group from exactly one file.
//
// Change tracking costs nothing per record: the first write to a key group
// after a snapshot goes through table.thaw anyway (copy-on-write), which
// sets cow.changed; the next Snapshot turns it into cow.ver, the seq of the
// oldest snapshot holding the group's current contents. A section written
// by the snapshot with seq b is reused by a later snapshot while ver <= b.
// Reuse also needs the same file header (state table, codecs): a state
// registered, migrated or dropped since rewrites every key group. Window
// state, whose panes are dropped whole, is not tracked: a backend holding
// it writes every key group.
//
// Writes are chained in snapshot order: WriteIncremental waits until the
// previous snapshot of the backend is written or released, and reuses only
// files of the latest successful incremental write. So every file a
// checkpoint refers to is either new or named by the previous successful
// write, which the retention rule of the store relies on (a shared file is
// deleted only when no complete checkpoint names it: store.SharedDir).
// Reused sections may hold TTL entries that expired since they were
// written; a restore drops those, as it drops any expired entry.

// incState is a backend's incremental-write chain, shared with its
// snapshots.
type incState struct {
	// last is the done channel of the backend's latest snapshot (task
	// goroutine only).
	last chan struct{}
	mu   sync.Mutex
	base *incBase // the latest successful incremental write
}

// incBase is what an incremental write stored.
type incBase struct {
	seq    int64
	header []byte
	// files are the handles it returned; group[gi] indexes the file
	// serving key group index gi.
	files []checkpoint.StateHandle
	group []int
}

// WriteIncremental writes the snapshot as an incremental checkpoint: the
// key groups changed since the previous incremental write of this backend
// into one new shared file created with w (none if nothing changed), and
// returns the handles of every file the checkpoint needs, reused ones
// with KeyGroupOffsets narrowed to the key groups they still serve. See
// WriteKeyGroups for errors; ctx ends the wait for the previous snapshot.
func (s *Snapshot) WriteIncremental(ctx context.Context, w runtime.SharedWriter) ([]checkpoint.StateHandle, error) {
	s.mu.Lock()
	switch {
	case s.released:
		s.mu.Unlock()
		return nil, ErrReleased
	case s.writing:
		s.mu.Unlock()
		return nil, fmt.Errorf("state: a write is already running for this snapshot")
	}
	s.writing = true
	s.mu.Unlock()
	defer s.endWrite()
	if s.prevDone != nil {
		select {
		case <-s.prevDone:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if s.abandoned.Load() {
		return nil, ErrReleased
	}
	s.inc.mu.Lock()
	base := s.inc.base
	s.inc.mu.Unlock()

	head := s.header()
	n := s.r.Len()
	if base != nil && (s.untracked || !bytes.Equal(base.header, head) || len(base.group) != n) {
		base = nil
	}
	reuse := func(gi int) bool { return base != nil && base.group[gi] >= 0 && s.vers[gi] <= base.seq }
	next := &incBase{seq: s.seq, header: head, group: make([]int, n)}
	// Reused files keep their order; each serves the groups reused from it.
	used := map[int]int{} // base file index → index in next.files
	for gi := range n {
		next.group[gi] = -1
		if !reuse(gi) {
			continue
		}
		bf := base.group[gi]
		fi, ok := used[bf]
		if !ok {
			fi = len(next.files)
			used[bf] = fi
			h := base.files[bf]
			h.KeyGroupOffsets = slices.Repeat([]int64{-1}, n)
			next.files = append(next.files, h)
		}
		next.files[fi].KeyGroupOffsets[gi] = base.files[bf].KeyGroupOffsets[gi]
		next.group[gi] = fi
	}
	if len(used) == 0 || slices.Contains(next.group, -1) {
		h, err := s.writeShared(w, reuse)
		if err != nil {
			return nil, err
		}
		for gi, off := range h.KeyGroupOffsets {
			if off >= 0 {
				next.group[gi] = len(next.files)
			}
		}
		next.files = append(next.files, h)
	}
	s.inc.mu.Lock()
	s.inc.base = next
	s.inc.mu.Unlock()
	out := slices.Clone(next.files)
	for i := range out {
		out[i].KeyGroupOffsets = slices.Clone(out[i].KeyGroupOffsets)
	}
	return out, nil
}

// writeShared writes the key groups not reused into a new shared file.
func (s *Snapshot) writeShared(w runtime.SharedWriter, skip func(gi int) bool) (checkpoint.StateHandle, error) {
	f, err := w.Create(fmt.Sprintf("chk-%d-%d.keyed", s.id, s.seq))
	if err != nil {
		return checkpoint.StateHandle{}, err
	}
	offsets, err := s.write(f, skip)
	if err != nil {
		_ = f.Abort()
		return checkpoint.StateHandle{}, err
	}
	h, err := f.Commit()
	if err != nil {
		return checkpoint.StateHandle{}, err
	}
	h.KeyGroupOffsets = offsets
	return h, nil
}
