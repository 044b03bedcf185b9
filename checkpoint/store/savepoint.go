package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice/checkpoint"
)

// SavepointsDir is the name of a job's default savepoint directory inside
// its checkpoint directory (sluice.Config.SavepointDir): <checkpoint
// dir>/savepoints/savepoint-<id>-<random>. List shows its savepoints with
// the checkpoints.
const SavepointsDir = "savepoints"

// savepointPrefix starts the directory name of every savepoint.
const savepointPrefix = "savepoint-"

// NewSavepoint returns a new, not yet existing savepoint directory
// "savepoint-<id>-<12 random hex digits>" in s, the savepoint root. The
// random part keeps savepoints of different jobs, or of a job that was
// restarted and reuses ids, from colliding in a shared root.
//
// A savepoint is written like a checkpoint, into the returned Snapshot:
// tasks write their state with StateWriter when the barrier of a savepoint
// (checkpoint.KindSavepoint) reaches them, and the savepoint exists once
// WriteMetadata returns. Delete it if the savepoint is aborted. To turn a
// completed checkpoint into a savepoint instead, use Copy.
//
// Because handle paths are relative to the directory, the directory is
// self-contained: move or copy it anywhere and restore it with LoadPath.
func NewSavepoint(s Storage, id int64) (*Snapshot, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	var b [6]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand, Go ≥ 1.24)
	dir := savepointPrefix + strconv.FormatInt(id, 10) + "-" + hex.EncodeToString(b[:])
	return &Snapshot{s: s, dir: dir, id: id}, nil
}

// parseSavepointDir returns the id of a name whose first element is
// "savepoint-<id>-<suffix>".
func parseSavepointDir(name string) (int64, bool) {
	dir, _, _ := strings.Cut(name, "/")
	rest, ok := strings.CutPrefix(dir, savepointPrefix)
	if !ok {
		return 0, false
	}
	digits, suffix, ok := strings.Cut(rest, "-")
	if !ok || suffix == "" {
		return 0, false
	}
	id, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || id < 0 || strconv.FormatInt(id, 10) != digits {
		return 0, false
	}
	return id, true
}

// Copy copies every state file m references from src to dst, verifying each
// on the way, and then writes m as dst's _metadata. Handles are relative to
// their snapshot directory, so they stay valid unchanged, except those of
// shared files (an incremental checkpoint's, SharedDir): those are copied
// into dst too, under the same relative path, and the metadata written
// refers to the copies, so that dst is self-contained (m itself is not
// modified). Set m.Kind to checkpoint.KindSavepoint (on a copy of the
// checkpoint's metadata) to make a savepoint of a checkpoint. dst should be
// new, from NewSavepoint: if Copy fails it deletes dst, so that no partial
// savepoint is left behind.
func Copy(ctx context.Context, dst, src *Snapshot, m *checkpoint.Metadata) (err error) {
	if m == nil {
		return errors.New("store: copy: nil metadata")
	}
	defer func() {
		if err != nil && dst.dir != "" {
			if derr := dst.Delete(context.WithoutCancel(ctx)); derr != nil {
				err = errors.Join(err, fmt.Errorf("store: clean up %s: %w", dst.Location(), derr))
			}
		}
	}()
	for _, h := range handles(m) {
		if err := copyState(ctx, dst, src, h); err != nil {
			return err
		}
	}
	return dst.WriteMetadata(ctx, unshared(m))
}

// unshared returns m with every shared handle turned into one relative to
// the snapshot directory (same path); m itself if it has none.
func unshared(m *checkpoint.Metadata) *checkpoint.Metadata {
	if len(sharedRefs(m)) == 0 {
		return m
	}
	mm := *m
	mm.Operators = make(map[string]*checkpoint.OperatorState, len(m.Operators))
	for uid, op := range m.Operators {
		if op == nil {
			mm.Operators[uid] = nil
			continue
		}
		o := *op
		o.Subtasks = make([]*checkpoint.SubtaskState, len(op.Subtasks))
		for i, st := range op.Subtasks {
			if st == nil {
				continue
			}
			s := *st
			s.Keyed = slices.Clone(st.Keyed)
			for k := range s.Keyed {
				s.Keyed[k].Shared = false
			}
			o.Subtasks[i] = &s
		}
		mm.Operators[uid] = &o
	}
	return &mm
}

