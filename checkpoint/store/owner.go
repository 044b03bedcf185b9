package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"time"
)

// Ownership of a checkpoint directory (docs/design.md §9). A job instance
// owns the checkpoints it writes: at its start it takes the directory's
// lock (FS only) and a new ownership epoch, and it checks that it still
// holds the epoch before and after every _metadata write. An instance that
// finds a newer epoch was fenced by another instance that took over the
// same checkpoints, and must stop without committing anything.

// Names of the ownership files at the root of a checkpoint storage. They do
// not start with "chk-", so listing checkpoints never sees them.
const (
	// LockName is the file an FS holds an exclusive flock on while a job
	// instance owns it; it holds the owner's description, for the error
	// a second instance reports.
	LockName = "_lock"
	// OwnerName is the file holding the current ownership epoch and its
	// owner, written atomically and durably (temporary file, fsync,
	// rename, fsync directory) at every job start.
	OwnerName = "_owner"
)

// ErrLocked means another job instance holds the lock of a checkpoint
// directory. It is wrapped by *LockedError.
var ErrLocked = errors.New("checkpoint directory is locked by another job instance")

// ErrFenced means another job instance took over the checkpoint storage
// (it holds a newer ownership epoch): this instance must stop and never
// commit again. It is wrapped by *FencedError.
var ErrFenced = errors.New("fenced: another job instance took over the checkpoints")

// Owner describes a job instance that owns a checkpoint storage.
type Owner struct {
	// Epoch is the ownership epoch, incremented by every job start.
	Epoch int64 `json:"epoch"`
	// Token tells apart two instances that raced to the same epoch
	// (possible only where the lock is not visible to both).
	Token string `json:"token"`
	// Job is the job name.
	Job string `json:"job"`
	// PID is the process id of the instance.
	PID int `json:"pid"`
	// Host is the host name of the instance.
	Host string `json:"host"`
	// Started is when the instance took ownership.
	Started time.Time `json:"started"`
}

// String describes the owner for messages.
func (o Owner) String() string {
	return fmt.Sprintf("job %q, pid %d on host %s, started %s (epoch %d)",
		o.Job, o.PID, o.Host, o.Started.UTC().Format(time.RFC3339), o.Epoch)
}

// LockedError reports a checkpoint directory locked by another instance.
// errors.Is(err, ErrLocked) holds.
type LockedError struct {
	// Dir is the checkpoint directory.
	Dir string
	// Holder describes the instance holding the lock, as it wrote itself
	// into the lock file; zero if that could not be read.
	Holder Owner
}

// Error names the directory and the holder.
func (e *LockedError) Error() string {
	who := "an unknown process (its lock file could not be read)"
	if e.Holder.PID != 0 {
		who = fmt.Sprintf("job %q, pid %d on host %s, started %s", e.Holder.Job, e.Holder.PID, e.Holder.Host,
			e.Holder.Started.UTC().Format(time.RFC3339))
	}
	return fmt.Sprintf("checkpoint directory %s is in use by %s: two instances of a job on one checkpoint directory "+
		"would both commit every record; stop the other one, or give this one its own checkpoint directory", e.Dir, who)
}

// Unwrap returns ErrLocked.
func (e *LockedError) Unwrap() error { return ErrLocked }

// FencedError reports that this instance lost the ownership of its
// checkpoints. errors.Is(err, ErrFenced) holds.
type FencedError struct {
	// Mine is this instance's ownership.
	Mine Owner
	// Current is the owner recorded now; zero if the record is gone.
	Current Owner
	// Op is what the instance was about to do ("write checkpoint 7
	// metadata", "commit").
	Op string
}

// Error names both owners.
func (e *FencedError) Error() string {
	return fmt.Sprintf("%v: %s refused: this instance (epoch %d) no longer owns its checkpoints; the owner is now %v. "+
		"This instance was paused or cut off while another took over; it stops and commits nothing more",
		ErrFenced, e.Op, e.Mine.Epoch, e.Current)
}

// Unwrap returns ErrFenced.
func (e *FencedError) Unwrap() error { return ErrFenced }

// Ownership is a job instance's hold on a checkpoint storage, from Acquire
// to Release. It is safe for concurrent use.
type Ownership struct {
	s    Storage
	lock *dirLock
	me   Owner

	// mu guards what Orphaned answers from.
	mu sync.Mutex
	// fenced is set by the first Check that found a newer owner; an
	// epoch only grows, so every later Check fails too.
	fenced bool
	// writing counts the _metadata writes under way, by checkpoint id,
	// from before their first check to their return.
	writing map[int64]int
	// written is the highest checkpoint id whose _metadata this instance
	// may have written: its write passed the first check. 0 for none.
	written int64
}

