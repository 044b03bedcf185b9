package sluice_test

// Side outputs (docs/design.md §1): a keyed process function emits to
// typed side streams with sluice.Output; their records travel through the
// same edges as the main output's, and barriers and watermarks reach every
// output.

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/connector/datagen"
	"github.com/sluicehq/sluice/connector/file"
	"github.com/sluicehq/sluice/fault"
	"github.com/sluicehq/sluice/internal/countjob"
	"github.com/sluicehq/sluice/internal/verify"
	"github.com/sluicehq/sluice/restart"
	"github.com/sluicehq/sluice/state"
	"github.com/sluicehq/sluice/watermark"
)

var (
	oddTag     = sluice.NewOutputTag[string]("odd")
	seqTag     = sluice.NewOutputTag[int64]("seq")
	droppedTag = sluice.NewOutputTag[string]("dropped")
)

// splitFn sends records with an even Seq to the main output (their Seq),
// the others to side output "odd" ("key/seq"); every record's Seq also
// goes to side output "seq", and to "dropped", which nobody consumes.
type splitFn struct{}

func (splitFn) Open(*sluice.RuntimeContext[string]) error { return nil }
func (splitFn) ProcessElement(r datagen.Record, pc *sluice.ProcessContext[string, int64]) error {
	if r.Seq%2 == 0 {
		pc.Collect(r.Seq)
	} else {
		sluice.Output(pc, oddTag, r.Key+"/"+strconv.FormatInt(r.Seq, 10))
	}
	sluice.Output(pc, seqTag, r.Seq)
	sluice.Output(pc, droppedTag, "x")
	return nil
}

// TestSideOutputSplit: main and two side outputs, one chained to a Map and
// a sink, one shuffled to a sink of another parallelism and also consumed
// a second time, one never consumed; each sink gets exactly its records.
func TestSideOutputSplit(t *testing.T) {
	t.Parallel()
	gen := datagen.Config{Splits: 3, RecordsPerSplit: 400, Keys: 7, Distribution: datagen.Sequential}
	env := sluice.New(testConfig(t, 2))
	in := sluice.FromSource(env, "src", datagen.New(gen))
	p := sluice.Process(sluice.KeyBy(in, func(r datagen.Record) string { return r.Key }), "split",
		func() sluice.KeyedProcessFunction[string, datagen.Record, int64] { return splitFn{} })
	mainOut, oddOut, seqOut, seqOut2 := newCollector[int64](), newCollector[string](), newCollector[int64](), newCollector[int64]()
	sluice.Sink(p, "main-sink", mainOut.Sink())
	odd := sluice.Map(sluice.SideOutput(p, oddTag), "odd-upper", strings.ToUpper)
	sluice.Sink(odd, "odd-sink", oddOut.Sink())
	sluice.Sink(sluice.SideOutput(p, seqTag), "seq-sink", seqOut.Sink(), sluice.Parallelism(1))
	sluice.Sink(sluice.SideOutput(p, seqTag), "seq-sink-2", seqOut2.Sink())
	plan, err := env.Describe()
	if err != nil {
		t.Fatal(err)
	}
	// The chained side output joins the chain of the operator emitting it.
	if !strings.Contains(plan, "[split main-sink odd-upper odd-sink seq-sink-2]") {
		t.Errorf("side outputs not chained:\n%s", plan)
	}
	if !strings.Contains(plan, `(rebalance, side output "seq")`) {
		t.Errorf("plan lacks the shuffled side output edge:\n%s", plan)
	}
	run(t, env)

	var wantMain, wantSeq []int64
	var wantOdd []string
	for _, r := range input(gen) {
		if r.Seq%2 == 0 {
			wantMain = append(wantMain, r.Seq)
		} else {
			wantOdd = append(wantOdd, strings.ToUpper(r.Key+"/"+strconv.FormatInt(r.Seq, 10)))
		}
		wantSeq = append(wantSeq, r.Seq)
	}
	i64 := func(v int64) string { return strconv.FormatInt(v, 10) }
	sameMultiset(t, "main", mainOut.Records(), wantMain, i64)
	sameMultiset(t, "odd", oddOut.Records(), wantOdd, func(s string) string { return s })
	sameMultiset(t, "seq", seqOut.Records(), wantSeq, i64)
	sameMultiset(t, "seq (second consumer)", seqOut2.Records(), wantSeq, i64)
}

// oddCountTag carries the counts of odd-numbered keys.
var oddCountTag = sluice.NewOutputTag[countjob.Count]("odd-keys")

// splitCounter is the keyed running count; counts of keys with an even
// number go to the main output, of odd ones to side output "odd-keys".
type splitCounter struct{ n state.ValueState[int64] }

