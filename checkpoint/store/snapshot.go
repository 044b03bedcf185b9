package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"slices"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice/checkpoint"
)

// MetadataName is the name of the file, inside a checkpoint or savepoint
// directory, whose existence makes the checkpoint complete.
const MetadataName = "_metadata"

// metadataFormat identifies the envelope of a _metadata file.
const metadataFormat = "sluice-metadata"

// Snapshot is the directory of one checkpoint or savepoint in a Storage: the
// unit that is written, verified, restored, copied and deleted. Get one from
// Checkpoints.Snapshot, NewSavepoint or OpenPath. It is safe for concurrent
// use; state files of different names may be written in parallel.
type Snapshot struct {
	s   Storage
	dir string // directory name in s; "" when s is rooted at the snapshot
	id  int64  // the checkpoint id the directory is for; -1 if unknown
}

// Storage returns the Storage the snapshot is in.
func (sn *Snapshot) Storage() Storage { return sn.s }

// Dir returns the snapshot's directory name within its Storage ("chk-7",
// "savepoint-7-3f9c0a1b2c4d"), or "" when the Storage is rooted at the
// snapshot (OpenPath).
func (sn *Snapshot) Dir() string { return sn.dir }

// Location returns where the snapshot is, for messages and for
// --from-checkpoint: the filesystem path for FS, the directory name
// otherwise.
func (sn *Snapshot) Location() string {
	if f, ok := sn.s.(*FS); ok {
		return f.Path(sn.dir)
	}
	return sn.dir
}

func (sn *Snapshot) where(name string) string {
	if f, ok := sn.s.(*FS); ok {
		return f.Path(joinName(sn.dir, name))
	}
	return joinName(sn.dir, name)
}

// StateWriter opens the state file name (a Storage name relative to the
// snapshot directory, e.g. "counter-3.keyed") for writing. Commit returns the
// StateHandle to put into the metadata.
func (sn *Snapshot) StateWriter(ctx context.Context, name string) (*StateWriter, error) {
	if name == MetadataName {
		return nil, fmt.Errorf("store: state file %s: name is reserved", sn.where(name))
	}
	if err := checkName(name); err != nil {
		return nil, fmt.Errorf("store: state file %q in %s: %w", name, sn.Location(), err)
	}
	w, err := sn.s.Create(ctx, joinName(sn.dir, name))
	if err != nil {
		return nil, err
	}
	return &StateWriter{w: w, path: name}, nil
}

// StateWriter writes one state file of a snapshot. It is not safe for
// concurrent use.
type StateWriter struct {
	w      Writer
	path   string
	n      int64
	shared bool // a file of the shared area (SharedWriter)
}

// Write implements io.Writer.
func (w *StateWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	w.n += int64(n)
	return n, err
}

// Written returns the number of bytes written so far: the offset of the next
// byte, which is what StateHandle.KeyGroupOffsets records.
func (w *StateWriter) Written() int64 { return w.n }

// Commit makes the file durable and returns its handle: Path relative to the
// snapshot directory, Size and CRC32C. The caller adds KeyGroupOffsets.
func (w *StateWriter) Commit() (checkpoint.StateHandle, error) {
	size, crc, err := w.w.Commit()
	if err != nil {
		return checkpoint.StateHandle{}, err
	}
	return checkpoint.StateHandle{Path: w.path, Size: size, CRC32C: crc, Shared: w.shared}, nil
}

// Abort discards the file. It is a no-op after Commit.
func (w *StateWriter) Abort() error { return w.w.Abort() }

