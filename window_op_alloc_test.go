package sluice

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/clock"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/internal/runtime"
	"github.com/sluicehq/sluice/window"
)

type allocCount struct{}

func (allocCount) CreateAccumulator() int64    { return 0 }
func (allocCount) Add(_ string, n int64) int64 { return n + 1 }
func (allocCount) Merge(a, b int64) int64      { return a + b }
func (allocCount) Result(n int64) int64        { return n }

// countOp says how testCountOp builds its operator.
type countOp struct {
	fast     bool                   // take the window-major fast path (and fail if it does not)
	lateness time.Duration          // allowed lateness
	restored *runtime.RestoredState // state to restore, or nil
	out      Emitter[int64]         // where results go; nil discards them
}

// testCountOp opens a window operator outside a job: per-key counts of
// string records (the record is its key).
func testCountOp(t *testing.T, a window.Assigner, c countOp) (*windowOp[string, string, int64, int64], *runtime.Time) {
	t.Helper()
	f := aggFuncs[string, string, int64, int64](AggregateFunction[string, int64, int64](allocCount{}), codec.Int64)
	f.fireAcc = func(_ string, acc int64, wc *WindowContext[int64]) error { wc.Collect(acc); return nil }
	tr := a.DefaultTrigger()
	op := &windowOp[string, string, int64, int64]{f: f, key: func(s string) string { return s }, kc: codec.String, a: a, tr: tr,
		lateness: c.lateness, probe: &windowProbe{}, domain: a.Domain(), fixedTm: tr.FixedTimers(), fast: c.fast && fastPath(a, tr, false)}
	if slide, ok := a.Panes(); ok {
		op.panes, op.slide = true, slide
	}
	if c.fast && !op.fast {
		t.Fatalf("%v: not on the fast path", a)
	}
	op.wc.out = c.out
	if c.out == nil {
		op.wc.out = discard[int64]{}
	}
	tm := runtime.NewTime()
	rc := &runtime.OperatorContext{UID: "w", MaxParallelism: 128, KeyGroups: checkpoint.KeyGroupRange{Start: 0, End: 127},
		Clock: clock.NewFake(time.Unix(0, 0)), Logger: slog.New(slog.DiscardHandler), Time: tm, Restored: c.restored}
	if err := op.Open(context.Background(), rc); err != nil {
		t.Fatal(err)
	}
	return op, tm
}

// newAllocOp is testCountOp on the generic path.
func newAllocOp(t *testing.T, a window.Assigner) (*windowOp[string, string, int64, int64], *runtime.Time) {
	t.Helper()
	return testCountOp(t, a, countOp{})
}

// TestWindowOperatorNoAllocs: adding records to existing windows
// allocates nothing; opening, firing and cleaning up windows allocates
// nothing per record beyond the maps' amortized growth (tumbling windows,
// and sliding ones kept as panes).
func TestWindowOperatorNoAllocs(t *testing.T) {
	// Go maps allocate a new table now and then under churn (amortized, a
	// few per thousand inserts); nothing else may.
	checkWindowAllocs(t, countOp{}, 1.0/100)
}

// checkWindowAllocs drives 1000 keys through tumbling and sliding windows
// of the operator c makes: records into existing windows must allocate
// nothing, and a steady second of new windows, firing and cleanup at most
// perKey allocations per key.
func checkWindowAllocs(t *testing.T, c countOp, perKey float64) {
	t.Helper()
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprint("k", i)
	}
	for _, a := range []window.Assigner{window.Tumbling(time.Second, 0), window.Sliding(4*time.Second, time.Second, 0)} {
		op, tm := testCountOp(t, a, c)
		emit := func(ts int64) {
			tm.TS = ts
			for _, k := range keys {
				if err := op.Emit(k); err != nil {
					t.Fatal(err)
				}
			}
		}
		// Warm up: every key has its windows (and the maps their size).
		for s := range int64(20) {
			emit(s * int64(time.Second))
			if err := op.OnWatermark(context.Background(), s*int64(time.Second)-1); err != nil {
				t.Fatal(err)
			}
		}
		ts := 20 * int64(time.Second)
		emit(ts)
		if n := testing.AllocsPerRun(20, func() { emit(ts + 1) }); n != 0 {
			t.Errorf("%v: %v allocations per %d records into existing windows", a, n, len(keys))
		}
		// One second of records, then the watermark fires and cleans
		// up the windows that ended: a steady state.
		s := int64(21)
		n := testing.AllocsPerRun(20, func() {
			emit(s * int64(time.Second))
			if err := op.OnWatermark(context.Background(), s*int64(time.Second)-1); err != nil {
				t.Fatal(err)
			}
			s++
		})
		if n > float64(len(keys))*perKey {
			t.Errorf("%v: %v allocations per second of %d keys (new windows, firing, cleanup)", a, n, len(keys))
		} else {
			t.Logf("%v: %v allocations per second of %d keys", a, n, len(keys))
		}
	}
}

// BenchmarkWindowEmitExisting: records into existing tumbling windows
// of 100k keys, with the event-time trigger's timers registered with a
// window's first record only (fixed) or with every record (as Flink).
func BenchmarkWindowEmitExisting(b *testing.B) {
	keys := make([]string, 100_000)
	for i := range keys {
		keys[i] = fmt.Sprint("k", i)
	}
	for _, fixed := range []bool{true, false} {
		b.Run(fmt.Sprint("fixed-timers=", fixed), func(b *testing.B) {
			t := &testing.T{}
			op, tm := newAllocOp(t, window.Tumbling(time.Hour, 0))
			op.fixedTm = fixed
			tm.TS = 1
			for _, k := range keys {
				_ = op.Emit(k)
			}
			b.ResetTimer()
			for i := range b.N {
				if err := op.Emit(keys[i%len(keys)]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
