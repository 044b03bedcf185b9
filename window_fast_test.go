package sluice_test

// The window operator's fast path (window_fast.go, docs/design.md §14):
// which jobs take it, that its results equal the generic path's on
// random input with late records, and that savepoints move between the
// two paths and across parallelism changes.

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/window"
)

// reduceBuild is WindowReduce over the records (sum of At), formatted.
func reduceBuild(ws sluice.WindowedStream[string, evRec]) winOut {
	w := sluice.WindowReduce(ws, "window", func(a, b evRec) evRec { return evRec{Key: a.Key, At: a.At + b.At} }, codec.Codec[evRec](evRecCodec{}))
	return outOf(w, sluice.Map(w, "fmt", func(r evRec) string { return fmt.Sprintf("%s sum=%d", r.Key, r.At) }))
}

// aggBuild is WindowAggregate (count and sum), formatted.
func aggBuild(ws sluice.WindowedStream[string, evRec]) winOut {
	w := sluice.WindowAggregate(ws, "window", sluice.AggregateFunction[evRec, nsum, nsum](countSum{}), codec.Codec[nsum](nsumCodec{}))
	return outOf(w, sluice.Map(w, "fmt", func(s nsum) string { return fmt.Sprintf("n=%d sum=%d", s.N, s.Sum) }))
}

// fastOf returns how many window subtasks of j's last build took the fast
// path.
func fastOf(j *winJob) int64 { return sluice.WindowFastSubtasks(j.out.late) }

// TestWindowFastPathTaken: non-merging event-time windows with the
// default trigger and an incremental function take the fast path; the
// rest (sessions, full-window functions, evictors, other triggers,
// processing time) do not.
func TestWindowFastPathTaken(t *testing.T) {
	t.Parallel()
	tumbling := window.Tumbling(10*time.Second, 0)
	sliding := window.Sliding(10*time.Second, 5*time.Second, 0)
	process := func(ws sluice.WindowedStream[string, evRec]) winOut {
		w := sluice.WindowProcess(ws, "window", func() sluice.ProcessWindowFunction[string, evRec, string] { return listWinFn{} }, codec.Codec[evRec](evRecCodec{}))
		return outOf(w, w)
	}
	for _, c := range []struct {
		name  string
		a     window.Assigner
		opt   func(sluice.WindowedStream[string, evRec]) sluice.WindowedStream[string, evRec]
		build func(sluice.WindowedStream[string, evRec]) winOut
		fast  bool
	}{
		{"tumbling aggregate", tumbling, nil, aggBuild, true},
		{"tumbling reduce", tumbling, nil, reduceBuild, true},
		{"tumbling aggregate+process", tumbling, nil, aggProcess, true},
		{"sliding reduce", sliding, nil, reduceBuild, true},
		{"sliding uneven", window.Sliding(10*time.Second, 3*time.Second, 0), nil, aggBuild, true},
		{"explicit event-time trigger", tumbling, func(ws sluice.WindowedStream[string, evRec]) sluice.WindowedStream[string, evRec] {
			return ws.Trigger(window.EventTimeTrigger())
		}, aggBuild, true},
		{"session", window.Session(5 * time.Second), nil, aggBuild, false},
		{"full-window function", tumbling, nil, process, false},
		{"evictor", tumbling, func(ws sluice.WindowedStream[string, evRec]) sluice.WindowedStream[string, evRec] {
			return ws.Evictor(window.CountEvictor(2))
		}, process, false},
		{"count trigger", tumbling, func(ws sluice.WindowedStream[string, evRec]) sluice.WindowedStream[string, evRec] {
			return ws.Trigger(window.CountTrigger(1))
		}, aggBuild, false},
		{"purging trigger", tumbling, func(ws sluice.WindowedStream[string, evRec]) sluice.WindowedStream[string, evRec] {
			return ws.Trigger(window.EventTimeTrigger().Purging())
		}, aggBuild, false},
		{"generic forced", tumbling, sluice.WindowGeneric[string, evRec], aggBuild, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cfg, clk := evConfig(t, 2)
			cfg.State.Backend = sluice.StateBackendHeap // the fast path is heap state
			j := &winJob{ooo: time.Second, build: c.build, window: func(ks sluice.KeyedStream[string, evRec]) sluice.WindowedStream[string, evRec] {
				ws := sluice.Window(ks, c.a).SideOutputLateData(lateTag)
				if c.opt != nil {
					ws = c.opt(ws)
				}
				return ws
			}}
			out := newCollector[string]()
			run(t, j.env(cfg, &scriptSource{clk: clk, interval: time.Second, scripts: [][]step{{rec("a", 1), rec("b", 2), rec("a", 12)}}}, out, nil))
			if got := fastOf(j); (got == 2) != c.fast || (got != 0 && got != 2) {
				t.Fatalf("%d of 2 subtasks on the fast path, want fast=%v", got, c.fast)
			}
			if len(out.Records()) == 0 {
				t.Fatal("no results")
			}
		})
	}
}