// WriteMetadata writes m as the snapshot's _metadata, atomically and
// durably; once it returns nil the checkpoint is complete (docs/design.md §3 step 5).
// A zero m.Version is written as checkpoint.FormatVersion. m is not
// modified.
func (sn *Snapshot) WriteMetadata(ctx context.Context, m *checkpoint.Metadata) error {
	where := sn.where(MetadataName)
	if m == nil {
		return fmt.Errorf("store: write %s: nil metadata", where)
	}
	if sn.id >= 0 && m.CheckpointID != sn.id {
		return fmt.Errorf("store: write %s: metadata is for checkpoint %d", where, m.CheckpointID)
	}
	data, err := encodeMetadata(m)
	if err != nil {
		return fmt.Errorf("store: write %s: %w", where, err)
	}
	w, err := sn.s.Create(ctx, joinName(sn.dir, MetadataName))
	if err != nil {
		return err
	}
	defer w.Abort()
	if _, err := w.Write(data); err != nil {
		return err
	}
	_, _, err = w.Commit()
	return err
}

// encodeMetadata renders m as a _metadata file: a JSON envelope holding the
// CRC32C and length of the exact bytes of the "metadata" value. It stays
// valid JSON, so `jq .metadata _metadata` works, while any flipped byte or
// truncation is detected.
func encodeMetadata(m *checkpoint.Metadata) ([]byte, error) {
	mm := *m
	if mm.Version == 0 {
		mm.Version = checkpoint.FormatVersion
	}
	if err := validateMetadata(&mm); err != nil {
		return nil, err
	}
	// Compact: key-group offsets alone can run to thousands of numbers.
	// `jq .metadata` or `sluice checkpoints inspect` pretty-print it.
	body, err := json.Marshal(&mm)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "{\"format\":%q,\"crc32c\":\"%08x\",\"length\":%d,\n\"metadata\":",
		metadataFormat, crc32.Checksum(body, castagnoli), len(body))
	b.Write(body)
	b.WriteString("}\n")
	return b.Bytes(), nil
}

