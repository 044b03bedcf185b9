package sluice_test

import (
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/connector/datagen"
	"github.com/sluicehq/sluice/restart"
	"github.com/sluicehq/sluice/state"
)

// keyCount is what the compatibility tests' counter emits.
type keyCount struct {
	Key string
	N   int64
}

// counter counts records per key in a value state called "n", stored as an
// int64, or as a decimal string when asString is set (a change of the
// state's type).
type counter struct {
	asString bool
	n        state.ValueState[int64]
	s        state.ValueState[string]
}

func (c *counter) Open(rc *sluice.RuntimeContext[string]) error {
	var err error
	if c.asString {
		c.s, err = sluice.NewValueState(rc, "n", codec.String)
	} else {
		c.n, err = sluice.NewValueState(rc, "n", codec.Int64)
	}
	return err
}

func (c *counter) ProcessElement(r datagen.Record, pc *sluice.ProcessContext[string, keyCount]) error {
	var n int64
	if c.asString {
		s, _ := c.s.Value()
		n, _ = strconv.ParseInt(s, 10, 64)
		n++
		c.s.Update(strconv.FormatInt(n, 10))
	} else {
		n, _ = c.n.Value()
		n++
		c.n.Update(n)
	}
	pc.Collect(keyCount{r.Key, n})
	return nil
}

// compatJob is one version of a bounded count job on dir.
type compatJob struct {
	name, countUID string
	seed           uint64
	records        int64
	asString       bool
	cfg            func(*sluice.Config)
}

func (j compatJob) run(t *testing.T, dir string) ([]keyCount, *sluice.Result, string, error) {
	t.Helper()
	logs := &logBuffer{}
	cfg := sluice.Config{
		JobName: j.name, CheckpointDir: dir, Parallelism: 2,
		Logger:  slog.New(slog.NewTextHandler(logs, nil)),
		Restart: restart.None{},
	}
	if j.cfg != nil {
		j.cfg(&cfg)
	}
	env := sluice.New(cfg)
	src := sluice.FromSource(env, "gen", datagen.New(datagen.Config{Splits: 2, Keys: 5, Seed: j.seed, RecordsPerSplit: j.records}))
	keyed := sluice.KeyBy(src, func(r datagen.Record) string { return r.Key })
	asString := j.asString
	counts := sluice.Process(keyed, "count", func() sluice.KeyedProcessFunction[string, datagen.Record, keyCount] {
		return &counter{asString: asString}
	}, sluice.UID(j.countUID))
	out := newCollector[keyCount]()
	sluice.Sink(counts, "sink", out.Sink())
	res, err := env.Execute(ctxTimeout(t))
	return out.Records(), res, logs.String(), err
}

// base is the job whose checkpoint the others restore.
var base = compatJob{name: "counts", countUID: "count", seed: 1, records: 50}

// firstRun runs base to its end (a final checkpoint) in a fresh directory.
func firstRun(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if _, _, logs, err := base.run(t, dir); err != nil {
		t.Fatalf("first run: %v\n%s", err, logs)
	}
	return dir
}

func wantRefused(t *testing.T, err error, logs string, parts ...string) {
	t.Helper()
	if !errors.Is(err, checkpoint.ErrIncompatible) {
		t.Fatalf("err = %v, want checkpoint.ErrIncompatible\n%s", err, logs)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error lacks %q:\n%v", p, err)
		}
	}
	if !strings.Contains(logs, "level=ERROR") {
		t.Errorf("refusal not logged at ERROR:\n%s", logs)
	}
}

// A checkpoint of a job reading other input is refused, naming the source
// and both identities; AllowSourceChange overrides (issue 6, defect 2).
func TestRestoreRefusesOtherSource(t *testing.T) {
	t.Parallel()
	dir := firstRun(t)
	other := base
	other.seed = 2
	_, _, logs, err := other.run(t, dir)
	wantRefused(t, err, logs, `source "gen"`, "the checkpoint read datagen[distribution=uniform,keys=5,seed=1,splits=2]",
		"the job reads datagen[distribution=uniform,keys=5,seed=2,splits=2]", "--allow-source-change")

	other.cfg = func(c *sluice.Config) { c.AllowSourceChange = true }
	if _, _, logs, err := other.run(t, dir); err != nil {
		t.Fatalf("with AllowSourceChange: %v\n%s", err, logs)
	} else if !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, "AllowSourceChange") {
		t.Errorf("source change not logged at WARN:\n%s", logs)
	}
}

// The job's own checkpoint directory holding another job's checkpoints is
// refused, naming both job names.
func TestRestoreRefusesOtherJobName(t *testing.T) {
	t.Parallel()
	dir := firstRun(t)
	other := base
	other.name = "sums"
	_, _, logs, err := other.run(t, dir)
	wantRefused(t, err, logs, `holds checkpoints of job "counts", this job is "sums"`)
}

