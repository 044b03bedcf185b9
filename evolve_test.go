package sluice_test

import (
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint/store"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/connector/datagen"
	"github.com/sluicehq/sluice/restart"
	"github.com/sluicehq/sluice/state"
	"github.com/sluicehq/sluice/window"
)

// tallyV1 and tallyV2 are two versions of the count operator's state: v2
// added a field, which codec.Struct migrates at restore.
type tallyV1 struct{ N int64 }

type tallyV2 struct {
	N     int64
	Since string
}

var (
	tallyV1Codec = mustCodec(codec.Struct("tally",
		codec.FieldOf("n", func(t *tallyV1) *int64 { return &t.N }, codec.Int64)))
	tallyV2Codec = mustCodec(codec.Struct("tally",
		codec.FieldOf("n", func(t *tallyV2) *int64 { return &t.N }, codec.Int64),
		codec.FieldOf("since", func(t *tallyV2) *string { return &t.Since }, codec.String)))
)

func mustCodec[T any](c codec.Codec[T], err error) codec.Codec[T] {
	if err != nil {
		panic(err)
	}
	return c
}

// tallyCounter counts per key in value state "n", with the state type of
// its version: "v1" tallyV1, "v2" tallyV2 (a migration), "string" a
// decimal string (an incompatible change).
type tallyCounter struct {
	version string
	v1      state.ValueState[tallyV1]
	v2      state.ValueState[tallyV2]
	s       state.ValueState[string]
}

func (c *tallyCounter) Open(rc *sluice.RuntimeContext[string]) error {
	var err error
	switch c.version {
	case "v2":
		c.v2, err = sluice.NewValueState(rc, "n", tallyV2Codec)
	case "string":
		c.s, err = sluice.NewValueState(rc, "n", codec.String)
	case "renamed":
		c.v1, err = sluice.NewValueState(rc, "total", tallyV1Codec)
	default:
		c.v1, err = sluice.NewValueState(rc, "n", tallyV1Codec)
	}
	return err
}

func (c *tallyCounter) ProcessElement(r datagen.Record, pc *sluice.ProcessContext[string, keyCount]) error {
	var n int64
	switch c.version {
	case "v2":
		t, _ := c.v2.Value()
		if t.Since == "" {
			t.Since = "v2:" + strconv.FormatInt(t.N, 10) // where v2 took over this key
		}
		t.N++
		n = t.N
		c.v2.Update(t)
	case "string":
		s, _ := c.s.Value()
		n, _ = strconv.ParseInt(s, 10, 64)
		n++
		c.s.Update(strconv.FormatInt(n, 10))
	default:
		t, _ := c.v1.Value()
		t.N++
		n = t.N
		c.v1.Update(t)
	}
	pc.Collect(keyCount{r.Key, n})
	return nil
}

// passThrough is a keyed operator with state of its own ("seen", the
// records it saw per key), forwarding its input.
type passThrough struct{ seen state.ValueState[int64] }

func (p *passThrough) Open(rc *sluice.RuntimeContext[string]) error {
	var err error
	p.seen, err = sluice.NewValueState(rc, "seen", codec.Int64)
	return err
}

func (p *passThrough) ProcessElement(kc keyCount, pc *sluice.ProcessContext[string, keyCount]) error {
	n, _ := p.seen.Value()
	p.seen.Update(n + 1)
	pc.Collect(kc)
	return nil
}

// evolveJob is one version of a bounded job: count (its state's version),
// then the pass-through operators named in extra, then a sink.
type evolveJob struct {
	version     string
	extra       []string
	parallelism int
	records     int64
	from        string
	allow       bool
}

func (j evolveJob) build(dir string, logs *logBuffer) (*sluice.Environment, *collector[keyCount]) {
	par := j.parallelism
	if par == 0 {
		par = 2
	}
	env := sluice.New(sluice.Config{
		JobName: "evolve", CheckpointDir: dir, Parallelism: par, FromCheckpoint: j.from, AllowNonRestoredState: j.allow,
		Logger: slog.New(slog.NewTextHandler(logs, nil)), Restart: restart.None{},
	})
	src := sluice.FromSource(env, "gen", datagen.New(datagen.Config{Splits: 2, Keys: 5, Seed: 1, RecordsPerSplit: j.records}))
	keyed := sluice.KeyBy(src, func(r datagen.Record) string { return r.Key })
	version := j.version
	s := sluice.Process(keyed, "count", func() sluice.KeyedProcessFunction[string, datagen.Record, keyCount] {
		return &tallyCounter{version: version}
	})
	for _, name := range j.extra {
		s = sluice.Process(sluice.KeyBy(s, func(k keyCount) string { return k.Key }), name,
			func() sluice.KeyedProcessFunction[string, keyCount, keyCount] { return &passThrough{} })
	}
	out := newCollector[keyCount]()
	sluice.Sink(s, "sink", out.Sink())
	return env, out
}