// decodeMetadata parses and verifies a _metadata file. Errors are ErrCorrupt
// or ErrUnsupportedVersion, unwrapped: the caller names the file.
func decodeMetadata(data []byte) (*checkpoint.Metadata, error) {
	var env struct {
		Format   string          `json:"format"`
		CRC32C   string          `json:"crc32c"`
		Length   int             `json:"length"`
		Metadata json.RawMessage `json:"metadata"`
	}
	// The writer ends the file with a newline; its absence is the one
	// truncation JSON parsing would not notice.
	if !bytes.HasSuffix(data, []byte("}\n")) {
		return nil, fmt.Errorf("%w: truncated (%d bytes, no final newline)", ErrCorrupt, len(data))
	}
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, fmt.Errorf("%w: malformed or truncated (%d bytes): %v", ErrCorrupt, len(data), err)
	}
	if env.Format != metadataFormat {
		return nil, fmt.Errorf("%w: unknown format %q", ErrCorrupt, env.Format)
	}
	want, err := strconv.ParseUint(env.CRC32C, 16, 32)
	if err != nil || len(env.CRC32C) != 8 {
		return nil, fmt.Errorf("%w: bad checksum field %q", ErrCorrupt, env.CRC32C)
	}
	if len(env.Metadata) != env.Length {
		return nil, fmt.Errorf("%w: body is %d bytes, want %d", ErrCorrupt, len(env.Metadata), env.Length)
	}
	if got := crc32.Checksum(env.Metadata, castagnoli); got != uint32(want) {
		return nil, fmt.Errorf("%w: crc32c %08x, want %08x", ErrCorrupt, got, want)
	}
	m := new(checkpoint.Metadata)
	if err := json.Unmarshal(env.Metadata, m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if m.Version > checkpoint.FormatVersion {
		return nil, fmt.Errorf("%w: version %d, this Sluice reads up to %d",
			ErrUnsupportedVersion, m.Version, checkpoint.FormatVersion)
	}
	if err := validateMetadata(m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return m, nil
}

// validateMetadata checks what the store relies on: a known version and
// kind, and handle paths that stay inside the snapshot directory (a path
// like "../../etc/passwd" in a tampered file must not be read).
func validateMetadata(m *checkpoint.Metadata) error {
	if m.Version < 1 || m.Version > checkpoint.FormatVersion {
		return fmt.Errorf("version %d, want 1..%d", m.Version, checkpoint.FormatVersion)
	}
	if m.CheckpointID < 0 {
		return fmt.Errorf("negative checkpoint id %d", m.CheckpointID)
	}
	if m.Kind != checkpoint.KindCheckpoint && m.Kind != checkpoint.KindSavepoint {
		return fmt.Errorf("unknown kind %q", m.Kind)
	}
	for _, h := range handles(m) {
		if h.Path == MetadataName {
			return fmt.Errorf("state handle path %q is reserved", h.Path)
		}
		if h.Shared && m.Kind == checkpoint.KindSavepoint {
			return fmt.Errorf("state handle %q: a savepoint refers to a shared file; savepoints are self-contained", h.Path)
		}
		if h.Shared && !strings.HasPrefix(h.Path, SharedDir+"/") {
			return fmt.Errorf("shared state handle path %q is not under %s/", h.Path, SharedDir)
		}
		if err := checkName(h.Path); err != nil {
			return fmt.Errorf("state handle path %q: %v", h.Path, err)
		}
		if h.Size < 0 {
			return fmt.Errorf("state handle %q: negative size %d", h.Path, h.Size)
		}
	}
	return nil
}

// handles returns every state handle of m, in a deterministic order
// (operators by uid, subtasks as stored), with handles to the same path
// listed once.
func handles(m *checkpoint.Metadata) []checkpoint.StateHandle {
	uids := make([]string, 0, len(m.Operators))
	for uid := range m.Operators {
		uids = append(uids, uid)
	}
	slices.Sort(uids)
	var out []checkpoint.StateHandle
	type key struct {
		path   string
		size   int64
		crc    uint32
		shared bool
	}
	seen := make(map[key]bool)
	for _, uid := range uids {
		op := m.Operators[uid]
		if op == nil {
			continue
		}
		for _, st := range op.Subtasks {
			if st == nil {
				continue
			}
			for _, h := range st.Keyed {
				k := key{h.Path, h.Size, h.CRC32C, h.Shared}
				if seen[k] {
					continue
				}
				seen[k] = true
				out = append(out, h)
			}
		}
	}
	return out
}

// ReadMetadata reads and verifies the snapshot's _metadata. A missing file is
// an fs.ErrNotExist error (the checkpoint is not complete); a damaged one is
// ErrCorrupt; both name the file.
func (sn *Snapshot) ReadMetadata(ctx context.Context) (*checkpoint.Metadata, error) {
	where := sn.where(MetadataName)
	r, err := sn.s.Open(ctx, joinName(sn.dir, MetadataName))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("store: read %s: %w", where, err)
	}
	m, err := decodeMetadata(data)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", where, err)
	}
	if sn.id >= 0 && m.CheckpointID != sn.id {
		return nil, fmt.Errorf("store: %s: %w: metadata is for checkpoint %d", where, ErrCorrupt, m.CheckpointID)
	}
	return m, nil
}

// OpenState opens the state file of h for streaming. The reader verifies as
// it goes: the Read that reaches the end reports ErrCorrupt instead of
// io.EOF if the size or CRC32C differ from h, and a file longer than h.Size
// fails as soon as the excess is read. A file h names that does not exist is
// ErrCorrupt (and fs.ErrNotExist): the metadata promised it.
func (sn *Snapshot) OpenState(ctx context.Context, h checkpoint.StateHandle) (io.ReadCloser, error) {
	where := sn.where(h.Path)
	if h.Path == MetadataName {
		return nil, fmt.Errorf("store: state file %s: %w: reserved name", where, ErrCorrupt)
	}
	if err := checkName(h.Path); err != nil {
		return nil, fmt.Errorf("store: state file %q in %s: %w: %v", h.Path, sn.Location(), ErrCorrupt, err)
	}
	s, name := sn.s, joinName(sn.dir, h.Path)
	if h.Shared {
		if !strings.HasPrefix(h.Path, SharedDir+"/") {
			return nil, fmt.Errorf("store: shared state file %q of %s: %w: not under %s/", h.Path, sn.Location(), ErrCorrupt, SharedDir)
		}
		var err error
		if s, err = sn.sharedStorage(); err != nil {
			return nil, err
		}
		name = h.Path
		where = name
		if f, ok := s.(*FS); ok {
			where = f.Path(name)
		}
	}
	r, err := s.Open(ctx, name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("store: state file %s: %w: missing: %w", where, ErrCorrupt, err)
	}
	if err != nil {
		return nil, err
	}
	return &verifyingReader{r: r, where: where, want: h}, nil
}

