package sluice_test

// Recovery (docs/design.md §5, architecture.md "Failure and recovery"): restoring
// from a given checkpoint, falling back past a corrupt one, and checkpoint
// storage that refuses writes.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/checkpoint/store"
	"github.com/sluicehq/sluice/clock"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/connector/datagen"
	"github.com/sluicehq/sluice/restart"
	"github.com/sluicehq/sluice/state"
)

// counted is the output of the keyed running count.
type counted struct {
	ID    string // the record's id, for datagen input
	Key   string
	Count int64
}

type countRecords struct{ n state.ValueState[int64] }

func (f *countRecords) Open(rc *sluice.RuntimeContext[string]) error {
	var err error
	f.n, err = sluice.NewValueState(rc, "n", codec.Int64)
	return err
}

func (f *countRecords) ProcessElement(r datagen.Record, pc *sluice.ProcessContext[string, counted]) error {
	n, _ := f.n.Value()
	f.n.Update(n + 1)
	pc.Collect(counted{ID: id(r), Key: r.Key, Count: n + 1})
	return nil
}

// countJob is datagen → key by key → running count (keyed state) → sink.
func countJob(cfg sluice.Config, g datagen.Config, out *collector[counted]) *sluice.Environment {
	env := sluice.New(cfg)
	src := sluice.FromSource(env, "src", datagen.New(g))
	keyed := sluice.KeyBy(src, func(r datagen.Record) string { return r.Key })
	c := sluice.Process(keyed, "count", func() sluice.KeyedProcessFunction[string, datagen.Record, counted] { return &countRecords{} })
	sluice.Sink(c, "sink", out.Sink())
	return env
}

// keyCounts returns how many records of each key the splits hold below the
// position end.
func keyCounts(g datagen.Config, end int64) map[string]int64 {
	pos := map[int]int64{}
	for s := range g.Splits {
		pos[s] = end
	}
	return datagen.Expected(g, pos)
}

// checkContinued checks the output of a run that restored positions from
// and read up to to: every record in [from, to) of every split exactly
// once, and running counts that continue the restored ones.
func checkContinued(t *testing.T, g datagen.Config, out []counted, from, to int64) {
	t.Helper()
	var want []string
	for s := range g.Splits {
		for i := from; i < to; i++ {
			want = append(want, fmt.Sprintf("%d/%d", s, i))
		}
	}
	var got []string
	final := map[string]int64{}
	for _, c := range out {
		got = append(got, c.ID)
		final[c.Key] = max(final[c.Key], c.Count)
	}
	sameMultiset(t, "records after restore", got, want, func(s string) string { return s })
	if exp := keyCounts(g, to); !maps.Equal(final, exp) {
		t.Fatalf("final counts %v, want %v (restored counts continued)", final, exp)
	}
}

// TestRestoreFromCheckpoint: a job started with FromCheckpoint continues
// from the source positions of that checkpoint, with its keyed state, also
// at another parallelism (key groups and splits are redistributed).
func TestRestoreFromCheckpoint(t *testing.T) {
	t.Parallel()
	for _, par := range [][2]int{{2, 3}, {3, 1}, {2, 2}} {
		t.Run(fmt.Sprintf("%d→%d", par[0], par[1]), func(t *testing.T) {
			t.Parallel()
			restoreFromCheckpoint(t, par[0], par[1])
		})
	}
}

