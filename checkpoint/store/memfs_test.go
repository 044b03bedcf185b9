package store

import (
	"bytes"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
)

// memFS is an in-memory fsys that, like Pebble's vfs.NewStrictMem, remembers
// what has been made durable: file contents on Sync, directory entries on
// SyncDir of their directory. Crash throws away everything else, so a test
// can check that what the store reported as committed survives a power cut.
type memFS struct {
	mu      sync.Mutex
	cur     map[string]*memNode // path → node, as a process sees it
	durable map[string]*memNode // path → node, as a crash would leave it
	gen     int                 // bumped by Crash; older file handles die
}

type memNode struct {
	dir    bool
	data   []byte // current contents
	synced []byte // contents as of the last Sync
}

func newMemFS(dirs ...string) *memFS {
	m := &memFS{cur: map[string]*memNode{}, durable: map[string]*memNode{}}
	root := &memNode{dir: true}
	m.cur["/"], m.durable["/"] = root, root
	for _, d := range dirs {
		p := "/"
		for elem := range strings.SplitSeq(strings.Trim(d, "/"), "/") {
			p = filepath.Join(p, elem)
			if m.cur[p] == nil {
				n := &memNode{dir: true}
				m.cur[p], m.durable[p] = n, n
			}
		}
	}
	return m
}

func perr(op, p string, errno syscall.Errno) error {
	return &fs.PathError{Op: op, Path: p, Err: errno}
}

// parentDir checks that p's parent exists and is a directory.
func (m *memFS) parentDir(op, p string) error {
	n := m.cur[filepath.Dir(p)]
	if n == nil {
		return perr(op, p, syscall.ENOENT)
	}
	if !n.dir {
		return perr(op, p, syscall.ENOTDIR)
	}
	return nil
}

func (m *memFS) Mkdir(p string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.parentDir("mkdir", p); err != nil {
		return err
	}
	if m.cur[p] != nil {
		return perr("mkdir", p, syscall.EEXIST)
	}
	m.cur[p] = &memNode{dir: true}
	return nil
}

func (m *memFS) Create(p string) (file, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.parentDir("open", p); err != nil {
		return nil, err
	}
	if m.cur[p] != nil {
		return nil, perr("open", p, syscall.EEXIST)
	}
	n := &memNode{}
	m.cur[p] = n
	return &memFile{m: m, n: n, path: p, gen: m.gen}, nil
}

func (m *memFS) Open(p string) (io.ReadCloser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.cur[p]
	switch {
	case n == nil:
		return nil, perr("open", p, syscall.ENOENT)
	case n.dir:
		return nil, perr("read", p, syscall.EISDIR)
	}
	return io.NopCloser(bytes.NewReader(bytes.Clone(n.data))), nil
}

func (m *memFS) Stat(p string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.cur[p]
	if n == nil {
		return false, perr("stat", p, syscall.ENOENT)
	}
	return n.dir, nil
}

func (m *memFS) ReadDir(p string) ([]dirEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.cur[p]
	switch {
	case n == nil:
		return nil, perr("open", p, syscall.ENOENT)
	case !n.dir:
		return nil, perr("readdirent", p, syscall.ENOTDIR)
	}
	var out []dirEntry
	for q, c := range m.cur {
		if q != "/" && filepath.Dir(q) == p {
			out = append(out, dirEntry{name: filepath.Base(q), dir: c.dir})
		}
	}
	slices.SortFunc(out, func(a, b dirEntry) int { return strings.Compare(a.name, b.name) })
	return out, nil
}

func (m *memFS) Rename(o, n string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	src := m.cur[o]
	if src == nil {
		return perr("rename", o, syscall.ENOENT)
	}
	if src.dir {
		return perr("rename", o, syscall.EINVAL) // the store never renames directories
	}
	if err := m.parentDir("rename", n); err != nil {
		return err
	}
	if dst := m.cur[n]; dst != nil && dst.dir {
		return perr("rename", n, syscall.EISDIR)
	}
	m.cur[n] = src
	delete(m.cur, o)
	return nil
}

func (m *memFS) Remove(p string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.cur[p]
	if n == nil {
		return perr("remove", p, syscall.ENOENT)
	}
	if n.dir {
		for q := range m.cur {
			if strings.HasPrefix(q, p+"/") {
				return perr("remove", p, syscall.ENOTEMPTY)
			}
		}
	}
	delete(m.cur, p)
	return nil
}

func (m *memFS) RemoveAll(p string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for q := range m.cur {
		if q == p || strings.HasPrefix(q, p+"/") {
			delete(m.cur, q)
		}
	}
	return nil
}

func (m *memFS) SyncDir(p string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.cur[p]
	if n == nil {
		return perr("fsync", p, syscall.ENOENT)
	}
	if !n.dir {
		return perr("fsync", p, syscall.ENOTDIR)
	}
	for q, d := range m.durable {
		if q == "/" || filepath.Dir(q) != p || m.cur[q] == d {
			continue
		}
		delete(m.durable, q)
		if d.dir {
			// A removed or replaced directory takes its durable
			// entries with it; they must not reappear under a new
			// directory of the same name.
			for r := range m.durable {
				if strings.HasPrefix(r, q+"/") {
					delete(m.durable, r)
				}
			}
		}
	}
	for q, c := range m.cur {
		if q != "/" && filepath.Dir(q) == p {
			m.durable[q] = c
		}
	}
	return nil
}

