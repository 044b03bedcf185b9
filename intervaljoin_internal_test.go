package sluice

// Interval join, driven operator-level: the test builds the join through
// the public builder, takes subtask 0's operator from the plan node, and
// feeds it records with timestamps and watermarks one call at a time, so
// lateness and cleanup are exactly what the script says (docs/design.md
// §13). The end-to-end tests (intervaljoin_test.go) run it in jobs.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/clock"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/internal/runtime"
)

// jrec is a record of either side: a key and an id for the output.
type jrec struct {
	Key string
	ID  string
}

var jrecCodec = mustJoinStruct(codec.Struct("jrec",
	codec.FieldOf("key", func(r *jrec) *string { return &r.Key }, codec.Codec[string](codec.String)),
	codec.FieldOf("id", func(r *jrec) *string { return &r.ID }, codec.Codec[string](codec.String))))

func mustJoinStruct[T any](c codec.Codec[T], err error) codec.Codec[T] {
	if err != nil {
		panic(err)
	}
	return c
}

// joinNilSource only gives the join's inputs a node; it never runs.
type joinNilSource struct{}

func (joinNilSource) Splits(context.Context) ([]Split, error) { return nil, nil }
func (joinNilSource) NewReader(context.Context, *OperatorContext) (SourceReader[jrec], error) {
	return nil, errors.New("not run")
}

// jstep is one step of a script: a left or right record at a time (whole
// seconds), a watermark, or a check of the operator's keys and timers.
type jstep struct {
	side   byte // 'L', 'R', 'W' or 'C'
	key    string
	id     string
	at     int64
	keys   int
	timers int
}

func jl(id string, at int64) jstep   { return jstep{side: 'L', key: "k", id: id, at: at} }
func jr(id string, at int64) jstep   { return jstep{side: 'R', key: "k", id: id, at: at} }
func jkey(s jstep, key string) jstep { s.key = key; return s }
func jw(at int64) jstep              { return jstep{side: 'W', at: at} }
func jcheck(keys, timers int) jstep  { return jstep{side: 'C', keys: keys, timers: timers} }
func jsec(n int64) int64             { return n * int64(time.Second) }
func jfinal() jstep                  { return jstep{side: 'W', at: math.MaxInt64} }
func jfmtSec(ts int64) string        { return fmt.Sprint(time.Duration(ts)) }
func lateOut(side string, r jrec, ts int64) string {
	return "late-" + side + " " + r.ID + "@" + jfmtSec(ts)
}

// joinCapture records what an operator emits, with the task's timestamp.
type joinCapture[T any] struct {
	tm  *runtime.Time
	out *[]string
	f   func(v T, ts int64) string
}

func (c joinCapture[T]) Emit(v T) error {
	*c.out = append(*c.out, c.f(v, c.tm.TS))
	return nil
}

type joinHarness struct {
	op    *coOp[string, jrec, jrec, string]
	left  Emitter[jrec]
	right Emitter[jrec]
	tm    *runtime.Time
	out   []string
	stats *runtime.TaskStats
}

// newJoinHarness opens subtask 0 of a parallelism-1 interval join built by
// build, with its late side outputs captured when lateTags.
func newJoinHarness(t *testing.T, lateTags bool, build func(IntervalJoinBuilder[string, jrec, jrec]) IntervalJoinBuilder[string, jrec, jrec]) *joinHarness {
	t.Helper()
	return newJoinHarnessFn(t, lateTags, build, func(l, r jrec, jc *JoinContext[string, string]) error {
		if jc.Timestamp() != max(jc.LeftTimestamp(), jc.RightTimestamp()) || jc.CurrentKey() != l.Key || l.Key != r.Key {
			return fmt.Errorf("pair %v %v: timestamps %d %d %d, key %q", l, r, jc.LeftTimestamp(), jc.RightTimestamp(), jc.Timestamp(), jc.CurrentKey())
		}
		jc.Collect(l.ID + "+" + r.ID)
		return nil
	}, func(v string, ts int64) string { return v + "@" + jfmtSec(ts) })
}

