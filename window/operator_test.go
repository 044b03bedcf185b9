package window

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"
)

// miniOperator is a test-only window operator (per-key sums) built from
// the cores the way the engine's will be (docs/design.md §14): assign,
// merge through a MergingSet per key, drop late windows to a side output,
// ask the trigger, keep timers per key and window, clean up at
// CleanupTime. It checks that the cores compose into Flink's results.
type miniOperator struct {
	a        Assigner
	tr       Trigger
	lateness time.Duration
	wm       int64
	sets     map[string]*MergingSet
	sums     map[kw]int64 // key + state window
	trig     map[kw]State // key + actual window
	timers   map[kwt]bool // key + actual window + time
	out      []string
	late     []string
	buf      []Window
}

type kw struct {
	key string
	w   Window
}

type kwt struct {
	kw
	t int64
}

func newMini(a Assigner, tr Trigger, lateness time.Duration) *miniOperator {
	return &miniOperator{a: a, tr: tr, lateness: lateness, wm: math.MinInt64,
		sets: map[string]*MergingSet{}, sums: map[kw]int64{}, trig: map[kw]State{}, timers: map[kwt]bool{}}
}

func (o *miniOperator) register(key string, w Window, ts Timers) {
	for i := range ts.Len() {
		o.timers[kwt{kw{key, w}, ts.At(i).Time}] = true
	}
}

func (o *miniOperator) unregister(key string, w Window, ts Timers) {
	for i := range ts.Len() {
		delete(o.timers, kwt{kw{key, w}, ts.At(i).Time})
	}
}

func (o *miniOperator) emit(r Result, key string, w, state Window) {
	if r.IsFire() {
		o.out = append(o.out, fmt.Sprintf("%s %v %d", key, w, o.sums[kw{key, state}]))
	}
	if r.IsPurge() {
		delete(o.sums, kw{key, state})
	}
}

func (o *miniOperator) record(key string, ts, v int64) {
	o.buf = o.a.Assign(ts, o.buf[:0])
	now := Now{Watermark: o.wm}
	allLate := true
	for _, w := range o.buf {
		actual, state := w, w
		if o.a.IsMerging() {
			set := o.sets[key]
			if set == nil {
				set = &MergingSet{}
				o.sets[key] = set
			}
			var m Merge
			var merged bool
			actual, m, merged = set.Add(w)
			if merged {
				var st State
				for _, mw := range m.Merged {
					o.tr.MergeState(&st, o.trig[kw{key, mw}])
				}
				o.register(key, actual, o.tr.OnMerge(actual, now, &st))
				o.trig[kw{key, actual}] = st
				for _, mw := range m.Merged {
					old := o.trig[kw{key, mw}]
					o.unregister(key, mw, o.tr.Clear(mw, &old))
					delete(o.timers, kwt{kw{key, mw}, CleanupTime(mw, EventTime, o.lateness)})
					if mw != actual {
						delete(o.trig, kw{key, mw})
					}
				}
				for _, sw := range m.MergedStateWindows {
					o.sums[kw{key, m.StateWindow}] += o.sums[kw{key, sw}]
					delete(o.sums, kw{key, sw})
				}
			}
			state, _ = set.StateWindow(actual)
			if IsLate(actual, o.lateness, o.wm) {
				set.Remove(actual)
				continue
			}
		} else if IsLate(w, o.lateness, o.wm) {
			continue
		}
		allLate = false
		o.sums[kw{key, state}] += v
		st := o.trig[kw{key, actual}]
		r, timers := o.tr.OnElement(ts, actual, now, &st)
		o.trig[kw{key, actual}] = st
		o.register(key, actual, timers)
		if c := CleanupTime(actual, EventTime, o.lateness); c != math.MaxInt64 {
			o.timers[kwt{kw{key, actual}, c}] = true
		}
		o.emit(r, key, actual, state)
	}
	if allLate {
		o.late = append(o.late, fmt.Sprintf("%s@%d", key, ts))
	}
}

func (o *miniOperator) watermark(wm int64) {
	o.wm = wm
	for {
		var due []kwt
		for t := range o.timers {
			if t.t <= wm {
				due = append(due, t)
			}
		}
		if len(due) == 0 {
			return
		}
		slices.SortFunc(due, func(a, b kwt) int {
			return cmp.Or(cmp.Compare(a.t, b.t), cmp.Compare(a.key, b.key), cmp.Compare(a.w.Start, b.w.Start))
		})
		t := due[0]
		delete(o.timers, t)
		state := t.w
		if set := o.sets[t.key]; set != nil {
			state, _ = set.StateWindow(t.w)
		}
		st := o.trig[t.kw]
		r, timers := o.tr.OnEventTime(t.t, t.w, &st)
		o.trig[t.kw] = st
		o.register(t.key, t.w, timers)
		o.emit(r, t.key, t.w, state)
		if t.t == CleanupTime(t.w, EventTime, o.lateness) {
			o.unregister(t.key, t.w, o.tr.Clear(t.w, &st))
			delete(o.trig, t.kw)
			delete(o.sums, kw{t.key, state})
			if set := o.sets[t.key]; set != nil {
				set.Remove(t.w)
			}
		}
	}
}

