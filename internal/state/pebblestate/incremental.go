package pebblestate

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/internal/runtime"
	"github.com/sluicehq/sluice/internal/state/heap"
	"github.com/sluicehq/sluice/state"
)

// Native checkpoint formats (checkpoint.StateHandle.Format).
const (
	// FormatSST is an immutable Pebble file (table or blob file), uploaded
	// once and shared by every later checkpoint that still has it.
	FormatSST = "pebble-sst"
	// FormatMeta is the small self-describing file of one checkpoint: the
	// key-group range, the table files with their checksums and, inline,
	// the files that reopen the DB (MANIFEST, OPTIONS, markers).
	FormatMeta = "pebble-meta"
)

// IsNative reports whether format is one of this backend's native formats.
func IsNative(format string) bool { return format == FormatSST || format == FormatMeta }

var (
	errCorrupt             = fmt.Errorf("%w: native checkpoint", state.ErrCorrupt)
	errIncompatibleRestore = fmt.Errorf("%w: %w", state.ErrIncompatible, checkpoint.ErrIncompatible)
)

// tableFile matches the immutable files of a Pebble DB.
var tableFile = regexp.MustCompile(`^[0-9]+\.(sst|blob)$`)

// maxInline bounds a file carried inside the meta file.
const maxInline = 64 << 20

// incremental is what a backend remembers across checkpoints about the
// files it uploaded. It is shared with the snapshots' writers.
type incremental struct {
	mu    sync.Mutex
	token string // distinguishes this backend's uploads
	seq   int64  // numbers local checkpoint directories
	// confirmed are the tables of the last checkpoint known complete (or
	// restored), by file name: only their handles are reused, since a
	// file uploaded by a checkpoint that never completed may be deleted.
	confirmed map[string]checkpoint.StateHandle
	// pending are the tables of checkpoints written but not yet confirmed.
	pending map[int64]map[string]checkpoint.StateHandle
	// uploaded counts the bytes WriteIncremental uploaded (a metric).
	uploaded int64
}

func newIncremental() *incremental {
	var t [4]byte
	rand.Read(t[:])
	return &incremental{
		token:     hex.EncodeToString(t[:]),
		confirmed: make(map[string]checkpoint.StateHandle),
		pending:   make(map[int64]map[string]checkpoint.StateHandle),
	}
}

// metaFile is the content of a FormatMeta file.
type metaFile struct {
	Version        int                      `json:"version"`
	CheckpointID   int64                    `json:"checkpointId"`
	MaxParallelism int                      `json:"maxParallelism"`
	KeyGroups      checkpoint.KeyGroupRange `json:"keyGroups"`
	KeyCodec       string                   `json:"keyCodec"`
	Tables         []metaTable              `json:"tables"`
	Files          []metaInline             `json:"files"`
}

type metaTable struct {
	Name   string `json:"name"`
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	CRC32C uint32 `json:"crc32c"`
}

type metaInline struct {
	Name string `json:"name"`
	Data []byte `json:"data"`
}

const metaMagic = "SLPM"

func encodeMetaFile(m *metaFile) ([]byte, error) {
	body, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	out := append([]byte(metaMagic), 1)
	out = binary.AppendUvarint(out, uint64(len(body)))
	out = append(out, body...)
	return binary.LittleEndian.AppendUint32(out, crc32.Checksum(out, castagnoli)), nil
}

