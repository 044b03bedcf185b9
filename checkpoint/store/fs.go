package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// FS is the local-filesystem Storage: names map to files under a root
// directory. It is safe for concurrent use.
type FS struct {
	root string
	fsys fsys
}

// NewFS returns a Storage rooted at the directory root, creating it (and its
// parents) if needed. Use one root per job for checkpoints and another for
// savepoints.
func NewFS(root string) (*FS, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("store: checkpoint root %s: %w", root, err)
	}
	if _, err := os.Stat(abs); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(abs, 0o755); err != nil {
			return nil, fmt.Errorf("store: create checkpoint root: %w", err)
		}
		// A first checkpoint must not vanish in a crash with the
		// directory entry of a root created just before it.
		if err := syncDir(filepath.Dir(abs)); err != nil {
			return nil, fmt.Errorf("store: create checkpoint root: %w", err)
		}
	}
	return newFS(abs, osFS{})
}

// openFS returns an FS on an existing directory root without creating it:
// readers (LoadPath, List) must not leave empty directories behind a typo.
func openFS(root string) (*FS, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", root, err)
	}
	return newFS(abs, osFS{})
}

// newFS is NewFS over any fsys; tests pass a crash-simulating or
// fault-injecting one.
func newFS(root string, f fsys) (*FS, error) {
	isDir, err := f.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("store: checkpoint root: %w", err)
	}
	if !isDir {
		return nil, fmt.Errorf("store: checkpoint root %s: not a directory", root)
	}
	return &FS{root: root, fsys: f}, nil
}

// Root returns the absolute path of the directory FS stores under.
func (s *FS) Root() string { return s.root }

// Path returns the filesystem path of name.
func (s *FS) Path(name string) string {
	if name == "" {
		return s.root
	}
	return filepath.Join(s.root, filepath.FromSlash(name))
}

// Create implements Storage. It creates name's directories (fsyncing each new
// directory's parent, so that the directory survives a crash once the file
// is committed) and a temporary file beside name.
func (s *FS) Create(ctx context.Context, name string) (Writer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkName(name); err != nil {
		return nil, fmt.Errorf("store: create %q: %w", name, err)
	}
	dir, base := path.Split(name)
	dir = strings.TrimSuffix(dir, "/")
	if err := s.ensureDir(dir); err != nil {
		return nil, fmt.Errorf("store: create %s: %w", name, err)
	}
	// A random suffix lets a retried write of the same name proceed while
	// the leftover of an earlier attempt still exists.
	tmp := joinName(dir, fmt.Sprintf(".%s.tmp-%016x", base, rand.Uint64()))
	f, err := s.fsys.Create(s.Path(tmp))
	if err != nil {
		return nil, fmt.Errorf("store: create %s: %w", name, err)
	}
	return &fsWriter{
		s:    s,
		name: name,
		tmp:  tmp,
		dir:  dir,
		f:    f,
		bw:   bufio.NewWriterSize(f, 64<<10),
	}, nil
}

// ensureDir creates the directory dir (a name, "" for the root) and its
// missing parents, fsyncing the parent of each directory it creates.
func (s *FS) ensureDir(dir string) error {
	if dir == "" {
		return nil
	}
	p := ""
	for elem := range strings.SplitSeq(dir, "/") {
		parent := p
		p = joinName(p, elem)
		err := s.fsys.Mkdir(s.Path(p))
		switch {
		case err == nil:
			if err := s.fsys.SyncDir(s.Path(parent)); err != nil {
				return err
			}
		case errors.Is(err, fs.ErrExist):
			// Already there (or a file is in the way: then creating
			// the file below fails with ENOTDIR, naming the path).
		default:
			return err
		}
	}
	return nil
}

// Open implements Storage.
func (s *FS) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkName(name); err != nil {
		return nil, fmt.Errorf("store: open %q: %w", name, err)
	}
	r, err := s.fsys.Open(s.Path(name))
	if err != nil {
		return nil, fmt.Errorf("store: %w", err) // a PathError: it names the file
	}
	return r, nil
}

