package runtime

import (
	"math"
	"testing"
	"time"

	"github.com/sluicehq/sluice/clock"
)

// near reports whether a and b are equal up to rounding.
func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// TestWindowRatiosSlide: the busy, idle and backpressured ratios are the
// shares of the task's time over the sliding window that ends at the
// Status call, read from the injected clock: disjoint, summing to 1, and
// an open stretch (a task blocked right now) counts up to the call.
func TestWindowRatiosSlide(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1000, 0)
	clk := clock.NewFake(t0)
	s := &TaskStats{clk: clk}
	s.beginAttempt(clk.Now())
	w := 10 * time.Second
	s.enter(phaseBusy, clk.Now())
	clk.Advance(2 * time.Second)
	s.enter(phaseIdle, clk.Now())
	clk.Advance(5 * time.Second)
	s.enter(phaseBusy, clk.Now())
	s.RecordsIn.Add(70)
	s.RecordsOut.Add(35)
	s.enter(phaseBackpressured, clk.Now())
	clk.Advance(3 * time.Second) // still blocked at the call
	ws := s.Window(clk.Now(), w)
	if !near(ws.Busy, 0.2) || !near(ws.Idle, 0.5) || !near(ws.Backpressured, 0.3) {
		t.Fatalf("ratios busy %v idle %v backpressured %v, want 0.2 0.5 0.3", ws.Busy, ws.Idle, ws.Backpressured)
	}
	if !near(ws.RecordsInRate, 7) || !near(ws.RecordsOutRate, 3.5) {
		t.Fatalf("rates in %v out %v, want 7/s and 3.5/s", ws.RecordsInRate, ws.RecordsOutRate)
	}
	if b, i, p := s.Times(clk.Now()); b != int64(2*time.Second) || i != int64(5*time.Second) || p != int64(3*time.Second) {
		t.Fatalf("times %v %v %v, want 2s 5s 3s (the open stretch included)", b, i, p)
	}
	// Ten more seconds, all idle: the window slid past the earlier ones.
	s.enter(phaseIdle, clk.Now())
	clk.Advance(10 * time.Second)
	ws = s.Window(clk.Now(), w)
	if !near(ws.Idle, 1) || ws.Busy != 0 || ws.Backpressured != 0 || ws.RecordsInRate != 0 {
		t.Fatalf("after 10s idle: %+v, want idle 1 and no records", ws)
	}
	if ws.Span != w {
		t.Fatalf("window span %v, want %v", ws.Span, w)
	}
	// A new attempt restarts the window: nothing of the last one shows.
	s.enter(phaseNone, clk.Now())
	clk.Advance(time.Second)
	s.beginAttempt(clk.Now())
	s.enter(phaseBusy, clk.Now())
	clk.Advance(time.Second)
	ws = s.Window(clk.Now(), w)
	if !near(ws.Busy, 1) || ws.Span != time.Second {
		t.Fatalf("new attempt: %+v, want busy 1 over 1s", ws)
	}
}

// TestWindowRingBounded: frequent Status calls do not grow the samples
// beyond one per window/16 over a window.
func TestWindowRingBounded(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(time.Unix(0, 0))
	s := &TaskStats{clk: clk}
	s.beginAttempt(clk.Now())
	s.enter(phaseBusy, clk.Now())
	for range 10000 {
		clk.Advance(10 * time.Millisecond)
		ws := s.Window(clk.Now(), 10*time.Second)
		if !near(ws.Busy+ws.Idle+ws.Backpressured, 1) {
			t.Fatalf("ratios sum to %v", ws.Busy+ws.Idle+ws.Backpressured)
		}
	}
	if n := len(s.samples); n > 20 {
		t.Fatalf("%d samples kept, want at most ~17", n)
	}
}