// savepointOfV1 runs v1 (count and audit, 100 records) to its end and
// returns the path of its final checkpoint.
func savepointOfV1(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	logs := &logBuffer{}
	env, _ := evolveJob{version: "v1", extra: []string{"audit"}, records: 50}.build(dir, logs)
	res, err := env.Execute(ctxTimeout(t))
	if err != nil {
		t.Fatalf("v1: %v\n%s", err, logs)
	}
	return filepath.Join(dir, store.CheckpointDir(res.LastCheckpoint.CheckpointID))
}

// evolveCountSum sums the last count per key: the records counted since the
// state began.
func evolveCountSum(recs []keyCount) int64 {
	last := map[string]int64{}
	for _, r := range recs {
		last[r.Key] = max(last[r.Key], r.N)
	}
	var sum int64
	for _, n := range last {
		sum += n
	}
	return sum
}

// outcomes renders a report's outcomes as "uid: outcome" and "uid/state:
// outcome" lines, sorted, for comparison.
func outcomes(r *sluice.RestoreReport) []string {
	var out []string
	for _, op := range r.Operators {
		out = append(out, op.UID+": "+op.Outcome.String())
		for _, s := range op.States {
			out = append(out, op.UID+"/"+s.Name+": "+s.Outcome.String())
		}
	}
	slices.Sort(out)
	return out
}

