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

func (countSum) CreateAccumulator() nsum           { return nsum{} }
func (countSum) Add(r evRec, a nsum) nsum          { return nsum{N: a.N + 1, Sum: a.Sum + int64(r.At)} }
func (countSum) Merge(a, b nsum) nsum              { return nsum{N: a.N + b.N, Sum: a.Sum + b.Sum} }
func (countSum) Result(a nsum) nsum                { return a }
func fmtWin(w window.Window) string                { return fmt.Sprintf("[%s,%s)", secs(w.Start), secs(w.End)) }
func secs(v int64) string                          { return fmt.Sprint((v - t0.UnixNano()) / int64(time.Second)) }
func keyOfEv(e evRec) string                       { return e.Key }
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
	ooo     time.Duration
	build   func(ws sluice.WindowedStream[string, evRec]) sluice.Stream[string]
	window  func(ks sluice.KeyedStream[string, evRec]) sluice.WindowedStream[string, evRec]
	results sluice.Stream[string]
}

func (j *winJob) env(cfg sluice.Config, src *scriptSource, out, late *collector[string]) *sluice.Environment {
	env := sluice.New(cfg)
	s := sluice.FromSourceWithWatermarks(env, "src", src, watermark.ForBoundedOutOfOrderness(j.ooo), nil)
	res := j.build(j.window(sluice.KeyBy(s, keyOfEv)))
	j.results = res
	st := sluice.Process(sluice.KeyBy(res, func(string) string { return "x" }), "stamp",
		func() sluice.KeyedProcessFunction[string, string, string] { return stampFn{} })
	sluice.Sink(st, "sink", out.Sink())
	if late != nil {
		l := sluice.Map(sluice.SideOutput(res, lateTag), "late-fmt", func(r evRec) string { return r.String() })
		sluice.Sink(l, "late-sink", late.Sink())
	}
	return env
}

// aggProcess is the aggregate+process combination used by most tables.
func aggProcess(ws sluice.WindowedStream[string, evRec]) sluice.Stream[string] {
	return sluice.WindowAggregateProcess(ws, "window", sluice.AggregateFunction[evRec, nsum, nsum](countSum{}), codec.Codec[nsum](nsumCodec{}), newFmtWin)
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
	if k, et, pt := sluice.WindowLeftovers(j.results); k != 0 || et != 0 || pt != 0 {
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
