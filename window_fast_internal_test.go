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

// newFastAllocOp is newAllocOp on the fast path.
func newFastAllocOp(t *testing.T, a window.Assigner) (*windowOp[string, string, int64, int64], *runtime.Time) {
	t.Helper()
	f := aggFuncs[string, string, int64, int64](AggregateFunction[string, int64, int64](allocCount{}), codec.Int64)
	f.fireAcc = func(_ string, acc int64, wc *WindowContext[int64]) error { wc.Collect(acc); return nil }
	tr := a.DefaultTrigger()
	op := &windowOp[string, string, int64, int64]{f: f, key: func(s string) string { return s }, kc: codec.String, a: a, tr: tr,
		probe: &windowProbe{}, domain: a.Domain(), fixedTm: tr.FixedTimers(), fast: fastPath(a, tr, false)}
	if slide, ok := a.Panes(); ok {
		op.panes, op.slide = true, slide
	}
	if !op.fast {
		t.Fatalf("%v: not on the fast path", a)
	}
	op.wc.out = discard[int64]{}
	tm := runtime.NewTime()
	rc := &runtime.OperatorContext{UID: "w", MaxParallelism: 128, KeyGroups: checkpoint.KeyGroupRange{Start: 0, End: 127},
		Clock: clock.NewFake(time.Unix(0, 0)), Logger: slog.New(slog.DiscardHandler), Time: tm}
	if err := op.Open(context.Background(), rc); err != nil {
		t.Fatal(err)
	}
	return op, tm
}

// TestWindowFastPathNoAllocs: on the fast path, records into existing
// windows allocate nothing, and a steady state of new windows, firing and
// cleanup allocates only the new windows' maps (amortized: a window's
// per-key-group maps, not per record).
func TestWindowFastPathNoAllocs(t *testing.T) {
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprint("k", i)
	}
	for _, a := range []window.Assigner{window.Tumbling(time.Second, 0), window.Sliding(4*time.Second, time.Second, 0)} {
		op, tm := newFastAllocOp(t, a)
		emit := func(ts int64) {
			tm.TS = ts
			for _, k := range keys {
				if err := op.Emit(k); err != nil {
					t.Fatal(err)
				}
			}
		}
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
		s := int64(21)
		if n := testing.AllocsPerRun(20, func() {
			emit(s * int64(time.Second))
			if err := op.OnWatermark(context.Background(), s*int64(time.Second)-1); err != nil {
				t.Fatal(err)
			}
			s++
		}); n > float64(len(keys)) {
			// A new state window makes one map per key group (128 here)
			// and they grow to ~8 keys each: about 3 allocations per
			// group, far below one per record.
			t.Errorf("%v: %v allocations per second of %d keys (new windows, firing, cleanup)", a, n, len(keys))
		} else {
			t.Logf("%v: %v allocations per second of %d keys", a, n, len(keys))
		}
	}
}