// CheckRestore and the restore agree, on every kind of change the issue
// lists: a v1 checkpoint restored into v2 builds that add an operator,
// remove one (refused, then allowed), migrate a state, change a state
// incompatibly, or change the parallelism. For each, the report's OK
// predicts whether the restore succeeds, its outcomes name operator and
// state, and the restored job's output shows the state was restored,
// migrated or started empty as reported.
func TestCheckRestoreAgreesWithRestore(t *testing.T) {
	t.Parallel()
	sp := savepointOfV1(t)
	for _, tc := range []struct {
		name string
		job  evolveJob
		want []string // outcomes (all of them) the report must list
		ok   bool
		// sum is the count sum after the restore: 160 restored, 60 for
		// state that started empty.
		sum     int64
		errHas  []string
		printed []string
	}{
		{name: "same", job: evolveJob{version: "v1", extra: []string{"audit"}}, ok: true, sum: 160,
			want: []string{"audit: restored as is", "audit/key: restored as is", "audit/seen: restored as is",
				"count: restored as is", "count/key: restored as is", "count/n: restored as is"}},
		{name: "added operator", job: evolveJob{version: "v1", extra: []string{"audit", "enrich"}}, ok: true, sum: 160,
			want: []string{"audit: restored as is", "audit/key: restored as is", "audit/seen: restored as is",
				"count: restored as is", "count/key: restored as is", "count/n: restored as is",
				"enrich: new", "enrich/seen: new"}},
		{name: "removed operator", job: evolveJob{version: "v1"}, ok: false,
			want:    []string{"audit: dropped", "audit/key: dropped", "audit/seen: dropped", "count: restored as is", "count/key: restored as is", "count/n: restored as is"},
			errHas:  []string{`operator "audit"`, "keyed state seen (value state, zigzag-varint@v1)", "--allow-non-restored-state"},
			printed: []string{"audit", "dropped", "--allow-non-restored-state"}},
		{name: "removed operator allowed", job: evolveJob{version: "v1", allow: true}, ok: true, sum: 160,
			want: []string{"audit: dropped", "audit/key: dropped", "audit/seen: dropped", "count: restored as is", "count/key: restored as is", "count/n: restored as is"}},
		{name: "migrated state", job: evolveJob{version: "v2", extra: []string{"audit"}}, ok: true, sum: 160,
			want: []string{"audit: restored as is", "audit/key: restored as is", "audit/seen: restored as is",
				"count: migrated", "count/key: restored as is", "count/n: migrated"},
			printed: []string{"struct tally{n:zigzag-varint@v1}@v1 -> struct tally{n:zigzag-varint@v1,since:string@v1}@v1"}},
		{name: "incompatible state", job: evolveJob{version: "string", extra: []string{"audit"}}, ok: false,
			want: []string{"audit: restored as is", "audit/key: restored as is", "audit/seen: restored as is",
				"count: incompatible", "count/key: restored as is", "count/n: incompatible"},
			errHas:  []string{"open count/", `value state "n" was written with value codec struct tally{n:zigzag-varint@v1}@v1, the job now uses string@v1`},
			printed: []string{`value state "n" was written with value codec struct tally{n:zigzag-varint@v1}@v1, the job now uses string@v1`}},
		{name: "renamed state", job: evolveJob{version: "renamed", extra: []string{"audit"}}, ok: true, sum: 60,
			want: []string{"audit: restored as is", "audit/key: restored as is", "audit/seen: restored as is",
				"count: restored as is", "count/key: restored as is", "count/n: dropped", "count/total: new"},
			printed: []string{"warning: state count/n is in the checkpoint but no longer registered"}},
		{name: "rescaled", job: evolveJob{version: "v1", extra: []string{"audit"}, parallelism: 3}, ok: true, sum: 160,
			want: []string{"audit: restored as is", "audit/key: restored as is", "audit/seen: restored as is",
				"count: restored as is", "count/key: restored as is", "count/n: restored as is"},
			printed: []string{"parallelism 2 -> 3 (state redistributes)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			job := tc.job
			job.records, job.from = 80, sp
			logs := &logBuffer{}
			env, _ := job.build(t.TempDir(), logs)
			rep, err := env.CheckRestore(sp)
			if err != nil {
				t.Fatal(err)
			}
			text := rep.String()
			want := append([]string{"gen: restored as is", "gen/splits: restored as is"}, tc.want...)
			slices.Sort(want)
			if got := outcomes(rep); !slices.Equal(got, want) {
				t.Errorf("outcomes\n%s\nwant\n%s\nreport:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"), text)
			}
			if rep.OK(job.allow) != tc.ok {
				t.Errorf("OK(%v) = %v, want %v:\n%s", job.allow, rep.OK(job.allow), tc.ok, text)
			}
			for _, p := range tc.printed {
				if !strings.Contains(text, p) {
					t.Errorf("report lacks %q:\n%s", p, text)
				}
			}

			for _, op := range rep.Operators {
				if op.UID == "count" && (op.OldParallelism != 2 || op.NewParallelism != max(job.parallelism, 2)) {
					t.Errorf("count parallelism %d -> %d", op.OldParallelism, op.NewParallelism)
				}
			}

			// The real restore.
			env, out := job.build(t.TempDir(), logs)
			res, err := env.Execute(ctxTimeout(t))
			if (err == nil) != rep.OK(job.allow) {
				t.Fatalf("CheckRestore said OK=%v, the restore returned %v\nreport:\n%s\nlogs:\n%s", rep.OK(job.allow), err, text, logs)
			}
			if err != nil {
				wantRefused(t, err, logs.String(), tc.errHas...)
				return
			}
			recs := out.Records()
			if len(recs) != 60 {
				t.Fatalf("%d records after the restore, want 60", len(recs))
			}
			if got := evolveCountSum(recs); got != tc.sum {
				t.Fatalf("counts sum to %d after the restore, want %d", got, tc.sum)
			}
			// A migrated state is written in its new version by the next
			// checkpoint, and the job as built restores it as is.
			if tc.name == "migrated state" {
				_, states := res.LastCheckpoint.Operators["count"].States()
				if len(states) != 1 || states[0].Codecs[0] != codec.IDOf(tallyV2Codec).String() {
					t.Fatalf("next checkpoint recorded %+v, want %s", states, codec.IDOf(tallyV2Codec))
				}
			}
		})
	}
}

