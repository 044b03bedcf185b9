package heap

import (
	"maps"
	"testing"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/codec"
)

// TestEventTimersRescale: event-time timers, kept apart from
// processing-time ones, survive a snapshot restored into two backends that
// split the key groups: each backend gets exactly the timers of its keys,
// deduplicated per key and time, and pops them in time order.
func TestEventTimersRescale(t *testing.T) {
	t.Parallel()
	b := NewHeapBackend(codec.String, 128, full128, nil)
	type timer struct {
		key string
		at  int64
	}
	want := map[timer]bool{}
	for i, k := range universe(200) {
		b.SetCurrentKey(k)
		at := int64(i%17) * 10
		b.RegisterEventTimer(at)
		b.RegisterEventTimer(at) // deduplicated
		b.RegisterEventTimer(at + 5)
		b.DeleteEventTimer(at + 5)
		want[timer{k, at}] = true
	}
	b.SetCurrentKey("proc")
	b.RegisterTimer(timeAt(1)) // a processing-time timer stays one
	if b.NumEventTimers() != len(want) || b.NumTimers() != 1 {
		t.Fatalf("%d event-time and %d processing-time timers, want %d and 1", b.NumEventTimers(), b.NumTimers(), len(want))
	}
	f := write(t, b)
	got := map[timer]bool{}
	procs := 0
	for _, r := range []checkpoint.KeyGroupRange{{Start: 0, End: 63}, {Start: 64, End: 127}} {
		nb := NewHeapBackend(codec.String, 128, r, nil)
		if err := nb.Restore([]RestoreFile{f}); err != nil {
			t.Fatal(err)
		}
		procs += nb.NumTimers()
		last := int64(-1)
		for {
			k, at, ok := nb.PopEventTimer(1000)
			if !ok {
				break
			}
			if at < last {
				t.Fatalf("popped %d after %d", at, last)
			}
			last = at
			if got[timer{k, at}] {
				t.Fatalf("timer %v twice", timer{k, at})
			}
			if err := nb.SetCurrentKey(k); err != nil {
				t.Fatalf("timer of key %q restored into range %v: %v", k, r, err)
			}
			got[timer{k, at}] = true
		}
	}
	if !maps.Equal(got, want) || procs != 1 {
		t.Fatalf("restored %d event-time timers (want %d) and %d processing-time (want 1)", len(got), len(want), procs)
	}
	// Due means at or before the watermark.
	e := NewHeapBackend(codec.String, 128, full128, nil)
	e.SetCurrentKey("k")
	e.RegisterEventTimer(5000)
	if _, _, ok := e.PopEventTimer(4999); ok {
		t.Fatal("timer at 5000 popped at watermark 4999")
	}
	if k, at, ok := e.PopEventTimer(5000); !ok || k != "k" || at != 5000 {
		t.Fatalf("PopEventTimer(5000) = %q, %d, %v", k, at, ok)
	}
}
