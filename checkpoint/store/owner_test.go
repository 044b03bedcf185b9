package store

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/checkpoint"
)

func opMeta(id int64) *checkpoint.Metadata {
	return &checkpoint.Metadata{
		CheckpointID: id, Kind: checkpoint.KindCheckpoint, JobName: "demo", MaxParallelism: 8,
		TriggeredAt: t0, CompletedAt: t0.Add(time.Second),
		Operators: map[string]*checkpoint.OperatorState{"source": {Parallelism: 1, Subtasks: []*checkpoint.SubtaskState{{
			Subtask: 0, Operator: map[string][][]byte{"offsets": {[]byte("p0=17")}},
		}}}},
	}
}

func openOS(t *testing.T, root string) *Checkpoints {
	t.Helper()
	s, err := NewFS(root)
	if err != nil {
		t.Fatal(err)
	}
	return NewCheckpoints(s)
}

// A second instance on a checkpoint directory is refused at once, with the
// holder named; once the first releases, a third takes it with the next
// epoch.
func TestAcquireRefusesSecondInstance(t *testing.T) {
	ctx := context.Background()
	a, root := newOSStore(t)
	oa, err := a.Acquire(ctx, "count")
	if err != nil {
		t.Fatal(err)
	}
	if oa.Owner().Epoch != 1 {
		t.Fatalf("first epoch %d, want 1", oa.Owner().Epoch)
	}
	b := openOS(t, root)
	_, err = b.Acquire(ctx, "count")
	var le *LockedError
	if !errors.As(err, &le) || !errors.Is(err, ErrLocked) {
		t.Fatalf("second Acquire: %v, want a LockedError", err)
	}
	host, _ := os.Hostname()
	if le.Holder.PID != os.Getpid() || le.Holder.Job != "count" || le.Holder.Host != host || le.Holder.Started.IsZero() {
		t.Fatalf("holder %+v, want this process's pid %d, job count, host %s", le.Holder, os.Getpid(), host)
	}
	for _, want := range []string{root, "pid " + strconv.Itoa(os.Getpid()), `job "count"`, host} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	// The refused instance took no epoch: the first still owns.
	if err := oa.Check(ctx, "test"); err != nil {
		t.Fatalf("first instance fenced by a refused one: %v", err)
	}
	if err := oa.Release(); err != nil {
		t.Fatal(err)
	}
	oc, err := openOS(t, root).Acquire(ctx, "count")
	if err != nil {
		t.Fatalf("Acquire after release: %v", err)
	}
	defer oc.Release()
	if oc.Owner().Epoch != 2 {
		t.Fatalf("epoch after release %d, want 2", oc.Owner().Epoch)
	}
}

// hideLock simulates storage shared where the lock is not visible: the lock
// file is replaced, so the next instance locks a new inode.
func hideLock(t *testing.T, root string) {
	t.Helper()
	if err := os.Remove(filepath.Join(root, LockName)); err != nil {
		t.Fatal(err)
	}
}

// A zombie (an instance that was paused while another took over) cannot
// complete a checkpoint: WriteMetadata fails fenced and leaves no _metadata.
func TestZombieCannotWriteMetadata(t *testing.T) {
	ctx := context.Background()
	a, root := newOSStore(t)
	oa, err := a.Acquire(ctx, "count")
	if err != nil {
		t.Fatal(err)
	}
	defer oa.Release()
	if err := a.WriteMetadata(ctx, opMeta(1)); err != nil {
		t.Fatalf("owner's checkpoint 1: %v", err)
	}
	hideLock(t, root)
	b := openOS(t, root)
	ob, err := b.Acquire(ctx, "count")
	if err != nil {
		t.Fatalf("new instance: %v", err)
	}
	defer ob.Release()
	err = a.WriteMetadata(ctx, opMeta(2))
	var fe *FencedError
	if !errors.As(err, &fe) || !errors.Is(err, ErrFenced) {
		t.Fatalf("zombie's WriteMetadata: %v, want a FencedError", err)
	}
	if fe.Mine.Epoch != 1 || fe.Current.Epoch != 2 {
		t.Fatalf("fenced error epochs %d/%d, want 1/2", fe.Mine.Epoch, fe.Current.Epoch)
	}
	if _, err := os.Stat(filepath.Join(root, "chk-2", MetadataName)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the zombie left chk-2/_metadata: %v", err)
	}
	if err := a.CheckOwnership(ctx, "commit"); !errors.Is(err, ErrFenced) {
		t.Fatalf("zombie's CheckOwnership: %v", err)
	}
	if err := b.WriteMetadata(ctx, opMeta(3)); err != nil {
		t.Fatalf("new owner's checkpoint: %v", err)
	}
}