func decodeMetaFile(p []byte) (*metaFile, error) {
	if len(p) < len(metaMagic)+1+4 || string(p[:len(metaMagic)]) != metaMagic {
		return nil, errors.New("not a pebble-meta file")
	}
	if p[len(metaMagic)] != 1 {
		return nil, fmt.Errorf("pebble-meta version %d, this code reads 1", p[len(metaMagic)])
	}
	if binary.LittleEndian.Uint32(p[len(p)-4:]) != crc32.Checksum(p[:len(p)-4], castagnoli) {
		return nil, errors.New("pebble-meta checksum mismatch")
	}
	q := p[len(metaMagic)+1 : len(p)-4]
	l, n := binary.Uvarint(q)
	if n <= 0 || l != uint64(len(q)-n) {
		return nil, errors.New("pebble-meta: bad length")
	}
	var m metaFile
	if err := json.Unmarshal(q[n:], &m); err != nil {
		return nil, fmt.Errorf("pebble-meta: %w", err)
	}
	for _, t := range m.Tables {
		if !tableFile.MatchString(t.Name) {
			return nil, fmt.Errorf("pebble-meta: bad table name %q", t.Name)
		}
	}
	for _, f := range m.Files {
		if f.Name == "" || strings.ContainsAny(f.Name, `/\`) || f.Name == "." || f.Name == ".." {
			return nil, fmt.Errorf("pebble-meta: bad file name %q", f.Name)
		}
	}
	return &m, nil
}

// WriteIncremental is the asynchronous part of an incremental checkpoint
// (runtime.IncrementalSnapshot): it uploads, through w, the table files of
// the snapshot's local Pebble checkpoint that the last confirmed checkpoint
// (see Backend.NotifyCheckpointComplete) did not have, reuses the handles
// of those it had, unchanged, and uploads a small FormatMeta file that
// lists them and carries the files that reopen the DB. It returns the meta
// file's handle first, then every table's. With Options.LocalRecovery the
// local checkpoint is then kept as the task-local copy.
func (s *Snapshot) WriteIncremental(ctx context.Context, w runtime.SharedWriter) ([]checkpoint.StateHandle, error) {
	if err := s.begin(); err != nil {
		return nil, err
	}
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	defer s.end()
	if s.chkErr != nil {
		return nil, s.chkErr
	}
	if s.chkDir == "" {
		return nil, errors.New("pebblestate: WriteIncremental on a snapshot without a local checkpoint (set Options.Incremental)")
	}
	ents, err := os.ReadDir(s.chkDir)
	if err != nil {
		return nil, fmt.Errorf("pebblestate: %w", err)
	}
	inc := s.inc
	inc.mu.Lock()
	confirmed := inc.confirmed
	token := inc.token
	inc.mu.Unlock()
	mf := &metaFile{Version: 1, CheckpointID: s.id, MaxParallelism: s.maxP, KeyGroups: s.r, KeyCodec: s.kcID.String()}
	var handles []checkpoint.StateHandle
	tables := make(map[string]checkpoint.StateHandle)
	for _, e := range ents {
		if s.abandoned.Load() {
			return nil, errReleasedDuring
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		name := e.Name()
		path := filepath.Join(s.chkDir, name)
		fi, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("pebblestate: %w", err)
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		if !tableFile.MatchString(name) {
			if fi.Size() > maxInline {
				return nil, fmt.Errorf("pebblestate: %s is %d bytes, more than a meta file carries", name, fi.Size())
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("pebblestate: %w", err)
			}
			mf.Files = append(mf.Files, metaInline{Name: name, Data: data})
			continue
		}
		h, ok := confirmed[name]
		if !ok || h.Size != fi.Size() {
			if h, err = upload(w, token+"-"+name, path); err != nil {
				return nil, err
			}
			h.Format = FormatSST
			inc.mu.Lock()
			inc.uploaded += h.Size
			inc.mu.Unlock()
		}
		tables[name] = h
		handles = append(handles, h)
		mf.Tables = append(mf.Tables, metaTable{Name: name, Path: h.Path, Size: h.Size, CRC32C: h.CRC32C})
	}
	data, err := encodeMetaFile(mf)
	if err != nil {
		return nil, fmt.Errorf("pebblestate: %w", err)
	}
	mh, err := uploadBytes(w, fmt.Sprintf("%s-meta-%d", token, s.id), data)
	if err != nil {
		return nil, err
	}
	mh.Format = FormatMeta
	inc.mu.Lock()
	inc.uploaded += mh.Size
	inc.pending[s.id] = tables
	inc.mu.Unlock()
	out := append([]checkpoint.StateHandle{mh}, handles...)
	if s.keepLocal != "" {
		s.keep(out)
	}
	return out, nil
}

var errReleasedDuring = fmt.Errorf("pebblestate: snapshot released during WriteIncremental: %w", heap.ErrReleased)

// upload copies the file at path into a new shared file.
func upload(w runtime.SharedWriter, name, path string) (checkpoint.StateHandle, error) {
	f, err := os.Open(path)
	if err != nil {
		return checkpoint.StateHandle{}, fmt.Errorf("pebblestate: %w", err)
	}
	defer f.Close()
	sf, err := w.Create(name)
	if err != nil {
		return checkpoint.StateHandle{}, fmt.Errorf("pebblestate: upload %s: %w", name, err)
	}
	if _, err := io.Copy(sf, f); err != nil {
		sf.Abort()
		return checkpoint.StateHandle{}, fmt.Errorf("pebblestate: upload %s: %w", name, err)
	}
	h, err := sf.Commit()
	if err != nil {
		return checkpoint.StateHandle{}, fmt.Errorf("pebblestate: upload %s: %w", name, err)
	}
	return h, nil
}

func uploadBytes(w runtime.SharedWriter, name string, data []byte) (checkpoint.StateHandle, error) {
	sf, err := w.Create(name)
	if err != nil {
		return checkpoint.StateHandle{}, fmt.Errorf("pebblestate: upload %s: %w", name, err)
	}
	if _, err := sf.Write(data); err != nil {
		sf.Abort()
		return checkpoint.StateHandle{}, fmt.Errorf("pebblestate: upload %s: %w", name, err)
	}
	h, err := sf.Commit()
	if err != nil {
		return checkpoint.StateHandle{}, fmt.Errorf("pebblestate: upload %s: %w", name, err)
	}
	return h, nil
}

// UploadedBytes returns the bytes WriteIncremental uploaded so far (new
// tables and meta files, not reused handles).
func (b *Backend[K]) UploadedBytes() int64 {
	b.inc.mu.Lock()
	defer b.inc.mu.Unlock()
	return b.inc.uploaded
}

// NotifyCheckpointComplete tells the backend that checkpoint id is complete
// (durable in checkpoint storage): the tables it uploaded may be referred
// to again by later checkpoints, and local copies of older checkpoints are
// removed. Call it from the operator's NotifyComplete; without it every
// incremental checkpoint uploads every table again (correct, not
// incremental). It may be called from any goroutine.
func (b *Backend[K]) NotifyCheckpointComplete(id int64) {
	inc := b.inc
	inc.mu.Lock()
	if t, ok := inc.pending[id]; ok {
		inc.confirmed = t
	}
	for p := range inc.pending {
		if p <= id {
			delete(inc.pending, p)
		}
	}
	inc.mu.Unlock()
	if b.o.LocalRecovery {
		b.pruneLocal(id)
	}
}

// localRoot is the directory of the task-local checkpoint copies.
func (b *Backend[K]) localRoot() string { return b.dir + ".local" }

// localCopy is the record of a task-local checkpoint copy.
type localCopy struct {
	CheckpointID   int64                    `json:"checkpointId"`
	MaxParallelism int                      `json:"maxParallelism"`
	KeyGroups      checkpoint.KeyGroupRange `json:"keyGroups"`
	Handles        []checkpoint.StateHandle `json:"handles"`
}

const localRecord = "sluice-local.json"

// keep moves the snapshot's local checkpoint to the local-recovery area,
// with a record of the handles it was uploaded as.
func (s *Snapshot) keep(hs []checkpoint.StateHandle) {
	rec, err := json.Marshal(localCopy{CheckpointID: s.id, MaxParallelism: s.maxP, KeyGroups: s.r, Handles: hs})
	if err != nil {
		return
	}
	if err := os.WriteFile(filepath.Join(s.chkDir, localRecord), rec, 0o644); err != nil {
		return
	}
	dst := filepath.Join(s.keepLocal, "chk-"+strconv.FormatInt(s.id, 10))
	if err := os.MkdirAll(s.keepLocal, 0o755); err != nil {
		return
	}
	os.RemoveAll(dst)
	if err := os.Rename(s.chkDir, dst); err != nil {
		return
	}
	s.chkDir = ""
	// Bound the copies kept when completions are not notified.
	ids := localIDs(s.keepLocal)
	for len(ids) > maxLocalCopies {
		os.RemoveAll(filepath.Join(s.keepLocal, "chk-"+strconv.FormatInt(ids[0], 10)))
		ids = ids[1:]
	}
}

// maxLocalCopies bounds the task-local copies kept.
const maxLocalCopies = 3

// localIDs lists the checkpoint ids of the local copies in root, ascending.
func localIDs(root string) []int64 {
	ents, _ := os.ReadDir(root)
	var ids []int64
	for _, e := range ents {
		if id, err := strconv.ParseInt(strings.TrimPrefix(e.Name(), "chk-"), 10, 64); err == nil && strings.HasPrefix(e.Name(), "chk-") {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// pruneLocal removes the local copies older than checkpoint id.
func (b *Backend[K]) pruneLocal(id int64) {
	for _, old := range localIDs(b.localRoot()) {
		if old < id {
			os.RemoveAll(filepath.Join(b.localRoot(), "chk-"+strconv.FormatInt(old, 10)))
		}
	}
}

// sameHandles reports whether two handle lists name the same files (by
// size, checksum and format, in any order).
func sameHandles(a, b []checkpoint.StateHandle) bool {
	if len(a) != len(b) {
		return false
	}
	type id struct {
		size   int64
		crc    uint32
		format string
	}
	n := make(map[id]int, len(a))
	for _, h := range a {
		n[id{h.Size, h.CRC32C, h.Format}]++
	}
	for _, h := range b {
		k := id{h.Size, h.CRC32C, h.Format}
		if n[k] == 0 {
			return false
		}
		n[k]--
	}
	return true
}

// RestoreNative restores the backend from native checkpoints (handles of
// FormatMeta and FormatSST): one runtime.RestoredKeyed per old subtask
// whose range overlaps this one. Each is fetched into a directory beside
// the DB and opened; with Options.LocalRecovery a task-local copy holding
// exactly the files of the restored checkpoint is opened instead, and
// nothing is fetched. At the same range the old DB becomes the backend's;
// at another parallelism the old DB with the largest overlap does, clipped
// to the range with range deletions, and the overlapping key groups of the
// others are copied into it. Canonical files go to Restore instead.
//
// Like Restore it must be called once, before any state is registered.
func (b *Backend[K]) RestoreNative(ctx context.Context, files []runtime.RestoredKeyed) error {
	if err := b.checkFresh(); err != nil {
		return err
	}
	b.restored = true
	if len(files) == 0 {
		return nil
	}
	type source struct {
		dir     string
		mf      *metaFile
		overlap int
		tables  map[string]checkpoint.StateHandle
		local   bool
	}
	srcs := make([]*source, 0, len(files))
	cleanup := func() {
		for _, s := range srcs {
			if s.dir != "" && !s.local {
				os.RemoveAll(s.dir)
			}
		}
	}
	for i := range files {
		f := &files[i]
		src := &source{}
		if b.o.LocalRecovery {
			if dir, mf := b.findLocal(f.Handles); dir != "" {
				src.dir, src.mf, src.local = dir, mf, true
			}
		}
		if src.dir == "" {
			dir := fmt.Sprintf("%s.restore-%d", b.dir, i)
			mf, err := fetchNative(ctx, f, dir)
			if err != nil {
				cleanup()
				return fmt.Errorf("pebblestate: restore file %d: %w", i, err)
			}
			src.dir, src.mf = dir, mf
		}
		if src.mf.MaxParallelism != b.maxP {
			cleanup()
			return fmt.Errorf("%w: restore file %d was written with max parallelism %d, backend has %d (key groups cannot be remapped)",
				errIncompatibleRestore, i, src.mf.MaxParallelism, b.maxP)
		}
		src.overlap = src.mf.KeyGroups.Intersect(b.r).Len()
		src.tables = make(map[string]checkpoint.StateHandle)
		for _, h := range f.Handles {
			for _, t := range src.mf.Tables {
				if h.Format == FormatSST && h.Size == t.Size && h.CRC32C == t.CRC32C {
					src.tables[t.Name] = h
				}
			}
		}
		srcs = append(srcs, src)
	}
	defer cleanup()
	// The primary source becomes the DB.
	pi := 0
	for i, s := range srcs {
		if s.overlap > srcs[pi].overlap {
			pi = i
		}
	}
	primary := srcs[pi]
	b.dbMu.Lock()
	err := b.db.Close()
	b.db = nil
	b.dbMu.Unlock()
	if err != nil {
		return fmt.Errorf("pebblestate: %w", err)
	}
	if err := os.RemoveAll(b.dir); err != nil {
		return fmt.Errorf("pebblestate: %w", err)
	}
	if primary.local {
		if err := linkDir(primary.dir, b.dir); err != nil {
			return fmt.Errorf("pebblestate: local recovery: %w", err)
		}
	} else {
		if err := os.Rename(primary.dir, b.dir); err != nil {
			return fmt.Errorf("pebblestate: %w", err)
		}
		primary.dir = ""
	}
	if err := b.open(true); err != nil {
		return err
	}
	if err := b.loadMeta(); err != nil {
		return err
	}
	info, _, err := readDBMeta(b.db)
	if err != nil {
		return err
	}
	if err := checkRange(primary.mf.KeyGroups, info.r); err != nil {
		return err
	}
	if r := b.resolveKey(info.keyCodec); r.Outcome == heap.Refused {
		return refusal(r)
	}
	if info.r != b.r {
		if err := b.clip(info.r); err != nil {
			return err
		}
	}
	for i, s := range srcs {
		if i == pi {
			continue
		}
		if err := b.copyFrom(s.dir, s.mf.KeyGroups); err != nil {
			return fmt.Errorf("pebblestate: restore file %d: %w", i, err)
		}
	}
	if err := b.writeInfo(); err != nil {
		return err
	}
	if b.err != nil {
		return b.err
	}
	b.inc.mu.Lock()
	b.inc.confirmed = primary.tables
	b.inc.mu.Unlock()
	return b.rebuildTimers()
}

// findLocal returns the task-local copy holding exactly the files hs
// name, if there is one whose table files are all present with their
// sizes.
func (b *Backend[K]) findLocal(hs []checkpoint.StateHandle) (string, *metaFile) {
	root := b.localRoot()
	for _, id := range slices.Backward(localIDs(root)) {
		dir := filepath.Join(root, "chk-"+strconv.FormatInt(id, 10))
		raw, err := os.ReadFile(filepath.Join(dir, localRecord))
		if err != nil {
			continue
		}
		var lc localCopy
		if json.Unmarshal(raw, &lc) != nil || !sameHandles(lc.Handles, hs) {
			continue
		}
		mf := &metaFile{Version: 1, CheckpointID: lc.CheckpointID, MaxParallelism: lc.MaxParallelism, KeyGroups: lc.KeyGroups}
		ok := true
		found := false
		for _, h := range lc.Handles {
			if h.Format == FormatMeta {
				found = true
			}
		}
		if !found {
			continue
		}
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		sizes := make(map[int64]int)
		for _, e := range ents {
			if !tableFile.MatchString(e.Name()) {
				continue
			}
			fi, err := e.Info()
			if err != nil {
				ok = false
				break
			}
			sizes[fi.Size()]++
			mf.Tables = append(mf.Tables, metaTable{Name: e.Name(), Size: fi.Size()})
		}
		for _, h := range lc.Handles {
			if h.Format != FormatSST {
				continue
			}
			if sizes[h.Size] == 0 {
				ok = false
				break
			}
			sizes[h.Size]--
		}
		if !ok {
			continue
		}
		for i, t := range mf.Tables {
			for _, h := range lc.Handles {
				if h.Format == FormatSST && h.Size == t.Size {
					mf.Tables[i].CRC32C, mf.Tables[i].Path = h.CRC32C, h.Path
				}
			}
		}
		return dir, mf
	}
	return "", nil
}

// fetchNative fetches the files of one native checkpoint into dir.
func fetchNative(ctx context.Context, f *runtime.RestoredKeyed, dir string) (*metaFile, error) {
	if f.Fetch == nil {
		return nil, errors.New("native state handles without a Fetch")
	}
	var meta *checkpoint.StateHandle
	for i := range f.Handles {
		switch f.Handles[i].Format {
		case FormatMeta:
			if meta != nil {
				return nil, fmt.Errorf("%w: two %s files", errCorrupt, FormatMeta)
			}
			meta = &f.Handles[i]
		case FormatSST:
		default:
			return nil, fmt.Errorf("%w: handle %s has format %q, not a pebble format", errCorrupt, f.Handles[i].Path, f.Handles[i].Format)
		}
	}
	if meta == nil {
		return nil, fmt.Errorf("%w: no %s file among the handles", errCorrupt, FormatMeta)
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	mp := filepath.Join(dir, "sluice-meta.tmp")
	if err := f.Fetch(ctx, *meta, mp); err != nil {
		return nil, fmt.Errorf("fetch %s: %w", meta.Path, err)
	}
	raw, err := os.ReadFile(mp)
	if err != nil {
		return nil, err
	}
	os.Remove(mp)
	mf, err := decodeMetaFile(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errCorrupt, err)
	}
	for _, t := range mf.Tables {
		h, ok := findHandle(f.Handles, t)
		if !ok {
			return nil, fmt.Errorf("%w: table %s (%d bytes) listed by the meta file has no handle", errCorrupt, t.Name, t.Size)
		}
		if err := f.Fetch(ctx, h, filepath.Join(dir, t.Name)); err != nil {
			return nil, fmt.Errorf("fetch %s: %w", h.Path, err)
		}
	}
	for _, in := range mf.Files {
		if err := os.WriteFile(filepath.Join(dir, in.Name), in.Data, 0o644); err != nil {
			return nil, err
		}
	}
	return mf, nil
}

// findHandle finds the handle of table t: by path, else by size and
// checksum (a relocated checkpoint).
func findHandle(hs []checkpoint.StateHandle, t metaTable) (checkpoint.StateHandle, bool) {
	for _, h := range hs {
		if h.Format == FormatSST && h.Path == t.Path && h.Size == t.Size && h.CRC32C == t.CRC32C {
			return h, true
		}
	}
	for _, h := range hs {
		if h.Format == FormatSST && h.Size == t.Size && h.CRC32C == t.CRC32C {
			return h, true
		}
	}
	return checkpoint.StateHandle{}, false
}

// linkDir populates dst from the local copy src: table files hard-linked
// (Pebble never changes them), the others copied (Pebble appends to the
// MANIFEST, which must not change the copy).
func linkDir(src, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range ents {
		name := e.Name()
		if name == localRecord || !e.Type().IsRegular() {
			continue
		}
		from, to := filepath.Join(src, name), filepath.Join(dst, name)
		if tableFile.MatchString(name) {
			if err := os.Link(from, to); err == nil {
				continue
			}
		}
		data, err := os.ReadFile(from)
		if err != nil {
			return err
		}
		if err := os.WriteFile(to, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}