func restoreFromCheckpoint(t *testing.T, par1, par2 int) {
	g := datagen.Config{Splits: 4, RecordsPerSplit: 50, Keys: 9, Seed: 3, BatchSize: 8}
	cfg := testConfig(t, par1)
	out1 := newCollector[counted]()
	res := run(t, countJob(cfg, g, out1))
	checkContinued(t, g, out1.Records(), 0, 50)
	meta := res.LastCheckpoint
	if meta == nil {
		t.Fatal("no final checkpoint")
	}
	splits, err := sluice.SplitsFromMetadata(meta, "src")
	if err != nil {
		t.Fatal(err)
	}
	pos, err := datagen.Positions(splits)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(pos, map[int]int64{0: 50, 1: 50, 2: 50, 3: 50}) {
		t.Fatalf("final checkpoint positions %v, want 50 per split", pos)
	}

	// The same job, with more input per split, from that checkpoint, at
	// parallelism par2, in another checkpoint directory.
	g.RecordsPerSplit = 120
	cfg2 := testConfig(t, par2)
	cfg2.FromCheckpoint = filepath.Join(cfg.CheckpointDir, store.CheckpointDir(meta.CheckpointID))
	out2 := newCollector[counted]()
	res2 := run(t, countJob(cfg2, g, out2))
	checkContinued(t, g, out2.Records(), 50, 120)
	if res2.LastCheckpoint.CheckpointID <= meta.CheckpointID {
		t.Fatalf("checkpoint id %d after restoring %d: ids must keep increasing", res2.LastCheckpoint.CheckpointID, meta.CheckpointID)
	}
}

// TestCorruptLatestCheckpointFallsBack: when the newest checkpoint's
// _metadata is damaged (a flipped byte), the job restores the previous
// complete checkpoint and says so at ERROR, naming the skipped one (docs/design.md
// §4, checkpoint storage: a corrupt checkpoint is skipped loudly, never used).
func TestCorruptLatestCheckpointFallsBack(t *testing.T) {
	t.Parallel()
	g := datagen.Config{Splits: 4, RecordsPerSplit: 50, Keys: 9, Seed: 5, BatchSize: 8}
	cfg := testConfig(t, 2)
	// Run 1 ends with checkpoint 1 at position 50, run 2 with checkpoint 2
	// at position 100, both in the same directory.
	out := newCollector[counted]()
	res1 := run(t, countJob(cfg, g, out))
	g.RecordsPerSplit = 100
	out = newCollector[counted]()
	res2 := run(t, countJob(cfg, g, out))
	checkContinued(t, g, out.Records(), 50, 100)
	if res1.LastCheckpoint.CheckpointID != 1 || res2.LastCheckpoint.CheckpointID != 2 {
		t.Fatalf("checkpoints %d and %d, want 1 and 2", res1.LastCheckpoint.CheckpointID, res2.LastCheckpoint.CheckpointID)
	}

	meta := filepath.Join(cfg.CheckpointDir, store.CheckpointDir(2), store.MetadataName)
	b, err := os.ReadFile(meta)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x20
	if err := os.WriteFile(meta, b, 0o644); err != nil {
		t.Fatal(err)
	}

	// Run 3 restores checkpoint 1: records from position 50 again.
	var logs logBuffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	g.RecordsPerSplit = 150
	out = newCollector[counted]()
	run(t, countJob(cfg, g, out))
	checkContinued(t, g, out.Records(), 50, 150)
	var found bool
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "level=ERROR") && strings.Contains(line, "corrupt") && strings.Contains(line, "checkpoint=2") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no ERROR log naming corrupt checkpoint 2; logs:\n%s", logs.String())
	}
}

// keyCounter counts records per key for the string log source.
type keyCounter struct{ n state.ValueState[int64] }

func (f *keyCounter) Open(rc *sluice.RuntimeContext[string]) error {
	var err error
	f.n, err = sluice.NewValueState(rc, "n", codec.Int64)
	return err
}

func (f *keyCounter) ProcessElement(k string, pc *sluice.ProcessContext[string, counted]) error {
	n, _ := f.n.Value()
	f.n.Update(n + 1)
	pc.Collect(counted{Key: k, Count: n + 1})
	return nil
}

