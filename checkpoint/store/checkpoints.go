package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/sluicehq/sluice/checkpoint"
)

// checkpointPrefix starts the directory name of every checkpoint.
const checkpointPrefix = "chk-"

// CheckpointDir returns the directory name of checkpoint id: "chk-<id>".
func CheckpointDir(id int64) string { return checkpointPrefix + strconv.FormatInt(id, 10) }

// parseCheckpointDir returns the id of a name whose first element is
// "chk-<id>". Only the canonical spelling counts, so "chk-007" is not taken
// for checkpoint 7.
func parseCheckpointDir(name string) (int64, bool) {
	dir, _, _ := strings.Cut(name, "/")
	digits, ok := strings.CutPrefix(dir, checkpointPrefix)
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || id < 0 || strconv.FormatInt(id, 10) != digits {
		return 0, false
	}
	return id, true
}

// Checkpoints is the periodic checkpoints of one job, in one Storage: a
// chk-<id> directory per checkpoint. It is safe for concurrent use, except
// CleanIncomplete (see there).
type Checkpoints struct {
	s   Storage
	own atomic.Pointer[Ownership] // set by Acquire
	// discardMu serialises Discard: two deletions that each saw the other's
	// _metadata would both keep the shared files only the two refer to.
	discardMu sync.Mutex
}

// NewCheckpoints returns the checkpoints kept in s, typically an FS rooted
// at the job's checkpoint directory.
func NewCheckpoints(s Storage) *Checkpoints { return &Checkpoints{s: s} }

// Storage returns the Storage the checkpoints are in.
func (c *Checkpoints) Storage() Storage { return c.s }

// Snapshot returns the directory of checkpoint id, complete or not. Writing
// to it creates it.
func (c *Checkpoints) Snapshot(id int64) *Snapshot {
	return &Snapshot{s: c.s, dir: CheckpointDir(id), id: id}
}

func checkID(id int64) error {
	if id < 0 {
		return fmt.Errorf("store: negative checkpoint id %d", id)
	}
	return nil
}

// StateWriter opens the state file name in chk-<id>/ for writing (the
// asynchronous part of a task's snapshot, docs/design.md §3 step 4). Commit returns
// the handle for the task's ack.
func (c *Checkpoints) StateWriter(ctx context.Context, id int64, name string) (*StateWriter, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	return c.Snapshot(id).StateWriter(ctx, name)
}

// WriteMetadata writes chk-<m.CheckpointID>/_metadata atomically and durably
// (temporary file, fsync, rename, fsync directory): the step that completes
// a checkpoint (docs/design.md §3 step 5). It answers the coordinator's
// PersistAction.
func (c *Checkpoints) WriteMetadata(ctx context.Context, m *checkpoint.Metadata) error {
	if m == nil {
		return errors.New("store: write metadata: nil metadata")
	}
	if err := checkID(m.CheckpointID); err != nil {
		return err
	}
	return c.WriteCompleting(ctx, m.CheckpointID, "checkpoint", func() error {
		return c.Snapshot(m.CheckpointID).WriteMetadata(ctx, m)
	})
}

// WriteCompleting runs write, the _metadata write that completes checkpoint
// (kind "checkpoint") or savepoint ("savepoint") id, between the two
// ownership checks of docs/design.md §9: one before it, so that a fenced
// instance never completes a checkpoint (write is not called), and one
// after it, so that an instance paused between the first check and the
// write learns it was fenced before anything commits what the checkpoint
// covers. Either refusal is a *FencedError. It records the write for
// Orphaned. Without ownership (readers, tests) it only calls write.
func (c *Checkpoints) WriteCompleting(ctx context.Context, id int64, kind string, write func() error) error {
	o := c.own.Load()
	if o == nil {
		return write()
	}
	return o.writeCompleting(ctx, id, kind, write)
}

// Orphaned reports whether nothing that checkpoint id covers can ever be
// committed, by this instance or any other: this instance was fenced
// (another took over its checkpoints, docs/design.md §9) and can have
// written the _metadata of no checkpoint or savepoint numbered id or
// above, so no checkpoint that any instance may restore names the
// transactions a sink pre-committed for id. A fenced instance's
// two-phase-commit sink aborts those as it closes, rather than leaving
// them open on the external system until their timeout (a Kafka
// transaction left open holds back what read_committed readers see). False
// while this instance owns its checkpoints, or never took ownership.
func (c *Checkpoints) Orphaned(id int64) bool {
	o := c.own.Load()
	return o != nil && o.orphaned(id)
}

// Ownership returns the ownership Acquire took, or nil.
func (c *Checkpoints) Ownership() *Ownership { return c.own.Load() }

// CheckOwnership returns a *FencedError naming op if this instance took
// ownership with Acquire and another instance has taken it since; nil if
// it still owns the checkpoints or never took ownership (readers, tests).
func (c *Checkpoints) CheckOwnership(ctx context.Context, op string) error {
	o := c.own.Load()
	if o == nil {
		return nil
	}
	return o.Check(ctx, op)
}

