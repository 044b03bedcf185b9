package runtime

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/checkpoint/store"
)

// StateOptions configures how keyed state is checkpointed and restored
// (docs/design.md §4): sluice.Config.State, as the runtime needs it.
type StateOptions struct {
	// Incremental writes a checkpoint whose keyed snapshot implements
	// IncrementalSnapshot with WriteIncremental, into the shared area of
	// checkpoint storage (store.SharedDir). Savepoints are always written
	// with WriteKeyGroups, complete and self-contained.
	Incremental bool
	// LocalRecovery keeps a task-local copy of every operator subtask's
	// keyed state files of the latest completed checkpoint under LocalDir,
	// and restores that checkpoint from it where the copy verifies.
	LocalRecovery bool
	// LocalDir is the root of the operator subtasks' local directories
	// (OperatorContext.LocalDir is LocalDir/<uid>-<subtask>). Default: a
	// sibling "local/<job>" of an FS checkpoint root, else a directory
	// under os.TempDir().
	LocalDir string
}

// defaultLocalDir is StateOptions.LocalDir's default.
func defaultLocalDir(s store.Storage, job string) string {
	if f, ok := s.(*store.FS); ok {
		return filepath.Join(filepath.Dir(f.Root()), "local", safeName(job))
	}
	return filepath.Join(os.TempDir(), "sluice-local", safeName(job))
}

// safeName makes s usable as one path element.
func safeName(s string) string {
	if s == "" || s == "." || s == ".." {
		return "_" + s
	}
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == 0 {
			return '_'
		}
		return r
	}, s)
}

// localDir returns operator subtask uid/sub's local directory.
func (j *Job) localDir(uid string, sub int) string {
	return filepath.Join(j.cfg.State.LocalDir, safeName(uid)+"-"+strconv.Itoa(sub))
}

// localCheckpointDir is where the local copy of checkpoint id's files of
// one operator subtask lives, inside its local directory.
func localCheckpointDir(base string, id int64) string {
	return filepath.Join(base, "checkpoints", store.CheckpointDir(id))
}

// localName is a state file's name in a local checkpoint directory:
// shared and private files apart, since their paths are relative to
// different directories.
func localName(h checkpoint.StateHandle) string {
	if h.Shared {
		return filepath.Join("s", filepath.FromSlash(h.Path))
	}
	return filepath.Join("p", filepath.FromSlash(h.Path))
}

// writeKeyed writes one operator subtask's keyed snapshot for checkpoint
// or savepoint cp and returns its handles and the bytes it wrote (an
// incremental checkpoint writes only what changed).
func (a *attempt) writeKeyed(cp int64, uid string, sub int, ks KeyedSnapshot) ([]checkpoint.StateHandle, int64, error) {
	sp := a.savepoint(cp)
	var lc *localCopy
	if sp == nil && a.j.cfg.State.LocalRecovery {
		lc = a.j.newLocalCopy(uid, sub, cp)
	}
	if inc, ok := ks.(IncrementalSnapshot); ok && sp == nil && a.j.cfg.State.Incremental {
		sw := &sharedWriter{a: a, dir: store.SharedPrefix(safeName(uid), sub, a.runID), local: lc}
		hs, err := inc.WriteIncremental(a.ctx, sw)
		if err != nil {
			return nil, 0, err
		}
		lc.complete(hs)
		return hs, sw.written, nil
	}
	name := fmt.Sprintf("%s-%d.keyed", uid, sub)
	var w *store.StateWriter
	var err error
	if sp != nil {
		w, err = sp.StateWriter(a.ctx, name)
	} else {
		w, err = a.j.cfg.Store.StateWriter(a.ctx, cp, name)
	}
	if err != nil {
		return nil, 0, err
	}
	lf := lc.create()
	offsets, err := ks.WriteKeyGroups(lf.tee(w))
	if err != nil {
		_ = w.Abort()
		lf.abort()
		return nil, 0, err
	}
	h, err := w.Commit()
	if err != nil {
		lf.abort()
		return nil, 0, err
	}
	h.KeyGroupOffsets = offsets
	lf.commit(h)
	lc.complete([]checkpoint.StateHandle{h})
	return []checkpoint.StateHandle{h}, h.Size, nil
}

// sharedWriter is the runtime's SharedWriter: shared files of one operator
// subtask in this run's directory of the storage's shared area, each also
// copied locally for local recovery.
type sharedWriter struct {
	a       *attempt
	dir     string
	local   *localCopy
	written int64
}

func (s *sharedWriter) Create(name string) (SharedFile, error) {
	w, err := s.a.j.cfg.Store.SharedWriter(s.a.ctx, s.dir, name)
	if err != nil {
		return nil, err
	}
	return &sharedFile{s: s, w: w, lf: s.local.create()}, nil
}

type sharedFile struct {
	s  *sharedWriter
	w  *store.StateWriter
	lf *localFile
	tw io.Writer
}

