package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"
)

// RestoredName is the file at the root of a checkpoint storage recording
// the checkpoint or savepoint a job instance was started from explicitly
// (FromCheckpoint), written atomically and durably before the instance
// commits anything (docs/design.md §5, §9). A later start without
// FromCheckpoint restores it rather than an older checkpoint of the
// directory, until a checkpoint of the job's own supersedes it.
const RestoredName = "_restored"

// Restored is the record in RestoredName.
type Restored struct {
	// Path is the absolute path of the restored checkpoint or savepoint.
	Path string `json:"path"`
	// CheckpointID is the id in its metadata.
	CheckpointID int64 `json:"checkpoint_id"`
	// Above is the highest checkpoint id in the directory, or of the
	// restored one, when it was restored: the instance numbered its own
	// checkpoints above it, so a completed checkpoint with an id above
	// Above is newer than the record and supersedes it, and one at or
	// below it is older than the restored state.
	Above int64 `json:"above"`
	// Job is the job name.
	Job string `json:"job"`
	// At is when the record was written.
	At time.Time `json:"at"`
}

// WriteRestored records r in RestoredName, atomically and durably. Like a
// _metadata write it is refused (a *FencedError) if another instance took
// the ownership since Acquire.
func (c *Checkpoints) WriteRestored(ctx context.Context, r Restored) error {
	if err := c.CheckOwnership(ctx, "record the restored checkpoint"); err != nil {
		return err
	}
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	w, err := c.s.Create(ctx, RestoredName)
	if err != nil {
		return fmt.Errorf("store: write %s: %w", where(c.s, RestoredName), err)
	}
	defer w.Abort()
	if _, err := w.Write(append(data, '\n')); err != nil {
		return fmt.Errorf("store: write %s: %w", where(c.s, RestoredName), err)
	}
	if _, _, err := w.Commit(); err != nil {
		return fmt.Errorf("store: write %s: %w", where(c.s, RestoredName), err)
	}
	return nil
}

// ReadRestored reads the record of RestoredName; ok is false if there is
// none. A damaged record is ErrCorrupt.
func (c *Checkpoints) ReadRestored(ctx context.Context) (r Restored, ok bool, err error) {
	f, err := c.s.Open(ctx, RestoredName)
	if errors.Is(err, fs.ErrNotExist) {
		return Restored{}, false, nil
	}
	if err != nil {
		return Restored{}, false, fmt.Errorf("store: read %s: %w", where(c.s, RestoredName), err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return Restored{}, false, fmt.Errorf("store: read %s: %w", where(c.s, RestoredName), err)
	}
	if err := json.Unmarshal(data, &r); err != nil || r.Path == "" {
		if err == nil {
			err = errors.New("no path")
		}
		return Restored{}, false, fmt.Errorf("store: %s: %w: %v", where(c.s, RestoredName), ErrCorrupt, err)
	}
	return r, true, nil
}

// RestoredLocation names the record's file in messages.
func (c *Checkpoints) RestoredLocation() string { return where(c.s, RestoredName) }
