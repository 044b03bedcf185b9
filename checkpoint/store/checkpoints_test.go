package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/sluicehq/sluice/checkpoint"
)

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, root := newOSStore(t)
	want := writeCheckpoint(t, c.Snapshot(1), 1, checkpoint.KindCheckpoint)

	got, err := c.ReadMetadata(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	want.Version = checkpoint.FormatVersion // zero is written as the current version
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("metadata round trip:\n got %+v\nwant %+v", got, want)
	}
	// Handle paths are relative to the checkpoint directory.
	h := got.Operators["counter"].Subtasks[1].Keyed[0]
	if h.Path != "counter-1.keyed" {
		t.Fatalf("handle path %q, want counter-1.keyed", h.Path)
	}
	data, err := c.ReadState(ctx, 1, h)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, mustRead(t, filepath.Join(root, "chk-1", "counter-1.keyed"))) {
		t.Fatal("ReadState returned other bytes than the file holds")
	}
	// Key-group offsets taken from Written point at each section.
	if off := h.KeyGroupOffsets[2]; !bytes.HasPrefix(data[off:], []byte("checkpoint 1 key group 6:")) {
		t.Fatalf("offset %d does not start key group 6: %q", off, data[off:off+20])
	}
	if ids, err := c.Completed(ctx); err != nil || !slices.Equal(ids, []int64{1}) {
		t.Fatalf("Completed = %v, %v; want [1]", ids, err)
	}
	// The file is JSON, so operators can read it with jq.
	var env map[string]any
	if err := jsonUnmarshal(mustRead(t, filepath.Join(root, "chk-1", "_metadata")), &env); err != nil {
		t.Fatalf("_metadata is not JSON: %v", err)
	}
}

// The coordinator may leave Version at zero; the store writes the current
// version and rejects what it could not read back.
func TestWriteMetadataValidates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, _, _ := newMemStore(t)
	base := func() *checkpoint.Metadata {
		return &checkpoint.Metadata{CheckpointID: 3, Kind: checkpoint.KindCheckpoint}
	}
	for _, tc := range []struct {
		name   string
		modify func(m *checkpoint.Metadata)
		errSub string
	}{
		{"newer version", func(m *checkpoint.Metadata) { m.Version = checkpoint.FormatVersion + 1 }, "version"},
		{"unknown kind", func(m *checkpoint.Metadata) { m.Kind = "backup" }, "kind"},
		{"handle escapes", func(m *checkpoint.Metadata) {
			m.Operators = map[string]*checkpoint.OperatorState{"op": {Subtasks: []*checkpoint.SubtaskState{
				{Keyed: []checkpoint.StateHandle{{Path: "../chk-2/x"}}},
			}}}
		}, "../chk-2/x"},
		{"handle is _metadata", func(m *checkpoint.Metadata) {
			m.Operators = map[string]*checkpoint.OperatorState{"op": {Subtasks: []*checkpoint.SubtaskState{
				{Keyed: []checkpoint.StateHandle{{Path: "_metadata"}}},
			}}}
		}, "reserved"},
	} {
		m := base()
		tc.modify(m)
		err := c.WriteMetadata(ctx, m)
		if err == nil || !strings.Contains(err.Error(), tc.errSub) {
			t.Errorf("%s: WriteMetadata error %v, want one mentioning %q", tc.name, err, tc.errSub)
		}
	}
	if err := c.WriteMetadata(ctx, nil); err == nil {
		t.Error("WriteMetadata(nil) succeeded")
	}
	if ids, _ := c.Completed(ctx); len(ids) != 0 {
		t.Fatalf("rejected metadata became checkpoints %v", ids)
	}
}

// docs/design.md §3 step 5: nothing may make a checkpoint look complete before its
// _metadata is renamed into place.
func TestMetadataInvisibleBeforeRename(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, _, ff := newMemStore(t)
	var checked bool
	ff.setHook(func(op, p string) error {
		if op != "rename" || filepath.Base(p) != MetadataName {
			return nil
		}
		// The temporary file is complete and synced here; the name
		// must still be absent.
		checked = true
		if ids, err := c.Completed(ctx); err != nil || len(ids) != 0 {
			t.Errorf("before rename: Completed = %v, %v; want none", ids, err)
		}
		if _, err := c.ReadMetadata(ctx, 1); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("before rename: ReadMetadata error %v, want fs.ErrNotExist", err)
		}
		return nil
	})
	writeCheckpoint(t, c.Snapshot(1), 1, checkpoint.KindCheckpoint)
	if !checked {
		t.Fatal("the hook never saw the rename of _metadata")
	}
	if ids, _ := c.Completed(ctx); !slices.Equal(ids, []int64{1}) {
		t.Fatalf("after WriteMetadata: Completed = %v, want [1]", ids)
	}
}

func TestWriterLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, mem, _ := newMemStore(t)
	s := c.Storage()

	w, err := s.Create(ctx, "chk-1/a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(ctx, "chk-1/a"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("uncommitted file visible: Open error %v", err)
	}
	names, _ := s.List(ctx, "chk-1/")
	if len(names) != 1 || !isTemp(names[0]) {
		t.Fatalf("List before commit = %v, want one temporary file", names)
	}
	size, crc, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	if size != 5 || crc != crc32c([]byte("hello")) {
		t.Fatalf("Commit = %d, %08x", size, crc)
	}
	if err := w.Abort(); err != nil {
		t.Fatalf("Abort after Commit: %v", err)
	}
	if _, _, err := w.Commit(); err == nil {
		t.Fatal("second Commit succeeded")
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Fatal("Write after Commit succeeded")
	}
	if got := mem.Files(memRoot); !slices.Equal(got, []string{"chk-1/a"}) {
		t.Fatalf("files = %v", got)
	}

	w, err = s.Create(ctx, "chk-1/b")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("discard me"))
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.Commit(); err == nil {
		t.Fatal("Commit after Abort succeeded")
	}
	if got := mem.Files(memRoot); !slices.Equal(got, []string{"chk-1/a"}) {
		t.Fatalf("Abort left files: %v", got)
	}
}

func TestNames(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, _, _ := newMemStore(t)
	for _, name := range []string{"", "/abs", "../up", "a/../b", "a//b", "a/", ".hidden", "chk-1/.x", "a\\b", "./a"} {
		if _, err := c.Storage().Create(ctx, name); err == nil {
			t.Errorf("Create(%q) succeeded", name)
		}
	}
	if _, err := c.StateWriter(ctx, 1, MetadataName); err == nil {
		t.Error("a state file named _metadata was accepted")
	}
	if _, err := c.StateWriter(ctx, -1, "x"); err == nil {
		t.Error("a negative checkpoint id was accepted")
	}
	for _, p := range []string{"../x", "/etc/passwd", "_metadata"} {
		_, err := c.ReadState(ctx, 1, checkpoint.StateHandle{Path: p})
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("ReadState(%q) error %v, want ErrCorrupt", p, err)
		}
	}
	for _, p := range []string{"/", "../", "a/../../b"} {
		if _, err := c.Storage().List(ctx, p); err == nil {
			t.Errorf("List(%q) succeeded", p)
		}
		if err := c.Storage().DeleteAll(ctx, p); err == nil {
			t.Errorf("DeleteAll(%q) succeeded", p)
		}
	}
}

// Every single-byte corruption and every truncation of _metadata is
// detected, and the error names the file.
func TestMetadataCorruptionDetected(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, root := newOSStore(t)
	writeCheckpoint(t, c.Snapshot(4), 4, checkpoint.KindCheckpoint)
	p := filepath.Join(root, "chk-4", MetadataName)
	orig := mustRead(t, p)

	check := func(what string) {
		t.Helper()
		_, err := c.ReadMetadata(ctx, 4)
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s: ReadMetadata error %v, want ErrCorrupt", what, err)
		}
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("%s: error %q does not name %s", what, err, p)
		}
	}
	for off := range orig {
		for _, mask := range []byte{0x01, 0x80} {
			data := bytes.Clone(orig)
			data[off] ^= mask
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
			check(fmt.Sprintf("byte %d ^ %#x (%q)", off, mask, orig[off]))
		}
	}
	for n := range len(orig) {
		if err := os.WriteFile(p, orig[:n], 0o644); err != nil {
			t.Fatal(err)
		}
		check(fmt.Sprintf("truncated to %d of %d bytes", n, len(orig)))
	}
	if err := os.WriteFile(p, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadMetadata(ctx, 4); err != nil {
		t.Fatalf("restored file: %v", err)
	}
}