// Renaming a stateful operator's uid is refused, naming the old uid and its
// states; with AllowNonRestoredState the state is dropped with a WARN per
// state and the renamed operator starts empty (issue 6, defect 3).
func TestRestoreRefusesRenamedOperator(t *testing.T) {
	t.Parallel()
	dir := firstRun(t)
	renamed := base
	renamed.countUID = "counter"
	renamed.records = 80 // 30 more records per split
	_, _, logs, err := renamed.run(t, dir)
	wantRefused(t, err, logs, `operator "count"`, "keyed state n (value state, zigzag-varint@v1)", "--allow-non-restored-state")

	renamed.cfg = func(c *sluice.Config) { c.AllowNonRestoredState = true }
	recs, _, logs, err := renamed.run(t, dir)
	if err != nil {
		t.Fatalf("with AllowNonRestoredState: %v\n%s", err, logs)
	}
	if !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, "operator=count") || !strings.Contains(logs, `state="keyed state n (value state`) {
		t.Errorf("dropped state not logged at WARN per state:\n%s", logs)
	}
	// The source resumed (60 new records), the counter started from zero.
	if len(recs) != 60 {
		t.Fatalf("%d records after the restore, want 60", len(recs))
	}
	last := map[string]int64{}
	for _, r := range recs {
		last[r.Key] = max(last[r.Key], r.N)
	}
	var sum int64
	for _, n := range last {
		sum += n
	}
	if sum != 60 {
		t.Fatalf("counts sum to %d over %d records: the counter did not start empty", sum, len(recs))
	}
}

// Changing a state's type is an incompatibility naming the operator, the
// state and both codecs, not "corrupt snapshot", and it fails the job at
// once instead of restarting (issue 6, defect 4).
func TestRestoreRefusesChangedStateType(t *testing.T) {
	t.Parallel()
	dir := firstRun(t)
	changed := base
	changed.asString = true
	changed.cfg = func(c *sluice.Config) {
		c.Restart = restart.FixedDelay{Attempts: 5, Delay: time.Millisecond}
	}
	_, res, logs, err := changed.run(t, dir)
	wantRefused(t, err, logs, "open count/", `value state "n" was written with value codec zigzag-varint@v1, the job now uses string@v1`)
	if strings.Contains(err.Error(), "corrupt") {
		t.Errorf("reported as corruption: %v", err)
	}
	if res == nil || res.Restarts != 0 {
		t.Errorf("restarted on an incompatible checkpoint: %+v", res)
	}
}

// Restoring its own checkpoint, the same job continues its counts: the
// checks do not refuse a compatible restore.
func TestRestoreSameJobContinues(t *testing.T) {
	t.Parallel()
	dir := firstRun(t)
	more := base
	more.records = 60
	recs, _, logs, err := more.run(t, dir)
	if err != nil {
		t.Fatalf("%v\n%s", err, logs)
	}
	if len(recs) != 20 || strings.Contains(logs, "level=WARN") {
		t.Fatalf("%d records (want 20), logs:\n%s", len(recs), logs)
	}
	last := map[string]int64{}
	for _, r := range recs {
		last[r.Key] = max(last[r.Key], r.N)
	}
	var sum int64
	for _, n := range last {
		sum += n
	}
	if sum != 120 {
		t.Fatalf("counts sum to %d, want 120 (100 restored + 20)", sum)
	}
}

// userID is a named key type: KeyBy and keyed state take it without a
// hand-written codec (issue 6, shape 6).
type userID string

// visits is struct state, through codec.Struct.
type visits struct {
	Count int64
	Last  string
}

type visitCounter struct {
	c  codec.Codec[visits]
	st state.ValueState[visits]
}

func (v *visitCounter) Open(rc *sluice.RuntimeContext[userID]) error {
	var err error
	v.st, err = sluice.NewValueState(rc, "visits", v.c)
	return err
}

func (v *visitCounter) ProcessElement(r datagen.Record, pc *sluice.ProcessContext[userID, keyCount]) error {
	s, _ := v.st.Value()
	s.Count++
	s.Last = strconv.FormatInt(r.Seq, 10)
	v.st.Update(s)
	pc.Collect(keyCount{string(pc.CurrentKey()), s.Count})
	return nil
}

func TestNamedKeyAndStructState(t *testing.T) {
	t.Parallel()
	vc, err := codec.Struct("visits",
		codec.FieldOf("count", func(v *visits) *int64 { return &v.Count }, codec.Int64),
		codec.FieldOf("last", func(v *visits) *string { return &v.Last }, codec.String))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	run := func(records int64) []keyCount {
		env := sluice.New(sluice.Config{JobName: "visits", CheckpointDir: dir, Parallelism: 2, Logger: quietLogger(),
			Restart: restart.None{}})
		src := sluice.FromSource(env, "gen", datagen.New(datagen.Config{Splits: 2, Keys: 5, Seed: 1, RecordsPerSplit: records}))
		keyed := sluice.KeyBy(src, func(r datagen.Record) userID { return userID(r.Key) })
		counts := sluice.Process(keyed, "visits", func() sluice.KeyedProcessFunction[userID, datagen.Record, keyCount] {
			return &visitCounter{c: vc}
		})
		out := newCollector[keyCount]()
		sluice.Sink(counts, "sink", out.Sink())
		if _, err := env.Execute(ctxTimeout(t)); err != nil {
			t.Fatal(err)
		}
		return out.Records()
	}
	run(10)
	// Restored struct state under named keys continues the counts.
	var sum int64
	last := map[string]int64{}
	for _, r := range run(20) {
		last[r.Key] = max(last[r.Key], r.N)
	}
	for _, n := range last {
		sum += n
	}
	if sum != 40 {
		t.Fatalf("counts sum to %d, want 40", sum)
	}
}
