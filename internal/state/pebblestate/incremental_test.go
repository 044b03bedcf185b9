package pebblestate_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/clock"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/internal/runtime"
	"github.com/sluicehq/sluice/internal/state/pebblestate"
	"github.com/sluicehq/sluice/keygroup"
	"github.com/sluicehq/sluice/state"
)

// fakeShared is a runtime.SharedWriter into a directory, as checkpoint
// storage's shared area would be, with a Fetch that verifies size and
// checksum as the runtime's restorer does.
type fakeShared struct {
	root    string
	written atomic.Int64 // bytes committed
	fetches atomic.Int64
	n       atomic.Int64
}

type fakeFile struct {
	fs   *fakeShared
	path string
	f    *os.File
	crc  uint32
	size int64
}

var crcTab = crc32.MakeTable(crc32.Castagnoli)

func (fs *fakeShared) Create(name string) (runtime.SharedFile, error) {
	rel := filepath.Join("shared", fmt.Sprintf("%d-%s", fs.n.Add(1), name))
	if err := os.MkdirAll(filepath.Join(fs.root, "shared"), 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(filepath.Join(fs.root, rel))
	if err != nil {
		return nil, err
	}
	return &fakeFile{fs: fs, path: rel, f: f}, nil
}

func (f *fakeFile) Write(p []byte) (int, error) {
	f.crc = crc32.Update(f.crc, crcTab, p)
	f.size += int64(len(p))
	return f.f.Write(p)
}

func (f *fakeFile) Commit() (checkpoint.StateHandle, error) {
	if err := f.f.Sync(); err != nil {
		return checkpoint.StateHandle{}, err
	}
	if err := f.f.Close(); err != nil {
		return checkpoint.StateHandle{}, err
	}
	f.fs.written.Add(f.size)
	return checkpoint.StateHandle{Path: f.path, Size: f.size, CRC32C: f.crc, Shared: true}, nil
}

func (f *fakeFile) Abort() error {
	f.f.Close()
	return os.Remove(filepath.Join(f.fs.root, f.path))
}

func (fs *fakeShared) fetch(ctx context.Context, h checkpoint.StateHandle, dst string) error {
	fs.fetches.Add(1)
	data, err := os.ReadFile(filepath.Join(fs.root, h.Path))
	if err != nil {
		return err
	}
	if int64(len(data)) != h.Size || crc32.Checksum(data, crcTab) != h.CRC32C {
		return fmt.Errorf("%w: %s: size or checksum mismatch", state.ErrCorrupt, h.Path)
	}
	return os.WriteFile(dst, data, 0o644)
}

func (fs *fakeShared) restored(hs []checkpoint.StateHandle, r checkpoint.KeyGroupRange) runtime.RestoredKeyed {
	return runtime.RestoredKeyed{Format: pebblestate.FormatMeta, KeyGroups: r, Handles: hs, Fetch: fs.fetch}
}

type counter struct {
	b *pebblestate.Backend[string]
	v state.ValueState[int64]
	m state.MapState[string, int64]
}

func newCounter(t testing.TB, maxP int, r checkpoint.KeyGroupRange, o pebblestate.Options, restore func(*pebblestate.Backend[string]) error) *counter {
	t.Helper()
	b, err := pebblestate.New(codec.String, maxP, r, clock.NewFake(epoch), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if restore != nil {
		if err := restore(b); err != nil {
			t.Fatalf("restore: %v", err)
		}
	}
	c := &counter{b: b}
	if c.v, err = pebblestate.Value(b, "count", codec.Int64); err != nil {
		t.Fatal(err)
	}
	if c.m, err = pebblestate.Map(b, "attrs", codec.String, codec.Int64); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *counter) put(t testing.TB, k string, v int64) {
	if err := c.b.SetCurrentKey(k); err != nil {
		t.Fatal(err)
	}
	c.v.Update(v)
	if v%10 == 0 {
		c.m.Put("tenth", v)
		c.b.RegisterEventTimer(v)
	}
}

func (c *counter) want(t testing.TB, k string, v int64) {
	t.Helper()
	if err := c.b.SetCurrentKey(k); err != nil {
		t.Fatal(err)
	}
	if got, ok := c.v.Value(); !ok || got != v {
		t.Fatalf("%s = %d %v, want %d", k, got, ok, v)
	}
	if v%10 == 0 {
		if got, ok := c.m.Get("tenth"); !ok || got != v {
			t.Fatalf("%s: map = %d %v, want %d", k, got, ok, v)
		}
	}
}

func incremental(t testing.TB, c *counter, fs *fakeShared, id int64) []checkpoint.StateHandle {
	t.Helper()
	s := c.b.Snapshot(id)
	defer s.Release()
	var is runtime.IncrementalSnapshot = s
	hs, err := is.WriteIncremental(context.Background(), fs)
	if err != nil {
		t.Fatalf("WriteIncremental %d: %v", id, err)
	}
	return hs
}

// TestIncrementalUploadsOnlyNewFiles writes 100k keys, checkpoints, changes
// 1% of them and checkpoints again: the second checkpoint uploads at least
// 10x fewer bytes than the first, reuses the first one's handles unchanged,
// and restores to the changed state.
func TestIncrementalUploadsOnlyNewFiles(t *testing.T) {
	const maxP, n = 16, 100_000
	r := checkpoint.KeyGroupRange{Start: 0, End: maxP - 1}
	fs := &fakeShared{root: t.TempDir()}
	c := newCounter(t, maxP, r, pebblestate.Options{Dir: t.TempDir() + "/db", Incremental: true, MemTableSize: 64 << 20}, nil)
	for i := range n {
		c.put(t, fmt.Sprintf("key-%d", i), int64(i))
	}
	h1 := incremental(t, c, fs, 1)
	full := fs.written.Load()
	c.b.NotifyCheckpointComplete(1)
	for i := 0; i < n; i += 100 {
		c.put(t, fmt.Sprintf("key-%d", i), int64(i)+7)
	}
	h2 := incremental(t, c, fs, 2)
	second := fs.written.Load() - full
	t.Logf("full checkpoint %d bytes, after 1%% changed %d bytes (%.1fx fewer)", full, second, float64(full)/float64(second))
	if second*10 > full {
		t.Fatalf("second checkpoint wrote %d bytes, full one %d: want ≥ 10x fewer", second, full)
	}
	reused := 0
	for _, h := range h2 {
		if hasHandle(h1, h) {
			reused++
		}
	}
	if reused == 0 {
		t.Fatalf("no handle of checkpoint 1 reused: %v / %v", h1, h2)
	}
	if h2[0].Format != pebblestate.FormatMeta {
		t.Fatalf("first handle %+v, want the meta file", h2[0])
	}
	for _, h := range h2[1:] {
		if h.Format != pebblestate.FormatSST || !h.Shared {
			t.Fatalf("handle %+v", h)
		}
	}
	// Restore the second checkpoint.
	c2 := newCounter(t, maxP, r, pebblestate.Options{Dir: t.TempDir() + "/db"}, func(b *pebblestate.Backend[string]) error {
		return b.RestoreNative(context.Background(), []runtime.RestoredKeyed{fs.restored(h2, r)})
	})
	for i := range n {
		v := int64(i)
		if i%100 == 0 {
			v += 7
		}
		c2.want(t, fmt.Sprintf("key-%d", i), v)
	}
	if got := c2.b.NumEventTimers(); got != n/10 {
		t.Fatalf("%d event timers, want %d", got, n/10)
	}
}

// TestIncrementalReusesOnlyConfirmed: a checkpoint that never completed
// (no NotifyCheckpointComplete) may have had its files deleted, so the
// next one uploads everything again rather than refer to them.
func TestIncrementalReusesOnlyConfirmed(t *testing.T) {
	const maxP = 8
	r := checkpoint.KeyGroupRange{Start: 0, End: maxP - 1}
	fs := &fakeShared{root: t.TempDir()}
	c := newCounter(t, maxP, r, pebblestate.Options{Dir: t.TempDir() + "/db", Incremental: true}, nil)
	for i := range 5000 {
		c.put(t, fmt.Sprintf("key-%d", i), int64(i))
	}
	h1 := incremental(t, c, fs, 1) // never confirmed
	h2 := incremental(t, c, fs, 2)
	for _, h := range h2 {
		if hasHandle(h1, h) {
			t.Fatalf("checkpoint 2 reuses %s of unconfirmed checkpoint 1", h.Path)
		}
	}
	c.b.NotifyCheckpointComplete(2)
	h3 := incremental(t, c, fs, 3)
	if !hasHandle(h3, h2[1]) {
		t.Fatalf("checkpoint 3 does not reuse confirmed checkpoint 2's table %s", h2[1].Path)
	}
}

// TestNativeRescale restores incremental checkpoints of two subtasks at
// parallelism 3 and 1: key groups are clipped and merged.
func TestNativeRescale(t *testing.T) {
	const maxP, n = 32, 20_000
	fs := &fakeShared{root: t.TempDir()}
	type ck struct {
		r  checkpoint.KeyGroupRange
		hs []checkpoint.StateHandle
	}
	var cks []ck
	var olds []*counter
	for st := range 2 {
		r := keygroup.RangeFor(st, 2, maxP)
		olds = append(olds, newCounter(t, maxP, r, pebblestate.Options{Dir: t.TempDir() + "/db", Incremental: true}, nil))
		cks = append(cks, ck{r: r})
	}
	for i := range n {
		k := fmt.Sprintf("key-%d", i)
		olds[keygroup.SubtaskFor(keygroup.Of(codec.String.Hash(k), maxP), 2, maxP)].put(t, k, int64(i))
	}
	for st := range olds {
		cks[st].hs = incremental(t, olds[st], fs, 5)
	}
	for _, par := range []int{3, 1} {
		var news []*counter
		timers := 0
		for st := range par {
			r := keygroup.RangeFor(st, par, maxP)
			var rk []runtime.RestoredKeyed
			for _, c := range cks {
				if c.r.Intersect(r).Len() > 0 {
					rk = append(rk, fs.restored(c.hs, c.r))
				}
			}
			nc := newCounter(t, maxP, r, pebblestate.Options{Dir: t.TempDir() + "/db", Incremental: true}, func(b *pebblestate.Backend[string]) error {
				return b.RestoreNative(context.Background(), rk)
			})
			news = append(news, nc)
			if out := pebblestate.EntriesOutsideRange(nc.b); out != 0 {
				t.Fatalf("parallelism %d subtask %d: %d entries outside its key groups", par, st, out)
			}
			timers += nc.b.NumEventTimers()
			keys, err := nc.b.KeysOf("count")
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				if !r.Contains(keygroup.Of(codec.String.Hash(k), maxP)) {
					t.Fatalf("parallelism %d subtask %d holds key %s of another range", par, st, k)
				}
			}
		}
		for i := range n {
			k := fmt.Sprintf("key-%d", i)
			news[keygroup.SubtaskFor(keygroup.Of(codec.String.Hash(k), maxP), par, maxP)].want(t, k, int64(i))
		}
		if timers != n/10 {
			t.Fatalf("parallelism %d: %d event timers, want %d", par, timers, n/10)
		}
		// A rescaled backend checkpoints and restores again.
		hs := incremental(t, news[0], fs, 6)
		r0 := keygroup.RangeFor(0, par, maxP)
		again := newCounter(t, maxP, r0, pebblestate.Options{Dir: t.TempDir() + "/db"}, func(b *pebblestate.Backend[string]) error {
			return b.RestoreNative(context.Background(), []runtime.RestoredKeyed{fs.restored(hs, r0)})
		})
		for i := range n {
			k := fmt.Sprintf("key-%d", i)
			if r0.Contains(keygroup.Of(codec.String.Hash(k), maxP)) {
				again.want(t, k, int64(i))
			}
		}
	}
}

// TestLocalRecoveryDoesNotFetch: a backend restarting in the same
// directory with local recovery opens its local copy of exactly the
// restored checkpoint and fetches nothing; for another checkpoint it
// fetches.
func TestLocalRecoveryDoesNotFetch(t *testing.T) {
	const maxP, n = 8, 5000
	r := checkpoint.KeyGroupRange{Start: 0, End: maxP - 1}
	fs := &fakeShared{root: t.TempDir()}
	dir := t.TempDir() + "/op-0/db"
	o := pebblestate.Options{Dir: dir, Incremental: true, LocalRecovery: true}
	c := newCounter(t, maxP, r, o, nil)
	for i := range n {
		c.put(t, fmt.Sprintf("key-%d", i), int64(i))
	}
	h1 := incremental(t, c, fs, 1)
	c.b.NotifyCheckpointComplete(1)
	c.put(t, "key-1", 1000)
	h2 := incremental(t, c, fs, 2)
	c.b.NotifyCheckpointComplete(2)
	c.put(t, "key-1", 2000) // after the last checkpoint: lost on restore
	if err := c.b.Close(); err != nil {
		t.Fatal(err)
	}
	c2 := newCounter(t, maxP, r, o, func(b *pebblestate.Backend[string]) error {
		return b.RestoreNative(context.Background(), []runtime.RestoredKeyed{fs.restored(h2, r)})
	})
	if f := fs.fetches.Load(); f != 0 {
		t.Fatalf("%d files fetched with a local copy of the checkpoint", f)
	}
	c2.want(t, "key-1", 1000)
	for i := 2; i < n; i++ {
		c2.want(t, fmt.Sprintf("key-%d", i), int64(i))
	}
	// The local copy is not changed by the restored DB: restore it again.
	c2.put(t, "key-2", 99)
	c2.b.Close()
	c3 := newCounter(t, maxP, r, o, func(b *pebblestate.Backend[string]) error {
		return b.RestoreNative(context.Background(), []runtime.RestoredKeyed{fs.restored(h2, r)})
	})
	c3.want(t, "key-2", 2)
	c3.b.Close()
	if f := fs.fetches.Load(); f != 0 {
		t.Fatalf("%d files fetched", f)
	}
	// Checkpoint 1's local copy was pruned when 2 completed: fetched.
	c4 := newCounter(t, maxP, r, o, func(b *pebblestate.Backend[string]) error {
		return b.RestoreNative(context.Background(), []runtime.RestoredKeyed{fs.restored(h1, r)})
	})
	if fs.fetches.Load() == 0 {
		t.Fatal("checkpoint 1 restored without a fetch, but its local copy was pruned")
	}
	c4.want(t, "key-1", 1)
}

// TestNativeCorruptInput: damaged or missing native files give errors.
func TestNativeCorruptInput(t *testing.T) {
	const maxP = 8
	r := checkpoint.KeyGroupRange{Start: 0, End: maxP - 1}
	fs := &fakeShared{root: t.TempDir()}
	c := newCounter(t, maxP, r, pebblestate.Options{Dir: t.TempDir() + "/db", Incremental: true}, nil)
	for i := range 3000 {
		c.put(t, fmt.Sprintf("key-%d", i), int64(i))
	}
	hs := incremental(t, c, fs, 1)
	restore := func(hs []checkpoint.StateHandle) error {
		b, err := pebblestate.New(codec.String, maxP, r, nil, pebblestate.Options{Dir: t.TempDir() + "/db"})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		return b.RestoreNative(context.Background(), []runtime.RestoredKeyed{fs.restored(hs, r)})
	}
	if err := restore(hs[1:]); err == nil {
		t.Fatal("restore without the meta file: no error")
	}
	if err := restore(hs[:1]); err == nil {
		t.Fatal("restore without the tables: no error")
	}
	// A meta file damaged in storage, with a handle that matches it (so
	// the fetch's checksum passes), is caught by the meta file's own.
	data, err := os.ReadFile(filepath.Join(fs.root, hs[0].Path))
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 5, len(data) / 2, len(data) - 1} {
		d := slices.Clone(data)
		d[i] ^= 1
		sf, _ := fs.Create("bad-meta")
		sf.Write(d)
		h, _ := sf.Commit()
		h.Format = pebblestate.FormatMeta
		bad := append([]checkpoint.StateHandle{h}, hs[1:]...)
		if err := restore(bad); err == nil || !errors.Is(err, state.ErrCorrupt) {
			t.Fatalf("meta byte %d flipped: %v", i, err)
		}
	}
	// A table damaged in storage fails the fetch's checksum.
	tp := filepath.Join(fs.root, hs[1].Path)
	tdata, _ := os.ReadFile(tp)
	tdata[len(tdata)/2] ^= 1
	os.WriteFile(tp, tdata, 0o644)
	if err := restore(hs); err == nil {
		t.Fatal("damaged table: no error")
	}
}

// TestWriteIncrementalNeedsOption: without Options.Incremental the snapshot
// has no local checkpoint and says so.
func TestWriteIncrementalNeedsOption(t *testing.T) {
	c := newCounter(t, 4, checkpoint.KeyGroupRange{Start: 0, End: 3}, pebblestate.Options{}, nil)
	s := c.b.Snapshot(1)
	defer s.Release()
	if _, err := s.WriteIncremental(context.Background(), &fakeShared{root: t.TempDir()}); err == nil {
		t.Fatal("no error")
	}
	var buf bytes.Buffer
	if _, err := s.WriteKeyGroups(io.Writer(&buf)); err != nil {
		t.Fatal(err)
	}
	_ = time.Second
}

func hasHandle(hs []checkpoint.StateHandle, h checkpoint.StateHandle) bool {
	return slices.ContainsFunc(hs, func(x checkpoint.StateHandle) bool {
		return x.Path == h.Path && x.Size == h.Size && x.CRC32C == h.CRC32C && x.Format == h.Format && x.Shared == h.Shared
	})
}