// A _metadata copied into another checkpoint's directory is not taken for
// that checkpoint.
func TestMetadataOfOtherCheckpoint(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, root := newOSStore(t)
	writeCheckpoint(t, c.Snapshot(4), 4, checkpoint.KindCheckpoint)
	if err := os.Mkdir(filepath.Join(root, "chk-5"), 0o755); err != nil {
		t.Fatal(err)
	}
	data := mustRead(t, filepath.Join(root, "chk-4", MetadataName))
	if err := os.WriteFile(filepath.Join(root, "chk-5", MetadataName), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadMetadata(ctx, 5); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("ReadMetadata(5) error %v, want ErrCorrupt", err)
	}
}

func TestStateCorruptionDetected(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, root := newOSStore(t)
	m := writeCheckpoint(t, c.Snapshot(2), 2, checkpoint.KindCheckpoint)
	h := m.Operators["counter"].Subtasks[0].Keyed[0]
	p := filepath.Join(root, "chk-2", h.Path)
	orig := mustRead(t, p)

	check := func(what string, data []byte) {
		t.Helper()
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := c.ReadState(ctx, 2, h)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), p) {
			t.Fatalf("%s: ReadState error %v, want ErrCorrupt naming %s", what, err, p)
		}
		if err := c.Snapshot(2).Verify(ctx, m); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s: Verify error %v, want ErrCorrupt", what, err)
		}
	}
	for off := range orig {
		data := bytes.Clone(orig)
		data[off] ^= 0x04
		check(fmt.Sprintf("byte %d flipped", off), data)
	}
	for _, n := range []int{0, 1, len(orig) / 2, len(orig) - 1} {
		check(fmt.Sprintf("truncated to %d", n), orig[:n])
	}
	check("extended", append(bytes.Clone(orig), '\n'))

	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	_, err := c.ReadState(ctx, 2, h)
	if !errors.Is(err, ErrCorrupt) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: ReadState error %v, want ErrCorrupt and fs.ErrNotExist", err)
	}
}

// docs/design.md §4: a corrupt or partial checkpoint is detected and the previous
// complete one is used, loudly.
func TestLatestFallsBackLoudly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, root := newOSStore(t)
	for id := int64(1); id <= 3; id++ {
		writeCheckpoint(t, c.Snapshot(id), id, checkpoint.KindCheckpoint)
	}
	// chk-3: a state file has a flipped byte; chk-2: _metadata truncated.
	flipByte(t, filepath.Join(root, "chk-3", "counter-1.keyed"), 10, 0x20)
	md := filepath.Join(root, "chk-2", MetadataName)
	if err := os.Truncate(md, 40); err != nil {
		t.Fatal(err)
	}

	log, records := capture()
	m, err := c.Latest(ctx, log)
	if err != nil {
		t.Fatal(err)
	}
	if m.CheckpointID != 1 {
		t.Fatalf("Latest = checkpoint %d, want 1", m.CheckpointID)
	}
	recs := records()
	if len(recs) != 3 {
		t.Fatalf("logged %d records, want 3: %v", len(recs), recs)
	}
	for i, want := range []struct {
		id     float64
		reason string
	}{{3, "counter-1.keyed"}, {2, "truncated"}} {
		r := recs[i]
		if r["level"] != "ERROR" || r["checkpoint"] != want.id ||
			!strings.Contains(fmt.Sprint(r["err"]), want.reason) ||
			!strings.Contains(fmt.Sprint(r["msg"]), "corrupt") {
			t.Errorf("record %d = %v, want an ERROR naming checkpoint %v and %q", i, r, want.id, want.reason)
		}
	}
	if r := recs[2]; r["level"] != "ERROR" || r["checkpoint"] != 1.0 || fmt.Sprint(r["skipped"]) != "[3 2]" {
		t.Errorf("fallback record = %v, want an ERROR restoring 1 after skipping [3 2]", r)
	}

	// Nothing is logged when the newest checkpoint is fine.
	writeCheckpoint(t, c.Snapshot(4), 4, checkpoint.KindCheckpoint)
	log, records = capture()
	if m, err := c.Latest(ctx, log); err != nil || m.CheckpointID != 4 {
		t.Fatalf("Latest = %v, %v; want checkpoint 4", m, err)
	}
	if recs := records(); len(recs) != 0 {
		t.Fatalf("logged %v for a healthy checkpoint", recs)
	}
}

