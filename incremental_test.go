package sluice_test

// Incremental checkpoints and local recovery of keyed state end to end
// (docs/design.md §4): the shared area of checkpoint storage, retention of
// shared files, restore (also rescaled) and task-local copies.

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/checkpoint/store"
)

// keyedReadCounter counts the opens of keyed state files.
type keyedReadCounter struct {
	store.Storage
	keyedOpens atomic.Int64
}

func (c *keyedReadCounter) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	if strings.HasSuffix(name, ".keyed") {
		c.keyedOpens.Add(1)
	}
	return c.Storage.Open(ctx, name)
}

// countJobOn is log → key by record → running count → sink, checkpointed
// on request only.
func countJobOn(cfg sluice.Config, src *logSource[string], out *collector[counted]) *sluice.Environment {
	cfg.BufferTimeout = sluice.FlushAlways
	cfg.Checkpoint = checkpoint.Config{Interval: -1, Retained: 2}
	env := sluice.New(cfg)
	keyed := sluice.KeyBy(sluice.FromSource(env, "src", src), func(s string) string { return s })
	c := sluice.Process(keyed, "count", func() sluice.KeyedProcessFunction[string, string, counted] { return &keyCounter{} })
	sluice.Sink(c, "sink", out.Sink())
	return env
}

// runRounds runs the job over rounds of input, one checkpoint after each,
// then stops it, and returns the highest count seen per key. The log holds
// history, the input of the runs before, first: the restored position
// skips it.
func runRounds(t *testing.T, cfg sluice.Config, history *[]string, rounds [][]string) map[string]int64 {
	t.Helper()
	src, out := newLogSource[string](), newCollector[counted]()
	src.Append(*history...)
	env := countJobOn(cfg, src, out)
	x := start(t, env)
	n := 0
	for _, r := range rounds {
		*history = append(*history, r...)
		src.Append(r...)
		n += len(r)
		out.WaitLen(t, n)
		if _, err := env.TriggerCheckpoint(ctxTimeout(t)); err != nil {
			t.Fatalf("TriggerCheckpoint: %v", err)
		}
	}
	env.Stop()
	if _, err := x.wait(t); err != nil {
		t.Fatalf("Execute: %v", err)
	}
	return finalCounts(out.Records())
}