// TestWindowFastMatchesGeneric: on random keyed input with disorder and
// records within and beyond the allowed lateness, the fast path and the
// generic path emit the same results (with their timestamps, including
// the updated results of late firings) and the same late records, for
// tumbling, sliding (panes) and uneven sliding windows, Reduce and
// Aggregate.
func TestWindowFastMatchesGeneric(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("SLUICE_TEST_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("seed %d (rerun with SLUICE_TEST_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	// One source subtask and one window subtask: with two inputs the
	// interleaving of records and watermarks, hence lateness, would
	// differ between runs of either path.
	scripts := make([][]step, 1)
	for s := range scripts {
		at := 0
		for range 400 {
			at += rng.IntN(3)
			r := max(at-rng.IntN(16), 0) // up to 15s behind: some late
			scripts[s] = append(scripts[s], rec(fmt.Sprint("k", rng.IntN(7)), r))
			if rng.IntN(4) == 0 {
				scripts[s] = append(scripts[s], tick())
			}
		}
	}
	for _, a := range []struct {
		name string
		a    window.Assigner
	}{
		{"tumbling", window.Tumbling(5*time.Second, 0)},
		{"sliding", window.Sliding(6*time.Second, 2*time.Second, 0)},
		{"sliding-uneven", window.Sliding(5*time.Second, 2*time.Second, time.Second)},
	} {
		for bi, build := range []func(sluice.WindowedStream[string, evRec]) winOut{reduceBuild, aggProcess} {
			t.Run(fmt.Sprintf("%s/%d", a.name, bi), func(t *testing.T) {
				t.Parallel()
				var results, lates [2][]string
				for i, generic := range []bool{false, true} {
					cfg, clk := evConfig(t, 1)
					cfg.State.Backend = sluice.StateBackendHeap // the fast path is heap state
					out, late := newCollector[string](), newCollector[string]()
					j := &winJob{ooo: 2 * time.Second, build: build, window: func(ks sluice.KeyedStream[string, evRec]) sluice.WindowedStream[string, evRec] {
						ws := sluice.Window(ks, a.a).AllowedLateness(3 * time.Second).SideOutputLateData(lateTag)
						if generic {
							ws = sluice.WindowGeneric(ws)
						}
						return ws
					}}
					run(t, j.env(cfg, &scriptSource{clk: clk, interval: time.Second, scripts: scripts}, out, late))
					if f := fastOf(j); (f == 1) == generic {
						t.Fatalf("generic=%v: %d subtasks on the fast path", generic, f)
					}
					if k, et, pt := j.out.left(); k != 0 || et != 0 || pt != 0 {
						t.Errorf("generic=%v left in state: %d keys, %d event-time timers, %d processing-time timers", generic, k, et, pt)
					}
					results[i], lates[i] = out.Records(), late.Records()
				}
				windows := map[string]bool{}
				for _, r := range results[1] {
					windows[r[:strings.Index(r, " ")]+r[strings.LastIndex(r, " ts="):]] = true
				}
				if len(lates[1]) == 0 || len(results[1]) == len(windows) {
					t.Fatalf("%d late records, %d results in %d distinct: too few late and updated ones to compare", len(lates[1]), len(results[1]), len(windows))
				}
				t.Logf("%d results, %d late records", len(results[1]), len(lates[1]))
				checkLines(t, "fast vs generic results", results[0], results[1])
				checkLines(t, "fast vs generic late records", lates[0], lates[1])
			})
		}
	}
}

// TestWindowFastSavepointInterchange: a savepoint taken at parallelism 2
// by the fast path restores into the generic path at 3 and into the fast
// path at 3 and 1, and one taken by the generic path restores into the
// fast path at 1; each time both runs together emit what a run without
// the stop emits, every window once. So the two paths' checkpoints hold
// the same entries under the same names, split by key group. The Pebble
// backend has no fast path: a fast-path savepoint restores into a Pebble
// job (generic path) at 3, and a Pebble savepoint into a fast-path heap
// job at 1.
func TestWindowFastSavepointInterchange(t *testing.T) {
	t.Parallel()
	for _, a := range []struct {
		name string
		a    window.Assigner
	}{{"tumbling", window.Tumbling(20*time.Second, 0)}, {"sliding", window.Sliding(20*time.Second, 10*time.Second, 0)}} {
		job := func(generic bool) *winJob {
			return &winJob{ooo: time.Second, build: aggProcess, window: func(ks sluice.KeyedStream[string, evRec]) sluice.WindowedStream[string, evRec] {
				ws := sluice.Window(ks, a.a).AllowedLateness(2 * time.Second).SideOutputLateData(lateTag)
				if generic {
					ws = sluice.WindowGeneric(ws)
				}
				return ws
			}}
		}
		t.Run(a.name, func(t *testing.T) {
			t.Parallel()
			cfg, clk := evConfig(t, 2)
			ref, refLate := newCollector[string](), newCollector[string]()
			run(t, job(true).env(cfg, &scriptSource{scripts: rescaleScripts(), clk: clk, interval: time.Second, release: true}, ref, refLate))
			want := sorted(ref.Records())
			if len(want) < 8 || len(refLate.Records()) != 0 {
				t.Fatalf("reference run: %d results, late %v", len(want), refLate.Records())
			}
			for _, c := range []struct {
				from, to bool // generic?
				par2     int
				b1, b2   string // state backends
			}{{false, true, 3, "heap", "heap"}, {false, false, 3, "heap", "heap"}, {false, false, 1, "heap", "heap"}, {true, false, 1, "heap", "heap"},
				{false, true, 3, "heap", "pebble"}, {true, false, 1, "pebble", "heap"}} {
				t.Run(fmt.Sprintf("%s,generic=%v→%s,generic=%v,2→%d", c.b1, c.from, c.b2, c.to, c.par2), func(t *testing.T) {
					t.Parallel()
					cfg1, clk1 := evConfig(t, 2)
					cfg1.State.Backend = c.b1
					atHold := make(chan struct{})
					out1 := newCollector[string]()
					j1 := job(c.from)
					sp := stopAtHold(t, j1.env(cfg1, &scriptSource{scripts: rescaleScripts(), clk: clk1, interval: time.Second, atHold: atHold}, out1, nil), cfg1, atHold)
					cfg2, clk2 := evConfig(t, c.par2)
					cfg2.FromCheckpoint = sp
					cfg2.State.Backend = c.b2
					out2 := newCollector[string]()
					j2 := job(c.to)
					run(t, j2.env(cfg2, &scriptSource{scripts: rescaleScripts(), clk: clk2, interval: time.Second, release: true}, out2, nil))
					if f1, f2 := fastOf(j1), fastOf(j2); (f1 != 0) == c.from || (f2 != 0) == c.to {
						t.Fatalf("fast-path subtasks: run 1 %d, run 2 %d", f1, f2)
					}
					checkLines(t, "both runs", append(out1.Records(), out2.Records()...), want)
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