// Crash simulates a power cut: only durable entries reachable from the root
// remain, with their synced contents, and open files stop working.
func (m *memFS) Crash() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gen++
	m.cur = map[string]*memNode{}
	for p, n := range m.durable {
		reachable := true
		for q := p; q != "/"; {
			q = filepath.Dir(q)
			if m.durable[q] == nil {
				reachable = false
				break
			}
		}
		if !reachable {
			continue
		}
		if !n.dir {
			n.data = bytes.Clone(n.synced)
		}
		m.cur[p] = n
	}
}

// Files returns the paths of every file under dir, for assertions.
func (m *memFS) Files(dir string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for p, n := range m.cur {
		if !n.dir && strings.HasPrefix(p, dir+"/") {
			out = append(out, strings.TrimPrefix(p, dir+"/"))
		}
	}
	slices.Sort(out)
	return out
}

type memFile struct {
	m      *memFS
	n      *memNode
	path   string
	gen    int
	closed bool
}

func (f *memFile) check(op string) error {
	if f.closed || f.gen != f.m.gen {
		return perr(op, f.path, syscall.EBADF)
	}
	return nil
}

func (f *memFile) Write(p []byte) (int, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.check("write"); err != nil {
		return 0, err
	}
	f.n.data = append(f.n.data, p...)
	return len(p), nil
}

func (f *memFile) Sync() error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.check("sync"); err != nil {
		return err
	}
	f.n.synced = bytes.Clone(f.n.data)
	return nil
}

func (f *memFile) Close() error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.check("close"); err != nil {
		return err
	}
	f.closed = true
	return nil
}

// faultFS wraps an fsys to inject failures: writes fail with ENOSPC once
// the byte budget is spent (a full disk), and hook may fail any operation.
type faultFS struct {
	fsys
	mu     sync.Mutex
	budget int64 // bytes that may still be written; < 0 means unlimited
	// hook, if set, is called before every operation with its name
	// ("mkdir", "create", "open", "rename", "remove", "removeall",
	// "syncdir", "sync", "close") and path; a non-nil result fails it.
	hook func(op, path string) error
}

func newFaultFS(inner fsys) *faultFS { return &faultFS{fsys: inner, budget: -1} }

func (f *faultFS) inject(op, p string) error {
	f.mu.Lock()
	hook := f.hook
	f.mu.Unlock()
	if hook != nil {
		return hook(op, p)
	}
	return nil
}

// setBudget sets how many more bytes may be written before ENOSPC.
func (f *faultFS) setBudget(n int64) {
	f.mu.Lock()
	f.budget = n
	f.mu.Unlock()
}

func (f *faultFS) setHook(h func(op, path string) error) {
	f.mu.Lock()
	f.hook = h
	f.mu.Unlock()
}

func (f *faultFS) Mkdir(p string) error {
	if err := f.inject("mkdir", p); err != nil {
		return err
	}
	return f.fsys.Mkdir(p)
}

func (f *faultFS) Create(p string) (file, error) {
	if err := f.inject("create", p); err != nil {
		return nil, err
	}
	inner, err := f.fsys.Create(p)
	if err != nil {
		return nil, err
	}
	return &faultFile{f: f, file: inner, path: p}, nil
}

func (f *faultFS) Open(p string) (io.ReadCloser, error) {
	if err := f.inject("open", p); err != nil {
		return nil, err
	}
	return f.fsys.Open(p)
}

func (f *faultFS) Rename(o, n string) error {
	if err := f.inject("rename", n); err != nil {
		return err
	}
	return f.fsys.Rename(o, n)
}

func (f *faultFS) Remove(p string) error {
	if err := f.inject("remove", p); err != nil {
		return err
	}
	return f.fsys.Remove(p)
}

func (f *faultFS) RemoveAll(p string) error {
	if err := f.inject("removeall", p); err != nil {
		return err
	}
	return f.fsys.RemoveAll(p)
}

func (f *faultFS) SyncDir(p string) error {
	if err := f.inject("syncdir", p); err != nil {
		return err
	}
	return f.fsys.SyncDir(p)
}

type faultFile struct {
	f *faultFS
	file
	path string
}

func (ff *faultFile) Write(p []byte) (int, error) {
	ff.f.mu.Lock()
	allowed := int64(len(p))
	if ff.f.budget >= 0 {
		allowed = min(allowed, ff.f.budget)
		ff.f.budget -= allowed
	}
	ff.f.mu.Unlock()
	n, err := ff.file.Write(p[:allowed])
	if err == nil && n < len(p) {
		err = perr("write", ff.path, syscall.ENOSPC)
	}
	return n, err
}

func (ff *faultFile) Sync() error {
	if err := ff.f.inject("sync", ff.path); err != nil {
		return err
	}
	return ff.file.Sync()
}

func (ff *faultFile) Close() error {
	if err := ff.f.inject("close", ff.path); err != nil {
		return err
	}
	return ff.file.Close()
}