// unwritableJob is log → key by record → running count → sink, with a fake
// clock that triggers a checkpoint per second and the given tolerance and
// restart strategy. A non-nil logs receives the job's log.
func unwritableJob(t *testing.T, tolerable int, rc restart.Policy, logs *logBuffer) (*logSource[string], *collector[counted], *clock.Fake, *sluice.Environment, string) {
	clk := clock.NewFake(t0)
	cfg := testConfig(t, 1)
	if logs != nil {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	}
	cfg.Clock = clk
	cfg.BufferTimeout = sluice.FlushAlways
	cfg.Checkpoint = checkpoint.Config{Interval: time.Second, MinPause: time.Millisecond, TolerableFailures: tolerable, Timeout: time.Hour}
	cfg.Restart = rc
	env := sluice.New(cfg)
	src := newLogSource[string]()
	out := newCollector[counted]()
	keyed := sluice.KeyBy(sluice.FromSource(env, "src", src), func(s string) string { return s })
	c := sluice.Process(keyed, "count", func() sluice.KeyedProcessFunction[string, string, counted] { return &keyCounter{} })
	sluice.Sink(c, "sink", out.Sink())
	return src, out, clk, env, cfg.CheckpointDir
}

// blockCheckpoints puts a regular file where the directories of checkpoints
// first..last would go, so that writing their state files and _metadata
// fails. It must run after the attempt chose its first checkpoint id (an
// attempt numbers checkpoints above every chk-<id> entry it finds).
func blockCheckpoints(t *testing.T, dir string, first, last int64) {
	t.Helper()
	for id := first; id <= last; id++ {
		if err := os.WriteFile(filepath.Join(dir, store.CheckpointDir(id)), []byte("in the way"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// finalCounts returns the highest running count seen per key.
func finalCounts(out []counted) map[string]int64 {
	m := map[string]int64{}
	for _, c := range out {
		m[c.Key] = max(m[c.Key], c.Count)
	}
	return m
}

// TestCheckpointFailuresTolerated: checkpoints whose directory cannot be
// written fail and are counted (docs/design.md §3 step 6); while fewer than
// TolerableFailures+1 fail in a row the job keeps running, the next
// checkpoint that can be written completes, and no record is lost.
func TestCheckpointFailuresTolerated(t *testing.T) {
	t.Parallel()
	src, out, clk, env, dir := unwritableJob(t, 3, restart.None{}, nil)
	x := start(t, env)
	src.Append("a", "b", "a")
	// The sink saw records: the attempt runs, its first checkpoint id is 1.
	out.WaitLen(t, 3)
	blockCheckpoints(t, dir, 1, 3)
	for id := 1; id <= 3; id++ {
		if checkpointOnce(t, env, clk, time.Second) {
			t.Fatalf("checkpoint %d completed in a blocked directory", id)
		}
	}
	src.Append("b", "c")
	out.WaitLen(t, 5)
	if !checkpointOnce(t, env, clk, time.Second) {
		t.Fatal("checkpoint 4 failed")
	}
	src.Append("a")
	src.Close()
	res, err := x.wait(t)
	if err != nil {
		t.Fatalf("Execute: %v", err)
	}
	st := res.Status
	if st.CheckpointsFailed != 3 || res.Checkpoints != 2 || res.LastCheckpoint.CheckpointID != 5 || res.Restarts != 0 {
		t.Fatalf("%d failed, %d completed (last %d), %d restarts; want 3 failed, 4 and the final 5 completed, no restart",
			st.CheckpointsFailed, res.Checkpoints, res.LastCheckpoint.CheckpointID, res.Restarts)
	}
	if got, want := finalCounts(out.Records()), map[string]int64{"a": 3, "b": 2, "c": 1}; !maps.Equal(got, want) {
		t.Fatalf("final counts %v, want %v", got, want)
	}
}

// TestCheckpointFailuresFailJob: one failure more than tolerated fails the
// attempt with an error naming the setting; with restart "none" that is the
// job's error.
func TestCheckpointFailuresFailJob(t *testing.T) {
	t.Parallel()
	var logs logBuffer
	src, out, clk, env, dir := unwritableJob(t, 1, restart.None{}, &logs)
	x := start(t, env)
	src.Append("a")
	out.WaitLen(t, 1)
	blockCheckpoints(t, dir, 1, 5)
	for id := 1; id <= 2; id++ {
		if checkpointOnce(t, env, clk, time.Second) {
			t.Fatalf("checkpoint %d completed in a blocked directory", id)
		}
	}
	_, err := x.wait(t)
	if !errors.Is(err, checkpoint.ErrTooManyFailures) || !strings.Contains(err.Error(), checkpoint.KeyTolerableFailures) {
		t.Fatalf("Execute: %v, want too many checkpoint failures naming %s", err, checkpoint.KeyTolerableFailures)
	}
	if n := env.Status().CheckpointsFailed; n != 2 {
		t.Fatalf("%d checkpoints failed, want 2 (1 tolerated)", n)
	}
	// The failure that fails the attempt is an error; the tolerated one
	// before it only a warning.
	var failLine, warned bool
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "level=ERROR") && strings.Contains(line, checkpoint.KeyTolerableFailures) {
			failLine = true
		}
		if strings.Contains(line, "level=WARN") && strings.Contains(line, "checkpoint aborted") {
			warned = true
		}
	}
	if !failLine || !warned {
		t.Fatalf("want a WARN per aborted checkpoint and an ERROR naming %s for the attempt; logs:\n%s", checkpoint.KeyTolerableFailures, logs.String())
	}
}

// TestCheckpointFailuresRestart: the attempt that failed on checkpoint
// failures is restarted; the new attempt numbers its checkpoints past the
// blocked ids, and since no checkpoint completed it replays the input from
// the start: nothing lost. The status tells the last attempt's record
// counts from those of all attempts (docs/design.md §8).
func TestCheckpointFailuresRestart(t *testing.T) {
	t.Parallel()
	var logs logBuffer
	src, out, clk, env, dir := unwritableJob(t, 1, restart.FixedDelay{Attempts: 1, Delay: -1}, &logs)
	x := start(t, env)
	src.Append("a", "b", "a")
	out.WaitLen(t, 3)
	blockCheckpoints(t, dir, 1, 2)
	for id := 1; id <= 2; id++ {
		if checkpointOnce(t, env, clk, time.Second) {
			t.Fatalf("checkpoint %d completed in a blocked directory", id)
		}
	}
	until(t, "a restart", func() bool { return env.Status().Restarts >= 1 })
	src.Append("c", "a")
	out.WaitFor(t, "c", func(r []counted) bool { return slices.Contains(r, counted{Key: "c", Count: 1}) })
	if !checkpointOnce(t, env, clk, time.Second) {
		t.Fatal("the second attempt's checkpoint failed")
	}
	src.Close()
	res, err := x.wait(t)
	if err != nil {
		t.Fatalf("Execute: %v", err)
	}
	if res.Restarts != 1 || res.LastCheckpoint.CheckpointID <= 2 {
		t.Fatalf("%d restarts, last checkpoint %d; want 1 restart and checkpoints above the blocked 1 and 2", res.Restarts, res.LastCheckpoint.CheckpointID)
	}
	if got, want := finalCounts(out.Records()), map[string]int64{"a": 3, "b": 1, "c": 1}; !maps.Equal(got, want) {
		t.Fatalf("final counts %v, want %v", got, want)
	}
	// Defect: the counters counted replays as new input. The first attempt
	// counted a, b, a; the second replays them and adds c, a.
	if v := vertex(t, res.Status, "count"); v.RecordsInAttempt != 5 || v.RecordsInTotal != 8 {
		t.Fatalf("count vertex received %d records in the last attempt and %d in all; want 5 (the input, once) and 8 (3 replayed)",
			v.RecordsInAttempt, v.RecordsInTotal)
	}
	if v := vertex(t, res.Status, "src"); v.RecordsOutAttempt != 5 || v.RecordsOutTotal != 8 {
		t.Fatalf("source sent %d records in the last attempt and %d in all; want 5 and 8", v.RecordsOutAttempt, v.RecordsOutTotal)
	}
	// A failed attempt is an error, even though a restart follows.
	if !strings.Contains(logs.String(), `level=ERROR msg="job attempt failed, restarting"`) {
		t.Fatalf("no ERROR for the failed attempt; logs:\n%s", logs.String())
	}
}

// coCount counts the records of both inputs per key in one shared state.
type coCount struct{ keyCounter }

func (f *coCount) ProcessElement1(k string, pc *sluice.ProcessContext[string, counted]) error {
	return f.ProcessElement(k, pc)
}

func (f *coCount) ProcessElement2(k string, pc *sluice.ProcessContext[string, counted]) error {
	return f.ProcessElement(k, pc)
}

// coCountJob is two logs → connect by key → shared running count → sink.
func coCountJob(cfg sluice.Config, a, b *logSource[string], out *collector[counted]) *sluice.Environment {
	env := sluice.New(cfg)
	ka := sluice.KeyBy(sluice.FromSource(env, "src-a", a), func(s string) string { return s })
	kb := sluice.KeyBy(sluice.FromSource(env, "src-b", b), func(s string) string { return s })
	c := sluice.CoProcess(sluice.Connect(ka, kb), "count", func() sluice.KeyedCoProcessFunction[string, string, string, counted] { return &coCount{} },
		sluice.Parallelism(2))
	sluice.Sink(c, "sink", out.Sink())
	return env
}

// TestCoProcessCheckpointConsistent: a checkpoint taken while records flow
// on both inputs of a CoProcess (barriers aligned across them, docs/design.md §3
// step 3) holds keyed state that matches the source positions it holds: a
// job restored from it and fed the rest of the input ends with the exact
// counts, in both exactly-once and at-least-once mode (the inputs are idle
// at the checkpoint, so at-least-once has nothing to duplicate).
func TestCoProcessCheckpointConsistent(t *testing.T) {
	t.Parallel()
	for _, mode := range []checkpoint.Mode{checkpoint.ExactlyOnce, checkpoint.AtLeastOnce} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			clk := clock.NewFake(t0)
			cfg := testConfig(t, 1)
			cfg.Clock = clk
			cfg.BufferTimeout = sluice.FlushAlways
			cfg.Checkpoint = checkpoint.Config{Interval: time.Second, Mode: mode, Timeout: time.Hour}
			a, b := newLogSource[string](), newLogSource[string]()
			out := newCollector[counted]()
			env := coCountJob(cfg, a, b, out)
			x := start(t, env)
			a.Append("x", "y", "x")
			b.Append("y", "z")
			out.WaitLen(t, 5)
			if !checkpointOnce(t, env, clk, time.Second) {
				t.Fatal("checkpoint 1 failed")
			}
			a.Append("x")
			b.Append("z", "w")
			out.WaitLen(t, 8)
			env.Stop()
			res, err := x.wait(t)
			if err != nil {
				t.Fatalf("Execute: %v", err)
			}
			want := map[string]int64{"x": 3, "y": 2, "z": 2, "w": 1}
			if got := finalCounts(out.Records()); !maps.Equal(got, want) {
				t.Fatalf("first run counts %v, want %v", got, want)
			}
			if res.Status.LastCheckpointID != 2 {
				t.Fatalf("first run ended with checkpoint %d, want 2 (1 periodic, then the final one)", res.Status.LastCheckpointID)
			}

			// Restore checkpoint 1 (the first three records of a, the first
			// two of b) and replay the rest.
			cfg2 := testConfig(t, 1)
			cfg2.Clock = clock.NewFake(t0)
			cfg2.BufferTimeout = sluice.FlushAlways
			cfg2.FromCheckpoint = filepath.Join(cfg.CheckpointDir, store.CheckpointDir(1))
			out2 := newCollector[counted]()
			env2 := coCountJob(cfg2, a, b, out2)
			x2 := start(t, env2)
			out2.WaitLen(t, 3)
			env2.Stop()
			res2, err := x2.wait(t)
			if err != nil {
				t.Fatalf("restored Execute: %v", err)
			}
			if got := finalCounts(out2.Records()); !maps.Equal(got, map[string]int64{"x": 3, "z": 2, "w": 1}) {
				t.Fatalf("restored run emitted %v, want x=3 z=2 w=1 (checkpoint 1 counted x=2, z=1)", got)
			}
			if res2.Status.LastCheckpointID <= 1 {
				t.Fatalf("restored run's checkpoint %d not above the restored 1", res2.Status.LastCheckpointID)
			}
		})
	}
}