// sharedReferences returns the shared files every complete checkpoint in
// dir refers to, and how many checkpoints refer to each.
func sharedReferences(t *testing.T, dir string) map[string]int {
	t.Helper()
	fsys, err := store.NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := store.NewCheckpoints(fsys)
	ids, err := c.Completed(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	refs := map[string]int{}
	for _, id := range ids {
		m, err := c.ReadMetadata(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		for _, op := range m.Operators {
			for _, st := range op.Subtasks {
				for _, h := range st.Keyed {
					if h.Shared {
						refs[h.Path]++
					}
				}
			}
		}
	}
	return refs
}

// filesUnder lists the files under dir/sub, relative to dir.
func filesUnder(t *testing.T, dir, sub string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(filepath.Join(dir, sub), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return out
}

// TestIncrementalCheckpoints: with state.incremental a keyed job's
// checkpoints go into the shared area and later ones reuse earlier files;
// retention leaves no shared file that no complete checkpoint refers to;
// and the job restores from them exactly, also at another parallelism,
// counts continuing record by record.
func TestIncrementalCheckpoints(t *testing.T) {
	t.Parallel()
	var keys []string
	for i := range 2000 {
		keys = append(keys, fmt.Sprintf("k%d", i))
	}
	want := map[string]int64{}
	add := func(rs [][]string) [][]string {
		for _, r := range rs {
			for _, k := range r {
				want[k]++
			}
		}
		return rs
	}
	cfg := testConfig(t, 2)
	cfg.State.Incremental = true
	// Every key, then a few keys per round: most key groups stay unchanged.
	var history []string
	got := runRounds(t, cfg, &history, add([][]string{keys, keys[:3], keys[5:7], keys[:1], keys[9:12]}))
	if !maps.Equal(got, want) {
		t.Fatalf("counts differ from the input")
	}
	refs := sharedReferences(t, cfg.CheckpointDir)
	reused := false
	for _, n := range refs {
		reused = reused || n > 1
	}
	if len(refs) == 0 || !reused {
		t.Fatalf("shared references %v: want shared files, some in two checkpoints", refs)
	}
	for _, f := range filesUnder(t, cfg.CheckpointDir, store.SharedDir) {
		if refs[f] == 0 {
			t.Fatalf("orphan shared file %s after retention (referenced: %v)", f, refs)
		}
	}
	// A savepoint copied from the last checkpoint holds its shared files
	// itself (store.Copy), and restores in a directory of its own.
	spDir := savepointOf(t, cfg.CheckpointDir)
	spCfg := testConfig(t, 1)
	spCfg.FromCheckpoint = spDir
	spHistory, spWant := slices.Clone(history), maps.Clone(want)
	spGot := runRounds(t, spCfg, &spHistory, [][]string{keys[:20]})
	for _, k := range keys[:20] {
		if spGot[k] != spWant[k]+1 {
			t.Fatalf("restored from the savepoint, key %s counts %d, want %d", k, spGot[k], spWant[k]+1)
		}
	}
	if len(spGot) != 20 {
		t.Fatalf("restored from the savepoint: output for %d keys, want 20", len(spGot))
	}

	// Restart at parallelism 3 from the last (incremental) checkpoint.
	cfg.Parallelism = 3
	got = runRounds(t, cfg, &history, add([][]string{keys[:50], keys[1990:]}))
	for k, n := range got {
		if n != want[k] {
			t.Fatalf("after the rescaled restore key %s counts %d, want %d", k, n, want[k])
		}
	}
	refs = sharedReferences(t, cfg.CheckpointDir)
	for _, f := range filesUnder(t, cfg.CheckpointDir, store.SharedDir) {
		if refs[f] == 0 {
			t.Fatalf("orphan shared file %s after the second run (referenced: %v)", f, refs)
		}
	}
}

// savepointOf copies the latest checkpoint in dir into a savepoint and
// returns its path; it checks the savepoint refers to no shared file.
func savepointOf(t *testing.T, dir string) string {
	t.Helper()
	ctx := context.Background()
	fsys, err := store.NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := store.NewCheckpoints(fsys)
	m, err := c.Latest(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	spRoot, err := store.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sp, err := store.NewSavepoint(spRoot, m.CheckpointID)
	if err != nil {
		t.Fatal(err)
	}
	mm := *m
	mm.Kind = checkpoint.KindSavepoint
	if err := store.Copy(ctx, sp, c.Snapshot(m.CheckpointID), &mm); err != nil {
		t.Fatal(err)
	}
	got, _, err := store.LoadPath(ctx, sp.Location())
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range got.Operators {
		for _, st := range op.Subtasks {
			for _, h := range st.Keyed {
				if h.Shared {
					t.Fatalf("savepoint refers to shared file %s", h.Path)
				}
			}
		}
	}
	return sp.Location()
}

// TestLocalRecovery: with state.local-recovery a job restarting on the same
// machine restores its keyed state from the task-local copy of the
// checkpoint and reads no keyed state file from checkpoint storage; a copy
// that does not verify is skipped with a WARN, and storage read instead.
func TestLocalRecovery(t *testing.T) {
	t.Parallel()
	for _, incremental := range []bool{false, true} {
		t.Run(fmt.Sprintf("incremental=%v", incremental), func(t *testing.T) {
			t.Parallel()
			localRecovery(t, incremental)
		})
	}
}

func localRecovery(t *testing.T, incremental bool) {
	dir := t.TempDir()
	fsys, err := store.NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	st := &keyedReadCounter{Storage: fsys}
	var logs logBuffer
	cfg := testConfig(t, 2)
	cfg.CheckpointDir, cfg.CheckpointStorage = "", st
	cfg.State = sluice.StateConfig{Incremental: incremental, LocalRecovery: true, LocalDir: t.TempDir()}
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	want := map[string]int64{}
	var history []string
	round := func(keys ...string) [][]string {
		for _, k := range keys {
			want[k]++
		}
		return [][]string{keys}
	}
	check := func(got map[string]int64) {
		t.Helper()
		for k, n := range got {
			if n != want[k] {
				t.Fatalf("key %s counts %d, want %d", k, n, want[k])
			}
		}
	}
	check(runRounds(t, cfg, &history, round("a", "b", "c", "d", "e", "f")))

	// The restart restores from the local copies: no keyed state file of
	// the checkpoint is opened in storage, neither to verify nor to read.
	st.keyedOpens.Store(0)
	check(runRounds(t, cfg, &history, round("a", "b", "x")))
	if n := st.keyedOpens.Load(); n != 0 {
		t.Fatalf("restore with local copies opened %d keyed state files in checkpoint storage, want 0", n)
	}

	// Damage every local copy of the latest checkpoint: the restore falls
	// back to checkpoint storage, with a WARN, and restores the same.
	var damaged int
	for _, f := range filesUnder(t, cfg.State.LocalDir, ".") {
		if strings.HasSuffix(f, ".keyed") && !strings.Contains(f, "/.") {
			p := filepath.Join(cfg.State.LocalDir, f)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			// Cut, not flipped: copies of an incremental checkpoint are
			// hard links, and flipping a byte twice would undo it.
			if err := os.WriteFile(p, b[:len(b)-1], 0o644); err != nil {
				t.Fatal(err)
			}
			damaged++
		}
	}
	if damaged == 0 {
		t.Fatal("no local copy found to damage")
	}
	st.keyedOpens.Store(0)
	check(runRounds(t, cfg, &history, round("b", "y")))
	if n := st.keyedOpens.Load(); n == 0 {
		t.Fatal("restore with damaged local copies did not read checkpoint storage")
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "does not verify") {
		t.Fatalf("no WARN about the damaged local copy; logs:\n%s", logs.String())
	}

	// Without local recovery the same restart reads storage (the control
	// that makes the first check meaningful).
	cfg.State.LocalRecovery = false
	st.keyedOpens.Store(0)
	check(runRounds(t, cfg, &history, round("c")))
	if n := st.keyedOpens.Load(); n == 0 {
		t.Fatal("restore without local recovery opened no keyed state file")
	}
}