// Acquire makes the caller the owner of the checkpoints in c: on an FS it
// takes the directory's lock (failing at once with a *LockedError naming
// the holder if another instance has it), then it writes a new ownership
// epoch, one above the recorded one, durably. From then on c refuses to
// write a _metadata unless the epoch is still the newest (see
// Ownership.Check). Release ends the ownership.
//
// The lock is an flock: the kernel drops it when the process dies, so a
// crash leaves no stale lock, but it protects only processes that see the
// same lock (one host, or a filesystem whose locks are shared). The epoch
// protects the rest: an instance that was paused or cut off while another
// took over is fenced at its next checkpoint.
func (c *Checkpoints) Acquire(ctx context.Context, job string) (*Ownership, error) {
	host, _ := os.Hostname()
	me := Owner{Token: newToken(), Job: job, PID: os.Getpid(), Host: host, Started: time.Now()}
	var lock *dirLock
	if f, ok := c.s.(*FS); ok {
		l, err := lockDir(f.Path(LockName), me)
		if err != nil {
			return nil, fmt.Errorf("store: lock checkpoint directory %s: %w", f.Root(), err)
		}
		lock = l
	}
	cur, err := readOwner(ctx, c.s)
	if err != nil {
		lock.release()
		return nil, err
	}
	me.Epoch = cur.Epoch + 1
	if err := writeOwner(ctx, c.s, me); err != nil {
		lock.release()
		return nil, err
	}
	o := &Ownership{s: c.s, lock: lock, me: me}
	c.own.Store(o)
	return o, nil
}

// Owner returns the instance's ownership record.
func (o *Ownership) Owner() Owner { return o.me }

// Check returns nil if o still holds the newest ownership epoch, and a
// *FencedError naming op otherwise. It reads the owner record, a small
// file: call it at the points where a zombie must be stopped (before and
// after completing a checkpoint, before a commit), not per record.
func (o *Ownership) Check(ctx context.Context, op string) error {
	cur, err := readOwner(ctx, o.s)
	if err != nil {
		return fmt.Errorf("store: check ownership before %s: %w", op, err)
	}
	if cur.Epoch != o.me.Epoch || cur.Token != o.me.Token {
		o.mu.Lock()
		o.fenced = true
		o.mu.Unlock()
		return &FencedError{Mine: o.me, Current: cur, Op: op}
	}
	return nil
}

// writeCompleting runs write, the _metadata write that completes
// checkpoint or savepoint id, bracketed by the two ownership checks
// (docs/design.md §9), and records it for orphaned.
func (o *Ownership) writeCompleting(ctx context.Context, id int64, kind string, write func() error) error {
	o.mu.Lock()
	if o.writing == nil {
		o.writing = make(map[int64]int)
	}
	o.writing[id]++
	o.mu.Unlock()
	mayHaveWritten := false
	defer func() {
		o.mu.Lock()
		if o.writing[id]--; o.writing[id] == 0 {
			delete(o.writing, id)
		}
		if mayHaveWritten {
			o.written = max(o.written, id)
		}
		o.mu.Unlock()
	}()
	if err := o.Check(ctx, fmt.Sprintf("write %s %d metadata", kind, id)); err != nil {
		return err
	}
	// From here on the file may exist, even if write fails (a rename
	// done before a failed fsync of the directory).
	mayHaveWritten = true
	if err := write(); err != nil {
		return err
	}
	// Checked again after the write: an instance that was paused between
	// the first check and the write must not go on to commit what the
	// checkpoint covers. The file stays: the new owner may already have
	// restored it.
	return o.Check(ctx, fmt.Sprintf("complete %s %d", kind, id))
}

// orphaned reports whether o was fenced and can have written no _metadata
// of a checkpoint numbered id or above, and has no such write under way.
// Fencing is for good, so every later write is refused at its first check
// and the answer never turns false again.
func (o *Ownership) orphaned(id int64) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.fenced || o.written >= id {
		return false
	}
	for w := range o.writing {
		if w >= id {
			return false
		}
	}
	return true
}

// Release drops the lock. The epoch stays recorded: the next instance
// takes the one above it.
func (o *Ownership) Release() error {
	if o == nil {
		return nil
	}
	return o.lock.release()
}

func newToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// readOwner reads the owner record; a missing one is the zero Owner.
func readOwner(ctx context.Context, s Storage) (Owner, error) {
	r, err := s.Open(ctx, OwnerName)
	if errors.Is(err, fs.ErrNotExist) {
		return Owner{}, nil
	}
	if err != nil {
		return Owner{}, fmt.Errorf("store: read owner record: %w", err)
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, 64<<10))
	if err != nil {
		return Owner{}, fmt.Errorf("store: read owner record: %w", err)
	}
	var o Owner
	if err := json.Unmarshal(data, &o); err != nil {
		return Owner{}, fmt.Errorf("store: owner record %s: %w: %v", where(s, OwnerName), ErrCorrupt, err)
	}
	return o, nil
}

func writeOwner(ctx context.Context, s Storage, o Owner) error {
	data, err := json.Marshal(o)
	if err != nil {
		return err
	}
	w, err := s.Create(ctx, OwnerName)
	if err != nil {
		return fmt.Errorf("store: write owner record: %w", err)
	}
	defer w.Abort()
	if _, err := w.Write(append(data, '\n')); err != nil {
		return fmt.Errorf("store: write owner record: %w", err)
	}
	if _, _, err := w.Commit(); err != nil {
		return fmt.Errorf("store: write owner record: %w", err)
	}
	return nil
}

func where(s Storage, name string) string {
	if f, ok := s.(*FS); ok {
		return f.Path(name)
	}
	return name
}

// decodeHolder parses the description a lock holder wrote into the lock
// file; garbage yields the zero Owner.
func decodeHolder(data []byte) Owner {
	var o Owner
	_ = json.Unmarshal(bytes.TrimSpace(data), &o)
	return o
}