// newJoinHarnessFn is newJoinHarness with the join function and the
// formatting of its output given.
func newJoinHarnessFn(t testing.TB, lateTags bool, build func(IntervalJoinBuilder[string, jrec, jrec]) IntervalJoinBuilder[string, jrec, jrec],
	fn ProcessJoinFunc[string, jrec, jrec, string], format func(v string, ts int64) string) *joinHarness {
	t.Helper()
	e := New(Config{})
	a := KeyBy(FromSource[jrec](e, "left", joinNilSource{}), func(r jrec) string { return r.Key })
	b := KeyBy(FromSource[jrec](e, "right", joinNilSource{}), func(r jrec) string { return r.Key })
	ij := build(IntervalJoin(a, b, 0, 0))
	if lateTags {
		ij = ij.SideOutputLeftLateData(NewOutputTag[jrec]("late-left")).SideOutputRightLateData(NewOutputTag[jrec]("late-right"))
	}
	s := IntervalJoinProcess(ij, "join", func() ProcessJoinFunction[string, jrec, jrec, string] {
		return fn
	}, jrecCodec, jrecCodec)
	if e.err != nil {
		t.Fatal(e.err)
	}
	h := &joinHarness{tm: runtime.NewTime(), stats: &runtime.TaskStats{}}
	inst, err := s.n.make(0, Emitter[string](joinCapture[string]{tm: h.tm, out: &h.out, f: format}))
	if err != nil {
		t.Fatal(err)
	}
	h.op = inst.op.(*coOp[string, jrec, jrec, string])
	h.left, h.right = inst.ins[0].(Emitter[jrec]), inst.ins[1].(Emitter[jrec])
	if lateTags {
		h.op.setSideOutputs([]sideEmitter{
			{id: "late-left", em: &sideOut[jrec]{out: joinCapture[jrec]{tm: h.tm, out: &h.out, f: func(r jrec, ts int64) string { return lateOut("left", r, ts) }}}},
			{id: "late-right", em: &sideOut[jrec]{out: joinCapture[jrec]{tm: h.tm, out: &h.out, f: func(r jrec, ts int64) string { return lateOut("right", r, ts) }}}},
		})
	}
	rc := &runtime.OperatorContext{
		UID: "join", Name: "join", Parallelism: 1, MaxParallelism: 128, KeyGroups: checkpoint.KeyGroupRange{Start: 0, End: 127},
		Clock: clock.NewFake(time.Unix(0, 0)), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Time: h.tm, Stats: h.stats,
	}
	if err := h.op.Open(context.Background(), rc); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *joinHarness) run(t *testing.T, script []jstep) {
	t.Helper()
	for i, st := range script {
		var err error
		switch st.side {
		case 'L', 'R':
			h.tm.TS = jsec(st.at)
			in := h.left
			if st.side == 'R' {
				in = h.right
			}
			err = in.Emit(jrec{Key: st.key, ID: st.id})
			h.tm.TS = NoTimestamp
		case 'W':
			wm := st.at
			if wm != math.MaxInt64 {
				wm = jsec(wm)
			}
			err = h.op.OnWatermark(context.Background(), wm)
		case 'C':
			if k, n := h.op.backend.NumKeys(), h.op.backend.NumEventTimers(); k != st.keys || n != st.timers {
				t.Fatalf("step %d: %d keys with buffered records and %d timers, want %d and %d", i, k, n, st.keys, st.timers)
			}
		}
		if err != nil {
			t.Fatalf("step %d (%c %s@%d): %v", i, st.side, st.id, st.at, err)
		}
	}
}

