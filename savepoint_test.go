package sluice_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/checkpoint/store"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/connector/datagen"
	"github.com/sluicehq/sluice/watermark"
	"github.com/sluicehq/sluice/window"
)

// spWindowCount counts the records of a window.
type spWindowCount struct{}

func (spWindowCount) CreateAccumulator() int64            { return 0 }
func (spWindowCount) Add(_ datagen.Record, n int64) int64 { return n + 1 }
func (spWindowCount) Merge(a, b int64) int64              { return a + b }
func (spWindowCount) Result(n int64) int64                { return n }

// spWindowed is one fired window: key, start and count.
type spWindowed struct {
	Key   string
	Start int64
	N     int64
}

type spWindowLabel struct{}

func (spWindowLabel) Process(key string, counts []int64, wc *sluice.WindowContext[spWindowed]) error {
	wc.Collect(spWindowed{Key: key, Start: wc.Window().Start, N: counts[0]})
	return nil
}

// spWindowJob is an event-time job: record i of a split is at i seconds;
// per-key tumbling windows of 100 s count the records. Its windows fire
// only when the watermark passes their end.
func spWindowJob(dir, from string, gen datagen.Config, out *collector[spWindowed]) *sluice.Environment {
	env := sluice.New(sluice.Config{
		JobName: "windows", Parallelism: 2, BufferTimeout: time.Millisecond,
		Checkpoint:     checkpoint.Config{Interval: 20 * time.Millisecond},
		CheckpointDir:  filepath.Join(dir, "checkpoints"),
		FromCheckpoint: from,
		Logger:         quietLogger(),
	})
	in := sluice.FromSourceWithWatermarks(env, "input", datagen.New(gen), watermark.ForMonotonousTimestamps(),
		[]sluice.WatermarkOption[datagen.Record]{
			sluice.WithTimestampAssigner(func(r datagen.Record, _ int64) int64 { return r.Seq * int64(time.Second) }),
		})
	keyed := sluice.KeyBy(in, func(r datagen.Record) string { return r.Key })
	counts := sluice.WindowAggregateProcess(sluice.Window(keyed, window.Tumbling(100*time.Second, 0)), "count",
		sluice.AggregateFunction[datagen.Record, int64, int64](spWindowCount{}), codec.Int64,
		func() sluice.ProcessWindowFunction[string, int64, spWindowed] { return spWindowLabel{} })
	sluice.Sink(counts, "out", out.Sink())
	return env
}

func sourceOut(env *sluice.Environment) int64 {
	for _, v := range env.Status().Vertices {
		if v.Name == "input" {
			return v.RecordsOutTotal
		}
	}
	return 0
}

func sumWindows(t *testing.T, ws []spWindowed) int64 {
	t.Helper()
	seen := map[string]bool{}
	var n int64
	for _, w := range ws {
		id := fmt.Sprintf("%s@%d", w.Key, w.Start)
		if seen[id] {
			t.Fatalf("window %s fired twice", id)
		}
		seen[id] = true
		n += w.N
	}
	return n
}

// TestStopWithSavepointDrain stops an event-time window job with drain:
// the final watermark fires every window before the savepoint, so the
// counts of the fired windows add up to every record read, and the
// savepoint holds no window left to fire.
func TestStopWithSavepointDrain(t *testing.T) {
	dir := t.TempDir()
	gen := datagen.Config{Splits: 2, RecordsPerSplit: 1_000_000, Keys: 5, RatePerSecond: 4000, Distribution: datagen.Sequential}
	out := newCollector[spWindowed]()
	env := spWindowJob(dir, "", gen, out)
	x := start(t, env)
	until(t, "records read", func() bool { return sourceOut(env) >= 600 })
	path, err := env.StopWithSavepoint(ctxTimeout(t), true)
	if err != nil {
		t.Fatalf("stop-with-savepoint --drain: %v", err)
	}
	if _, err := x.wait(t); err != nil {
		t.Fatalf("Execute after stop-with-savepoint: %v", err)
	}
	read := sourceOut(env)
	got := sumWindows(t, out.Records())
	if got != read {
		t.Fatalf("drained windows count %d records, the source read %d: not every window fired before the savepoint", got, read)
	}
	if !strings.Contains(path, "savepoint-") {
		t.Fatalf("path %q", path)
	}
}