func TestLatestNoneOrAllCorrupt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, root := newOSStore(t)
	log, _ := capture()
	if _, err := c.Latest(ctx, log); !errors.Is(err, ErrNoCheckpoint) {
		t.Fatalf("empty store: Latest error %v, want ErrNoCheckpoint", err)
	}
	// An incomplete checkpoint does not count.
	w, _ := c.StateWriter(ctx, 1, "x")
	w.Write([]byte("x"))
	w.Commit()
	if _, err := c.Latest(ctx, log); !errors.Is(err, ErrNoCheckpoint) {
		t.Fatalf("only incomplete: Latest error %v, want ErrNoCheckpoint", err)
	}

	writeCheckpoint(t, c.Snapshot(2), 2, checkpoint.KindCheckpoint)
	flipByte(t, filepath.Join(root, "chk-2", MetadataName), 100, 0x01)
	_, err := c.Latest(ctx, log)
	// Not ErrNoCheckpoint: a caller that starts from scratch on it must not
	// silently drop the job's state because every checkpoint is damaged.
	if !errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNoCheckpoint) {
		t.Fatalf("all corrupt: Latest error %v, want ErrCorrupt and not ErrNoCheckpoint", err)
	}
}

// Only corruption is skipped: an I/O error or a newer format must stop the
// restore instead of silently rolling the job back.
func TestLatestDoesNotSkipOtherErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, _, ff := newMemStore(t)
	writeCheckpoint(t, c.Snapshot(1), 1, checkpoint.KindCheckpoint)
	writeCheckpoint(t, c.Snapshot(2), 2, checkpoint.KindCheckpoint)

	ff.setHook(func(op, p string) error {
		if op == "open" && strings.Contains(p, "/chk-2/counter-") {
			return &fs.PathError{Op: "read", Path: p, Err: syscall.EIO}
		}
		return nil
	})
	log, records := capture()
	_, err := c.Latest(ctx, log)
	if !errors.Is(err, syscall.EIO) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("Latest error %v, want the EIO", err)
	}
	if len(records()) != 0 {
		t.Fatalf("logged %v", records())
	}
	ff.setHook(nil)

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.Latest(canceled, log); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: Latest error %v", err)
	}

	// A _metadata from a newer Sluice (valid envelope, a higher version).
	m := &checkpoint.Metadata{CheckpointID: 3, Kind: checkpoint.KindCheckpoint, Version: 1}
	data, err := encodeMetadata(m)
	if err != nil {
		t.Fatal(err)
	}
	data = reencode(t, bytes.Replace(data, []byte(`"version":1`), []byte(fmt.Sprintf(`"version":%d`, checkpoint.FormatVersion+1)), 1))
	w, _ := c.Storage().Create(ctx, "chk-3/_metadata")
	w.Write(data)
	if _, _, err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Latest(ctx, log); !errors.Is(err, ErrUnsupportedVersion) {
		t.Fatalf("newer version: Latest error %v, want ErrUnsupportedVersion", err)
	}
}

// reencode fixes the checksum and length of an edited _metadata file.
func reencode(t *testing.T, data []byte) []byte {
	t.Helper()
	i := bytes.Index(data, []byte("\n\"metadata\":"))
	body := bytes.TrimSuffix(data[i+len("\n\"metadata\":"):], []byte("}\n"))
	return fmt.Appendf(nil, "{\"format\":%q,\"crc32c\":\"%08x\",\"length\":%d,\n\"metadata\":%s}\n",
		metadataFormat, crc32c(body), len(body), body)
}

