package window_test

import (
	"fmt"
	"time"

	"github.com/sluicehq/sluice/window"
)

// at returns the nanosecond timestamp of second s of 2026-12-01T10:00Z.
func at(s int) int64 {
	return time.Date(2026, 12, 1, 10, 0, s, 0, time.UTC).UnixNano()
}

// clock formats a nanosecond timestamp as its time of day.
func clock(ns int64) string { return time.Unix(0, ns).UTC().Format("15:04:05") }

func ExampleTumbling() {
	a := window.Tumbling(time.Minute, 0)
	if err := a.Validate(); err != nil {
		fmt.Println(err)
		return
	}
	var ws []window.Window // reused for every record
	for _, ts := range []int64{at(5), at(59), at(60)} {
		ws = a.Assign(ts, ws[:0])
		fmt.Println(clock(ts), "->", clock(ws[0].Start), clock(ws[0].End))
	}
	// Output:
	// 10:00:05 -> 10:00:00 10:01:00
	// 10:00:59 -> 10:00:00 10:01:00
	// 10:01:00 -> 10:01:00 10:02:00
}

func ExampleSliding() {
	a := window.Sliding(10*time.Second, 5*time.Second, 0)
	for _, w := range a.Assign(at(7), nil) {
		fmt.Println(clock(w.Start), clock(w.End))
	}
	// Output:
	// 10:00:05 10:00:15
	// 10:00:00 10:00:10
}

// A session per key: records 10:00:00 and 10:00:20 open separate sessions
// of gap 15 s, one at 10:00:12 bridges them. The state of the merged
// session stays under the first session's state window; the second's
// contents move into it.
func ExampleMergingSet() {
	a := window.Session(15 * time.Second)
	set := &window.MergingSet{}
	for _, ts := range []int64{at(0), at(20), at(12)} {
		w := a.Assign(ts, nil)[0]
		actual, m, merged := set.Add(w)
		state, _ := set.StateWindow(actual)
		fmt.Printf("%s: session %s-%s state %s", clock(ts), clock(actual.Start), clock(actual.End), clock(state.Start))
		for _, sw := range m.MergedStateWindows {
			fmt.Printf(", move state %s", clock(sw.Start))
		}
		fmt.Println(" merged:", merged)
	}
	// Keep it in keyed state across checkpoints.
	b, _ := set.MarshalBinary()
	restored := &window.MergingSet{}
	if err := restored.UnmarshalBinary(b); err != nil {
		fmt.Println(err)
	}
	fmt.Println(restored.Windows(nil)[0] == set.Windows(nil)[0])
	// Output:
	// 10:00:00: session 10:00:00-10:00:15 state 10:00:00 merged: false
	// 10:00:20: session 10:00:20-10:00:35 state 10:00:20 merged: false
	// 10:00:12: session 10:00:00-10:00:35 state 10:00:00, move state 10:00:20 merged: true
	// true
}

// The event-time trigger of a one-minute window, with the lateness rule:
// it fires when the watermark passes the window, again for a record within
// the allowed lateness, and a record after that is late.
func ExampleEventTimeTrigger() {
	tr := window.EventTimeTrigger()
	w := window.Window{Start: at(0), End: at(60)}
	lateness := 30 * time.Second
	var st window.State

	r, timers := tr.OnElement(at(10), w, window.Now{Watermark: at(5)}, &st)
	fmt.Println(r, "timer at", clock(timers.At(0).Time+1))
	r, _ = tr.OnEventTime(w.MaxTimestamp(), w, &st)
	fmt.Println(r)
	// The watermark is at 10:01:20: within the allowed lateness.
	fmt.Println(window.IsLate(w, lateness, at(80)))
	r, _ = tr.OnElement(at(30), w, window.Now{Watermark: at(80)}, &st)
	fmt.Println(r)
	// At 10:01:30 the window is late: records go to the late side output
	// and its state is cleaned up.
	fmt.Println(window.IsLate(w, lateness, at(90)), clock(window.CleanupTime(w, window.EventTime, lateness)+1))
	// Output:
	// CONTINUE timer at 10:01:00
	// FIRE
	// false
	// FIRE
	// true 10:01:30
}

// A global window with a purging count trigger is a tumbling count window.
func ExampleCountTrigger() {
	tr := window.CountTrigger(2).Purging()
	var st window.State
	for ts := range int64(5) {
		r, _ := tr.OnElement(ts, window.GlobalWindow, window.Now{}, &st)
		fmt.Print(r, " ")
	}
	fmt.Println()
	// Output:
	// CONTINUE FIRE_AND_PURGE CONTINUE FIRE_AND_PURGE CONTINUE
}