// hookStorage runs a hook when a file is committed.
type hookStorage struct {
	Storage
	onCommit func(name string)
}

func (h *hookStorage) Create(ctx context.Context, name string) (Writer, error) {
	w, err := h.Storage.Create(ctx, name)
	if err != nil {
		return nil, err
	}
	return &hookWriter{Writer: w, name: name, h: h}, nil
}

type hookWriter struct {
	Writer
	name string
	h    *hookStorage
}

func (w *hookWriter) Commit() (int64, uint32, error) {
	n, crc, err := w.Writer.Commit()
	if w.h.onCommit != nil {
		w.h.onCommit(w.name)
	}
	return n, crc, err
}

// A zombie that passed the check before its _metadata write but was fenced
// while writing learns it from WriteMetadata (so it commits nothing), and
// the new owner, which may have restored that checkpoint, keeps it.
func TestZombieFencedDuringMetadataWrite(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "checkpoints")
	fsA, err := NewFS(root)
	if err != nil {
		t.Fatal(err)
	}
	hs := &hookStorage{Storage: fsA}
	a := NewCheckpoints(hs)
	oa, err := a.Acquire(ctx, "count")
	if err != nil {
		t.Fatal(err)
	}
	defer oa.Release()
	var ob *Ownership
	hs.onCommit = func(name string) {
		if name != "chk-1/"+MetadataName || ob != nil {
			return
		}
		// a's storage is not an FS, so a took no lock: as on shared
		// storage where locks are not visible.
		var err error
		if ob, err = openOS(t, root).Acquire(ctx, "count"); err != nil {
			t.Errorf("new instance: %v", err)
		}
	}
	err = a.WriteMetadata(ctx, opMeta(1))
	if !errors.Is(err, ErrFenced) {
		t.Fatalf("WriteMetadata fenced mid-write: %v, want ErrFenced", err)
	}
	if ob == nil {
		t.Fatal("hook did not run")
	}
	defer ob.Release()
	if _, err := os.Stat(filepath.Join(root, "chk-1", MetadataName)); err != nil {
		t.Fatalf("chk-1/_metadata the new owner may have restored was removed: %v", err)
	}
}

// Without Acquire (readers, tools) nothing is checked.
func TestNoOwnershipNoCheck(t *testing.T) {
	c, _ := newOSStore(t)
	if err := c.WriteMetadata(context.Background(), opMeta(1)); err != nil {
		t.Fatal(err)
	}
	if c.Ownership() != nil {
		t.Fatal("ownership without Acquire")
	}
}

// LatestUpTo ignores checkpoints above its bound, which only a fenced
// instance can have completed since a run started.
func TestLatestUpTo(t *testing.T) {
	ctx := context.Background()
	c, _ := newOSStore(t)
	for id := int64(1); id <= 3; id++ {
		if err := c.WriteMetadata(ctx, opMeta(id)); err != nil {
			t.Fatal(err)
		}
	}
	m, err := c.LatestUpTo(ctx, nil, 2)
	if err != nil || m.CheckpointID != 2 {
		t.Fatalf("LatestUpTo(2) = %v, %v; want checkpoint 2", m, err)
	}
	if _, err := c.LatestUpTo(ctx, nil, 0); !errors.Is(err, ErrNoCheckpoint) {
		t.Fatalf("LatestUpTo(0): %v, want ErrNoCheckpoint", err)
	}
}
