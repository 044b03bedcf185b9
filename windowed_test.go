package sluice_test

// The window operator (docs/design.md §14) in real jobs: scripted
// event-time sources (eventtime_test.go) with a fake clock, results
// against hand-computed tables. Results are formatted as
// "key [start,end) n=<records> sum=<sum of the records' At> ts=<result
// timestamp>", times in seconds after t0.

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/watermark"
	"github.com/sluicehq/sluice/window"
)

// nsum is the accumulator of the test aggregation: records and the sum
// of their At.
type nsum struct{ N, Sum int64 }

type nsumCodec struct{}

func (nsumCodec) Append(dst []byte, v nsum) []byte {
	return codec.Int64.Append(codec.Int64.Append(dst, v.N), v.Sum)
}

func (nsumCodec) Decode(src []byte) (nsum, int, error) {
	n, a, err := codec.Int64.Decode(src)
	if err != nil {
		return nsum{}, 0, err
	}
	s, b, err := codec.Int64.Decode(src[a:])
	return nsum{N: n, Sum: s}, a + b, err
}

// countSum is the AggregateFunction of the tests.
type countSum struct{}

func (countSum) CreateAccumulator() nsum                            { return nsum{} }
func (countSum) Add(r evRec, a nsum) nsum                           { return nsum{N: a.N + 1, Sum: a.Sum + int64(r.At)} }
func (countSum) Merge(a, b nsum) nsum                               { return nsum{N: a.N + b.N, Sum: a.Sum + b.Sum} }
func (countSum) Result(a nsum) nsum                                 { return a }
func fmtWin(w window.Window) string                                 { return fmt.Sprintf("[%s,%s)", secs(w.Start), secs(w.End)) }
func secs(v int64) string                                           { return fmt.Sprint((v - t0.UnixNano()) / int64(time.Second)) }
func keyOfEv(e evRec) string                                        { return e.Key }
func newFmtWin() sluice.ProcessWindowFunction[string, nsum, string] { return fmtWinFn{} }

// fmtWinFn formats the one aggregated value of a window.
type fmtWinFn struct{}

func (fmtWinFn) Process(key string, in []nsum, wc *sluice.WindowContext[string]) error {
	if len(in) != 1 {
		return fmt.Errorf("aggregate+process: %d values, want 1", len(in))
	}
	wc.Collect(fmt.Sprintf("%s %s n=%d sum=%d", key, fmtWin(wc.Window()), in[0].N, in[0].Sum))
	return nil
}

// listWinFn formats a window from its elements (full-window function).
type listWinFn struct{}

func (listWinFn) Process(key string, in []evRec, wc *sluice.WindowContext[string]) error {
	var s nsum
	var ats []string
	for _, r := range in {
		s = countSum{}.Add(r, s)
		ats = append(ats, fmt.Sprint(r.At))
	}
	wc.Collect(fmt.Sprintf("%s %s n=%d sum=%d elems=%s", key, fmtWin(wc.Window()), s.N, s.Sum, strings.Join(ats, ",")))
	return nil
}

// evRecCodec encodes evRec for the full-window tests.
type evRecCodec struct{}

func (evRecCodec) Append(dst []byte, r evRec) []byte {
	return codec.Int.Append(codec.String.Append(dst, r.Key), r.At)
}

func (evRecCodec) Decode(src []byte) (evRec, int, error) {
	k, a, err := codec.String.Decode(src)
	if err != nil {
		return evRec{}, 0, err
	}
	at, b, err := codec.Int.Decode(src[a:])
	return evRec{Key: k, At: at}, a + b, err
}

var lateTag = sluice.NewOutputTag[evRec]("late")

// winJob is a window job over a scripted source with bounded disorder
// ooo: results go through a shuffle to a stamping function (which
// appends the result's timestamp) into out, late records into late.
type winJob struct {
	ooo    time.Duration
	build  func(ws sluice.WindowedStream[string, evRec]) winOut
	window func(ks sluice.KeyedStream[string, evRec]) sluice.WindowedStream[string, evRec]
	out    winOut
}