func (f *sharedFile) Write(p []byte) (int, error) {
	if f.tw == nil {
		f.tw = f.lf.tee(f.w)
	}
	return f.tw.Write(p)
}

func (f *sharedFile) Commit() (checkpoint.StateHandle, error) {
	h, err := f.w.Commit()
	if err != nil {
		f.lf.abort()
		return h, err
	}
	f.s.written += h.Size
	f.lf.commit(h)
	return h, nil
}

func (f *sharedFile) Abort() error {
	f.lf.abort()
	return f.w.Abort()
}

// localCopy is the task-local copy of one operator subtask's keyed state
// files of one checkpoint (local recovery). Failing to write it is logged
// and costs only the local copy: the checkpoint does not depend on it. A nil
// *localCopy does nothing.
type localCopy struct {
	log  *slog.Logger
	base string // the operator subtask's local directory
	dir  string // its local checkpoint directory
	id   int64
}

// newLocalCopy starts the local copy of checkpoint id of uid/sub, first
// deleting the local copies older than the latest completed checkpoint.
func (j *Job) newLocalCopy(uid string, sub int, id int64) *localCopy {
	base := j.localDir(uid, sub)
	lc := &localCopy{log: j.log.With("operator", uid, "subtask", sub, "checkpoint", id), base: base,
		dir: localCheckpointDir(base, id), id: id}
	lc.prune(j.lastCompleted.Load())
	return lc
}

// prune deletes the local copies of checkpoints below keep.
func (lc *localCopy) prune(keep int64) {
	entries, err := os.ReadDir(filepath.Join(lc.base, "checkpoints"))
	if err != nil {
		return
	}
	for _, e := range entries {
		id, ok := parseLocalID(e.Name())
		if ok && id < keep && id != lc.id {
			if err := os.RemoveAll(filepath.Join(lc.base, "checkpoints", e.Name())); err != nil {
				lc.log.Warn("local recovery: could not delete an old local state copy", "dir", e.Name(), "err", err)
			}
		}
	}
}

func parseLocalID(name string) (int64, bool) {
	digits, ok := strings.CutPrefix(name, "chk-")
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseInt(digits, 10, 64)
	return id, err == nil && id >= 0
}

// localFile is one file of a local copy being written beside its upload.
type localFile struct {
	lc  *localCopy
	f   *os.File
	tmp string
	err error
}

func (lc *localCopy) create() *localFile {
	if lc == nil {
		return nil
	}
	lf := &localFile{lc: lc}
	if err := os.MkdirAll(lc.dir, 0o755); err != nil {
		lf.fail(err)
		return lf
	}
	f, err := os.CreateTemp(lc.dir, ".write-*")
	if err != nil {
		lf.fail(err)
		return lf
	}
	lf.f, lf.tmp = f, f.Name()
	return lf
}

func (lf *localFile) fail(err error) {
	if lf.err == nil {
		lf.err = err
		lf.lc.log.Warn("local recovery: could not write the local state copy; a restore will read checkpoint storage", "err", err)
	}
	if lf.f != nil {
		_ = lf.f.Close()
		_ = os.Remove(lf.tmp)
		lf.f = nil
	}
}

// tee returns a writer that writes to w and, while it works, the local
// file. Only w's errors are returned.
func (lf *localFile) tee(w io.Writer) io.Writer {
	if lf == nil || lf.f == nil {
		return w
	}
	return teeWriter{w: w, lf: lf}
}

type teeWriter struct {
	w  io.Writer
	lf *localFile
}

func (t teeWriter) Write(p []byte) (int, error) {
	n, err := t.w.Write(p)
	if t.lf.f != nil && n > 0 {
		if _, lerr := t.lf.f.Write(p[:n]); lerr != nil {
			t.lf.fail(lerr)
		}
	}
	return n, err
}

// commit gives the local file the name of the uploaded file h.
func (lf *localFile) commit(h checkpoint.StateHandle) {
	if lf == nil || lf.f == nil {
		return
	}
	f := lf.f
	lf.f = nil
	if err := f.Close(); err != nil {
		lf.fail(err)
		return
	}
	dst := filepath.Join(lf.lc.dir, localName(h))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		lf.fail(err)
		return
	}
	if err := os.Rename(lf.tmp, dst); err != nil {
		lf.fail(err)
	}
}

func (lf *localFile) abort() {
	if lf != nil && lf.f != nil {
		_ = lf.f.Close()
		_ = os.Remove(lf.tmp)
		lf.f = nil
	}
}

