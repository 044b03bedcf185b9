package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/sluicehq/sluice/checkpoint"
)

// writeShared writes a shared file of subtask 0 of "counter" in run "r1".
func writeShared(ctx context.Context, c *Checkpoints, name, content string) (checkpoint.StateHandle, error) {
	w, err := c.SharedWriter(ctx, SharedPrefix("counter", 0, "r1"), name)
	if err != nil {
		return checkpoint.StateHandle{}, err
	}
	defer w.Abort()
	if _, err := w.Write([]byte(content)); err != nil {
		return checkpoint.StateHandle{}, err
	}
	return w.Commit()
}

// incremental writes checkpoint id of "counter" (one subtask): the new
// shared files news (name → content), the reused handles old, and one
// private file, then its _metadata. It returns the handles it refers to.
func incremental(ctx context.Context, c *Checkpoints, id int64, news []string, old []checkpoint.StateHandle) ([]checkpoint.StateHandle, error) {
	hs := slices.Clone(old)
	for _, n := range news {
		h, err := writeShared(ctx, c, n, fmt.Sprintf("content of %s", n))
		if err != nil {
			return nil, err
		}
		hs = append(hs, h)
	}
	w, err := c.StateWriter(ctx, id, "counter-0.keyed")
	if err != nil {
		return nil, err
	}
	defer w.Abort()
	fmt.Fprintf(w, "private state of %d", id)
	h, err := w.Commit()
	if err != nil {
		return nil, err
	}
	hs = append(hs, h)
	m := &checkpoint.Metadata{CheckpointID: id, Kind: checkpoint.KindCheckpoint, JobName: "demo", MaxParallelism: 8,
		Operators: map[string]*checkpoint.OperatorState{"counter": {Parallelism: 1, Subtasks: []*checkpoint.SubtaskState{{
			KeyGroups: checkpoint.KeyGroupRange{Start: 0, End: 7}, Keyed: hs,
		}}}}}
	if err := c.WriteMetadata(ctx, m); err != nil {
		return nil, err
	}
	return hs, nil
}

func sharedOnly(hs []checkpoint.StateHandle) []checkpoint.StateHandle {
	var out []checkpoint.StateHandle
	for _, h := range hs {
		if h.Shared {
			out = append(out, h)
		}
	}
	return out
}

func sharedFiles(mem *memFS) []string {
	var out []string
	for _, f := range mem.Files(memRoot) {
		if strings.HasPrefix(f, SharedDir+"/") {
			out = append(out, f)
		}
	}
	return out
}