// TestStopWithSavepointNoDrainKeepsTimers stops the same job without
// drain: no window fires at the stop (event time stays where it was, as in
// Flink), the windows stay in the savepoint, and a job restored from it
// fires them with the rest of the input: every record counted once.
func TestStopWithSavepointNoDrainKeepsTimers(t *testing.T) {
	dir := t.TempDir()
	gen := datagen.Config{Splits: 2, RecordsPerSplit: 1_000_000, Keys: 5, RatePerSecond: 4000, Distribution: datagen.Sequential}
	out := newCollector[spWindowed]()
	env := spWindowJob(dir, "", gen, out)
	x := start(t, env)
	until(t, "records read", func() bool { return sourceOut(env) >= 150 })
	path, err := env.StopWithSavepoint(ctxTimeout(t), false)
	if err != nil {
		t.Fatalf("stop-with-savepoint: %v", err)
	}
	if _, err := x.wait(t); err != nil {
		t.Fatal(err)
	}
	read := sourceOut(env)
	// Windows of 100 s at 1 record/s/split: those that ended before the
	// watermark fired while running; the open one did not fire at the stop.
	before := sumWindows(t, out.Records())
	if before >= read {
		t.Fatalf("without drain %d of %d records were in fired windows: the stop fired the open windows", before, read)
	}
	// Restore with a bounded rest of the input: the restored windows fire
	// at its end, and nothing is counted twice.
	gen2 := gen
	gen2.RecordsPerSplit, gen2.RatePerSecond = 3000, 0
	if read >= 2*3000 {
		t.Fatalf("read %d records before the stop: too many for the restored input of %d", read, 2*3000)
	}
	out2 := newCollector[spWindowed]()
	env2 := spWindowJob(t.TempDir(), path, gen2, out2)
	if _, err := start(t, env2).wait(t); err != nil {
		t.Fatalf("restore from %s: %v", path, err)
	}
	all := append(out.Records(), out2.Records()...)
	if got := sumWindows(t, all); got != 2*3000 {
		t.Fatalf("windows across stop → restore count %d records, want %d", got, 2*3000)
	}
	t.Logf("read %d before the stop, %d in windows fired before it", read, before)
}

// TestSavepointConfig: savepoint-dir defaults to <checkpoint-dir>/savepoints
// and is made only when a savepoint is taken; a file there is refused by
// name; without a directory (checkpoint-storage) a savepoint is refused
// naming savepoint-dir; before and after Execute a savepoint is
// ErrNotRunning.
func TestSavepointConfig(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := sluice.Config{SavepointDir: f}.Validate()
	if err == nil || !strings.Contains(err.Error(), "savepoint-dir") {
		t.Fatalf("savepoint-dir on a file: %v", err)
	}

	dir := t.TempDir()
	gen := datagen.Config{Splits: 1, RecordsPerSplit: 1_000_000, Keys: 3, RatePerSecond: 2000}
	out := newCollector[spWindowed]()
	env := spWindowJob(dir, "", gen, out)
	if _, err := env.TriggerSavepoint(ctxTimeout(t)); !errors.Is(err, sluice.ErrNotRunning) {
		t.Fatalf("savepoint before Execute: %v", err)
	}
	if len(env.JobID()) != 32 || env.JobID() == spWindowJob(dir, "", gen, out).JobID() {
		t.Fatalf("job ids %q: want 32 hex digits, one per Environment", env.JobID())
	}
	x := start(t, env)
	until(t, "records read", func() bool { return sourceOut(env) >= 10 })
	if _, err := os.Stat(filepath.Join(dir, "checkpoints", "savepoints")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("savepoint directory made before any savepoint: %v", err)
	}
	path, err := env.TriggerSavepoint(ctxTimeout(t))
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(path) != filepath.Join(dir, "checkpoints", "savepoints") {
		t.Fatalf("savepoint at %s, want it under <checkpoint-dir>/savepoints", path)
	}
	env.Stop()
	if _, err := x.wait(t); err != nil {
		t.Fatal(err)
	}
	if _, err := env.TriggerSavepoint(ctxTimeout(t)); !errors.Is(err, sluice.ErrNotRunning) {
		t.Fatalf("savepoint after Execute: %v", err)
	}

	mem := sluice.New(sluice.Config{JobName: "mem", CheckpointStorage: &countingStorage{Storage: mustFS(t, t.TempDir())}, Logger: quietLogger()})
	src := sluice.FromSource(mem, "src", datagen.New(gen))
	sluice.Sink(src, "sink", sluice.DiscardSink[datagen.Record]())
	xm := start(t, mem)
	until(t, "job running", func() bool { return mem.Status().Checkpoints != nil })
	_, err = mem.TriggerSavepoint(ctxTimeout(t))
	if err == nil || !strings.Contains(err.Error(), "savepoint-dir") {
		t.Fatalf("savepoint with checkpoint-storage and no savepoint-dir: %v", err)
	}
	mem.Stop()
	if _, err := xm.wait(t); err != nil {
		t.Fatal(err)
	}
}

func mustFS(t *testing.T, root string) store.Storage {
	t.Helper()
	fs, err := store.NewFS(root)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}
