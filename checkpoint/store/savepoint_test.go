package store

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/checkpoint"
)

// copyDir copies a directory tree, as an operator would with cp -r.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// docs/design.md §4: a savepoint is self-contained and relocatable. It is written
// under one root, moved and copied elsewhere under other names, and restored
// from each new path.
func TestSavepointRelocation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	spRoot := filepath.Join(t.TempDir(), "savepoints")
	s, err := NewFS(spRoot)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := NewSavepoint(s, 12)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^savepoint-12-[0-9a-f]{12}$`).MatchString(sp.Dir()) {
		t.Fatalf("savepoint dir %q", sp.Dir())
	}
	if other, _ := NewSavepoint(s, 12); other.Dir() == sp.Dir() {
		t.Fatal("two savepoints of the same id share a directory")
	}
	want := writeCheckpoint(t, sp, 12, checkpoint.KindSavepoint)
	want.Version = checkpoint.FormatVersion
	if sp.Location() != filepath.Join(spRoot, sp.Dir()) {
		t.Fatalf("Location = %s", sp.Location())
	}

	moved := filepath.Join(t.TempDir(), "elsewhere", "before-upgrade")
	if err := os.MkdirAll(filepath.Dir(moved), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(sp.Location(), moved); err != nil {
		t.Fatal(err)
	}
	copied := filepath.Join(t.TempDir(), "copy")
	copyDir(t, moved, copied)

	for _, p := range []string{moved, copied, filepath.Join(copied, MetadataName)} {
		m, sn, err := LoadPath(ctx, p)
		if err != nil {
			t.Fatalf("LoadPath(%s): %v", p, err)
		}
		if !reflect.DeepEqual(m, want) {
			t.Fatalf("LoadPath(%s) metadata %+v, want %+v", p, m, want)
		}
		h := m.Operators["counter"].Subtasks[0].Keyed[0]
		data, err := sn.ReadState(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(data, []byte("checkpoint 12 key group 0:")) {
			t.Fatalf("state from %s: %q", p, data)
		}
		if sn.Location() != strings.TrimSuffix(p, "/"+MetadataName) {
			t.Fatalf("Location = %s, want %s", sn.Location(), p)
		}
		// A snapshot opened by path is the user's directory: never
		// deleted by us.
		if err := sn.Delete(ctx); err == nil {
			t.Fatal("Delete of a snapshot opened by path succeeded")
		}
	}
}

// A savepoint made from a completed checkpoint by Copy restores like one
// written directly, and a corrupt source fails the copy without leaving a
// partial savepoint.
func TestCopyCheckpointToSavepoint(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, root := newOSStore(t)
	m := writeCheckpoint(t, c.Snapshot(5), 5, checkpoint.KindCheckpoint)
	spRoot := filepath.Join(t.TempDir(), "savepoints")
	s, err := NewFS(spRoot)
	if err != nil {
		t.Fatal(err)
	}

	sm := *m
	sm.Kind = checkpoint.KindSavepoint
	sp, _ := NewSavepoint(s, 5)
	if err := Copy(ctx, sp, c.Snapshot(5), &sm); err != nil {
		t.Fatal(err)
	}
	got, _, err := LoadPath(ctx, sp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if got.Kind != checkpoint.KindSavepoint || got.CheckpointID != 5 {
		t.Fatalf("copied savepoint: %+v", got)
	}
	// The checkpoint can be discarded: the savepoint does not refer to it.
	if err := c.Discard(ctx, 5); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadPath(ctx, sp.Location()); err != nil {
		t.Fatalf("savepoint after discarding its checkpoint: %v", err)
	}

	m6 := writeCheckpoint(t, c.Snapshot(6), 6, checkpoint.KindCheckpoint)
	flipByte(t, filepath.Join(root, "chk-6", "counter-1.keyed"), 3, 0x01)
	sp6, _ := NewSavepoint(s, 6)
	if err := Copy(ctx, sp6, c.Snapshot(6), m6); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Copy of a corrupt checkpoint: error %v, want ErrCorrupt", err)
	}
	if _, err := os.Stat(sp6.Location()); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a failed Copy left %s behind (%v)", sp6.Location(), err)
	}
}

func TestLoadPathErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, root := newOSStore(t)
	writeCheckpoint(t, c.Snapshot(3), 3, checkpoint.KindCheckpoint)
	writeCheckpoint(t, c.Snapshot(4), 4, checkpoint.KindCheckpoint)
	w, _ := c.StateWriter(ctx, 5, "s")
	w.Write([]byte("x"))
	w.Commit()

	for _, tc := range []struct {
		path string
		is   error
		sub  string
	}{
		{filepath.Join(root, "nope"), fs.ErrNotExist, "nope"},
		{filepath.Join(root, "chk-3", "counter-0.keyed"), nil, "not a checkpoint directory"},
		{root, nil, "checkpoint root; pass one of its checkpoint directories, e.g. " + filepath.Join(root, "chk-4")},
		{filepath.Join(root, "chk-5"), fs.ErrNotExist, "not a complete checkpoint"},
	} {
		_, _, err := LoadPath(ctx, tc.path)
		if err == nil || (tc.is != nil && !errors.Is(err, tc.is)) || !strings.Contains(err.Error(), tc.sub) {
			t.Errorf("LoadPath(%s) error %v, want %v containing %q", tc.path, err, tc.is, tc.sub)
		}
	}

	flipByte(t, filepath.Join(root, "chk-4", "counter-0.keyed"), 0, 0x01)
	if _, _, err := LoadPath(ctx, filepath.Join(root, "chk-4")); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("corrupt state: LoadPath error %v, want ErrCorrupt", err)
	}
	// OpenPath + ReadMetadata still work, for inspect.
	sn, err := OpenPath(filepath.Join(root, "chk-4"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sn.ReadMetadata(ctx); err != nil {
		t.Fatal(err)
	}
}