// A shared file lives while a complete checkpoint refers to it: Discard
// deletes only those no other complete checkpoint names.
func TestSharedReferenceCounting(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, mem, _ := newMemStore(t)
	h1, err := incremental(ctx, c, 1, []string{"a", "b"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s1 := sharedOnly(h1)
	h2, err := incremental(ctx, c, 2, []string{"c"}, s1[1:]) // reuses b
	if err != nil {
		t.Fatal(err)
	}
	if _, err := incremental(ctx, c, 3, []string{"d", "b1"}, sharedOnly(h2)[1:]); err != nil { // reuses c
		t.Fatal(err)
	}
	pre := SharedPrefix("counter", 0, "r1") + "/"
	want := func(names ...string) {
		t.Helper()
		var w []string
		for _, n := range names {
			w = append(w, pre+n)
		}
		if got := sharedFiles(mem); !slices.Equal(got, w) {
			t.Fatalf("shared files %v, want %v", got, w)
		}
	}
	want("a", "b", "b1", "c", "d")
	if err := c.Discard(ctx, 1); err != nil {
		t.Fatal(err)
	}
	want("b", "b1", "c", "d") // b is still chk-2's
	if err := c.Discard(ctx, 2); err != nil {
		t.Fatal(err)
	}
	want("b1", "c", "d")
	m, err := c.Latest(ctx, nil)
	if err != nil || m.CheckpointID != 3 {
		t.Fatalf("Latest = %v, %v; want checkpoint 3", m, err)
	}
	// Latest verifies the shared files too.
	mem.mu.Lock()
	mem.cur[memRoot+"/"+pre+"c"].data[0] ^= 1
	mem.mu.Unlock()
	if _, err := c.Latest(ctx, nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Latest with a corrupt shared file: %v, want ErrCorrupt", err)
	}
	if err := c.Discard(ctx, 3); err != nil {
		t.Fatal(err)
	}
	want()
	if got := mem.Files(memRoot); len(got) != 0 {
		t.Fatalf("files left after discarding everything: %v", got)
	}
}

// A savepoint never refers to the shared area: the store refuses to write
// one that does, and Copy of an incremental checkpoint copies its shared
// files into the savepoint, which restores after the checkpoint is gone.
func TestSharedCopyIsSelfContained(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, root := newOSStore(t)
	h1, err := incremental(ctx, c, 1, []string{"a", "b"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := incremental(ctx, c, 2, []string{"c"}, sharedOnly(h1)); err != nil {
		t.Fatal(err)
	}
	spRoot, err := NewFS(filepath.Join(t.TempDir(), "sp"))
	if err != nil {
		t.Fatal(err)
	}
	bad, _ := NewSavepoint(spRoot, 9)
	if err := bad.WriteMetadata(ctx, &checkpoint.Metadata{CheckpointID: 9, Kind: checkpoint.KindSavepoint,
		Operators: map[string]*checkpoint.OperatorState{"x": {Subtasks: []*checkpoint.SubtaskState{{Keyed: sharedOnly(h1)}}}}}); err == nil ||
		!strings.Contains(err.Error(), "self-contained") {
		t.Fatalf("savepoint metadata with a shared handle: %v, want refused", err)
	}
	m, err := c.ReadMetadata(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	mm := *m
	mm.Kind = checkpoint.KindSavepoint
	dst, _ := NewSavepoint(spRoot, 2)
	if err := Copy(ctx, dst, c.Snapshot(2), &mm); err != nil {
		t.Fatal(err)
	}
	if !m.Operators["counter"].Subtasks[0].Keyed[0].Shared {
		t.Fatal("Copy modified the source metadata")
	}
	// Delete the checkpoints and their shared files: the savepoint stands alone.
	for _, id := range []int64{1, 2} {
		if err := c.Discard(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.CleanIncomplete(ctx); err != nil { // empty directories go at the next start
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, SharedDir)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("shared area left after discarding every checkpoint: %v", err)
	}
	moved := filepath.Join(t.TempDir(), "moved")
	if err := os.Rename(dst.Location(), moved); err != nil {
		t.Fatal(err)
	}
	got, sn, err := LoadPath(ctx, moved)
	if err != nil {
		t.Fatal(err)
	}
	keyed := got.Operators["counter"].Subtasks[0].Keyed
	if len(keyed) != 4 {
		t.Fatalf("savepoint has %d keyed handles, want 4", len(keyed))
	}
	for _, h := range keyed {
		if h.Shared {
			t.Fatalf("savepoint handle %s still shared", h.Path)
		}
		data, err := sn.ReadState(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		if name := filepath.Base(h.Path); name != "counter-0.keyed" && string(data) != "content of "+name {
			t.Fatalf("%s holds %q", h.Path, data)
		}
	}
}

// A checkpoint opened by path (--from-checkpoint .../chk-2) finds its
// shared files in the root it lies in.
func TestSharedLoadPath(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, root := newOSStore(t)
	if _, err := incremental(ctx, c, 1, []string{"a"}, nil); err != nil {
		t.Fatal(err)
	}
	m, sn, err := LoadPath(ctx, filepath.Join(root, "chk-1"))
	if err != nil {
		t.Fatal(err)
	}
	h := sharedOnly(m.Operators["counter"].Subtasks[0].Keyed)[0]
	if data, err := sn.ReadState(ctx, h); err != nil || string(data) != "content of a" {
		t.Fatalf("ReadState = %q, %v", data, err)
	}
}

// errCrash is what every operation returns once the simulated process died.
var errCrash = errors.New("process died")

// Crash-safety of the shared area (docs/design.md §4): the job writes an
// incremental checkpoint, retention discards the two older ones, and the
// next start cleans up; the power is cut after each single filesystem
// operation of that sequence in turn. After the restart and its
// CleanIncomplete, every complete checkpoint verifies (no dangling
// reference) and every shared file is referred to (no orphan), and a
// checkpoint whose _metadata write returned is complete.
func TestSharedCrashAtEveryStep(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var reuse []checkpoint.StateHandle
	setup := func() (*Checkpoints, *memFS, *faultFS) {
		c, mem, ff := newMemStore(t)
		h1, err := incremental(ctx, c, 1, []string{"a", "b"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		h2, err := incremental(ctx, c, 2, []string{"c"}, sharedOnly(h1)[1:])
		if err != nil {
			t.Fatal(err)
		}
		reuse = sharedOnly(h2)
		return c, mem, ff
	}
	// The sequence: checkpoint 3 (new d, reuses b and c), then retention
	// discards 1 and 2 (b and c stay: chk-3 names them; a goes), then the
	// next start cleans up; checkpoint 4 is being written (e) and dies.
	run := func(c *Checkpoints) (done3 bool, err error) {
		if _, err := incremental(ctx, c, 3, []string{"d"}, reuse); err != nil {
			return false, err
		}
		for _, id := range []int64{1, 2} {
			if err := c.Discard(ctx, id); err != nil {
				return true, err
			}
		}
		if _, err := writeShared(ctx, c, "e", "half of 4"); err != nil {
			return true, err
		}
		return true, c.CleanIncomplete(ctx)
	}
	// Count the operations of a clean run.
	c, _, ff := setup()
	ops := 0
	ff.setHook(func(string, string) error { ops++; return nil })
	if _, err := run(c); err != nil {
		t.Fatal(err)
	}
	if ops < 40 {
		t.Fatalf("only %d operations counted", ops)
	}
	for k := 0; k <= ops; k++ {
		c, mem, ff := setup()
		n := 0
		ff.setHook(func(op, p string) error {
			if n++; n > k {
				return &fs.PathError{Op: op, Path: p, Err: syscall.EIO}
			}
			return nil
		})
		done3, _ := run(c)
		ff.setHook(nil)
		mem.Crash()
		c2 := NewCheckpoints(c.Storage())
		if err := c2.CleanIncomplete(ctx); err != nil {
			t.Fatalf("crash after %d operations: CleanIncomplete: %v", k, err)
		}
		ids, err := c2.Completed(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if done3 && !slices.Contains(ids, 3) {
			t.Fatalf("crash after %d operations: checkpoint 3 was complete, now %v", k, ids)
		}
		refs := map[string]bool{}
		for _, id := range ids {
			sn := c2.Snapshot(id)
			m, err := sn.ReadMetadata(ctx)
			if err == nil {
				err = sn.Verify(ctx, m)
			}
			if err != nil {
				t.Fatalf("crash after %d operations: complete checkpoint %d does not verify (dangling reference?): %v", k, id, err)
			}
			for p := range sharedRefs(m) {
				refs[p] = true
			}
		}
		for _, f := range mem.Files(memRoot) {
			if isTemp(f) {
				t.Fatalf("crash after %d operations: temporary file %s left", k, f)
			}
			if strings.HasPrefix(f, SharedDir+"/") && !refs[f] {
				t.Fatalf("crash after %d operations: orphan shared file %s (complete: %v)", k, f, ids)
			}
			if id, ok := parseCheckpointDir(f); ok && !slices.Contains(ids, id) {
				t.Fatalf("crash after %d operations: incomplete checkpoint file %s left", k, f)
			}
		}
	}
}

// An aborted checkpoint whose _metadata landed after all loses its
// directory, never its shared files: a later checkpoint may already reuse
// them. The next start's CleanIncomplete removes those nobody refers to.
func TestDiscardAbortedKeepsSharedFiles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, mem, _ := newMemStore(t)
	if _, err := incremental(ctx, c, 1, []string{"a"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.DiscardAborted(ctx, 1); err != nil {
		t.Fatal(err)
	}
	pre := SharedPrefix("counter", 0, "r1") + "/"
	if got := sharedFiles(mem); !slices.Equal(got, []string{pre + "a"}) {
		t.Fatalf("after DiscardAborted: shared files %v, want a kept", got)
	}
	if ids, _ := c.Completed(ctx); len(ids) != 0 {
		t.Fatalf("after DiscardAborted: complete %v", ids)
	}
	if err := c.CleanIncomplete(ctx); err != nil {
		t.Fatal(err)
	}
	if got := mem.Files(memRoot); len(got) != 0 {
		t.Fatalf("after CleanIncomplete: files %v", got)
	}
}

// `sluice checkpoints ls` shows the shared part of a checkpoint's size,
// and `inspect` marks shared files and the key groups each serves.
func TestSharedListAndDescribe(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, root := newOSStore(t)
	hs, err := incremental(ctx, c, 1, []string{"a"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sums, err := List(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	if len(sums) != 1 || sums[0].SharedSize != hs[0].Size || sums[0].Size != hs[0].Size+hs[1].Size || sums[0].Status != StatusComplete {
		t.Fatalf("List = %+v, want one complete checkpoint with shared size %d", sums, hs[0].Size)
	}
	var b strings.Builder
	if err := FormatList(&b, sums); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "shared)") {
		t.Fatalf("ls output does not show the shared size:\n%s", b.String())
	}
	m, _ := c.ReadMetadata(ctx, 1)
	m.Operators["counter"].Subtasks[0].Keyed[0].KeyGroupOffsets = []int64{10, -1, 20, -1, -1, -1, -1, -1}
	b.Reset()
	if err := Describe(&b, m); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"(1 shared,", "shared/counter-0-r1/a", ", shared, serves 2 of 8 key groups"} {
		if !strings.Contains(b.String(), want) {
			t.Fatalf("inspect output lacks %q:\n%s", want, b.String())
		}
	}
}