// A crashed process leaves incomplete checkpoint directories: committed
// state files without _metadata, temporary files, empty directories. MaxID
// sees them all, so that new ids never reuse their directories, and
// CleanIncomplete removes them.
func TestMaxIDAndCleanIncomplete(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, mem, _ := newMemStore(t)
	s := c.Storage()

	if id, err := c.MaxID(ctx); err != nil || id != 0 {
		t.Fatalf("empty: MaxID = %d, %v", id, err)
	}
	writeCheckpoint(t, c.Snapshot(1), 1, checkpoint.KindCheckpoint)
	// chk-2: a state file committed, then the job died before _metadata.
	w, _ := c.StateWriter(ctx, 2, "counter-0.keyed")
	w.Write([]byte("partial"))
	w.Commit()
	// chk-5: a writer died mid-write, leaving its temporary file.
	w, _ = c.StateWriter(ctx, 5, "counter-0.keyed")
	w.Write([]byte("half"))
	// chk-1: a temporary file inside a complete checkpoint.
	w1, _ := c.StateWriter(ctx, 1, "late.keyed")
	w1.Write([]byte("late"))
	// chk-7: an empty directory; chk-007 and chk-x are not checkpoints.
	for _, d := range []string{"chk-7", "chk-007", "chk-x"} {
		if err := mem.Mkdir(filepath.Join(memRoot, d)); err != nil {
			t.Fatal(err)
		}
	}

	if id, err := c.MaxID(ctx); err != nil || id != 7 {
		t.Fatalf("MaxID = %d, %v; want 7", id, err)
	}
	if ids, _ := c.Completed(ctx); !slices.Equal(ids, []int64{1}) {
		t.Fatalf("Completed = %v, want [1]", ids)
	}
	if err := c.CleanIncomplete(ctx); err != nil {
		t.Fatal(err)
	}
	names, err := s.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"chk-007/", "chk-1/_metadata", "chk-1/counter-0.keyed", "chk-1/counter-1.keyed", "chk-x/"}
	if !slices.Equal(names, want) {
		t.Fatalf("after CleanIncomplete:\n got %v\nwant %v", names, want)
	}
	if id, _ := c.MaxID(ctx); id != 1 {
		t.Fatalf("after CleanIncomplete: MaxID = %d, want 1", id)
	}
	if _, err := c.Latest(ctx, nil); err != nil {
		t.Fatalf("the complete checkpoint was damaged: %v", err)
	}
}