// winOut is what a window job's builder returns: the formatted results,
// the late side output, and the operator's leftovers.
type winOut struct {
	res  sluice.Stream[string]
	late sluice.Stream[evRec]
	left func() (keys, eventTimers, procTimers int64)
}

func outOf[OUT any](w sluice.Stream[OUT], res sluice.Stream[string]) winOut {
	return winOut{res: res, late: sluice.SideOutput(w, lateTag), left: func() (int64, int64, int64) { return sluice.WindowLeftovers(w) }}
}

func (j *winJob) env(cfg sluice.Config, src *scriptSource, out, late *collector[string]) *sluice.Environment {
	env := sluice.New(cfg)
	s := sluice.FromSourceWithWatermarks(env, "src", src, watermark.ForBoundedOutOfOrderness(j.ooo), nil)
	j.out = j.build(j.window(sluice.KeyBy(s, keyOfEv)))
	st := sluice.Process(sluice.KeyBy(j.out.res, func(string) string { return "x" }), "stamp",
		func() sluice.KeyedProcessFunction[string, string, string] { return stampFn{} })
	sluice.Sink(st, "sink", out.Sink())
	if late != nil {
		l := sluice.Map(j.out.late, "late-fmt", func(r evRec) string { return r.String() })
		sluice.Sink(l, "late-sink", late.Sink())
	}
	return env
}

// aggProcess is the aggregate+process combination used by most tables.
func aggProcess(ws sluice.WindowedStream[string, evRec]) winOut {
	w := sluice.WindowAggregateProcess(ws, "window", sluice.AggregateFunction[evRec, nsum, nsum](countSum{}), codec.Codec[nsum](nsumCodec{}), newFmtWin)
	return outOf(w, w)
}

func sorted(s []string) []string { s = slices.Clone(s); sort.Strings(s); return s }

func checkLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if g, w := sorted(got), sorted(want); !slices.Equal(g, w) {
		t.Fatalf("%s: got (sorted)\n%s\nwant (sorted)\n%s", what, strings.Join(g, "\n"), strings.Join(w, "\n"))
	}
}

// TestWindowTumblingOutOfOrderAndLateness: tumbling 10s windows, disorder
// 2s, allowed lateness 5s. A record out of order within the bound is on
// time; one after the firing but within the lateness fires the window
// again with the updated result; one beyond it goes to the late side
// output and is counted; results carry the window's MaxTimestamp; no
// state or timer is left after the final watermark.
func TestWindowTumblingOutOfOrderAndLateness(t *testing.T) {
	t.Parallel()
	cfg, clk := evConfig(t, 1)
	src := &scriptSource{clk: clk, interval: time.Second, scripts: [][]step{{
		rec("a", 1), rec("a", 12), rec("a", 5), // 5 is out of order, within the bound
		tick(),       // wm 10s-1ns: [0,10) fires with 1 and 5
		rec("a", 3),  // late, within the lateness: [0,10) fires again
		rec("a", 20), // wm stays 10s-1ns until the tick
		tick(),       // wm 18s-1ns: [0,10) is cleaned up at 15s-1ns
		rec("a", 8),  // beyond the lateness: side output
		rec("b", 15),
	}}}
	out, late := newCollector[string](), newCollector[string]()
	j := &winJob{ooo: 2 * time.Second, build: aggProcess, window: func(ks sluice.KeyedStream[string, evRec]) sluice.WindowedStream[string, evRec] {
		return sluice.Window(ks, window.Tumbling(10*time.Second, 0)).AllowedLateness(5 * time.Second).SideOutputLateData(lateTag)
	}}
	res := run(t, j.env(cfg, src, out, late))
	checkLines(t, "results", out.Records(), []string{
		"a [0,10) n=2 sum=6 ts=9.999999999s",
		"a [0,10) n=3 sum=9 ts=9.999999999s",
		"a [10,20) n=1 sum=12 ts=19.999999999s",
		"b [10,20) n=1 sum=15 ts=19.999999999s",
		"a [20,30) n=1 sum=20 ts=29.999999999s",
	})
	checkLines(t, "late", late.Records(), []string{"a@8"})
	if n := lateRecords(res.Status, "window"); n != 1 {
		t.Errorf("LateRecords = %d, want 1", n)
	}
	if k, et, pt := j.out.left(); k != 0 || et != 0 || pt != 0 {
		t.Errorf("left in state after the final watermark: %d keys, %d event-time timers, %d processing-time timers", k, et, pt)
	}
}

