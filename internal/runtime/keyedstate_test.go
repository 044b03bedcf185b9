package runtime

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/checkpoint/store"
)

// A backend's native files (Format set) are not read by the restorer: the
// subtask gets their handles and a Fetch that copies a file to a local path,
// verifying it (store.ErrCorrupt for a damaged one, and no file left).
func TestRestoreNativeHandles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := t.TempDir()
	fsys, err := store.NewFS(root)
	if err != nil {
		t.Fatal(err)
	}
	c := store.NewCheckpoints(fsys)
	w, err := c.SharedWriter(ctx, store.SharedPrefix("op", 0, "r1"), "000007.sst")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("an sst file"))
	h, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	h.Format = "pebble-sst"
	kgs := checkpoint.KeyGroupRange{Start: 0, End: 127}
	m := &checkpoint.Metadata{CheckpointID: 3, Kind: checkpoint.KindCheckpoint, MaxParallelism: 128,
		Operators: map[string]*checkpoint.OperatorState{"op": {Parallelism: 1, Subtasks: []*checkpoint.SubtaskState{{KeyGroups: kgs, Keyed: []checkpoint.StateHandle{h}}}}}}
	if err := c.WriteMetadata(ctx, m); err != nil {
		t.Fatal(err)
	}
	j := &Job{cfg: Config{Store: c, State: StateOptions{LocalDir: t.TempDir()}}, plan: &Plan{}, log: quietTestLogger()}
	// Damage it first: the restorer must not read it.
	sp := filepath.Join(root, filepath.FromSlash(h.Path))
	good, _ := os.ReadFile(sp)
	os.WriteFile(sp, []byte("An sst file"), 0o644)
	r := newRestorer(ctx, j, &restorePoint{meta: m, src: c.Snapshot(3), own: true})
	rs, err := r.forSubtask("op", 0, kgs)
	if err != nil {
		t.Fatalf("forSubtask read the native file: %v", err)
	}
	if len(rs.Keyed) != 1 || rs.Keyed[0].Format != "pebble-sst" || rs.Keyed[0].Data != nil || len(rs.Keyed[0].Handles) != 1 {
		t.Fatalf("restored keyed %+v, want one native entry with handles", rs.Keyed)
	}
	dst := filepath.Join(t.TempDir(), "db", "000007.sst")
	if err := rs.Keyed[0].Fetch(ctx, rs.Keyed[0].Handles[0], dst); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("Fetch of a damaged file: %v, want ErrCorrupt", err)
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Fatalf("Fetch of a damaged file left %s: %v", dst, err)
	}
	os.WriteFile(sp, good, 0o644)
	if err := rs.Keyed[0].Fetch(ctx, rs.Keyed[0].Handles[0], dst); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dst); string(got) != "an sst file" {
		t.Fatalf("fetched %q", got)
	}

	// A subtask's handles are all of one format.
	m.Operators["op"].Subtasks[0].Keyed = append(m.Operators["op"].Subtasks[0].Keyed, checkpoint.StateHandle{Path: "x.keyed"})
	if _, err := newRestorer(ctx, j, &restorePoint{meta: m, src: c.Snapshot(3)}).forSubtask("op", 0, kgs); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("mixed formats: %v, want ErrCorrupt", err)
	}
}
