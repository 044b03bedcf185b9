package sluice

import (
	"bytes"
	"context"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/internal/runtime"
	"github.com/sluicehq/sluice/window"
)

// TestWindowFastPathNoAllocs: on the fast path, records into existing
// windows allocate nothing, and a steady state of new windows, firing and
// cleanup allocates only the new windows' maps (amortized: a window's
// per-key-group maps, not per record).
func TestWindowFastPathNoAllocs(t *testing.T) {
	// A new state window makes one map per key group (128 here) and they
	// grow to ~8 keys each: about 3 allocations per group, far below one
	// per record.
	checkWindowAllocs(t, countOp{fast: true}, 1)
}

// collectInts is an Emitter that keeps what it gets.
type collectInts struct{ got []int64 }

func (c *collectInts) Emit(v int64) error { c.got = append(c.got, v); return nil }

// TestWindowFastFiredWindowAfterRestore: a window that fired before a
// checkpoint, and is kept for its allowed lateness, re-emits a key's
// updated result at once when a record reaches it after a restore, even
// though the watermark (not checkpointed) starts below the window's end:
// the window's one timer has fired, so nothing would emit it later and
// the update would be dropped at cleanup.
func TestWindowFastFiredWindowAfterRestore(t *testing.T) {
	sec := int64(time.Second)
	open := func(restored *runtime.RestoredState) (*windowOp[string, string, int64, int64], *runtime.Time, *collectInts) {
		out := &collectInts{}
		op, tm := testCountOp(t, window.Tumbling(10*time.Second, 0), countOp{fast: true, lateness: time.Minute, restored: restored, out: out})
		return op, tm, out
	}
	op, tm, out := open(nil)
	for _, ts := range []int64{1, 2} {
		tm.TS = ts * sec
		if err := op.Emit("a"); err != nil {
			t.Fatal(err)
		}
	}
	if err := op.OnWatermark(context.Background(), 15*sec); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(out.got, []int64{2}) {
		t.Fatalf("before the checkpoint: fired %v, want [2]", out.got)
	}
	snap, err := op.Snapshot(context.Background(), runtime.Barrier{ID: 1})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	offs, err := snap.Keyed.WriteKeyGroups(&buf)
	snap.Keyed.Release()
	if err != nil {
		t.Fatal(err)
	}
	restored := &runtime.RestoredState{CheckpointID: 1, Keyed: []runtime.RestoredKeyed{{Data: buf.Bytes(), KeyGroups: checkpoint.KeyGroupRange{Start: 0, End: 127}, Offsets: offs}}}
	op2, tm2, out2 := open(restored)
	tm2.TS = 3 * sec
	if err := op2.Emit("a"); err != nil {
		t.Fatal(err)
	}
	if err := op2.OnWatermark(context.Background(), 4*sec); err != nil {
		t.Fatal(err)
	}
	if err := op2.OnWatermark(context.Background(), math.MaxInt64); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(out2.got, []int64{3}) {
		t.Fatalf("after the restore: fired %v, want the updated result [3] once", out2.got)
	}
}

// The window operator warms its fast-path state for each batch.
var _ runtime.KeyPrefetcher = (*windowOp[string, int, int, int])(nil)