// List implements Storage. It reads only the directory the prefix ends in
// and the subdirectories that match, so listing "chk-" costs one directory
// read per checkpoint.
func (s *FS) List(ctx context.Context, prefix string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkPrefix(prefix); err != nil {
		return nil, fmt.Errorf("store: list %q: %w", prefix, err)
	}
	dir, base := splitPrefix(prefix)
	entries, err := s.fsys.ReadDir(s.Path(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: list %q: %w", prefix, err)
	}
	var names []string
	if base == "" && dir != "" && len(entries) == 0 {
		names = append(names, dir+"/")
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.name, base) {
			continue
		}
		name := joinName(dir, e.name)
		if !e.dir {
			names = append(names, name)
			continue
		}
		if names, err = s.walk(ctx, name, names); err != nil {
			return nil, fmt.Errorf("store: list %q: %w", prefix, err)
		}
	}
	slices.Sort(names)
	return names, nil
}

// walk appends every file under the directory name to names, and name+"/"
// if the directory is empty.
func (s *FS) walk(ctx context.Context, name string, names []string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	entries, err := s.fsys.ReadDir(s.Path(name))
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return append(names, name+"/"), nil
	}
	for _, e := range entries {
		child := name + "/" + e.name
		if !e.dir {
			names = append(names, child)
			continue
		}
		if names, err = s.walk(ctx, child, names); err != nil {
			return nil, err
		}
	}
	return names, nil
}

// DeleteAll implements Storage. A prefix ending in "/" removes that
// directory itself too, so that, as in an object store, nothing remains of
// it.
func (s *FS) DeleteAll(ctx context.Context, prefix string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkPrefix(prefix); err != nil {
		return fmt.Errorf("store: delete %q: %w", prefix, err)
	}
	dir, base := splitPrefix(prefix)
	if base == "" && dir != "" {
		if err := s.fsys.RemoveAll(s.Path(dir)); err != nil {
			return fmt.Errorf("store: delete %q: %w", prefix, err)
		}
		parent, _ := splitPrefix(dir)
		if err := s.fsys.SyncDir(s.Path(parent)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("store: delete %q: %w", prefix, err)
		}
		return nil
	}
	entries, err := s.fsys.ReadDir(s.Path(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: delete %q: %w", prefix, err)
	}
	removed := false
	for _, e := range entries {
		if !strings.HasPrefix(e.name, base) {
			continue
		}
		if err := s.fsys.RemoveAll(s.Path(joinName(dir, e.name))); err != nil {
			return fmt.Errorf("store: delete %q: %w", prefix, err)
		}
		removed = true
	}
	if removed {
		if err := s.fsys.SyncDir(s.Path(dir)); err != nil {
			return fmt.Errorf("store: delete %q: %w", prefix, err)
		}
	}
	return nil
}

// Delete removes the committed file name exactly (DeleteAll removes by
// prefix), durably. A missing file is not an error. The checkpoint store
// uses it for shared files when the Storage has it.
func (s *FS) Delete(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkName(name); err != nil {
		return fmt.Errorf("store: delete %q: %w", name, err)
	}
	if err := s.fsys.Remove(s.Path(name)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("store: delete %q: %w", name, err)
	}
	dir, _ := splitPrefix(name)
	if err := s.fsys.SyncDir(s.Path(dir)); err != nil {
		return fmt.Errorf("store: delete %q: %w", name, err)
	}
	return nil
}

// splitPrefix splits a prefix into the directory it lies in ("" for the
// root) and the part of an entry name it constrains.
func splitPrefix(prefix string) (dir, base string) {
	i := strings.LastIndexByte(prefix, '/')
	if i < 0 {
		return "", prefix
	}
	return prefix[:i], prefix[i+1:]
}

// fsWriter is FS's Writer: a buffered temporary file whose size and CRC32C
// are computed as it is written.
type fsWriter struct {
	s         *FS
	name, tmp string
	dir       string
	f         file
	bw        *bufio.Writer
	n         int64
	crc       uint32
	err       error // sticky: the first failure, after which the writer is dead
	done      bool  // committed or aborted
}

var errWriterDone = errors.New("writer already committed or aborted")

func (w *fsWriter) Write(p []byte) (int, error) {
	if w.done {
		return 0, fmt.Errorf("store: write %s: %w", w.name, errWriterDone)
	}
	if w.err != nil {
		return 0, w.err
	}
	n, err := w.bw.Write(p)
	w.n += int64(n)
	w.crc = crc32.Update(w.crc, castagnoli, p[:n])
	if err != nil {
		w.fail(fmt.Errorf("store: write %s: %w", w.name, err))
		return n, w.err
	}
	return n, nil
}

// fail records err and deletes the temporary file at once: when the disk
// is full, holding on to a dead partial file only makes things worse.
func (w *fsWriter) fail(err error) {
	w.err = err
	w.discard()
}

func (w *fsWriter) discard() {
	if w.f != nil {
		_ = w.f.Close()
		w.f = nil
	}
	_ = w.s.fsys.Remove(w.s.Path(w.tmp))
}

func (w *fsWriter) Commit() (int64, uint32, error) {
	if w.done {
		return 0, 0, fmt.Errorf("store: commit %s: %w", w.name, errWriterDone)
	}
	w.done = true
	if w.err != nil {
		return 0, 0, w.err
	}
	if err := w.commit(); err != nil {
		w.fail(fmt.Errorf("store: commit %s: %w", w.name, err))
		return 0, 0, w.err
	}
	return w.n, w.crc, nil
}

func (w *fsWriter) commit() error {
	if err := w.bw.Flush(); err != nil {
		return err
	}
	if err := w.f.Sync(); err != nil {
		return err
	}
	err := w.f.Close()
	w.f = nil
	if err != nil {
		return err
	}
	if err := w.s.fsys.Rename(w.s.Path(w.tmp), w.s.Path(w.name)); err != nil {
		return err
	}
	if err := w.s.fsys.SyncDir(w.s.Path(w.dir)); err != nil {
		// The file is visible but its name may not survive a crash. Take
		// it away again so that a failed Commit never leaves a file that
		// a reader could mistake for a durable one (a _metadata above
		// all).
		if rerr := w.s.fsys.Remove(w.s.Path(w.name)); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			return errors.Join(err, fmt.Errorf("and could not remove the undurable file: %w", rerr))
		}
		return err
	}
	return nil
}

