package sluice_test

// Event time (docs/design.md §14): timestamps beside records, watermarks
// generated per split at sources and combined as the minimum over inputs,
// idleness, the final watermark, and event-time timers through checkpoints
// and rescaling. Every test is deterministic: a scripted source moves the
// fake clock itself (a tick is one watermark interval, so the periodic
// emission happens right after the poll that ticked), and gates between
// sources wait on what the downstream function saw, never on time.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/checkpoint/store"
	"github.com/sluicehq/sluice/clock"
	"github.com/sluicehq/sluice/watermark"
)

// evRec is a scripted record: a key and its event time, seconds after t0.
type evRec struct {
	Key string
	At  int
}

// step is one item of a split's script: a record, a tick (advance the fake
// clock by one watermark interval), a wait on a gate, or a hold (wait
// forever, unless the source releases holds).
type step struct {
	rec  *evRec
	tick bool
	wait <-chan struct{}
	hold bool
}

func rec(key string, at int) step   { return step{rec: &evRec{Key: key, At: at}} }
func tick() step                    { return step{tick: true} }
func wait(ch <-chan struct{}) step  { return step{wait: ch} }
func hold() step                    { return step{hold: true} }
func ts(sec int) int64              { return t0.Add(time.Duration(sec) * time.Second).UnixNano() }
func evSplitID(i int) string        { return "s" + strconv.Itoa(i) }
func (r evRec) String() string      { return fmt.Sprintf("%s@%d", r.Key, r.At) }
func evAssign(id string, p int) int { n, _ := strconv.Atoi(id[1:]); return n % p }
func fmtWM(wm int64) string         { return fmtTS(wm) }
func newGate() (chan struct{}, func()) {
	ch := make(chan struct{})
	var o sync.Once
	return ch, func() { o.Do(func() { close(ch) }) }
}

// fmtTS prints a timestamp or watermark relative to t0.
func fmtTS(v int64) string {
	switch v {
	case watermark.NoWatermark:
		return "none"
	case watermark.Final:
		return "final"
	}
	return time.Duration(v - t0.UnixNano()).String()
}

// scriptSource has one split per script; split i goes to subtask i mod
// the parallelism. A split's state is its position in the script.
type scriptSource struct {
	scripts  [][]step
	clk      *clock.Fake
	interval time.Duration
	release  bool // skip holds (the run after a restore)

	mu     sync.Mutex
	held   map[string]bool
	atHold chan struct{} // closed once every split is held
}

func (s *scriptSource) Splits(context.Context) ([]sluice.Split, error) {
	var out []sluice.Split
	for i := range s.scripts {
		out = append(out, sluice.Split{ID: evSplitID(i)})
	}
	return out, nil
}

func (s *scriptSource) AssignSplit(id string, p int) int { return evAssign(id, p) }

func (s *scriptSource) NewReader(context.Context, *sluice.OperatorContext) (sluice.SourceReader[evRec], error) {
	return &scriptReader{s: s, never: make(chan struct{}), ready: closedChan()}, nil
}

func closedChan() chan struct{} { c := make(chan struct{}); close(c); return c }

func (s *scriptSource) heldSplit(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held == nil {
		s.held = map[string]bool{}
	}
	s.held[id] = true
	if len(s.held) == len(s.scripts) && s.atHold != nil {
		close(s.atHold)
		s.atHold = nil
	}
}

type scriptSplit struct {
	id  string
	idx int
	pos int
}

type scriptReader struct {
	s      *scriptSource
	splits []*scriptSplit
	turn   int
	avail  <-chan struct{}
	never  chan struct{}
	ready  chan struct{}
}

func (r *scriptReader) EmitsPerSplit() {}