func (c *splitCounter) Open(rc *sluice.RuntimeContext[string]) error {
	var err error
	c.n, err = sluice.NewValueState(rc, "count", codec.Int64)
	return err
}

func (c *splitCounter) ProcessElement(_ datagen.Record, pc *sluice.ProcessContext[string, countjob.Count]) error {
	n, _ := c.n.Value()
	n++
	c.n.Update(n)
	out := countjob.Count{Key: pc.CurrentKey(), N: n}
	if oddKey(out.Key) {
		sluice.Output(pc, oddCountTag, out)
	} else {
		pc.Collect(out)
	}
	return nil
}

func oddKey(k string) bool {
	n, _ := strconv.Atoi(strings.TrimLeft(k, "k"))
	return n%2 == 1
}

// TestSideOutputExactlyOnceUnderFailures: the count job split over a main
// and a side output, each written by the two-phase-commit file sink (the
// main one chained, the side one behind a shuffle to another parallelism),
// with failures injected at random operators and points. Each output's
// committed records are every count 1..n of its keys exactly once: the
// side output's consumer aligns barriers and commits like the main one's.
func TestSideOutputExactlyOnceUnderFailures(t *testing.T) {
	t.Parallel()
	seed := uint64(20261201)
	rng := rand.New(rand.NewPCG(seed, 7))
	fired := int64(0)
	for i := range 3 {
		gen := datagen.Config{
			Splits: 1 + rng.IntN(3), RecordsPerSplit: int64(1500 + rng.IntN(2000)),
			RatePerSecond: float64(20_000 + rng.IntN(20_000)), Keys: 2 + rng.IntN(50),
			Distribution: []string{"uniform", "zipf", "sequential"}[rng.IntN(3)], Seed: rng.Uint64(),
		}
		par, failures := 1+rng.IntN(3), 1+rng.IntN(4)
		dir := t.TempDir()
		inj := fault.New(rng.Uint64())
		total := gen.RecordsPerSplit * int64(gen.Splits)
		inj.Schedule(inj.RandomTargets([]string{"source", "count", "main-sink", "side-sink"}, failures, int(min(total/int64(2*failures), 200))+1))
		env := sluice.New(sluice.Config{
			JobName: "side-eo", Parallelism: par, BufferTimeout: time.Millisecond, BatchSize: 1 + rng.IntN(64),
			Checkpoint:    checkpoint.Config{Interval: 10 * time.Millisecond, MinPause: time.Millisecond, TolerableFailures: 100},
			CheckpointDir: filepath.Join(dir, "checkpoints"),
			Restart:       restart.FixedDelay{Attempts: 1000, Delay: time.Millisecond},
			Faults:        inj, Logger: quietLogger(),
		})
		in := sluice.FromSource(env, "source", datagen.New(gen))
		counts := sluice.Process(sluice.KeyBy(in, func(r datagen.Record) string { return r.Key }), "count",
			func() sluice.KeyedProcessFunction[string, datagen.Record, countjob.Count] { return &splitCounter{} })
		sluice.Sink(counts, "main-sink", file.NewSink(file.Config[countjob.Count]{Dir: filepath.Join(dir, "main"), Encode: countjob.AppendLine}))
		sluice.Sink(sluice.SideOutput(counts, oddCountTag), "side-sink",
			file.NewSink(file.Config[countjob.Count]{Dir: filepath.Join(dir, "side"), Encode: countjob.AppendLine}),
			sluice.Parallelism(1+par%2))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		res, err := env.Execute(ctx)
		cancel()
		if err != nil {
			t.Fatalf("iteration %d: job failed: %v", i, err)
		}
		fired += inj.Fired()

		pos := map[int]int64{}
		for s := range gen.Splits {
			pos[s] = gen.RecordsPerSplit
		}
		wantMain, wantSide := map[string]int64{}, map[string]int64{}
		for k, n := range datagen.Expected(gen, pos) {
			if oddKey(k) {
				wantSide[k] = n
			} else {
				wantMain[k] = n
			}
		}
		for _, o := range []struct {
			name string
			want map[string]int64
		}{{"main", wantMain}, {"side", wantSide}} {
			outs, err := verify.ReadDir(filepath.Join(dir, o.name))
			if err != nil {
				t.Fatal(err)
			}
			rep := verify.Counts(o.want, outs)
			t.Logf("iteration %d %s: %+v parallelism %d: %d restarts, %d checkpoints, committed %d", i, o.name, gen, par, res.Restarts, res.Checkpoints, rep.Committed)
			if !rep.ExactlyOnce() || rep.Committed == 0 && len(o.want) > 0 {
				t.Fatalf("iteration %d (seed %d) %s output: %d lost, %d duplicated: %v", i, seed, o.name, rep.Lost, rep.Duplicated, rep.Examples)
			}
		}
	}
	if fired == 0 {
		t.Fatal("no failure fired: the test proved nothing")
	}
}