// ReadMetadata reads and verifies chk-<id>/_metadata. A damaged file, or one
// that names another checkpoint id, is ErrCorrupt; a missing one is
// fs.ErrNotExist.
func (c *Checkpoints) ReadMetadata(ctx context.Context, id int64) (*checkpoint.Metadata, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	return c.Snapshot(id).ReadMetadata(ctx)
}

// ReadState reads the state file of h in checkpoint id and verifies its size
// and CRC32C (ErrCorrupt on mismatch).
func (c *Checkpoints) ReadState(ctx context.Context, id int64, h checkpoint.StateHandle) ([]byte, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	return c.Snapshot(id).ReadState(ctx, h)
}

// OpenState opens the state file of h in checkpoint id for streaming, with
// verification at the end; see Snapshot.OpenState.
func (c *Checkpoints) OpenState(ctx context.Context, id int64, h checkpoint.StateHandle) (io.ReadCloser, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	return c.Snapshot(id).OpenState(ctx, h)
}

// Completed returns the ids of the checkpoints that have a _metadata,
// ascending. It does not verify them; Latest does.
func (c *Checkpoints) Completed(ctx context.Context) ([]int64, error) {
	names, err := c.s.List(ctx, checkpointPrefix)
	if err != nil {
		return nil, err
	}
	var ids []int64
	for _, name := range names {
		id, ok := parseCheckpointDir(name)
		if ok && name == joinName(CheckpointDir(id), MetadataName) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// Latest returns the metadata of the newest checkpoint whose _metadata and
// every state file verify: what a restart restores (docs/design.md §5). A corrupt or
// partial checkpoint is skipped with an slog.Error naming it and the reason,
// and the previous one is tried; falling back is logged as an error too,
// because it means a job resumes from older state than it had committed.
// log may be nil for slog.Default().
//
// Only corruption (ErrCorrupt, or files that vanished) is skipped. Any other
// error (an unreadable disk, a canceled ctx, ErrUnsupportedVersion) is
// returned: the condition may be transient or an operator's mistake, and
// quietly restoring older state would be the wrong answer to it.
//
// It returns ErrNoCheckpoint if there is no completed checkpoint, and
// ErrCorrupt if there are some but none verifies.
//
// Latest reads every state file of the checkpoint it returns once to verify
// it; restoring reads them again.
func (c *Checkpoints) Latest(ctx context.Context, log *slog.Logger) (*checkpoint.Metadata, error) {
	return c.LatestUpTo(ctx, log, math.MaxInt64)
}

// LatestUpTo is Latest among the checkpoints with ids up to maxID. A job
// restarting before it completed a checkpoint of its own restores at most
// the one it started from: a newer _metadata can only have been written
// since by a fenced instance (docs/design.md §9).
func (c *Checkpoints) LatestUpTo(ctx context.Context, log *slog.Logger, maxID int64) (*checkpoint.Metadata, error) {
	return c.LatestVouched(ctx, log, maxID, nil)
}

// LatestVouched is LatestUpTo where vouch, if not nil, may stand for
// reading a state file of checkpoint id from storage: it returns true when
// it verified an identical copy of the file elsewhere (a task-local copy
// of local recovery, whose size and CRC32C equal the handle's), from which
// the restore will read it. The point of local recovery is not to read
// checkpoint storage for such files at all.
func (c *Checkpoints) LatestVouched(ctx context.Context, log *slog.Logger, maxID int64, vouch func(id int64, h checkpoint.StateHandle) bool) (*checkpoint.Metadata, error) {
	if log == nil {
		log = slog.Default()
	}
	all, err := c.Completed(ctx)
	if err != nil {
		return nil, err
	}
	var ids []int64
	for _, id := range all {
		if id <= maxID {
			ids = append(ids, id)
		} else {
			log.WarnContext(ctx, "checkpoint store: ignoring a checkpoint completed since this run started, not by it (written by a fenced instance)",
				"checkpoint", id, "restoring at most", maxID)
		}
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("store: %w in %s", ErrNoCheckpoint, location(c.s))
	}
	var skipped []int64
	var firstErr error
	for _, id := range slices.Backward(ids) {
		sn := c.Snapshot(id)
		m, err := sn.ReadMetadata(ctx)
		if err == nil {
			var v func(checkpoint.StateHandle) bool
			if vouch != nil {
				v = func(h checkpoint.StateHandle) bool { return vouch(id, h) }
			}
			err = sn.verify(ctx, m, v)
		}
		if err == nil {
			if len(skipped) > 0 {
				log.ErrorContext(ctx, "checkpoint store: restoring from an older checkpoint because newer ones are corrupt",
					"checkpoint", id, "location", sn.Location(), "skipped", skipped)
			}
			return m, nil
		}
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("store: checkpoint %d: %w", id, err)
		}
		log.ErrorContext(ctx, "checkpoint store: skipping corrupt checkpoint",
			"checkpoint", id, "location", sn.Location(), "err", err)
		skipped = append(skipped, id)
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, fmt.Errorf("store: none of the %d completed checkpoints in %s verifies; newest: %w",
		len(ids), location(c.s), firstErr)
}

// MaxID returns the highest id of any chk-<id> directory, complete or not,
// or 0 if there is none. A coordinator starting after a crash numbers new
// checkpoints above it, so that a new checkpoint never shares a directory
// with the leftovers of an old attempt.
func (c *Checkpoints) MaxID(ctx context.Context) (int64, error) {
	names, err := c.s.List(ctx, checkpointPrefix)
	if err != nil {
		return 0, err
	}
	var maxID int64
	for _, name := range names {
		if id, ok := parseCheckpointDir(name); ok {
			maxID = max(maxID, id)
		}
	}
	return maxID, nil
}

// Discard deletes checkpoint id (retention, or an aborted checkpoint); see
// Snapshot.Delete for the order in which it removes files.
//
// Then it deletes the shared files (SharedDir) the checkpoint referred to
// that no other complete checkpoint refers to. They go after the _metadata,
// so a crash in between leaves orphans (CleanIncomplete removes them), never
// a complete checkpoint missing a file. A checkpoint written later that
// refers to one of them is safe: a backend reuses only files of its latest
// successful write, all of which the newest complete checkpoint, which is
// retained, also names (docs/design.md §4).
func (c *Checkpoints) Discard(ctx context.Context, id int64) error {
	if err := checkID(id); err != nil {
		return err
	}
	c.discardMu.Lock()
	defer c.discardMu.Unlock()
	var own map[string]bool
	if m, err := c.ReadMetadata(ctx, id); err == nil {
		own = sharedRefs(m)
	}
	// An unreadable _metadata (aborted, corrupt) leaves its shared files,
	// if any, to CleanIncomplete.
	if err := c.Snapshot(id).Delete(ctx); err != nil {
		return fmt.Errorf("store: discard checkpoint %d: %w", id, err)
	}
	if len(own) == 0 {
		return nil
	}
	refs, ok, err := c.referenced(ctx, id)
	if err != nil {
		return fmt.Errorf("store: discard checkpoint %d: shared files: %w", id, err)
	}
	if !ok {
		return nil // left to CleanIncomplete
	}
	for p := range refs {
		delete(own, p)
	}
	if err := c.deleteShared(ctx, own); err != nil {
		return fmt.Errorf("store: discard checkpoint %d: %w", id, err)
	}
	return nil
}

// DiscardAborted deletes checkpoint id after it was aborted: its directory
// only (see Snapshot.Delete), never a shared file. A checkpoint aborted
// while its _metadata was being written may have completed after all; the
// shared files it wrote may already be reused by a later checkpoint of the
// same backend, which the abort does not stop (a backend reuses the files
// of its latest successful write, docs/design.md §4). What no complete
// checkpoint refers to goes at the next CleanIncomplete.
func (c *Checkpoints) DiscardAborted(ctx context.Context, id int64) error {
	if err := checkID(id); err != nil {
		return err
	}
	if err := c.Snapshot(id).Delete(ctx); err != nil {
		return fmt.Errorf("store: discard aborted checkpoint %d: %w", id, err)
	}
	return nil
}

// CleanIncomplete deletes every checkpoint directory without a _metadata
// (the leftovers of aborted or crashed checkpoints), the temporary files
// of crashed writers inside complete ones, and every shared file (SharedDir)
// that no complete checkpoint refers to. Call it when no checkpoint is
// being written, i.e. when a job starts or restarts, before the coordinator
// triggers the first one: it cannot tell a crashed checkpoint from one in
// progress.
func (c *Checkpoints) CleanIncomplete(ctx context.Context) error {
	names, err := c.s.List(ctx, checkpointPrefix)
	if err != nil {
		return err
	}
	complete := make(map[int64]bool)
	dirs := make(map[int64]bool)
	for _, name := range names {
		id, ok := parseCheckpointDir(name)
		if !ok {
			continue
		}
		dirs[id] = true
		if name == joinName(CheckpointDir(id), MetadataName) {
			complete[id] = true
		}
	}
	var errs []error
	for _, id := range slices.Sorted(maps.Keys(dirs)) {
		if complete[id] {
			continue
		}
		if err := c.s.DeleteAll(ctx, CheckpointDir(id)+"/"); err != nil {
			errs = append(errs, fmt.Errorf("store: clean incomplete checkpoint %d: %w", id, err))
		}
	}
	for _, name := range names {
		id, ok := parseCheckpointDir(name)
		if ok && complete[id] && isTemp(name) {
			if err := c.s.DeleteAll(ctx, name); err != nil {
				errs = append(errs, fmt.Errorf("store: clean checkpoint %d: %w", id, err))
			}
		}
	}
	if err := c.cleanShared(ctx); err != nil {
		errs = append(errs, fmt.Errorf("store: clean shared state files: %w", err))
	}
	return errors.Join(errs...)
}

// location names a Storage in messages.
func location(s Storage) string {
	if f, ok := s.(*FS); ok {
		return f.Root()
	}
	return fmt.Sprintf("%T", s)
}