func copyState(ctx context.Context, dst, src *Snapshot, h checkpoint.StateHandle) error {
	r, err := src.OpenState(ctx, h)
	if err != nil {
		return err
	}
	defer r.Close()
	w, err := dst.StateWriter(ctx, h.Path) // a shared file keeps its path, now relative to dst
	if err != nil {
		return err
	}
	defer w.Abort()
	if _, err := io.Copy(w, r); err != nil {
		return fmt.Errorf("store: copy %s to %s: %w", h.Path, dst.Location(), err)
	}
	got, err := w.Commit()
	if err != nil {
		return err
	}
	if got.Size != h.Size || got.CRC32C != h.CRC32C {
		// The source verified, so the bytes changed between reading and
		// writing: memory or storage is failing.
		return fmt.Errorf("store: copy %s to %s: %w: wrote %d bytes crc32c %08x, want %d bytes %08x",
			h.Path, dst.Location(), ErrCorrupt, got.Size, got.CRC32C, h.Size, h.CRC32C)
	}
	return nil
}

// OpenPath opens the checkpoint or savepoint at a filesystem path, as given
// to --from-checkpoint: the directory itself (chk-7, savepoint-7-…, or any
// directory a savepoint was moved to) or its _metadata file. It reads
// nothing yet; LoadPath also reads and verifies.
func OpenPath(path string) (*Snapshot, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("store: open checkpoint: %w", err)
	}
	dir := path
	if !fi.IsDir() {
		if filepath.Base(path) != MetadataName {
			return nil, fmt.Errorf("store: open checkpoint %s: not a checkpoint directory or %s file", path, MetadataName)
		}
		dir = filepath.Dir(path)
	}
	s, err := openFS(dir)
	if err != nil {
		return nil, err
	}
	return &Snapshot{s: s, dir: "", id: -1}, nil
}

// LoadPath opens the checkpoint or savepoint at path (see OpenPath), reads
// its metadata and verifies every state file: the first step of a restore
// from --from-checkpoint (docs/design.md §11). The returned Snapshot reads the state
// files. A directory that is a checkpoint root rather than a checkpoint gets
// an error that says so.
func LoadPath(ctx context.Context, path string) (*checkpoint.Metadata, *Snapshot, error) {
	sn, err := OpenPath(path)
	if err != nil {
		return nil, nil, err
	}
	m, err := sn.ReadMetadata(ctx)
	if errors.Is(err, fs.ErrNotExist) {
		if hint := rootHint(ctx, sn.s); hint != "" {
			return nil, nil, fmt.Errorf("store: %s has no %s: %s", sn.Location(), MetadataName, hint)
		}
		return nil, nil, fmt.Errorf("store: %s is not a complete checkpoint or savepoint: %w", sn.Location(), err)
	}
	if err != nil {
		return nil, nil, err
	}
	if err := sn.Verify(ctx, m); err != nil {
		return nil, nil, err
	}
	return m, sn, nil
}

// rootHint explains what to pass instead when s holds checkpoints or
// savepoints rather than being one.
func rootHint(ctx context.Context, s Storage) string {
	ids, err := NewCheckpoints(s).Completed(ctx)
	if err == nil && len(ids) > 0 {
		return fmt.Sprintf("it is a checkpoint root; pass one of its checkpoint directories, e.g. %s",
			filepath.Join(location(s), CheckpointDir(ids[len(ids)-1])))
	}
	names, err := s.List(ctx, savepointPrefix)
	if err == nil {
		for _, n := range names {
			if _, ok := parseSavepointDir(n); ok && strings.HasSuffix(n, "/"+MetadataName) {
				return "it is a savepoint root; pass one of its savepoint directories"
			}
		}
	}
	return ""
}
