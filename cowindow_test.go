package sluice_test

// Windowed coGroup and join (docs/design.md §14): both sides tagged,
// merged and keyed into one window operator. The inputs are out of order
// by less than the sources' 10s bound, so no record is late and the
// results do not depend on how the two sources interleave.

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/connector/datagen"
	"github.com/sluicehq/sluice/watermark"
	"github.com/sluicehq/sluice/window"
)

// coScripts are the two inputs, one split each, with a tick after every
// record: users' orders and payments, out of order.
func coScripts() (left, right [][]step) {
	ticked := func(rs ...step) []step {
		var sc []step
		for _, r := range rs {
			sc = append(sc, r, tick())
		}
		return sc
	}
	left = [][]step{ticked(rec("u1", 3), rec("u2", 5), rec("u1", 1), rec("u1", 12), rec("u2", 18), rec("u1", 25))}
	right = [][]step{ticked(rec("u1", 7), rec("u1", 2), rec("u3", 4), rec("u2", 14), rec("u2", 11), rec("u1", 29))}
	return left, right
}

// ats lists the times of records, sorted (merged session windows do not
// promise arrival order across the windows that merged).
func coAts(rs []evRec) string {
	var s []int
	for _, r := range rs {
		s = append(s, r.At)
	}
	sort.Ints(s)
	var out []string
	for _, a := range s {
		out = append(out, strconv.Itoa(a))
	}
	return strings.Join(out, ",")
}

// coJob runs a windowed coGroup or join of the two scripts at parallelism
// par and returns its results, sorted, each with the timestamp it reached
// the next operator with.
func coJob(t *testing.T, par int, build func(cw sluice.CoWindowedStreams[string, evRec, evRec]) sluice.Stream[string], assigner window.Assigner) []string {
	t.Helper()
	cfg, clk := evConfig(t, par)
	env := sluice.New(cfg)
	ls, rs := coScripts()
	bound := watermark.ForBoundedOutOfOrderness(10 * time.Second)
	a := sluice.FromSourceWithWatermarks(env, "orders", &scriptSource{clk: clk, interval: time.Second, scripts: ls}, bound, nil)
	b := sluice.FromSourceWithWatermarks(env, "payments", &scriptSource{clk: clk, interval: time.Second, scripts: rs}, bound, nil)
	cw := sluice.CoWindow(sluice.KeyBy(a, keyOfEv), sluice.KeyBy(b, keyOfEv), assigner)
	st := sluice.Process(sluice.KeyBy(build(cw), func(string) string { return "x" }), "stamp",
		func() sluice.KeyedProcessFunction[string, string, string] { return stampFn{} })
	out := newCollector[string]()
	sluice.Sink(st, "sink", out.Sink())
	run(t, env)
	got := out.Records()
	sort.Strings(got)
	return got
}

func coGroupFmt(cw sluice.CoWindowedStreams[string, evRec, evRec]) sluice.Stream[string] {
	return sluice.CoGroupWindow(cw, "cogroup", func(key string, as, bs []evRec, wc *sluice.WindowContext[string]) error {
		wc.Collect(fmt.Sprintf("%s %s L=%s R=%s", key, fmtWin(wc.Window()), coAts(as), coAts(bs)))
		return nil
	}, joinEvCodec, joinEvCodec)
}

func joinFmt(cw sluice.CoWindowedStreams[string, evRec, evRec]) sluice.Stream[string] {
	return sluice.JoinWindow(cw, "join", func(a, b evRec) string { return a.String() + "+" + b.String() }, joinEvCodec, joinEvCodec)
}