func (w *fsWriter) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	if w.err != nil {
		return nil // already discarded
	}
	var cerr error
	if w.f != nil {
		cerr = w.f.Close()
		w.f = nil
	}
	if err := w.s.fsys.Remove(w.s.Path(w.tmp)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("store: abort %s: %w", w.name, err)
	}
	if cerr != nil {
		return fmt.Errorf("store: abort %s: %w", w.name, cerr)
	}
	return nil
}

// fsys is the slice of a filesystem FS uses, so that tests can substitute a
// crash-simulating or fault-injecting one (the idea of Pebble's vfs). Paths
// are filesystem paths.
type fsys interface {
	// Mkdir creates one directory; an existing one is an fs.ErrExist error.
	Mkdir(path string) error
	// Create creates a new file exclusively, for writing.
	Create(path string) (file, error)
	// Open opens a file for reading.
	Open(path string) (io.ReadCloser, error)
	// Stat reports whether path exists and is a directory.
	Stat(path string) (isDir bool, err error)
	// ReadDir lists a directory, sorted by name.
	ReadDir(path string) ([]dirEntry, error)
	// Rename renames a file, replacing newpath atomically.
	Rename(oldpath, newpath string) error
	// Remove removes a file or an empty directory.
	Remove(path string) error
	// RemoveAll removes path and everything under it; a missing path is
	// not an error.
	RemoveAll(path string) error
	// SyncDir fsyncs a directory, making the creation, renaming and
	// removal of its entries durable.
	SyncDir(path string) error
}

// file is a file open for writing.
type file interface {
	io.Writer
	Sync() error
	Close() error
}

type dirEntry struct {
	name string
	dir  bool
}

// osFS is the fsys of the operating system.
type osFS struct{}

func (osFS) Mkdir(p string) error { return os.Mkdir(p, 0o755) }

func (osFS) Create(p string) (file, error) {
	return os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
}

func (osFS) Open(p string) (io.ReadCloser, error) { return os.Open(p) }

func (osFS) Stat(p string) (bool, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return false, err
	}
	return fi.IsDir(), nil
}

func (osFS) ReadDir(p string) ([]dirEntry, error) {
	des, err := os.ReadDir(p)
	if err != nil {
		return nil, err
	}
	out := make([]dirEntry, len(des))
	for i, de := range des {
		out[i] = dirEntry{name: de.Name(), dir: de.IsDir()}
	}
	return out, nil
}

func (osFS) Rename(o, n string) error { return os.Rename(o, n) }
func (osFS) Remove(p string) error    { return os.Remove(p) }
func (osFS) RemoveAll(p string) error { return os.RemoveAll(p) }
func (osFS) SyncDir(p string) error   { return syncDir(p) }

// syncDir fsyncs the directory p. Without it a rename or a new entry may
// be lost in a crash even though the file's data was synced.
func syncDir(p string) error {
	d, err := os.Open(p)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