func TestDiscard(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, mem, ff := newMemStore(t)
	writeCheckpoint(t, c.Snapshot(1), 1, checkpoint.KindCheckpoint)
	writeCheckpoint(t, c.Snapshot(2), 2, checkpoint.KindCheckpoint)
	if err := c.Discard(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if got := mem.Files(memRoot); slices.ContainsFunc(got, func(f string) bool { return strings.HasPrefix(f, "chk-1") }) {
		t.Fatalf("Discard left %v", got)
	}
	// Discarding a missing checkpoint is not an error (retention may race
	// with cleanup).
	if err := c.Discard(ctx, 1); err != nil {
		t.Fatal(err)
	}

	// If deleting the state files fails, _metadata is already gone: the
	// checkpoint is incomplete, not complete-but-corrupt.
	ff.setHook(func(op, p string) error {
		if op == "removeall" && strings.HasSuffix(p, "/chk-2") {
			return &fs.PathError{Op: "unlinkat", Path: p, Err: syscall.EIO}
		}
		return nil
	})
	if err := c.Discard(ctx, 2); !errors.Is(err, syscall.EIO) || !strings.Contains(err.Error(), "checkpoint 2") {
		t.Fatalf("Discard error %v, want EIO naming checkpoint 2", err)
	}
	if ids, _ := c.Completed(ctx); len(ids) != 0 {
		t.Fatalf("Completed = %v after a half-done Discard, want none", ids)
	}
}

// Pebble-style crash testing: after a simulated power cut, a checkpoint
// whose WriteMetadata returned is intact, and one that did not get that far
// is not complete.
func TestCrashDurability(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	// Sanity check of the harness: unsynced data and names are lost.
	{
		mem := newMemFS("/d")
		f, _ := mem.Create("/d/f")
		f.Write([]byte("x"))
		f.Close()
		mem.Crash()
		if got := mem.Files("/d"); len(got) != 0 {
			t.Fatalf("memFS kept unsynced file: %v", got)
		}
	}

	c, mem, ff := newMemStore(t)
	want := writeCheckpoint(t, c.Snapshot(1), 1, checkpoint.KindCheckpoint)
	// chk-2's state files are committed but the job dies while renaming
	// its _metadata into place.
	ff.setHook(func(op, p string) error {
		if op == "rename" && strings.HasSuffix(p, "chk-2/_metadata") {
			return &fs.PathError{Op: "rename", Path: p, Err: syscall.EIO}
		}
		return nil
	})
	m2 := &checkpoint.Metadata{CheckpointID: 2, Kind: checkpoint.KindCheckpoint}
	w, _ := c.StateWriter(ctx, 2, "s")
	w.Write([]byte("state of 2"))
	if _, err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteMetadata(ctx, m2); !errors.Is(err, syscall.EIO) {
		t.Fatalf("WriteMetadata error %v, want EIO", err)
	}
	// And chk-3 is being written when the power goes.
	w, _ = c.StateWriter(ctx, 3, "s")
	w.Write([]byte("state of 3"))
	ff.setHook(nil)

	mem.Crash()

	c2 := NewCheckpoints(c.Storage()) // a restarted process
	got, err := c2.Latest(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	want.Version = checkpoint.FormatVersion
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("after crash: Latest = %+v, want %+v", got, want)
	}
	if ids, _ := c2.Completed(ctx); !slices.Equal(ids, []int64{1}) {
		t.Fatalf("after crash: Completed = %v, want [1]", ids)
	}
	if id, _ := c2.MaxID(ctx); id < 2 {
		t.Fatalf("after crash: MaxID = %d, want ≥ 2 (chk-2's state file was durable)", id)
	}
	if err := c2.CleanIncomplete(ctx); err != nil {
		t.Fatal(err)
	}
	if got := mem.Files(memRoot); !slices.Equal(got, []string{"chk-1/_metadata", "chk-1/counter-0.keyed", "chk-1/counter-1.keyed"}) {
		t.Fatalf("after crash and CleanIncomplete: files %v", got)
	}
}

// Chaos: disk full (docs/design.md §13). A full disk surfaces as an error from Write,
// Commit or WriteMetadata, never as a panic or a half-visible file, and the
// temporary file is removed at once to give the space back.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	payload := bytes.Repeat([]byte("0123456789abcdef"), 10_000) // 160 KB, beyond the 64 KiB buffer

	small := []byte("fits in the write buffer, so the disk fills up in Commit")
	for _, tc := range []struct {
		payload []byte
		budget  int64
	}{
		{payload, 0}, {payload, 1}, {payload, 64<<10 - 1}, {payload, 64 << 10}, {payload, int64(len(payload)) - 1},
		{small, 0}, {small, 10}, {small, int64(len(small)) - 1},
	} {
		payload, budget := tc.payload, tc.budget
		c, mem, ff := newMemStore(t)
		ff.setBudget(budget)
		w, err := c.StateWriter(ctx, 1, "big.keyed")
		if err != nil {
			t.Fatal(err)
		}
		_, werr := w.Write(payload)
		_, cerr := w.Commit()
		err = errors.Join(werr, cerr)
		if !errors.Is(err, syscall.ENOSPC) || cerr == nil {
			t.Fatalf("budget %d: Write error %v, Commit error %v; want ENOSPC and a failed Commit", budget, werr, cerr)
		}
		if !strings.Contains(cerr.Error(), "big.keyed") {
			t.Errorf("budget %d: error %q does not name the file", budget, cerr)
		}
		if got := mem.Files(memRoot); len(got) != 0 {
			t.Fatalf("budget %d: files left behind: %v", budget, got)
		}
		if err := w.Abort(); err != nil {
			t.Fatalf("budget %d: Abort after failure: %v", budget, err)
		}
	}

	// _metadata itself does not fit.
	c, mem, ff := newMemStore(t)
	writeCheckpoint(t, c.Snapshot(1), 1, checkpoint.KindCheckpoint)
	ff.setBudget(100)
	err := c.WriteMetadata(ctx, &checkpoint.Metadata{CheckpointID: 2, Kind: checkpoint.KindCheckpoint, JobName: strings.Repeat("j", 200)})
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("WriteMetadata error %v, want ENOSPC", err)
	}
	if ids, _ := c.Completed(ctx); !slices.Equal(ids, []int64{1}) {
		t.Fatalf("Completed = %v, want [1]", ids)
	}
	if slices.ContainsFunc(mem.Files(memRoot), isTemp) {
		t.Fatalf("temporary file left: %v", mem.Files(memRoot))
	}
}