// TestCoGroupWindowTumbling: 10s tumbling windows; every key and window
// with a record on either side is coGrouped once, with both sides' records
// (one side may be empty), its result stamped with the window's last
// nanosecond.
func TestCoGroupWindowTumbling(t *testing.T) {
	t.Parallel()
	want := []string{
		"u1 [0,10) L=1,3 R=2,7 ts=9.999999999s",
		"u1 [10,20) L=12 R= ts=19.999999999s",
		"u1 [20,30) L=25 R=29 ts=29.999999999s",
		"u2 [0,10) L=5 R= ts=9.999999999s",
		"u2 [10,20) L=18 R=11,14 ts=19.999999999s",
		"u3 [0,10) L= R=4 ts=9.999999999s",
	}
	for _, par := range []int{1, 2} {
		t.Run(fmt.Sprint("parallelism ", par), func(t *testing.T) {
			t.Parallel()
			if got := coJob(t, par, coGroupFmt, window.Tumbling(10*time.Second, 0)); !slices.Equal(got, want) {
				t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// TestJoinWindowTumbling: the inner join of the same windows: every pair
// of a left and a right record of one key and window, nothing for a
// window with one side only.
func TestJoinWindowTumbling(t *testing.T) {
	t.Parallel()
	want := []string{
		"u1@1+u1@2 ts=9.999999999s", "u1@1+u1@7 ts=9.999999999s", "u1@25+u1@29 ts=29.999999999s",
		"u1@3+u1@2 ts=9.999999999s", "u1@3+u1@7 ts=9.999999999s",
		"u2@18+u2@11 ts=19.999999999s", "u2@18+u2@14 ts=19.999999999s",
	}
	if got := coJob(t, 1, joinFmt, window.Tumbling(10*time.Second, 0)); !slices.Equal(got, want) {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestCoGroupJoinWindowSession: session windows with a 5s gap merge the
// records of both sides: u1's 1, 2, 3, 7 and 12 form one session (windows
// that touch merge: [7,12) and [12,17)), 25 and 29 another; u2's 5 stays
// alone, 11, 14 and 18 merge.
func TestCoGroupJoinWindowSession(t *testing.T) {
	t.Parallel()
	t.Run("cogroup", func(t *testing.T) {
		t.Parallel()
		want := []string{
			"u1 [1,17) L=1,3,12 R=2,7 ts=16.999999999s",
			"u1 [25,34) L=25 R=29 ts=33.999999999s",
			"u2 [11,23) L=18 R=11,14 ts=22.999999999s",
			"u2 [5,10) L=5 R= ts=9.999999999s",
			"u3 [4,9) L= R=4 ts=8.999999999s",
		}
		if got := coJob(t, 2, coGroupFmt, window.Session(5*time.Second)); !slices.Equal(got, want) {
			t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
	t.Run("join", func(t *testing.T) {
		t.Parallel()
		want := []string{
			"u1@1+u1@2 ts=16.999999999s", "u1@1+u1@7 ts=16.999999999s",
			"u1@12+u1@2 ts=16.999999999s", "u1@12+u1@7 ts=16.999999999s",
			"u1@25+u1@29 ts=33.999999999s",
			"u1@3+u1@2 ts=16.999999999s", "u1@3+u1@7 ts=16.999999999s",
			"u2@18+u2@11 ts=22.999999999s", "u2@18+u2@14 ts=22.999999999s",
		}
		if got := coJob(t, 1, joinFmt, window.Session(5*time.Second)); !slices.Equal(got, want) {
			t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
}

// TestCoGroupWindowRescale: windows of both sides in flight in a
// savepoint taken at parallelism 2 (20s tumbling windows; [40s,60s) spans
// the hold) fire after a restore at parallelism 3 and 1 with the records
// of before and after it; the results of both runs together equal those
// of a run without the stop, each once.
func TestCoGroupWindowRescale(t *testing.T) {
	t.Parallel()
	job := func(cfg sluice.Config, left, right *scriptSource, out *collector[string]) *sluice.Environment {
		env := sluice.New(cfg)
		bound := watermark.ForBoundedOutOfOrderness(time.Second)
		a := sluice.FromSourceWithWatermarks(env, "left", left, bound, nil)
		b := sluice.FromSourceWithWatermarks(env, "right", right, bound, nil)
		sluice.Sink(coGroupFmt(sluice.CoWindow(sluice.KeyBy(a, keyOfEv), sluice.KeyBy(b, keyOfEv), window.Tumbling(20*time.Second, 0))), "sink", out.Sink())
		return env
	}
	twoInputRescale(t, job, 16, func(out2 []string) bool {
		// A window of run 2 with a left record before the hold (40s to
		// 43s) got it from the savepoint.
		for _, r := range out2 {
			if strings.Contains(r, " [40,60) L=4") {
				return true
			}
		}
		return false
	})
}

// TestJoinWindowExactlyOnceUnderFailures: orders and payments joined in
// 10ms tumbling windows of event time (pairs of the same key and window),
// written by the file sink under injected failures at the sources, the
// tagging maps, the union, the window operator and the sink: every pair
// is committed exactly once.
func TestJoinWindowExactlyOnceUnderFailures(t *testing.T) {
	t.Parallel()
	const size = int64(10 * time.Millisecond)
	joinExactlyOnce(t, 20261202, func(orders, payments sluice.KeyedStream[string, datagen.Record]) sluice.Stream[string] {
		return sluice.JoinWindow(sluice.CoWindow(orders, payments, window.Tumbling(time.Duration(size), 0)), "join", pairKey, joinRecordCodec, joinRecordCodec)
	}, func(o, p datagen.Record) bool {
		// t0 is a whole second, so windows of 10ms start at multiples of
		// 10ms after it.
		return (orderTS(o)-t0.UnixNano())/size == (paymentTS(p)-t0.UnixNano())/size
	}, "join", "join/left", "join/right", "join/union")
}
