package sluice_test

// The window operator (docs/design.md §14) in real jobs: scripted
// event-time sources (eventtime_test.go) with a fake clock, results
// against hand-computed tables. Results are formatted as
// "key [start,end) n=<records> sum=<sum of the records' At> ts=<result
// timestamp>", times in seconds after t0.

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/checkpoint/store"
	"github.com/sluicehq/sluice/clock"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/connector/datagen"
	"github.com/sluicehq/sluice/connector/file"
	"github.com/sluicehq/sluice/fault"
	"github.com/sluicehq/sluice/internal/countjob"
	"github.com/sluicehq/sluice/internal/verify"
	"github.com/sluicehq/sluice/restart"
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
	if side, dropped := lateSplit(res.Status); side != 1 || dropped != 0 {
		t.Errorf("late records to the side output %d, dropped %d; want 1 and 0", side, dropped)
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

// lateSplit returns the late records sent to a side output and those
// dropped, over every vertex.
func lateSplit(st sluice.JobStatus) (side, dropped int64) {
	for _, v := range st.Vertices {
		side += v.LateToSide
		dropped += v.LateDropped
	}
	return side, dropped
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
		{
			// The same sessions kept as lists: merging appends them.
			name: "sessions, full-window", ooo: 20 * sec, window: func(ks sluice.KeyedStream[string, evRec]) sluice.WindowedStream[string, evRec] {
				return sluice.Window(ks, window.Session(10*sec)).SideOutputLateData(lateTag)
			},
			build: func(ws sluice.WindowedStream[string, evRec]) winOut {
				w := sluice.WindowProcess(ws, "window", func() sluice.ProcessWindowFunction[string, evRec, string] { return listWinFn{} }, codec.Codec[evRec](evRecCodec{}))
				return outOf(w, sluice.Map(w, "strip", func(s string) string { return s[:strings.Index(s, " elems=")] }))
			},
			script: sessionScript(false),
			want:   sessionWant,
			late:   []string{"c@2"},
		},
		{
			// Sessions with a count trigger: trigger states of merged
			// sessions add up (3 records fire, wherever they arrived).
			name: "sessions, count trigger", ooo: 20 * sec, window: func(ks sluice.KeyedStream[string, evRec]) sluice.WindowedStream[string, evRec] {
				return sluice.Window(ks, window.Session(10*sec)).Trigger(window.CountTrigger(3))
			},
			// a@25 merges into [25,40) (count 2), a@16 into [16,40):
			// count 3 fires; [0,10) and [50,60) never reach 3.
			script: []step{rec("a", 0), rec("a", 30), rec("a", 25), rec("a", 16), rec("a", 50)},
			want:   []string{"a [16,40) n=3 sum=71 ts=39.999999999s"},
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

// stopAtHold runs env until every split of src is at its hold, then
// stops it with a savepoint and returns the savepoint's directory.
func stopAtHold(t *testing.T, env *sluice.Environment, cfg sluice.Config, atHold chan struct{}) string {
	t.Helper()
	x := start(t, env)
	select {
	case <-atHold:
	case <-time.After(waitTimeout):
		t.Fatal("sources did not reach the hold")
	}
	env.Stop()
	res, err := x.wait(t)
	if err != nil {
		t.Fatalf("run 1: %v", err)
	}
	if res.LastCheckpoint == nil {
		t.Fatal("run 1: no savepoint")
	}
	return filepath.Join(cfg.CheckpointDir, store.CheckpointDir(res.LastCheckpoint.CheckpointID))
}

// TestWindowSessionMergeAcrossSavepoint: the sessions of the session
// table, with a stop-with-savepoint while a [30,40) and b [5,15) are
// open; after the restore, records merge them with the restored
// sessions (their merging sets, contents and timers came through the
// savepoint): the results equal the run without the stop.
func TestWindowSessionMergeAcrossSavepoint(t *testing.T) {
	t.Parallel()
	sessions := func(ks sluice.KeyedStream[string, evRec]) sluice.WindowedStream[string, evRec] {
		return sluice.Window(ks, window.Session(10*time.Second)).SideOutputLateData(lateTag)
	}
	cfg1, clk1 := evConfig(t, 1)
	atHold := make(chan struct{})
	out1, late1 := newCollector[string](), newCollector[string]()
	j1 := &winJob{ooo: 20 * time.Second, build: aggProcess, window: sessions}
	sp := stopAtHold(t, j1.env(cfg1, &scriptSource{clk: clk1, interval: time.Second, scripts: [][]step{sessionScript(true)}, atHold: atHold}, out1, late1), cfg1, atHold)
	if got := out1.Records(); !slices.Equal(got, sessionWant[:1]) {
		t.Fatalf("run 1 emitted %q, want %q", got, sessionWant[:1])
	}
	cfg2, clk2 := evConfig(t, 1)
	cfg2.FromCheckpoint = sp
	out2, late2 := newCollector[string](), newCollector[string]()
	j2 := &winJob{ooo: 20 * time.Second, build: aggProcess, window: sessions}
	run(t, j2.env(cfg2, &scriptSource{clk: clk2, interval: time.Second, scripts: [][]step{sessionScript(true)}, release: true}, out2, late2))
	checkLines(t, "run 2 results", out2.Records(), sessionWant[1:])
	checkLines(t, "late", append(late1.Records(), late2.Records()...), []string{"c@2"})
	if k, et, pt := j2.out.left(); k != 0 || et != 0 || pt != 0 {
		t.Errorf("left in state after the final watermark: %d keys, %d event-time timers, %d processing-time timers", k, et, pt)
	}
}

// rescaleWindowJob windows the records of rescaleScripts (four splits,
// eight keys, a hold in the middle) with the given assigner.
func rescaleWindowJob(a window.Assigner) *winJob {
	return &winJob{ooo: time.Second, build: aggProcess, window: func(ks sluice.KeyedStream[string, evRec]) sluice.WindowedStream[string, evRec] {
		return sluice.Window(ks, a).SideOutputLateData(lateTag)
	}}
}

// TestWindowRescale: window contents, merging sets and event-time timers
// in flight in a savepoint taken at parallelism 2 are restored at
// parallelism 3 and 1 (by key group: the state key hashes the user's key
// alone); the results of both runs together equal those of a run without
// the stop, each window once.
func TestWindowRescale(t *testing.T) {
	t.Parallel()
	for _, a := range []struct {
		name string
		a    window.Assigner
	}{{"tumbling", window.Tumbling(20*time.Second, 0)}, {"sliding", window.Sliding(20*time.Second, 10*time.Second, 0)}, {"session", window.Session(15 * time.Second)}} {
		t.Run(a.name, func(t *testing.T) {
			t.Parallel()
			cfg, clk := evConfig(t, 2)
			ref, refLate := newCollector[string](), newCollector[string]()
			run(t, rescaleWindowJob(a.a).env(cfg, &scriptSource{scripts: rescaleScripts(), clk: clk, interval: time.Second, release: true}, ref, refLate))
			want := sorted(ref.Records())
			if len(want) < 8 || len(refLate.Records()) != 0 {
				t.Fatalf("reference run: %d results, late %v", len(want), refLate.Records())
			}
			for _, par2 := range []int{3, 1} {
				t.Run(fmt.Sprintf("2→%d", par2), func(t *testing.T) {
					t.Parallel()
					cfg1, clk1 := evConfig(t, 2)
					atHold := make(chan struct{})
					out1 := newCollector[string]()
					sp := stopAtHold(t, rescaleWindowJob(a.a).env(cfg1, &scriptSource{scripts: rescaleScripts(), clk: clk1, interval: time.Second, atHold: atHold}, out1, nil), cfg1, atHold)
					cfg2, clk2 := evConfig(t, par2)
					cfg2.FromCheckpoint = sp
					out2 := newCollector[string]()
					j2 := rescaleWindowJob(a.a)
					run(t, j2.env(cfg2, &scriptSource{scripts: rescaleScripts(), clk: clk2, interval: time.Second, release: true}, out2, nil))
					checkLines(t, "both runs", append(out1.Records(), out2.Records()...), want)
					// Windows holding records from before the hold (at most
					// 53s) fired in run 2: their state came through the
					// savepoint.
					restored := 0
					for _, r := range out2.Records() {
						var key string
						var start, end int
						if _, err := fmt.Sscanf(r, "%s [%d,%d)", &key, &start, &end); err == nil && start < 53 {
							restored++
						}
					}
					if restored == 0 {
						t.Fatalf("run 2 fired no window restored from run 1: %v", out2.Records())
					}
					if k, et, pt := j2.out.left(); k != 0 || et != 0 || pt != 0 {
						t.Errorf("left in state after the final watermark: %d keys, %d event-time timers, %d processing-time timers", k, et, pt)
					}
				})
			}
		})
	}
}

// TestWindowProcessingTime: processing-time tumbling windows assign a
// record by the job clock when the window operator sees it and fire when
// the clock passes the window's end. A fake clock decides both: the test
// moves it only once the operator has taken the records (its key
// function is called once at the shuffle and once in the operator).
func TestWindowProcessingTime(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, 1)
	clk := clock.NewFake(t0)
	cfg.Clock = clk
	cfg.BufferTimeout = sluice.FlushAlways
	cfg.Checkpoint = checkpoint.Config{Interval: -1}
	env := sluice.New(cfg)
	src := newLogSource[evRec]()
	var calls atomic.Int64
	ks := sluice.KeyBy(sluice.FromSource(env, "src", src), func(e evRec) string { calls.Add(1); return e.Key })
	w := sluice.WindowAggregateProcess(sluice.Window(ks, window.Tumbling(10*time.Second, 0).ProcessingTime()), "window",
		sluice.AggregateFunction[evRec, nsum, nsum](countSum{}), codec.Codec[nsum](nsumCodec{}), newFmtWin)
	st := sluice.Process(sluice.KeyBy(w, func(string) string { return "x" }), "stamp",
		func() sluice.KeyedProcessFunction[string, string, string] { return stampFn{} })
	out := newCollector[string]()
	sluice.Sink(st, "sink", out.Sink())
	x := start(t, env)
	taken := func(n int64) {
		t.Helper()
		until(t, fmt.Sprintf("%d records in the window operator", n), func() bool { return calls.Load() == 2*n })
	}
	src.Append(evRec{"a", 1}, evRec{"b", 2}, evRec{"a", 3}) // at 0s: [0,10)
	taken(3)
	clk.Advance(10 * time.Second)
	out.WaitLen(t, 2)
	src.Append(evRec{"a", 4}) // at 10s: [10,20)
	taken(4)
	clk.Advance(5 * time.Second)
	src.Append(evRec{"a", 5}) // at 15s: [10,20) too
	taken(5)
	clk.Advance(5 * time.Second)
	out.WaitLen(t, 3)
	src.Close()
	if _, err := x.wait(t); err != nil {
		t.Fatalf("Execute: %v", err)
	}
	checkLines(t, "results", out.Records(), []string{
		"a [0,10) n=2 sum=4 ts=9.999999999s",
		"b [0,10) n=1 sum=2 ts=9.999999999s",
		"a [10,20) n=2 sum=9 ts=19.999999999s",
	})
	if k, et, pt := sluice.WindowLeftovers(w); k != 0 || et != 0 || pt != 0 {
		t.Errorf("left in state: %d keys, %d event-time timers, %d processing-time timers", k, et, pt)
	}
}

// TestWindowLateWithoutTag: without a late side output, late records are
// counted and dropped, with one WARN per operator instance, never
// silently.
func TestWindowLateWithoutTag(t *testing.T) {
	t.Parallel()
	cfg, clk := evConfig(t, 1)
	logs := &logBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	src := &scriptSource{clk: clk, interval: time.Second, scripts: [][]step{{
		rec("a", 1), rec("a", 25), tick(), rec("a", 2), rec("b", 3), rec("a", 22),
	}}}
	env := sluice.New(cfg)
	s := sluice.FromSourceWithWatermarks(env, "src", src, watermark.ForMonotonousTimestamps(), nil)
	w := sluice.WindowAggregateProcess(sluice.Window(sluice.KeyBy(s, keyOfEv), window.Tumbling(10*time.Second, 0)), "window",
		sluice.AggregateFunction[evRec, nsum, nsum](countSum{}), codec.Codec[nsum](nsumCodec{}), newFmtWin)
	out := newCollector[string]()
	sluice.Sink(w, "sink", out.Sink())
	res := run(t, env)
	checkLines(t, "results", out.Records(), []string{"a [0,10) n=1 sum=1", "a [20,30) n=2 sum=47"})
	if n := lateRecords(res.Status, "window"); n != 2 {
		t.Errorf("LateRecords = %d, want 2", n)
	}
	if side, dropped := lateSplit(res.Status); side != 0 || dropped != 2 {
		t.Errorf("late records to the side output %d, dropped %d; want 0 and 2", side, dropped)
	}
	if n := strings.Count(logs.String(), "late record dropped"); n != 1 {
		t.Errorf("%d WARNs for late records, want 1:\n%s", n, logs.String())
	}
}

// TestWindowErrors: records without timestamps in event-time windows fail
// the job naming the operator; invalid window parameters fail the build
// naming them.
func TestWindowErrors(t *testing.T) {
	t.Parallel()
	t.Run("no timestamp", func(t *testing.T) {
		t.Parallel()
		env := sluice.New(testConfig(t, 1))
		src := newLogSource[evRec]()
		w := sluice.WindowAggregateProcess(sluice.Window(sluice.KeyBy(sluice.FromSource(env, "src", src), keyOfEv), window.Tumbling(time.Second, 0)), "win",
			sluice.AggregateFunction[evRec, nsum, nsum](countSum{}), codec.Codec[nsum](nsumCodec{}), newFmtWin)
		sluice.Sink(w, "sink", sluice.DiscardSink[string]())
		src.Append(evRec{"a", 1})
		src.Close()
		_, err := env.Execute(ctxTimeout(t))
		if err == nil || !strings.Contains(err.Error(), "win") || !strings.Contains(err.Error(), "without timestamp") {
			t.Fatalf("Execute: %v, want an error naming the operator and the missing timestamp", err)
		}
	})
	for _, tc := range []struct {
		name string
		ws   func(ks sluice.KeyedStream[string, evRec]) sluice.WindowedStream[string, evRec]
		want string
	}{
		{"assigner", func(ks sluice.KeyedStream[string, evRec]) sluice.WindowedStream[string, evRec] {
			return sluice.Window(ks, window.Tumbling(0, 0))
		}, "tumbling size"},
		{"trigger", func(ks sluice.KeyedStream[string, evRec]) sluice.WindowedStream[string, evRec] {
			return sluice.Window(ks, window.Global()).Trigger(window.CountTrigger(0))
		}, "count trigger"},
		{"lateness", func(ks sluice.KeyedStream[string, evRec]) sluice.WindowedStream[string, evRec] {
			return sluice.Window(ks, window.Tumbling(time.Second, 0)).AllowedLateness(-time.Second)
		}, "AllowedLateness"},
		{"evictor codec", func(ks sluice.KeyedStream[string, evRec]) sluice.WindowedStream[string, evRec] {
			return sluice.Window(ks, window.Tumbling(time.Second, 0)).Evictor(window.CountEvictor(1))
		}, "no built-in codec"},
		{"empty tag", func(ks sluice.KeyedStream[string, evRec]) sluice.WindowedStream[string, evRec] {
			return sluice.Window(ks, window.Tumbling(time.Second, 0)).SideOutputLateData(sluice.NewOutputTag[evRec](""))
		}, "empty OutputTag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := sluice.New(testConfig(t, 1))
			src := newLogSource[evRec]()
			w := sluice.WindowAggregate(tc.ws(sluice.KeyBy(sluice.FromSource(env, "src", src), keyOfEv)), "win",
				sluice.AggregateFunction[evRec, nsum, nsum](countSum{}), codec.Codec[nsum](nsumCodec{}))
			sluice.Sink(w, "sink", sluice.DiscardSink[nsum]())
			_, err := env.Execute(ctxTimeout(t))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Execute: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// winKeyCount counts datagen records of a key.
type winKeyCount struct{}

func (winKeyCount) CreateAccumulator() int64            { return 0 }
func (winKeyCount) Add(_ datagen.Record, n int64) int64 { return n + 1 }
func (winKeyCount) Merge(a, b int64) int64              { return a + b }
func (winKeyCount) Result(n int64) int64                { return n }
func (windowCountFn) Process(key string, in []int64, wc *sluice.WindowContext[countjob.Count]) error {
	wc.Collect(countjob.Count{Key: fmt.Sprintf("%s@%d", key, (wc.Window().Start-t0.UnixNano())/int64(time.Millisecond)), N: in[0]})
	return nil
}

// windowCountFn emits "key@<window start in ms after t0>,count".
type windowCountFn struct{}

// TestWindowExactlyOnceUnderFailures: per-key counts in 100ms tumbling
// windows of event time (record seq i of a split is at t0+i ms, in order,
// so no record is late whatever the interleaving and the restarts: every
// window's result is determined), written by the two-phase-commit file
// sink, with failures injected at random operators and points. Every
// window's count is committed exactly once and equals the count computed
// from the input.
func TestWindowExactlyOnceUnderFailures(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("SLUICE_TEST_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("seed %d (rerun with SLUICE_TEST_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 11))
	fired := int64(0)
	for i := range 3 {
		gen := datagen.Config{
			Splits: 1 + rng.IntN(3), RecordsPerSplit: int64(1500 + rng.IntN(2000)),
			RatePerSecond: float64(20_000 + rng.IntN(20_000)), Keys: 2 + rng.IntN(20),
			Distribution: []string{"uniform", "zipf", "sequential"}[rng.IntN(3)], Seed: rng.Uint64(),
		}
		par, failures := 1+rng.IntN(3), 1+rng.IntN(4)
		dir := t.TempDir()
		inj := fault.New(rng.Uint64())
		total := gen.RecordsPerSplit * int64(gen.Splits)
		inj.Schedule(inj.RandomTargets([]string{"source", "window", "sink"}, failures, int(min(total/int64(2*failures), 200))+1))
		env := sluice.New(sluice.Config{
			JobName: "window-eo", Parallelism: par, BufferTimeout: time.Millisecond, BatchSize: 1 + rng.IntN(64),
			WatermarkInterval: time.Duration(1+rng.IntN(10)) * time.Millisecond,
			Checkpoint:        checkpoint.Config{Interval: 10 * time.Millisecond, MinPause: time.Millisecond, TolerableFailures: 100},
			CheckpointDir:     filepath.Join(dir, "checkpoints"),
			Restart:           restart.FixedDelay{Attempts: 1000, Delay: time.Millisecond},
			Faults:            inj, Logger: quietLogger(),
		})
		in := sluice.FromSourceWithWatermarks(env, "source", datagen.New(gen), watermark.ForMonotonousTimestamps(),
			[]sluice.WatermarkOption[datagen.Record]{sluice.WithTimestampAssigner(func(r datagen.Record, _ int64) int64 {
				return t0.Add(time.Duration(r.Seq) * time.Millisecond).UnixNano()
			})})
		ws := sluice.Window(sluice.KeyBy(in, func(r datagen.Record) string { return r.Key }), window.Tumbling(100*time.Millisecond, 0))
		counts := sluice.WindowAggregateProcess(ws, "window", sluice.AggregateFunction[datagen.Record, int64, int64](winKeyCount{}), codec.Int64,
			func() sluice.ProcessWindowFunction[string, int64, countjob.Count] { return windowCountFn{} })
		sluice.Sink(counts, "sink", file.NewSink(file.Config[countjob.Count]{Dir: filepath.Join(dir, "out"), Encode: countjob.AppendLine}))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		res, err := env.Execute(ctx)
		cancel()
		if err != nil {
			t.Fatalf("iteration %d (seed %d): job failed: %v", i, seed, err)
		}
		fired += inj.Fired()

		want := map[string]int64{}
		for s := range gen.Splits {
			for seq := range gen.RecordsPerSplit {
				want[fmt.Sprintf("%s@%d", gen.KeyOf(s, seq), seq/100*100)]++
			}
		}
		outs, err := verify.ReadDir(filepath.Join(dir, "out"))
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		var dup, wrong, n int
		var examples []string
		for k, c := range outs {
			n++
			switch {
			case seen[k]:
				dup++
				examples = append(examples, "duplicate "+k)
			case want[k] != c:
				wrong++
				examples = append(examples, fmt.Sprintf("%s=%d, want %d", k, c, want[k]))
			}
			seen[k] = true
		}
		lost := 0
		for k := range want {
			if !seen[k] {
				lost++
				examples = append(examples, "lost "+k)
			}
		}
		t.Logf("iteration %d: %+v parallelism %d: %d restarts, %d checkpoints, %d window results", i, gen, par, res.Restarts, res.Checkpoints, n)
		if dup+wrong+lost > 0 {
			t.Fatalf("iteration %d (seed %d): %d duplicated, %d wrong, %d lost of %d windows: %v", i, seed, dup, wrong, lost, len(want), examples[:min(len(examples), 10)])
		}
	}
	if fired == 0 {
		t.Fatal("no failure fired: the test proved nothing")
	}
}

// TestWindowPanesMatchPerWindow: sliding windows with an incremental
// aggregation keep one accumulator per pane; a full-window function keeps
// every window's records. On random out-of-order input with late records
// within and beyond the allowed lateness, both give the same results
// (updated ones included) and the same late records.
func TestWindowPanesMatchPerWindow(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("SLUICE_TEST_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("seed %d (rerun with SLUICE_TEST_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 3))
	var script []step
	at := 0
	for range 200 {
		at += rng.IntN(3)
		r := max(at-rng.IntN(16), 0) // up to 15s behind: some late
		script = append(script, rec(fmt.Sprint("k", rng.IntN(3)), r))
		if rng.IntN(4) == 0 {
			script = append(script, tick())
		}
	}
	sliding := func(ks sluice.KeyedStream[string, evRec]) sluice.WindowedStream[string, evRec] {
		return sluice.Window(ks, window.Sliding(6*time.Second, 2*time.Second, 0)).AllowedLateness(3 * time.Second).SideOutputLateData(lateTag)
	}
	process := func(ws sluice.WindowedStream[string, evRec]) winOut {
		w := sluice.WindowProcess(ws, "window", func() sluice.ProcessWindowFunction[string, evRec, string] { return listWinFn{} }, codec.Codec[evRec](evRecCodec{}))
		return outOf(w, sluice.Map(w, "strip", func(s string) string { i := strings.Index(s, " elems="); return s[:i] }))
	}
	var results, lates [2][]string
	for i, build := range []func(sluice.WindowedStream[string, evRec]) winOut{aggProcess, process} {
		cfg, clk := evConfig(t, 1)
		out, late := newCollector[string](), newCollector[string]()
		j := &winJob{ooo: 2 * time.Second, build: build, window: sliding}
		run(t, j.env(cfg, &scriptSource{clk: clk, interval: time.Second, scripts: [][]step{script}}, out, late))
		results[i], lates[i] = out.Records(), late.Records()
		if k, et, pt := j.out.left(); k != 0 || et != 0 || pt != 0 {
			t.Errorf("run %d left in state: %d keys, %d event-time timers, %d processing-time timers", i, k, et, pt)
		}
	}
	windows := map[string]bool{}
	for _, r := range results[1] {
		windows[r[:strings.Index(r, " n=")]] = true
	}
	if len(lates[1]) == 0 || len(results[1]) == len(windows) {
		t.Fatalf("the input has %d late records and %d updated results: too few to compare", len(lates[1]), len(results[1])-len(windows))
	}
	t.Logf("%d results (%d updates), %d late records", len(results[1]), len(results[1])-len(windows), len(lates[1]))
	checkLines(t, "panes vs per-window results", results[0], results[1])
	checkLines(t, "panes vs per-window late records", lates[0], lates[1])
}

// TestWindowRestoreCompatibility: a savepoint of a window operator
// records its state key codec as the window wrapper of the key's codec
// and its states with their codecs, so restoring it into a keyed
// process function of the same uid is refused, naming both key codecs.
func TestWindowRestoreCompatibility(t *testing.T) {
	t.Parallel()
	cfg1, clk1 := evConfig(t, 1)
	atHold := make(chan struct{})
	j := &winJob{ooo: 20 * time.Second, build: aggProcess, window: func(ks sluice.KeyedStream[string, evRec]) sluice.WindowedStream[string, evRec] {
		return sluice.Window(ks, window.Session(10*time.Second))
	}}
	sp := stopAtHold(t, j.env(cfg1, &scriptSource{clk: clk1, interval: time.Second, scripts: [][]step{sessionScript(true)}, atHold: atHold}, newCollector[string](), nil), cfg1, atHold)
	cfg2, clk2 := evConfig(t, 1)
	cfg2.FromCheckpoint = sp
	cfg2.AllowNonRestoredState = true // the stamping operator is gone
	env := sluice.New(cfg2)
	s := sluice.FromSourceWithWatermarks(env, "src", &scriptSource{clk: clk2, interval: time.Second, scripts: [][]step{sessionScript(true)}, release: true},
		watermark.ForBoundedOutOfOrderness(time.Second), nil)
	p := sluice.Process(sluice.KeyBy(s, keyOfEv), "window", func() sluice.KeyedProcessFunction[string, evRec, string] { return &evFn{} })
	sluice.Sink(p, "sink", sluice.DiscardSink[string]())
	_, err := env.Execute(ctxTimeout(t))
	if err == nil || !strings.Contains(err.Error(), "window-key(string@v1)@v1") {
		t.Fatalf("Execute: %v, want a refusal naming the window key codec", err)
	}
	t.Log(err)
}
