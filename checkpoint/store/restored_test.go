package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The restore record survives a crash right after WriteRestored (it is
// durable), is replaced whole by the next one, and a damaged one is
// ErrCorrupt naming the file.
func TestRestoredRecord(t *testing.T) {
	ctx := context.Background()
	c, mem, _ := newMemStore(t)
	if _, ok, err := c.ReadRestored(ctx); ok || err != nil {
		t.Fatalf("no record: ok %v err %v", ok, err)
	}
	r := Restored{Path: "/sp/savepoint-4-ab", CheckpointID: 4, Above: 9, Job: "count", At: time.Unix(1, 0).UTC()}
	if err := c.WriteRestored(ctx, r); err != nil {
		t.Fatal(err)
	}
	mem.Crash()
	got, ok, err := c.ReadRestored(ctx)
	if err != nil || !ok || got != r {
		t.Fatalf("after a crash: %+v ok %v err %v, want %+v", got, ok, err, r)
	}
	r2 := Restored{Path: "/sp/savepoint-12-cd", CheckpointID: 12, Above: 12, Job: "count", At: time.Unix(2, 0).UTC()}
	if err := c.WriteRestored(ctx, r2); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := c.ReadRestored(ctx); got != r2 {
		t.Fatalf("rewritten record %+v, want %+v", got, r2)
	}

	o, root := newOSStore(t)
	if err := os.WriteFile(filepath.Join(root, RestoredName), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err = o.ReadRestored(ctx)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), filepath.Join(root, RestoredName)) {
		t.Fatalf("damaged record: %v, want ErrCorrupt naming the file", err)
	}
}

// A fenced instance cannot record a restore point.
func TestRestoredRecordFenced(t *testing.T) {
	ctx := context.Background()
	a, root := newOSStore(t)
	oa, err := a.Acquire(ctx, "count")
	if err != nil {
		t.Fatal(err)
	}
	defer oa.Release()
	hideLock(t, root)
	b := openOS(t, root)
	ob, err := b.Acquire(ctx, "count")
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Release()
	if err := a.WriteRestored(ctx, Restored{Path: "/x", CheckpointID: 1}); !errors.Is(err, ErrFenced) {
		t.Fatalf("zombie's WriteRestored: %v, want ErrFenced", err)
	}
	if _, ok, _ := b.ReadRestored(ctx); ok {
		t.Fatal("the zombie's record was written")
	}
}