var (
	lateBTag = sluice.NewOutputTag[evRec]("b")
	firedTag = sluice.NewOutputTag[string]("fired")
)

// routeFn sends key b's records to side output "b" and reports the others
// on the main output; for key a it registers an event-time timer at the
// record's time, whose firing it reports on side output "fired".
type routeFn struct{}

func (routeFn) Open(*sluice.RuntimeContext[string]) error { return nil }
func (routeFn) ProcessElement(e evRec, pc *sluice.ProcessContext[string, string]) error {
	if e.Key == "b" {
		sluice.Output(pc, lateBTag, e)
		return nil
	}
	pc.RegisterEventTimeTimer(pc.Timestamp())
	pc.Collect("main " + e.String())
	return nil
}
func (routeFn) OnTimer(at time.Time, pc *sluice.ProcessContext[string, string]) error {
	sluice.Output(pc, firedTag, "fired "+pc.CurrentKey()+"@"+fmtTS(at.UnixNano()))
	return nil
}

// TestSideOutputEventTime: a side output's downstream keyed function sees
// the records' timestamps and the watermarks (its event-time timers fire
// as they pass, not only at the final watermark), and what a function
// emits to a side output from an event-time timer carries the timer's
// time.
func TestSideOutputEventTime(t *testing.T) {
	t.Parallel()
	cfg, clk := evConfig(t, 1)
	env := sluice.New(cfg)
	src := &scriptSource{clk: clk, interval: time.Second, scripts: [][]step{{
		rec("a", 10), tick(), rec("b", 8), rec("a", 13), tick(), rec("b", 11), tick(), rec("a", 20), tick(),
	}}}
	s := sluice.FromSourceWithWatermarks(env, "src", src, watermark.ForBoundedOutOfOrderness(2*time.Second), nil)
	p := sluice.Process(sluice.KeyBy(s, func(e evRec) string { return e.Key }), "route",
		func() sluice.KeyedProcessFunction[string, evRec, string] { return routeFn{} })
	mainOut, bOut, firedOut := newCollector[string](), newCollector[string](), newCollector[string]()
	sluice.Sink(p, "main-sink", mainOut.Sink())
	b := sluice.Process(sluice.KeyBy(sluice.SideOutput(p, lateBTag), func(e evRec) string { return e.Key }), "b-timers",
		func() sluice.KeyedProcessFunction[string, evRec, string] { return &evFn{delay: time.Second} })
	sluice.Sink(b, "b-sink", bOut.Sink())
	f := sluice.Process(sluice.KeyBy(sluice.SideOutput(p, firedTag), func(string) string { return "x" }), "fired-stamp",
		func() sluice.KeyedProcessFunction[string, string, string] { return stampFn{} })
	sluice.Sink(f, "fired-sink", firedOut.Sink())
	run(t, env)

	check := func(what string, got, want []string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s: got\n%s\nwant\n%s", what, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	check("main", mainOut.Records(), []string{"main a@10", "main a@13", "main a@20"})
	check("side b", bOut.Records(), []string{
		"elem b@8 wm=7.999999999s",
		"timer b@9s wm=10.999999999s",
		"elem b@11 wm=10.999999999s",
		"timer b@12s wm=17.999999999s",
	})
	check("side fired", firedOut.Records(), []string{
		"fired a@10s ts=10s",
		"fired a@13s ts=13s",
		"fired a@20s ts=20s",
	})
}

// buildErr builds a job with build and returns the error Execute fails with.
func buildErr(t *testing.T, build func(env *sluice.Environment)) error {
	t.Helper()
	env := sluice.New(testConfig(t, 1))
	build(env)
	_, err := env.Execute(ctxTimeout(t))
	if err == nil {
		t.Fatal("Execute succeeded")
	}
	return err
}

func splitJob(env *sluice.Environment) sluice.Stream[int64] {
	in := sluice.FromSource(env, "src", datagen.New(datagen.Config{Splits: 1, RecordsPerSplit: 10, Keys: 2}))
	p := sluice.Process(sluice.KeyBy(in, func(r datagen.Record) string { return r.Key }), "split",
		func() sluice.KeyedProcessFunction[string, datagen.Record, int64] { return splitFn{} })
	sluice.Sink(p, "main-sink", sluice.DiscardSink[int64]())
	return p
}

// TestSideOutputBuildErrors: an empty tag id, a tag id with two types on
// one operator, a side output of an operator that cannot emit any and one
// of a side output are refused before the job runs; a function emitting a
// tag id with another type than its consumer's fails the job, naming it.
func TestSideOutputBuildErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		build func(env *sluice.Environment)
		want  string
	}{
		{"empty id", func(env *sluice.Environment) {
			sluice.Sink(sluice.SideOutput(splitJob(env), sluice.NewOutputTag[string]("")), "s", sluice.DiscardSink[string]())
		}, `operator "split": SideOutput: empty OutputTag id`},
		{"two types", func(env *sluice.Environment) {
			p := splitJob(env)
			sluice.Sink(sluice.SideOutput(p, sluice.NewOutputTag[string]("t")), "s1", sluice.DiscardSink[string]())
			sluice.Sink(sluice.SideOutput(p, sluice.NewOutputTag[int]("t")), "s2", sluice.DiscardSink[int]())
		}, `operator "split": side output "t" is used with two types, string and int`},
		{"map", func(env *sluice.Environment) {
			m := sluice.Map(splitJob(env), "m", func(v int64) int64 { return v })
			sluice.Sink(sluice.SideOutput(m, oddTag), "s", sluice.DiscardSink[string]())
		}, `operator "m": SideOutput "odd": only the functions of Process, CoProcess, IntervalJoinProcess and the broadcast process operators, and window operators (late data), emit side outputs`},
		{"side of side", func(env *sluice.Environment) {
			o := sluice.SideOutput(splitJob(env), oddTag)
			sluice.Sink(sluice.SideOutput(o, seqTag), "s", sluice.DiscardSink[int64]())
		}, `a side output has no side outputs of its own`},
		{"runtime type mismatch", func(env *sluice.Environment) {
			// splitFn emits int64 to "seq"; consumed as string.
			sluice.Sink(sluice.SideOutput(splitJob(env), sluice.NewOutputTag[string]("seq")), "s", sluice.DiscardSink[string]())
		}, `side output "seq" carries *sluice.sideOut[string], not *sluice.sideOut[int64]`},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := buildErr(t, c.build); !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q, want it to contain %q", err, c.want)
			}
		})
	}
}