func (r *scriptReader) AddSplits(_ context.Context, splits []sluice.Split) error {
	for _, sp := range splits {
		n, err := strconv.Atoi(sp.ID[1:])
		if err != nil || n >= len(r.s.scripts) {
			return fmt.Errorf("unknown split %q", sp.ID)
		}
		st := &scriptSplit{id: sp.ID, idx: n}
		if len(sp.State) > 0 {
			v, k := binary.Uvarint(sp.State)
			if k <= 0 {
				return errors.New("corrupt script position")
			}
			st.pos = int(v)
		}
		r.splits = append(r.splits, st)
	}
	return nil
}

// Poll runs one step of the next split, in turn, that is not done, held
// or waiting on its gate.
func (r *scriptReader) Poll(_ context.Context, out sluice.Emitter[evRec]) (sluice.PollStatus, error) {
	ro, _ := out.(sluice.ReaderOutput[evRec])
	var gate <-chan struct{}
	blocked := false
	for range len(r.splits) {
		if r.turn >= len(r.splits) {
			r.turn = 0
		}
		sp := r.splits[r.turn]
		r.turn++
		script := r.s.scripts[sp.idx]
		if sp.pos >= len(script) {
			continue
		}
		st := script[sp.pos]
		switch {
		case st.hold && r.s.release:
			sp.pos++
			return sluice.MoreAvailable, nil
		case st.hold:
			r.s.heldSplit(sp.id)
			blocked = true
			continue
		case st.wait != nil:
			select {
			case <-st.wait:
				sp.pos++
				return sluice.MoreAvailable, nil
			default:
				gate, blocked = st.wait, true
				continue
			}
		case st.tick:
			sp.pos++
			r.s.clk.Advance(r.s.interval)
			return sluice.MoreAvailable, nil
		}
		sp.pos++
		var err error
		if ro != nil {
			err = ro.ForSplit(sp.id).EmitAt(*st.rec, ts(st.rec.At))
		} else {
			err = out.Emit(*st.rec)
		}
		return sluice.MoreAvailable, err
	}
	if !blocked {
		return sluice.EndOfInput, nil
	}
	r.avail = r.never
	if gate != nil {
		r.avail = gate
	}
	return sluice.NothingAvailable, nil
}

func (r *scriptReader) Available() <-chan struct{} {
	if r.avail == nil {
		return r.ready
	}
	a := r.avail
	r.avail = nil
	return a
}

func (r *scriptReader) SnapshotSplits(context.Context, int64) ([]sluice.Split, error) {
	var out []sluice.Split
	for _, sp := range r.splits {
		out = append(out, sluice.Split{ID: sp.id, State: binary.AppendUvarint(nil, uint64(sp.pos))})
	}
	return out, nil
}

func (r *scriptReader) NotifyCheckpointComplete(context.Context, int64) error { return nil }
func (r *scriptReader) Close(context.Context) error                           { return nil }

// evFn registers an event-time timer at each record's time plus delay and
// reports elements and firings with the watermark it saw; onElem, if set,
// is called with each element's key (the gates of the tests).
type evFn struct {
	delay  time.Duration
	onElem func(key string)
}

func (f *evFn) Open(*sluice.RuntimeContext[string]) error { return nil }

func (f *evFn) ProcessElement(e evRec, pc *sluice.ProcessContext[string, string]) error {
	if pc.Timestamp() != ts(e.At) {
		return fmt.Errorf("element %v has timestamp %s", e, fmtTS(pc.Timestamp()))
	}
	pc.RegisterEventTimeTimer(pc.Timestamp() + int64(f.delay))
	pc.Collect(fmt.Sprintf("elem %v wm=%s", e, fmtWM(pc.CurrentWatermark())))
	if f.onElem != nil {
		f.onElem(e.Key)
	}
	return nil
}

func (f *evFn) OnTimer(at time.Time, pc *sluice.ProcessContext[string, string]) error {
	if pc.TimeDomain() != sluice.EventTime || pc.Timestamp() != at.UnixNano() {
		return fmt.Errorf("timer at %v: domain %v, timestamp %s", at, pc.TimeDomain(), fmtTS(pc.Timestamp()))
	}
	pc.Collect(fmt.Sprintf("timer %s@%s wm=%s", pc.CurrentKey(), fmtTS(at.UnixNano()), fmtWM(pc.CurrentWatermark())))
	return nil
}