// TestIntervalJoinTable checks hand-computed joins: out-of-order records
// on both sides, late records on both sides, inclusive and exclusive
// bounds, negative bounds, records that cannot join any more not being
// buffered, keys kept apart, and the buffers and timers empty after the
// final watermark.
func TestIntervalJoinTable(t *testing.T) {
	t.Parallel()
	between := func(lo, hi int64) func(IntervalJoinBuilder[string, jrec, jrec]) IntervalJoinBuilder[string, jrec, jrec] {
		return func(ij IntervalJoinBuilder[string, jrec, jrec]) IntervalJoinBuilder[string, jrec, jrec] {
			ij.lower, ij.upper = time.Duration(jsec(lo)), time.Duration(jsec(hi))
			return ij
		}
	}
	excl := func(lo, hi int64, lowerExcl, upperExcl bool) func(IntervalJoinBuilder[string, jrec, jrec]) IntervalJoinBuilder[string, jrec, jrec] {
		return func(ij IntervalJoinBuilder[string, jrec, jrec]) IntervalJoinBuilder[string, jrec, jrec] {
			ij = between(lo, hi)(ij)
			if lowerExcl {
				ij = ij.LowerBoundExclusive()
			}
			if upperExcl {
				ij = ij.UpperBoundExclusive()
			}
			return ij
		}
	}
	boundsScript := []jstep{jl("a1", 5), jr("b0", 4), jr("b1", 5), jr("b2", 6), jr("b3", 7), jr("b4", 8), jfinal(), jcheck(0, 0)}
	for _, tc := range []struct {
		name     string
		build    func(IntervalJoinBuilder[string, jrec, jrec]) IntervalJoinBuilder[string, jrec, jrec]
		lateTags bool
		script   []jstep
		want     []string
		late     int64
	}{{
		// b ∈ [a-1s, a+2s]. Cleanup: a left record at ta leaves at ta+2,
		// a right one at tb+1.
		name: "out of order [-1s,+2s]", build: between(-1, 2),
		script: []jstep{
			jl("a1", 5),
			jr("b1", 4),                // a1: [4,7] ∋ 4
			jr("b2", 7),                // a1 ∋ 7 (inclusive)
			jl("a2", 3),                // [2,5] ∋ b1@4, not b2@7
			jr("b3", 8),                // a1 [4,7], a2 [2,5]: none
			jkey(jr("z1", 6), "other"), // another key: never joins k
			jcheck(2, 5),               // one per key and time: k at 7 (a1), 5 (b1, a2), 8 (b2), 9 (b3); other at 7
			jw(5),                      // fires 5: a2@3 and b1@4 leave
			jcheck(2, 4),
			jl("a3", 6),  // [5,8] ∋ b2@7, b3@8 (b1 gone, but it is out of range anyway)
			jl("a6", 6),  // same bucket as a3: kept in arrival order
			jr("b4", 5),  // late: 5 ≤ 5
			jl("a4", 5),  // late
			jr("b5", 6),  // left in [4,7]: a1@5, a3@6
			jl("a5", 4),  // late
			jw(7),        // fires 7: a1@5 and b5@6 leave, and other's z1@6
			jcheck(1, 2), // k at 8 (a3, b2) and 9 (b3)
			jr("b6", 8),  // left in [6,9]: a3@6
			jfinal(),
			jcheck(0, 0),
		},
		want: []string{"a1+b1@5s", "a1+b2@7s", "a2+b1@4s", "a3+b2@7s", "a3+b3@8s", "a6+b2@7s", "a6+b3@8s",
			"a1+b5@6s", "a3+b5@6s", "a6+b5@6s", "a3+b6@8s", "a6+b6@8s"},
		late: 3,
	}, {
		name: "late to side outputs", build: between(0, 0), lateTags: true,
		script: []jstep{jl("a1", 3), jr("b1", 3), jw(3), jr("b2", 3), jl("a2", 2), jr("b3", 4), jl("a3", 4), jfinal(), jcheck(0, 0)},
		want:   []string{"a1+b1@3s", "late-right b2@3s", "late-left a2@2s", "a3+b3@4s"},
		late:   2,
	}, {
		name: "inclusive [0,2]", build: between(0, 2), script: boundsScript,
		want: []string{"a1+b1@5s", "a1+b2@6s", "a1+b3@7s"},
	}, {
		name: "lower exclusive (0,2]", build: excl(0, 2, true, false), script: boundsScript,
		want: []string{"a1+b2@6s", "a1+b3@7s"},
	}, {
		name: "upper exclusive [0,2)", build: excl(0, 2, false, true), script: boundsScript,
		want: []string{"a1+b1@5s", "a1+b2@6s"},
	}, {
		name: "both exclusive (0,2)", build: excl(0, 2, true, true), script: boundsScript,
		want: []string{"a1+b2@6s"},
	}, {
		// b ∈ [a-3s, a-1s]: the right record comes first in event time.
		// A left record leaves at ta-1, a right one at tb+3.
		name: "negative bounds [-3s,-1s]", build: between(-3, -1),
		script: []jstep{
			jr("b5", 8),
			jl("a1", 10), // [7,9] ∋ 8
			jr("b1", 6),  // a1 needs [7,9]
			jr("b2", 7),
			jr("b3", 9),
			jr("b4", 10),
			jcheck(1, 5), // at 11 (b5), 9 (a1, b1), 10 (b2), 12 (b3), 13 (b4)
			jw(8),
			jr("b6", 9),  // a1 still buffered (leaves at 9): ∋ 9
			jw(9),        // a1 leaves, b1@6 leaves
			jr("b7", 10), // nothing left to join with
			jl("a2", 11), // right in [8,10]: b5@8, b3@9, b6@9, b4@10, b7@10 (b2@7 is out of range, b1 gone)
			jl("a3", 9),  // late (9 ≤ 9)
			jfinal(),
			jcheck(0, 0),
		},
		want: []string{"a1+b5@10s", "a1+b2@10s", "a1+b3@10s", "a1+b6@10s", "a2+b5@11s", "a2+b3@11s", "a2+b6@11s", "a2+b4@11s", "a2+b7@11s"},
		late: 1,
	}, {
		// A record whose cleanup time has passed is not buffered: with
		// [-3s,-1s] and the watermark at 9, a1@10 (not late) would leave
		// at 9, as no right record above 9 can join it; a2@11 leaves at
		// 10 and is kept.
		name: "not buffered once unjoinable", build: between(-3, -1),
		script: []jstep{jw(9), jl("a1", 10), jcheck(0, 0), jl("a2", 11), jcheck(1, 1), jfinal(), jcheck(0, 0)},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newJoinHarness(t, tc.lateTags, tc.build)
			h.run(t, tc.script)
			if !slices.Equal(h.out, tc.want) {
				t.Fatalf("got\n%s\nwant\n%s", strings.Join(h.out, "\n"), strings.Join(tc.want, "\n"))
			}
			if n := h.stats.LateRecords.Load(); n != tc.late {
				t.Fatalf("%d late records counted, want %d", n, tc.late)
			}
		})
	}
}