// snapshotRestore replaces the merging sets by their decoded encodings, as
// a checkpoint and restore would (the other maps are plain keyed state).
func (o *miniOperator) snapshotRestore(t *testing.T) {
	for key, set := range o.sets {
		b, err := set.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		restored := &MergingSet{}
		if err := restored.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		o.sets[key] = restored
	}
}

// step is one input of an operator test: a record, a watermark, or a
// checkpoint and restore.
type step struct {
	key     string
	ts, v   int64
	wm      int64
	restore bool
}

func rec(key string, ts, v int64) step { return step{key: key, ts: ts, v: v} }
func wmark(wm int64) step              { return step{wm: wm} }

// TestOperatorResults runs the cores as a window operator over
// out-of-order input with late records within and beyond the allowed
// lateness, sliding overlap, session merges across a checkpoint, and early
// firing, against hand-computed results.
func TestOperatorResults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		a        Assigner
		tr       Trigger
		lateness time.Duration
		steps    []step
		out      []string
		late     []string
	}{
		{
			name: "tumbling out of order, lateness 5", a: Tumbling(10, 0), tr: EventTimeTrigger(), lateness: 5,
			steps: []step{
				rec("a", 1, 1), rec("a", 12, 10), rec("a", 5, 100), // 5 is out of order, on time
				wmark(9),             // [0,10) fires: 1+100
				rec("a", 3, 1000),    // late within lateness: fires again at once
				wmark(14),            // [0,10) cleaned up
				rec("a", 8, 5),       // beyond lateness: side output
				rec("b", 15, 7),      //
				wmark(math.MaxInt64), // the final watermark fires the rest
			},
			out:  []string{"a [0,10) 101", "a [0,10) 1101", "a [10,20) 10", "b [10,20) 7"},
			late: []string{"a@8"},
		},
		{
			name: "sliding overlap", a: Sliding(10, 5, 0), tr: EventTimeTrigger(),
			steps: []step{
				rec("a", 7, 1),  // [5,15) [0,10)
				rec("a", 12, 2), // [10,20) [5,15)
				wmark(9), wmark(14),
				rec("a", 13, 4), // [5,15) is late, [10,20) is not: no side output
				wmark(20),
				rec("a", 3, 8), // both of its windows are late
			},
			out:  []string{"a [0,10) 1", "a [5,15) 3", "a [10,20) 6"},
			late: []string{"a@3"},
		},
		{
			name: "sessions merging across a checkpoint", a: Session(10), tr: EventTimeTrigger(),
			steps: []step{
				rec("a", 0, 1), rec("a", 30, 2), rec("b", 5, 5),
				{restore: true},
				rec("a", 15, 4), // [15,25), alone
				wmark(12),       // a [0,10) fires
				rec("a", 22, 8), // bridges [15,25) and the pre-checkpoint [30,40)
				rec("b", 14, 1), // extends b's pre-checkpoint session to [5,24)
				{restore: true},
				wmark(30),       // b [5,24) fires
				rec("a", 1, 64), // its session [1,11) is late
				rec("a", 20, 1), // inside [15,40)
				wmark(math.MaxInt64),
			},
			out:  []string{"a [0,10) 1", "b [5,24) 6", "a [15,40) 15"},
			late: []string{"a@1"},
		},
		{
			name: "continuous early firing", a: Tumbling(100, 0), tr: ContinuousEventTimeTrigger(30),
			steps: []step{
				rec("a", 10, 1), wmark(29), // next early firing at 30
				rec("a", 40, 2), wmark(30), // fires 3 at 30, next at 60
				wmark(89),                  // fires at 60 (3), next 90
				rec("a", 95, 4), wmark(99), // fires at 90 (7), then at the end of the window
			},
			out: []string{"a [0,100) 3", "a [0,100) 3", "a [0,100) 7", "a [0,100) 7"},
		},
		{
			name: "count window on global", a: Global(), tr: CountTrigger(2).Purging(),
			steps: []step{rec("a", 1, 1), rec("b", 1, 10), rec("a", 2, 2), rec("a", 3, 4), rec("b", 2, 20), rec("a", 4, 8), wmark(math.MaxInt64)},
			out:   []string{"a [-9223372036854775808,9223372036854775807) 3", "b [-9223372036854775808,9223372036854775807) 30", "a [-9223372036854775808,9223372036854775807) 12"},
		},
	}
	for _, tt := range tests {
		o := newMini(tt.a, tt.tr, tt.lateness)
		for _, s := range tt.steps {
			switch {
			case s.restore:
				o.snapshotRestore(t)
			case s.key == "":
				o.watermark(s.wm)
			default:
				o.record(s.key, s.ts, s.v)
			}
		}
		if !slices.Equal(o.out, tt.out) {
			t.Errorf("%s: fired\n%q\nwant\n%q", tt.name, o.out, tt.out)
		}
		if !slices.Equal(o.late, tt.late) {
			t.Errorf("%s: late %q, want %q", tt.name, o.late, tt.late)
		}
		if len(o.timers) != 0 && tt.steps[len(tt.steps)-1].wm == math.MaxInt64 {
			t.Errorf("%s: timers left after the final watermark: %v", tt.name, o.timers)
		}
	}
}
