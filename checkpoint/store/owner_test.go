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
	// What checkpoint 2 covers is named by no _metadata: orphaned; what
	// checkpoint 1 covers may be restored by the new owner: not.
	if !a.Orphaned(2) || !a.Orphaned(3) {
		t.Fatalf("checkpoints 2 and 3 of the fenced zombie not orphaned")
	}
	if a.Orphaned(1) {
		t.Fatalf("checkpoint 1, completed by the zombie before the takeover, orphaned")
	}
	if b.Orphaned(2) || b.Orphaned(4) {
		t.Fatalf("the owner's checkpoints orphaned")
	}
	if err := b.WriteMetadata(ctx, opMeta(3)); err != nil {
		t.Fatalf("new owner's checkpoint: %v", err)
	}
}

// Orphaned is false for an instance that is not fenced, for every
// checkpoint id up to the newest whose _metadata it may have written (a
// write refused only after it, or that failed after its first check), and
// while a write of such an id is under way.
func TestOrphaned(t *testing.T) {
	ctx := context.Background()
	a, root := newOSStore(t)
	if a.Orphaned(1) {
		t.Fatal("orphaned without ownership")
	}
	oa, err := a.Acquire(ctx, "count")
	if err != nil {
		t.Fatal(err)
	}
	defer oa.Release()
	if a.Orphaned(1) {
		t.Fatal("orphaned while owning")
	}
	// A write that fails after its first check may have landed.
	errWrite := errors.New("disk full (test)")
	if err := a.WriteCompleting(ctx, 4, "checkpoint", func() error { return errWrite }); !errors.Is(err, errWrite) {
		t.Fatalf("failing write: %v", err)
	}
	// A write under way when the instance learns it was fenced: its id
	// and those below it are not orphaned until it returns.
	release, entered := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- a.WriteCompleting(ctx, 7, "savepoint", func() error {
			close(entered)
			<-release
			return nil
		})
	}()
	<-entered // past its first check
	hideLock(t, root)
	b := openOS(t, root)
	ob, err := b.Acquire(ctx, "count")
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Release()
	if a.Orphaned(8) {
		t.Fatal("orphaned before the instance learnt it was fenced")
	}
	if err := a.CheckOwnership(ctx, "commit"); !errors.Is(err, ErrFenced) {
		t.Fatalf("zombie's check: %v", err)
	}
	for _, id := range []int64{4, 5, 7} {
		if a.Orphaned(id) {
			t.Fatalf("checkpoint %d orphaned while savepoint 7's write is under way", id)
		}
	}
	if !a.Orphaned(8) {
		t.Fatal("checkpoint 8 not orphaned")
	}
	close(release)
	if err := <-done; !errors.Is(err, ErrFenced) {
		t.Fatalf("savepoint write refused after it: %v, want fenced", err)
	}
	if a.Orphaned(7) || !a.Orphaned(8) {
		t.Fatalf("after the savepoint's write: orphaned(7) %v, orphaned(8) %v; want false, true", a.Orphaned(7), a.Orphaned(8))
	}
	// ...and one refused at its first check wrote nothing.
	if err := a.WriteCompleting(ctx, 9, "checkpoint", func() error { t.Fatal("write after the fence"); return nil }); !errors.Is(err, ErrFenced) {
		t.Fatalf("write after the fence: %v", err)
	}
	if !a.Orphaned(9) {
		t.Fatal("checkpoint 9, refused before its write, not orphaned")
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
	if a.Orphaned(1) {
		t.Fatal("checkpoint 1, which the new owner may have restored, orphaned")
	}
	if !a.Orphaned(2) {
		t.Fatal("checkpoint 2 of the fenced zombie not orphaned")
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