// TestIntervalJoinErrors: bounds that admit nothing are refused when the
// job is built, and a record without a timestamp fails with an error that
// says interval joins need event time.
func TestIntervalJoinErrors(t *testing.T) {
	t.Parallel()
	e := New(Config{})
	a := KeyBy(FromSource[jrec](e, "left", joinNilSource{}), func(r jrec) string { return r.Key })
	b := KeyBy(FromSource[jrec](e, "right", joinNilSource{}), func(r jrec) string { return r.Key })
	IntervalJoinProcess(IntervalJoin(a, b, time.Second, time.Second).UpperBoundExclusive(), "join",
		func() ProcessJoinFunction[string, jrec, jrec, string] { return nil }, jrecCodec, jrecCodec)
	if e.err == nil || !strings.Contains(e.err.Error(), `interval join "join": lower bound 1s (exclusive false) is above upper bound 1s (exclusive true)`) {
		t.Fatalf("build error %v", e.err)
	}

	h := newJoinHarness(t, false, func(ij IntervalJoinBuilder[string, jrec, jrec]) IntervalJoinBuilder[string, jrec, jrec] { return ij })
	err := h.right.Emit(jrec{Key: "k", ID: "b"})
	if err == nil || !strings.Contains(err.Error(), "join: interval join: a right record has no timestamp") {
		t.Fatalf("record without timestamp: %v", err)
	}
}