// lateRecords returns the LateRecords of the vertex whose chain holds
// the operator name (chained after the source, the vertex is named after
// it: then sum all).
func lateRecords(st sluice.JobStatus, _ string) int64 {
	var n int64
	for _, v := range st.Vertices {
		n += v.LateRecords
	}
	return n
}

// winCase is a table test of one window job over one scripted split.
type winCase struct {
	name   string
	ooo    time.Duration
	window func(ks sluice.KeyedStream[string, evRec]) sluice.WindowedStream[string, evRec]
	build  func(ws sluice.WindowedStream[string, evRec]) winOut
	script []step
	want   []string
	late   []string
	// leftover is the number of keys left in state at the end (global
	// windows keep theirs).
	leftover int64
}

func runWinCase(t *testing.T, tc winCase) {
	t.Helper()
	cfg, clk := evConfig(t, 1)
	src := &scriptSource{clk: clk, interval: time.Second, scripts: [][]step{tc.script}}
	out, late := newCollector[string](), newCollector[string]()
	build := tc.build
	if build == nil {
		build = aggProcess
	}
	j := &winJob{ooo: tc.ooo, build: build, window: tc.window}
	res := run(t, j.env(cfg, src, out, late))
	checkLines(t, "results", out.Records(), tc.want)
	checkLines(t, "late", late.Records(), tc.late)
	if n := lateRecords(res.Status, "window"); n != int64(len(tc.late)) {
		t.Errorf("LateRecords = %d, want %d", n, len(tc.late))
	}
	if k, et, pt := j.out.left(); k != tc.leftover || et != 0 || pt != 0 {
		t.Errorf("left in state after the final watermark: %d keys (want %d), %d event-time timers, %d processing-time timers", k, tc.leftover, et, pt)
	}
}

func tumbling(size time.Duration) func(ks sluice.KeyedStream[string, evRec]) sluice.WindowedStream[string, evRec] {
	return func(ks sluice.KeyedStream[string, evRec]) sluice.WindowedStream[string, evRec] {
		return sluice.Window(ks, window.Tumbling(size, 0)).SideOutputLateData(lateTag)
	}
}