// ReadState reads the whole state file of h and verifies its size and
// CRC32C; see OpenState.
func (sn *Snapshot) ReadState(ctx context.Context, h checkpoint.StateHandle) ([]byte, error) {
	r, err := sn.OpenState(ctx, h)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var b bytes.Buffer
	// h.Size comes from checksummed metadata, but cap the up-front
	// allocation anyway: a wrong size must fail verification, not memory.
	b.Grow(int(min(h.Size, 64<<20)))
	if _, err := b.ReadFrom(r); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Verify reads every state file m references and checks its size and
// CRC32C, returning the first failure. It is the restore-time check of
// docs/design.md §11 ("load metadata, verify checksums") and reads all state once.
func (sn *Snapshot) Verify(ctx context.Context, m *checkpoint.Metadata) error {
	return sn.verify(ctx, m, nil)
}

// verify is Verify, skipping the files vouch (if not nil) vouches for.
func (sn *Snapshot) verify(ctx context.Context, m *checkpoint.Metadata, vouch func(checkpoint.StateHandle) bool) error {
	for _, h := range handles(m) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if vouch != nil && vouch(h) {
			continue
		}
		r, err := sn.OpenState(ctx, h)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, r)
		r.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// verifyingReader checks a state file against its handle while it is read.
type verifyingReader struct {
	r     io.ReadCloser
	where string
	want  checkpoint.StateHandle
	n     int64
	crc   uint32
	err   error
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.r.Read(p)
	v.n += int64(n)
	v.crc = crc32.Update(v.crc, castagnoli, p[:n])
	switch {
	case v.n > v.want.Size:
		v.err = fmt.Errorf("store: state file %s: %w: longer than its recorded %d bytes", v.where, ErrCorrupt, v.want.Size)
	case err == io.EOF && v.n < v.want.Size:
		v.err = fmt.Errorf("store: state file %s: %w: truncated: %d bytes, want %d", v.where, ErrCorrupt, v.n, v.want.Size)
	case err == io.EOF && v.crc != v.want.CRC32C:
		v.err = fmt.Errorf("store: state file %s: %w: crc32c %08x, want %08x", v.where, ErrCorrupt, v.crc, v.want.CRC32C)
	case err != nil:
		v.err = err
		if err != io.EOF {
			v.err = fmt.Errorf("store: read state file %s: %w", v.where, err)
		}
	}
	return n, v.err
}

func (v *verifyingReader) Close() error { return v.r.Close() }

// Delete removes the snapshot directory. It removes _metadata first,
// durably, so that a crash in the middle leaves an incomplete checkpoint
// (which CleanIncomplete removes) rather than a "complete" one with missing
// state files that Latest would have to report as corrupt. A snapshot opened
// with OpenPath, whose Storage is rooted at the directory, cannot be deleted
// this way.
func (sn *Snapshot) Delete(ctx context.Context) error {
	if sn.dir == "" {
		return fmt.Errorf("store: delete %s: refusing to delete a snapshot opened by path", sn.Location())
	}
	if err := sn.s.DeleteAll(ctx, joinName(sn.dir, MetadataName)); err != nil {
		return err
	}
	return sn.s.DeleteAll(ctx, sn.dir+"/")
}