// TestIntervalJoinAllocs: once its buckets exist, a record that joins
// and is buffered allocates nothing but the amortised growth of its
// bucket's slice (the map state's All would cost 4 allocations a record).
func TestIntervalJoinAllocs(t *testing.T) {
	if defaultStateBackend != StateBackendHeap {
		t.Skip("the allocation budget is the heap backend's (its map state's AppendKeys)")
	}
	h := newJoinHarnessFn(t, false, func(ij IntervalJoinBuilder[string, jrec, jrec]) IntervalJoinBuilder[string, jrec, jrec] {
		ij.lower, ij.upper = -time.Duration(jsec(1)), time.Duration(jsec(1))
		return ij
	}, func(l, r jrec, jc *JoinContext[string, string]) error {
		jc.Collect(l.ID)
		return nil
	}, func(v string, _ int64) string { return v })
	h.run(t, []jstep{jr("b", 5), jl("a", 5)})
	r := jrec{Key: "k", ID: "a"}
	allocs := testing.AllocsPerRun(1000, func() {
		h.out = h.out[:0]
		h.tm.TS = jsec(5)
		if err := h.left.Emit(r); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("%.2f allocations per record", allocs)
	if allocs > 0.1 {
		t.Fatalf("%.2f allocations per record", allocs)
	}
}

// BenchmarkIntervalJoin: one subtask, 1000 keys, records alternating
// between the sides 1ms apart in event time, bounds [-5ms, +5ms] (about
// one match per record), a watermark every 100 records that cleans up
// what can no longer join. One op is one record.
func BenchmarkIntervalJoin(b *testing.B) {
	h := newJoinHarnessFn(b, false, func(ij IntervalJoinBuilder[string, jrec, jrec]) IntervalJoinBuilder[string, jrec, jrec] {
		ij.lower, ij.upper = -5*time.Millisecond, 5*time.Millisecond
		return ij
	}, func(l, r jrec, jc *JoinContext[string, string]) error {
		jc.Collect(l.ID)
		return nil
	}, func(v string, _ int64) string { return v })
	recs := make([]jrec, 1000)
	for i := range recs {
		recs[i] = jrec{Key: fmt.Sprintf("k%04d", i), ID: "x"}
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		h.out = h.out[:0]
		h.tm.TS = int64(i) * int64(time.Millisecond) / 10
		in := h.left
		if i%2 == 1 {
			in = h.right
		}
		if err := in.Emit(recs[(i*7919)%len(recs)]); err != nil {
			b.Fatal(err)
		}
		if i%100 == 99 {
			if err := h.op.OnWatermark(ctx, h.tm.TS-int64(time.Millisecond)); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// TestIntervalJoinSideOutput: JoinOutput emits to a side output with the
// pair's timestamp, the later of the two.
func TestIntervalJoinSideOutput(t *testing.T) {
	t.Parallel()
	tag := NewOutputTag[string]("pairs")
	h := newJoinHarnessFn(t, false, func(ij IntervalJoinBuilder[string, jrec, jrec]) IntervalJoinBuilder[string, jrec, jrec] {
		ij.lower, ij.upper = -time.Duration(jsec(5)), time.Duration(jsec(5))
		return ij
	}, func(l, r jrec, jc *JoinContext[string, string]) error {
		JoinOutput(jc, tag, l.ID+"+"+r.ID)
		return nil
	}, func(v string, ts int64) string { return "main " + v })
	h.op.setSideOutputs([]sideEmitter{{id: "pairs", em: &sideOut[string]{out: joinCapture[string]{tm: h.tm, out: &h.out, f: func(v string, ts int64) string {
		return "side " + v + "@" + jfmtSec(ts)
	}}}}})
	h.run(t, []jstep{jl("a1", 5), jr("b1", 3), jr("b2", 8), jfinal()})
	if want := []string{"side a1+b1@5s", "side a1+b2@8s"}; !slices.Equal(h.out, want) {
		t.Fatalf("got %v, want %v", h.out, want)
	}
}