// Every step of Commit can fail; none of them leaves the name visible.
func TestCommitFailures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct{ op, suffix string }{
		{"mkdir", ""},
		{"syncdir", memRoot}, // after creating chk-1
		{"create", ""},
		{"sync", ""},
		{"close", ""},
		{"rename", ""},
		{"syncdir", "/chk-1"}, // after the rename: the file must go again
	} {
		op := tc.op + " " + tc.suffix
		c, mem, ff := newMemStore(t)
		ff.setHook(func(o, p string) error {
			if o == tc.op && strings.HasSuffix(p, tc.suffix) {
				return &fs.PathError{Op: o, Path: p, Err: syscall.EIO}
			}
			return nil
		})
		err := c.WriteMetadata(ctx, &checkpoint.Metadata{CheckpointID: 1, Kind: checkpoint.KindCheckpoint})
		if !errors.Is(err, syscall.EIO) {
			t.Errorf("%s fails: WriteMetadata error %v, want EIO", op, err)
		}
		ff.setHook(nil)
		if ids, _ := c.Completed(ctx); len(ids) != 0 {
			t.Errorf("%s fails: Completed = %v, want none", op, ids)
		}
		if got := mem.Files(memRoot); len(got) != 0 {
			t.Errorf("%s fails: files left: %v", op, got)
		}
	}
}

// Tests run as root, which chmod cannot stop, so an unwritable directory is
// simulated with a file where the checkpoint directory should be.
func TestUnwritableDirectory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, root := newOSStore(t)
	if err := os.WriteFile(filepath.Join(root, "chk-1"), []byte("in the way"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StateWriter(ctx, 1, "s"); err == nil || !strings.Contains(err.Error(), filepath.Join(root, "chk-1")) {
		t.Fatalf("StateWriter error %v, want one naming %s", err, filepath.Join(root, "chk-1"))
	}
	err := c.WriteMetadata(ctx, &checkpoint.Metadata{CheckpointID: 1, Kind: checkpoint.KindCheckpoint})
	if !errors.Is(err, syscall.ENOTDIR) {
		t.Fatalf("WriteMetadata error %v, want ENOTDIR", err)
	}
	if _, err := NewFS(filepath.Join(root, "chk-1", "sub")); err == nil {
		t.Fatal("NewFS under a file succeeded")
	}

	// Where permissions do apply (not root), a read-only root fails the
	// same way.
	ro := filepath.Join(t.TempDir(), "ro")
	s, err := NewFS(ro)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(ro, 0o500); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(ro, 0o755)
	if probe, err := os.Create(filepath.Join(ro, "probe")); err == nil {
		probe.Close()
		t.Log("chmod 0500 does not stop this user (root); covered by the file-in-the-way case above")
		return
	}
	if _, err := NewCheckpoints(s).StateWriter(ctx, 1, "s"); !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("read-only root: StateWriter error %v, want EACCES", err)
	}
}

// Tasks write the state files of one checkpoint in parallel; the first of
// them creates the directory.
func TestConcurrentStateWriters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, _ := newOSStore(t)
	var wg sync.WaitGroup
	hs := make([]checkpoint.StateHandle, 16)
	errs := make([]error, 16)
	for i := range hs {
		wg.Go(func() {
			w, err := c.StateWriter(ctx, 9, fmt.Sprintf("task-%02d", i))
			if err != nil {
				errs[i] = err
				return
			}
			fmt.Fprintf(w, "state of task %d", i)
			hs[i], errs[i] = w.Commit()
		})
	}
	wg.Wait()
	for i, h := range hs {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		data, err := c.ReadState(ctx, 9, h)
		if err != nil || string(data) != fmt.Sprintf("state of task %d", i) {
			t.Fatalf("task %d: %q, %v", i, data, err)
		}
	}
}

func TestOpenStateStreams(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, _, _ := newMemStore(t)
	m := writeCheckpoint(t, c.Snapshot(1), 1, checkpoint.KindCheckpoint)
	h := m.Operators["counter"].Subtasks[0].Keyed[0]
	r, err := c.OpenState(ctx, 1, h)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil || int64(len(data)) != h.Size {
		t.Fatalf("OpenState read %d bytes, %v", len(data), err)
	}
	bad := h
	bad.CRC32C++
	r2, _ := c.OpenState(ctx, 1, bad)
	defer r2.Close()
	if _, err := io.ReadAll(r2); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("wrong checksum: error %v, want ErrCorrupt", err)
	}
}