// Broadcast state evolves as keyed state does: a value codec declaring
// that it reads the old one (codec.Evolve) migrates at restore, one that
// does not is refused, and CheckRestore says so beforehand in both cases.
func TestCheckRestoreBroadcastState(t *testing.T) {
	t.Parallel()
	cfg1 := testConfig(t, 2)
	res := run(t, storeJob(cfg1, limitsDesc, func(v int64) int64 { return v }))
	from := filepath.Join(cfg1.CheckpointDir, store.CheckpointDir(res.LastCheckpoint.CheckpointID))

	migrating := sluice.NewBroadcastStateDescriptor("limits", codec.String,
		codec.Codec[float64](codec.Evolve(codec.Float64, codec.From(codec.Int64, func(v int64) float64 { return float64(v) }))))
	plain := sluice.NewBroadcastStateDescriptor("limits", codec.String, codec.Float64)
	for _, tc := range []struct {
		name string
		desc sluice.BroadcastStateDescriptor[string, float64]
		want sluice.Outcome
	}{{"migrated", migrating, sluice.Migrated}, {"incompatible", plain, sluice.Incompatible}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, 3)
			cfg.FromCheckpoint = from
			rep, err := storeJob(cfg, tc.desc, func(v int64) float64 { return float64(v) }).CheckRestore(from)
			if err != nil {
				t.Fatal(err)
			}
			var got sluice.Outcome
			for _, op := range rep.Operators {
				for _, s := range op.States {
					if op.UID == "limits" && s.Kind == "broadcast" && s.Name == "limits" {
						got = s.Outcome
					}
				}
			}
			if got != tc.want {
				t.Fatalf("broadcast state %v, want %v:\n%s", got, tc.want, rep)
			}
			res, err := storeJob(cfg, tc.desc, func(v int64) float64 { return float64(v) }).Execute(ctxTimeout(t))
			if (err == nil) != rep.OK(false) {
				t.Fatalf("CheckRestore OK=%v, restore: %v\n%s", rep.OK(false), err, rep)
			}
			if err != nil {
				if !strings.Contains(err.Error(), `broadcast state "limits" was written with value codec zigzag-varint@v1, the job reads it with float64-le@v1`) {
					t.Fatalf("refusal %v", err)
				}
				return
			}
			var desc strings.Builder
			if err := store.Describe(&desc, res.LastCheckpoint); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(desc.String(), `broadcast state "limits": keys string@v1, values float64-le@v1, 1 entry`) {
				t.Fatalf("next checkpoint does not hold the migrated state in the new codec:\n%s", desc.String())
			}
		})
	}
}

// The window operator's internal states are planned like a keyed
// function's: a savepoint with sessions in flight checks as restored as
// is (contents, merging sets) into the same job at another parallelism.
func TestCheckRestoreWindowState(t *testing.T) {
	t.Parallel()
	sessions := func(ks sluice.KeyedStream[string, evRec]) sluice.WindowedStream[string, evRec] {
		return sluice.Window(ks, window.Session(10*time.Second)).SideOutputLateData(lateTag)
	}
	cfg1, clk1 := evConfig(t, 1)
	atHold := make(chan struct{})
	j1 := &winJob{ooo: 20 * time.Second, build: aggProcess, window: sessions}
	sp := stopAtHold(t, j1.env(cfg1, &scriptSource{clk: clk1, interval: time.Second, scripts: [][]step{sessionScript(true)}, atHold: atHold},
		newCollector[string](), newCollector[string]()), cfg1, atHold)
	cfg2, clk2 := evConfig(t, 2)
	cfg2.FromCheckpoint = sp
	j2 := &winJob{ooo: 20 * time.Second, build: aggProcess, window: sessions}
	rep, err := j2.env(cfg2, &scriptSource{clk: clk2, interval: time.Second, scripts: [][]step{sessionScript(true)}, release: true},
		newCollector[string](), newCollector[string]()).CheckRestore(sp)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK(false) {
		t.Fatalf("not OK:\n%s", rep)
	}
	var windowStates []string
	for _, op := range rep.Operators {
		for _, s := range op.States {
			if strings.HasPrefix(s.Name, "window-") {
				windowStates = append(windowStates, s.Name+": "+s.Outcome.String())
			}
		}
	}
	if !slices.Contains(windowStates, "window-acc: restored as is") || !slices.Contains(windowStates, "window-sessions: restored as is") {
		t.Fatalf("window states %v:\n%s", windowStates, rep)
	}
}