// stampFn passes strings on with the timestamp they arrived with.
type stampFn struct{}

func (stampFn) Open(*sluice.RuntimeContext[string]) error { return nil }
func (stampFn) ProcessElement(s string, pc *sluice.ProcessContext[string, string]) error {
	pc.Collect(s + " ts=" + fmtTS(pc.Timestamp()))
	return nil
}

func evConfig(t *testing.T, par int) (sluice.Config, *clock.Fake) {
	cfg := testConfig(t, par)
	clk := clock.NewFake(t0)
	cfg.Clock = clk
	cfg.BufferTimeout = sluice.FlushAlways
	cfg.WatermarkInterval = time.Second
	cfg.Checkpoint = checkpoint.Config{Interval: -1}
	return cfg, clk
}

// TestWatermarksBoundedOutOfOrder: out-of-order records within a bound of
// 2s. The watermark trails the largest timestamp by 2s+1ns, emitted after
// each tick; timers fire in timestamp order as it passes them, before
// later records; the final watermark at the end of input fires the rest.
// Records emitted by a timer carry its time as their timestamp, records
// emitted for an element the element's, through a chained Map and a
// shuffle.
func TestWatermarksBoundedOutOfOrder(t *testing.T) {
	t.Parallel()
	cfg, clk := evConfig(t, 1)
	env := sluice.New(cfg)
	src := &scriptSource{clk: clk, interval: time.Second, scripts: [][]step{{
		rec("a", 10), tick(), rec("b", 8), rec("a", 13), tick(), rec("b", 11), tick(), rec("a", 20), tick(),
	}}}
	s := sluice.FromSourceWithWatermarks(env, "src", src, watermark.ForBoundedOutOfOrderness(2*time.Second), nil)
	p := sluice.Process(sluice.KeyBy(s, func(e evRec) string { return e.Key }), "timers",
		func() sluice.KeyedProcessFunction[string, evRec, string] { return &evFn{delay: time.Second} })
	m := sluice.Map(p, "chained", func(s string) string { return s })
	st := sluice.Process(sluice.KeyBy(m, func(string) string { return "x" }), "stamp",
		func() sluice.KeyedProcessFunction[string, string, string] { return stampFn{} })
	out := newCollector[string]()
	sluice.Sink(st, "sink", out.Sink())
	run(t, env)
	want := []string{
		"elem a@10 wm=none ts=10s",
		"elem b@8 wm=7.999999999s ts=8s",
		"elem a@13 wm=7.999999999s ts=13s",
		"timer b@9s wm=10.999999999s ts=9s", // 13-2s-1ns passes 9, not 11
		"elem b@11 wm=10.999999999s ts=11s",
		"elem a@20 wm=10.999999999s ts=20s",
		"timer a@11s wm=17.999999999s ts=11s",
		"timer b@12s wm=17.999999999s ts=12s",
		"timer a@14s wm=17.999999999s ts=14s",
		"timer a@21s wm=final ts=21s",
	}
	if got := out.Records(); !slices.Equal(got, want) {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestIdleSplitDoesNotHoldBack: split s1 speaks once and falls silent.
// Without idleness it holds the reader's watermark below its only record
// until the end of input; with an idleness timeout of 2s it stops holding
// it back at the third tick, and s0 alone decides.
func TestIdleSplitDoesNotHoldBack(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		idle time.Duration
		want []string
	}{
		{0, []string{"timer s1@5s wm=final", "timer s0@10s wm=final", "timer s0@20s wm=final", "timer s0@30s wm=final"}},
		{2 * time.Second, []string{"timer s1@5s wm=19.999999999s", "timer s0@10s wm=19.999999999s", "timer s0@20s wm=29.999999999s", "timer s0@30s wm=final"}},
	} {
		t.Run(fmt.Sprint("idleness=", tc.idle), func(t *testing.T) {
			t.Parallel()
			cfg, clk := evConfig(t, 1)
			env := sluice.New(cfg)
			// One reader owns both splits; it runs s0's and s1's steps in
			// turn: s1@5, s0@10, tick, s0@20, tick, tick, s0@30, tick.
			src := &scriptSource{clk: clk, interval: time.Second, scripts: [][]step{
				{rec("s0", 10), tick(), rec("s0", 20), tick(), tick(), rec("s0", 30), tick()},
				{rec("s1", 5)},
			}}
			s := sluice.FromSourceWithWatermarks(env, "src", src, watermark.ForMonotonousTimestamps().WithIdleness(tc.idle), nil)
			p := sluice.Process(sluice.KeyBy(s, func(e evRec) string { return e.Key }), "timers",
				func() sluice.KeyedProcessFunction[string, evRec, string] { return &evFn{} })
			out := newCollector[string]()
			sluice.Sink(p, "sink", out.Sink())
			run(t, env)
			var got []string
			for _, r := range out.Records() {
				if strings.HasPrefix(r, "timer") {
					got = append(got, r)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// TestWatermarkMinOverInputs: two source subtasks feed one keyed subtask
// through a shuffle. Subtask 1's watermark stays at 1s-1ns while subtask
// 0's reaches 100s-1ns: the keyed task's watermark is the minimum, so no
// timer at or after 1s fires until both inputs end (final watermark).
func TestWatermarkMinOverInputs(t *testing.T) {
	t.Parallel()
	cfg, clk := evConfig(t, 2)
	env := sluice.New(cfg)
	gateA, openA := newGate()
	gateB, openB := newGate()
	src := &scriptSource{clk: clk, interval: time.Second, scripts: [][]step{
		{wait(gateA), rec("x", 100), tick(), rec("probe", 101), wait(gateB)},
		// sync2 is behind sync1: it does not raise the split's watermark,
		// whenever subtask 1 emits next.
		{rec("sync1", 1), tick(), rec("sync2", 0), wait(gateB)},
	}}
	s := sluice.FromSourceWithWatermarks(env, "src", src, watermark.ForMonotonousTimestamps(), nil)
	onElem := func(key string) {
		switch key {
		case "sync2": // subtask 1's watermark is in: let subtask 0 go
			openA()
		case "probe":
			openB()
		}
	}
	p := sluice.Process(sluice.KeyBy(s, func(e evRec) string { return e.Key }), "timers",
		func() sluice.KeyedProcessFunction[string, evRec, string] { return &evFn{onElem: onElem} }, sluice.Parallelism(1))
	out := newCollector[string]()
	sluice.Sink(p, "sink", out.Sink())
	run(t, env)
	want := []string{
		"elem sync1@1 wm=none",
		"elem sync2@0 wm=none", // subtask 0 has no watermark yet
		"elem x@100 wm=none",
		"timer sync2@0s wm=999.999999ms", // min(100s-1ns, 1s-1ns)
		"elem probe@101 wm=999.999999ms",
		// Then both inputs end, in either order: sync1 fires at
		// subtask 0's 100s-1ns or at the final watermark.
		"timer sync1@1s",
		"timer x@1m40s wm=final",
		"timer probe@1m41s wm=final",
	}
	got := out.Records()
	if len(got) == len(want) {
		if g := got[5]; g == "timer sync1@1s wm=1m39.999999999s" || g == "timer sync1@1s wm=final" {
			got[5] = "timer sync1@1s"
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// rescaleScripts: four splits of records of eight keys with increasing
// times, a hold in the middle (where run 1 stops with a savepoint), more
// records after it. Timers are due 50s after each record, beyond the
// watermark at the hold, so the savepoint holds pending timers.
func rescaleScripts() [][]step {
	var scripts [][]step
	for s := range 4 {
		var sc []step
		for i := range 6 {
			sc = append(sc, rec("k"+strconv.Itoa((s+i)%8), 10*i+s), tick())
		}
		sc = append(sc, hold())
		for i := 6; i < 10; i++ {
			sc = append(sc, rec("k"+strconv.Itoa((s+i)%8), 10*i+s), tick())
		}
		scripts = append(scripts, sc)
	}
	return scripts
}

func rescaleJob(cfg sluice.Config, src *scriptSource, out *collector[string]) *sluice.Environment {
	env := sluice.New(cfg)
	s := sluice.FromSourceWithWatermarks(env, "src", src, watermark.ForBoundedOutOfOrderness(time.Second), nil)
	p := sluice.Process(sluice.KeyBy(s, func(e evRec) string { return e.Key }), "timers",
		func() sluice.KeyedProcessFunction[string, evRec, string] { return &evFn{delay: 50 * time.Second} })
	firings := sluice.Filter(p, "firings", func(s string) bool { return strings.HasPrefix(s, "timer") })
	sluice.Sink(sluice.Map(firings, "strip", func(s string) string { return s[:strings.Index(s, " wm=")] }), "sink", out.Sink())
	return env
}

// TestEventTimeTimersRescale: event-time timers pending in a savepoint
// taken at parallelism 2 fire after a restore at parallelism 3 and 1,
// each exactly once, and the firings equal those of a run without the
// stop.
func TestEventTimeTimersRescale(t *testing.T) {
	t.Parallel()
	cfg, clk := evConfig(t, 2)
	ref := newCollector[string]()
	run(t, rescaleJob(cfg, &scriptSource{scripts: rescaleScripts(), clk: clk, interval: time.Second, release: true}, ref))
	want := ref.Records()
	sort.Strings(want)
	if len(want) != 40 {
		t.Fatalf("reference run fired %d timers, want 40: %v", len(want), want)
	}
	for _, par2 := range []int{3, 1} {
		t.Run(fmt.Sprintf("2→%d", par2), func(t *testing.T) {
			t.Parallel()
			cfg1, clk1 := evConfig(t, 2)
			atHold := make(chan struct{})
			src1 := &scriptSource{scripts: rescaleScripts(), clk: clk1, interval: time.Second, atHold: atHold}
			out1 := newCollector[string]()
			env1 := rescaleJob(cfg1, src1, out1)
			x := start(t, env1)
			select {
			case <-atHold:
			case <-time.After(waitTimeout):
				t.Fatal("sources did not reach the hold")
			}
			env1.Stop()
			res, err := x.wait(t)
			if err != nil {
				t.Fatalf("run 1: %v", err)
			}
			if res.LastCheckpoint == nil {
				t.Fatal("run 1: no savepoint")
			}
			cfg2, clk2 := evConfig(t, par2)
			cfg2.FromCheckpoint = filepath.Join(cfg1.CheckpointDir, store.CheckpointDir(res.LastCheckpoint.CheckpointID))
			out2 := newCollector[string]()
			run(t, rescaleJob(cfg2, &scriptSource{scripts: rescaleScripts(), clk: clk2, interval: time.Second, release: true}, out2))
			got := append(out1.Records(), out2.Records()...)
			sort.Strings(got)
			if !slices.Equal(got, want) {
				t.Fatalf("run 1 fired %v\nrun 2 fired %v\nwant (sorted) %v", out1.Records(), out2.Records(), want)
			}
			// Timers registered before the hold (records at most 55s, due
			// at most 105s) must be among what run 2 fired: they came
			// through the savepoint.
			restored := 0
			for _, r := range out2.Records() {
				f := strings.Fields(strings.Replace(r, "@", " ", 1))
				if at, err := time.ParseDuration(f[len(f)-1]); err == nil && at <= 105*time.Second {
					restored++
				}
			}
			if restored == 0 {
				t.Fatalf("run 2 fired no timer registered in run 1: %v", out2.Records())
			}
		})
	}
}