// TestWindowTables: sliding overlap, the window functions (reduce,
// aggregate, full-window process, aggregate+process), evictors, count
// triggers on global windows, continuous early firing, and sessions
// merging, against hand-computed results.
func TestWindowTables(t *testing.T) {
	t.Parallel()
	sec := time.Second
	fmtSum := func(ws sluice.WindowedStream[string, evRec]) winOut {
		agg := sluice.WindowAggregate(ws, "window", sluice.AggregateFunction[evRec, nsum, nsum](countSum{}), codec.Codec[nsum](nsumCodec{}))
		return outOf(agg, sluice.Map(agg, "fmt", func(s nsum) string { return fmt.Sprintf("n=%d sum=%d", s.N, s.Sum) }))
	}
	reduce := func(ws sluice.WindowedStream[string, evRec]) winOut {
		r := sluice.WindowReduce(ws, "window", func(a, b evRec) evRec { return evRec{Key: a.Key, At: a.At + b.At} }, codec.Codec[evRec](evRecCodec{}))
		return outOf(r, sluice.Map(r, "fmt", func(r evRec) string { return fmt.Sprintf("%s sum=%d", r.Key, r.At) }))
	}
	process := func(ws sluice.WindowedStream[string, evRec]) winOut {
		w := sluice.WindowProcess(ws, "window", func() sluice.ProcessWindowFunction[string, evRec, string] { return listWinFn{} }, codec.Codec[evRec](evRecCodec{}))
		return outOf(w, w)
	}
	for _, tc := range []winCase{
		{
			// Each record is in two windows; a record whose windows are
			// one late and one not is no late record.
			name: "sliding overlap", window: func(ks sluice.KeyedStream[string, evRec]) sluice.WindowedStream[string, evRec] {
				return sluice.Window(ks, window.Sliding(10*sec, 5*sec, 0)).SideOutputLateData(lateTag)
			},
			script: []step{
				rec("a", 7), rec("a", 12), tick(), // wm 12s-1ns: [0,10) fires (7)
				rec("a", 13), rec("a", 16), tick(), // wm 16s-1ns: [5,15) fires (7,12,13)
				rec("a", 9),  // [5,15) and [0,10) are late: side output
				rec("a", 14), // [5,15) late, [10,20) not: added there
			},
			want: []string{
				"a [0,10) n=1 sum=7 ts=9.999999999s",
				"a [5,15) n=3 sum=32 ts=14.999999999s",
				"a [10,20) n=4 sum=55 ts=19.999999999s",
				"a [15,25) n=1 sum=16 ts=24.999999999s",
			},
			late: []string{"a@9"},
		},
		{
			name: "reduce", window: tumbling(10 * sec),
			build:  reduce,
			script: []step{rec("a", 1), rec("b", 2), rec("a", 3), rec("a", 11)},
			want:   []string{"a sum=4 ts=9.999999999s", "b sum=2 ts=9.999999999s", "a sum=11 ts=19.999999999s"},
		},
		{
			name: "aggregate", window: tumbling(10 * sec), build: fmtSum,
			script: []step{rec("a", 1), rec("b", 2), rec("a", 3), rec("a", 11)},
			want:   []string{"n=2 sum=4 ts=9.999999999s", "n=1 sum=2 ts=9.999999999s", "n=1 sum=11 ts=19.999999999s"},
		},
		{
			name: "process", window: tumbling(10 * sec), build: process,
			script: []step{rec("a", 3), rec("b", 2), rec("a", 1), rec("a", 11)},
			want:   []string{"a [0,10) n=2 sum=4 elems=3,1 ts=9.999999999s", "b [0,10) n=1 sum=2 elems=2 ts=9.999999999s", "a [10,20) n=1 sum=11 elems=11 ts=19.999999999s"},
		},
		{
			// CountEvictor(2) keeps the last two records in arrival order.
			name: "count evictor", window: func(ks sluice.KeyedStream[string, evRec]) sluice.WindowedStream[string, evRec] {
				return tumbling(10 * sec)(ks).Evictor(window.CountEvictor(2))
			}, build: process,
			script: []step{rec("a", 3), rec("a", 1), rec("a", 5), rec("a", 2), rec("b", 4)},
			want:   []string{"a [0,10) n=2 sum=7 elems=5,2 ts=9.999999999s", "b [0,10) n=1 sum=4 elems=4 ts=9.999999999s"},
		},
		{
			// TimeEvictor(3s) keeps records newer than max-3s; with a
			// reduction, the kept records are folded at firing.
			name: "time evictor with reduce", window: func(ks sluice.KeyedStream[string, evRec]) sluice.WindowedStream[string, evRec] {
				return tumbling(10 * sec)(ks).Evictor(window.TimeEvictor(3 * sec))
			}, build: reduce,
			script: []step{rec("a", 3), rec("a", 9), rec("a", 5), rec("a", 7)},
			want:   []string{"a sum=16 ts=9.999999999s"},
		},
		{
			// A tumbling count window per key: the purging count trigger
			// on the global window fires every 2 records; the leftover
			// record of b stays in state (global windows never end).
			name: "count trigger on global windows", window: func(ks sluice.KeyedStream[string, evRec]) sluice.WindowedStream[string, evRec] {
				return sluice.Window(ks, window.Global()).Trigger(window.CountTrigger(2).Purging())
			},
			build:  fmtSum,
			script: []step{rec("a", 1), rec("b", 10), rec("a", 2), rec("a", 4), rec("b", 20), rec("a", 8), rec("b", 30)},
			want: []string{
				"n=2 sum=3 ts=9223372036854775806 - t0", "n=2 sum=30 ts=9223372036854775806 - t0", "n=2 sum=12 ts=9223372036854775806 - t0",
			},
			leftover: 1, // (b, global window): its record 30 and trigger count
		},
		{
			// Early results every 3s of event time, then the final one.
			name: "continuous trigger", window: func(ks sluice.KeyedStream[string, evRec]) sluice.WindowedStream[string, evRec] {
				return tumbling(10 * sec)(ks).Trigger(window.ContinuousEventTimeTrigger(3 * sec))
			},
			// a@1 schedules 3s, b@4 6s; wm 4s-1ns fires a at 3s (a@1),
			// next 6s; wm 7s-1ns fires both at 6s; the final watermark
			// fires both at 9s and at the window's end.
			script: []step{rec("a", 1), rec("b", 4), tick(), rec("a", 4), rec("b", 7), tick()},
			want: []string{
				"a [0,10) n=1 sum=1 ts=9.999999999s",
				"a [0,10) n=2 sum=5 ts=9.999999999s", "a [0,10) n=2 sum=5 ts=9.999999999s", "a [0,10) n=2 sum=5 ts=9.999999999s",
				"b [0,10) n=2 sum=11 ts=9.999999999s", "b [0,10) n=2 sum=11 ts=9.999999999s", "b [0,10) n=2 sum=11 ts=9.999999999s",
			},
		},
		{
			// Sessions with a 10s gap: records bridging two sessions merge
			// them; a record whose session merges into a live one is not
			// late even though its own window would be.
			name: "sessions", ooo: 20 * sec, window: func(ks sluice.KeyedStream[string, evRec]) sluice.WindowedStream[string, evRec] {
				return sluice.Window(ks, window.Session(10*sec)).SideOutputLateData(lateTag)
			},
			script: sessionScript(false),
			want:   sessionWant,
			late:   []string{"c@2"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.name == "count trigger on global windows" {
				// The global window's MaxTimestamp, relative to t0.
				for i, w := range tc.want {
					tc.want[i] = strings.Replace(w, "9223372036854775806 - t0", fmtTS(window.GlobalWindow.MaxTimestamp()), 1)
				}
			}
			runWinCase(t, tc)
		})
	}
}

// sessionScript: sessions of a 10s gap with a disorder of 20s. With hold,
// the first run stops with a savepoint in the middle, while the sessions
// a [30,40) and b [5,15) are open: the records after it merge them.
func sessionScript(withHold bool) []step {
	s := []step{
		rec("a", 0), rec("b", 5), rec("a", 30), tick(), // wm 10s-1ns: a [0,10) fires
	}
	if withHold {
		s = append(s, hold())
	}
	return append(s,
		rec("a", 22),         // [22,32) merges with [30,40)
		rec("b", 14),         // [14,24) merges with [5,15)
		rec("a", 12),         // [12,22) touches [22,40): [12,40)
		rec("a", 50), tick(), // wm 30s-1ns: b [5,24) fires
		rec("a", 5), // [5,15) is late alone, but merges into [5,40)
		rec("c", 2), // [2,12) is late
	)
}

var sessionWant = []string{
	"a [0,10) n=1 sum=0 ts=9.999999999s",
	"b [5,24) n=2 sum=19 ts=23.999999999s",
	"a [5,40) n=4 sum=69 ts=39.999999999s",
	"a [50,60) n=1 sum=50 ts=59.999999999s",
}