// complete links into the local copy every file of hs it lacks (files an
// incremental checkpoint reuses) from the local copy of an earlier
// checkpoint, newest first. A file found nowhere is left out: a restore
// reads it from checkpoint storage.
func (lc *localCopy) complete(hs []checkpoint.StateHandle) {
	if lc == nil {
		return
	}
	var older []int64
	if entries, err := os.ReadDir(filepath.Join(lc.base, "checkpoints")); err == nil {
		for _, e := range entries {
			if id, ok := parseLocalID(e.Name()); ok && id != lc.id {
				older = append(older, id)
			}
		}
	}
	slices.Sort(older)
	for _, h := range hs {
		dst := filepath.Join(lc.dir, localName(h))
		if _, err := os.Stat(dst); err == nil {
			continue
		}
		for _, id := range slices.Backward(older) {
			src := filepath.Join(localCheckpointDir(lc.base, id), localName(h))
			if _, err := os.Stat(src); err != nil {
				continue
			}
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err == nil {
				if err := os.Link(src, dst); err != nil {
					lc.log.Debug("local recovery: could not link a reused state file", "file", h.Path, "err", err)
				}
			}
			break
		}
	}
}

// readLocal reads the local copy of h in the local checkpoint directory
// dir and verifies its size and CRC32C. A missing copy is fs.ErrNotExist.
func readLocal(dir string, h checkpoint.StateHandle) ([]byte, error) {
	data, err := os.ReadFile(filepath.Join(dir, localName(h)))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) != h.Size {
		return nil, fmt.Errorf("%w: local copy of %s: %d bytes, want %d", store.ErrCorrupt, h.Path, len(data), h.Size)
	}
	if c := crc32.Checksum(data, castagnoli); c != h.CRC32C {
		return nil, fmt.Errorf("%w: local copy of %s: crc32c %08x, want %08x", store.ErrCorrupt, h.Path, c, h.CRC32C)
	}
	return data, nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// fetchTo copies the state file of h to dst, from the local copy when
// local (nil for none) finds one that verifies, else from src,
// verifying size and CRC32C (store.ErrCorrupt otherwise): RestoredKeyed.Fetch.
func fetchTo(ctx context.Context, log *slog.Logger, src *store.Snapshot, local func(checkpoint.StateHandle) ([]byte, error), h checkpoint.StateHandle, dst string) error {
	if local != nil {
		data, err := local(h)
		if err == nil {
			return writeLocalFile(dst, func(w io.Writer) error { _, err := w.Write(data); return err })
		}
		logLocalMiss(ctx, log, h, err)
	}
	r, err := src.OpenState(ctx, h)
	if err != nil {
		return err
	}
	defer r.Close()
	return writeLocalFile(dst, func(w io.Writer) error { _, err := io.Copy(w, r); return err })
}

// logLocalMiss says that a restore reads checkpoint storage instead of the
// local copy: WARN when the copy is there but does not verify.
func logLocalMiss(ctx context.Context, log *slog.Logger, h checkpoint.StateHandle, err error) {
	if errors.Is(err, fs.ErrNotExist) {
		log.InfoContext(ctx, "local recovery: no local copy of a state file; reading checkpoint storage", "file", h.Path)
		return
	}
	log.WarnContext(ctx, "local recovery: the local copy of a state file does not verify; reading checkpoint storage", "file", h.Path, "err", err)
}

// writeLocalFile writes dst through a temporary file beside it.
func writeLocalFile(dst string, fill func(io.Writer) error) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(dst), ".fetch-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = fill(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("fetch state file to %s: %w", dst, err)
	}
	return nil
}

// localVouch returns, with local recovery, the function that vouches for
// a state file of a checkpoint that has a verified task-local copy in some
// operator subtask's local directory of the plan (store.LatestVouched):
// checkpoint storage is then not read for it at all. Nil without local
// recovery.
func (j *Job) localVouch() func(id int64, h checkpoint.StateHandle) bool {
	if !j.cfg.State.LocalRecovery {
		return nil
	}
	return func(id int64, h checkpoint.StateHandle) bool {
		_, err := j.readLocalAny(id, "", -1, h)
		return err == nil
	}
}

// readLocalAny reads the verified local copy of h of checkpoint id: from
// operator subtask uid/sub's local directory first, then from any other of
// the plan's (after a rescale a file may be another subtask's). The error
// is fs.ErrNotExist if there is no copy, else why the first copy found does
// not verify.
func (j *Job) readLocalAny(id int64, uid string, sub int, h checkpoint.StateHandle) ([]byte, error) {
	dirs := []string{}
	if sub >= 0 {
		dirs = append(dirs, localCheckpointDir(j.localDir(uid, sub), id))
	}
	for _, v := range j.plan.Vertices {
		uids := v.UIDs
		if len(uids) == 0 {
			uids = []string{v.UID}
		}
		for _, u := range uids {
			for s := range v.Parallelism {
				if u != uid || s != sub {
					dirs = append(dirs, localCheckpointDir(j.localDir(u, s), id))
				}
			}
		}
	}
	var first error
	for _, dir := range dirs {
		if _, err := os.Stat(filepath.Join(dir, localName(h))); err != nil {
			continue
		}
		data, err := readLocal(dir, h)
		if err == nil {
			return data, nil
		}
		if first == nil {
			first = err
		}
	}
	if first == nil {
		first = fmt.Errorf("local copy of %s: %w", h.Path, fs.ErrNotExist)
	}
	return nil, first
}