// coSplit is a co-process function: the first input's keys go to the main
// output, the second's to side output "second".
type coSplit struct{}

var secondTag = sluice.NewOutputTag[string]("second")

func (coSplit) Open(*sluice.RuntimeContext[string]) error { return nil }
func (coSplit) ProcessElement1(r datagen.Record, pc *sluice.ProcessContext[string, string]) error {
	pc.Collect("1:" + r.Key)
	return nil
}
func (coSplit) ProcessElement2(r datagen.Record, pc *sluice.ProcessContext[string, string]) error {
	sluice.Output(pc, secondTag, "2:"+r.Key)
	return nil
}

// TestSideOutputCoProcessUnion: a co-process function emits to a side
// output, and the main and side outputs of one operator meet again in a
// Union (two edges between the same tasks), exactly once each.
func TestSideOutputCoProcessUnion(t *testing.T) {
	t.Parallel()
	gen := datagen.Config{Splits: 2, RecordsPerSplit: 300, Keys: 5, Distribution: datagen.Sequential}
	env := sluice.New(testConfig(t, 2))
	key := func(r datagen.Record) string { return r.Key }
	a := sluice.KeyBy(sluice.FromSource(env, "a", datagen.New(gen)), key)
	b := sluice.KeyBy(sluice.FromSource(env, "b", datagen.New(gen)), key)
	co := sluice.CoProcess(sluice.Connect(a, b), "co", func() sluice.KeyedCoProcessFunction[string, datagen.Record, datagen.Record, string] {
		return coSplit{}
	})
	u := sluice.Union("both", co, []sluice.Stream[string]{sluice.SideOutput(co, secondTag)})
	out := newCollector[string]()
	sluice.Sink(u, "sink", out.Sink())
	run(t, env)
	var want []string
	for _, r := range input(gen) {
		want = append(want, "1:"+r.Key, "2:"+r.Key)
	}
	sameMultiset(t, "union", out.Records(), want, func(s string) string { return s })
}

// TestSideOutputOnly: an operator whose only consumer reads a side output
// runs; its main output is dropped.
func TestSideOutputOnly(t *testing.T) {
	t.Parallel()
	gen := datagen.Config{Splits: 1, RecordsPerSplit: 50, Keys: 3, Distribution: datagen.Sequential}
	env := sluice.New(testConfig(t, 1))
	in := sluice.FromSource(env, "src", datagen.New(gen))
	p := sluice.Process(sluice.KeyBy(in, func(r datagen.Record) string { return r.Key }), "split",
		func() sluice.KeyedProcessFunction[string, datagen.Record, int64] { return splitFn{} })
	out := newCollector[int64]()
	sluice.Sink(sluice.SideOutput(p, seqTag), "seq-sink", out.Sink())
	run(t, env)
	if got := len(out.Records()); got != 50 {
		t.Fatalf("side output got %d records, want 50", got)
	}
}