// flakySnapshots is a logSource whose reader fails to snapshot its split
// for one checkpoint id: that source subtask declines the checkpoint.
type flakySnapshots struct {
	*logSource[string]
	failAt int64
}

func (s flakySnapshots) NewReader(ctx context.Context, oc *sluice.OperatorContext) (sluice.SourceReader[string], error) {
	r, err := s.logSource.NewReader(ctx, oc)
	return flakyReader{r, s.failAt}, err
}

type flakyReader struct {
	sluice.SourceReader[string]
	failAt int64
}

func (r flakyReader) SnapshotSplits(ctx context.Context, id int64) ([]sluice.Split, error) {
	if id == r.failAt {
		return nil, fmt.Errorf("snapshot of checkpoint %d: %w", id, errBoom)
	}
	return r.SourceReader.SnapshotSplits(ctx, id)
}

// TestDeclinedCheckpointFilesDiscarded: when a checkpoint is aborted (here a
// source declines it) after other tasks wrote their state files, those
// files are deleted (internal/coordinator.AbortAction: "its files may be deleted"),
// not left behind for the life of the process: a job whose checkpoints keep
// failing would otherwise fill the disk with partial copies of its state.
func TestDeclinedCheckpointFilesDiscarded(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(t0)
	cfg := testConfig(t, 1)
	cfg.Clock = clk
	cfg.BufferTimeout = sluice.FlushAlways
	cfg.Checkpoint = checkpoint.Config{Interval: time.Second, Timeout: time.Hour}
	env := sluice.New(cfg)
	good := newLogSource[string]()
	bad := flakySnapshots{newLogSource[string](), 1}
	out := newCollector[counted]()
	for name, src := range map[string]sluice.Source[string]{"good": good, "bad": bad} {
		keyed := sluice.KeyBy(sluice.FromSource(env, "src-"+name, src), func(s string) string { return s })
		c := sluice.Process(keyed, "count-"+name, func() sluice.KeyedProcessFunction[string, string, counted] { return &keyCounter{} })
		sluice.Sink(c, "sink-"+name, out.Sink())
	}
	x := start(t, env)
	good.Append("a")
	bad.Append("b")
	out.WaitLen(t, 2)
	if checkpointOnce(t, env, clk, time.Second) {
		t.Fatal("checkpoint 1 completed although a source declined it")
	}
	if !checkpointOnce(t, env, clk, time.Second) {
		t.Fatal("checkpoint 2 failed")
	}
	env.Stop()
	if _, err := x.wait(t); err != nil {
		t.Fatal(err)
	}
	if env.Status().CheckpointsFailed != 1 {
		t.Fatalf("%d checkpoints failed, want checkpoint 1", env.Status().CheckpointsFailed)
	}
	if _, err := os.Stat(filepath.Join(cfg.CheckpointDir, store.CheckpointDir(1))); !errors.Is(err, os.ErrNotExist) {
		entries, _ := os.ReadDir(filepath.Join(cfg.CheckpointDir, store.CheckpointDir(1)))
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("aborted checkpoint 1 left %v behind", names)
	}
}
