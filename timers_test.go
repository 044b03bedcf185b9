package sluice_test

// Processing-time timers (docs/design.md §4), driven by a fake clock: the keyed
// task arms a clock timer for its earliest timer and fires every due one
// when the clock says so, so a test decides exactly when timers fire.

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/clock"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/state"
)

// event is a record for the timer job: a key and the delay after t0 at
// which its timer is due.
type event struct {
	Key    string
	Delay  time.Duration
	Delete bool // delete the key's timer at t0+Delay instead
}

// timerFn registers a timer per record at an absolute time, t0+Delay, so
// that it does not matter whether the record is processed before or after
// the test advanced the clock; OnTimer reports the key, the timer's time
// and the number of records of the key (keyed state is readable there).
type timerFn struct {
	seen state.ValueState[int64]
}

func (f *timerFn) Open(rc *sluice.RuntimeContext[string]) error {
	var err error
	f.seen, err = sluice.NewValueState(rc, "seen", codec.Int64)
	return err
}

func (f *timerFn) ProcessElement(e event, pc *sluice.ProcessContext[string, string]) error {
	n, _ := f.seen.Value()
	f.seen.Update(n + 1)
	if e.Delete {
		pc.DeleteProcessingTimeTimer(t0.Add(e.Delay))
	} else {
		pc.RegisterProcessingTimeTimer(t0.Add(e.Delay))
	}
	pc.Collect("elem " + e.Key)
	return nil
}

func (f *timerFn) OnTimer(at time.Time, pc *sluice.ProcessContext[string, string]) error {
	n, _ := f.seen.Value()
	pc.Collect(fmt.Sprintf("timer %s +%v seen %d", pc.CurrentKey(), at.Sub(t0), n))
	return nil
}

// TestProcessingTimeTimers: timers fire when, and only when, the fake clock
// reaches them, each once, for the key that registered it, in time order;
// a deleted timer never fires.
func TestProcessingTimeTimers(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(t0)
	cfg := testConfig(t, 1)
	cfg.Clock = clk
	cfg.BufferTimeout = sluice.FlushAlways
	// No periodic checkpoint while the test moves the clock.
	cfg.Checkpoint = checkpoint.Config{Interval: -1}
	env := sluice.New(cfg)
	src := newLogSource[event]()
	out := newCollector[string]()
	keyed := sluice.KeyBy(sluice.FromSource(env, "src", src), func(e event) string { return e.Key })
	// One subtask, so that every timer is fired by one task in time order.
	p := sluice.Process(keyed, "timers", func() sluice.KeyedProcessFunction[string, event, string] { return &timerFn{} })
	sluice.Sink(p, "sink", out.Sink())
	x := start(t, env)

	src.Append(event{Key: "a", Delay: 10 * time.Second}, event{Key: "b", Delay: 20 * time.Second}, event{Key: "a", Delay: 10 * time.Second},
		event{Key: "c", Delay: 30 * time.Second}, event{Key: "c", Delay: 30 * time.Second, Delete: true}, event{Key: "d", Delay: 40 * time.Second})
	out.WaitLen(t, 6)

	// The keyed task's wake-up timer is the clock's only timer (no periodic
	// checkpoint, no buffer timeout): once it is armed for a's timer, an
	// advance fires exactly what is due.
	waitTimers(t, clk, 1)
	clk.Advance(10 * time.Second)
	got := out.WaitFor(t, "timer a", func(r []string) bool { return slices.Contains(r, "timer a +10s seen 2") })
	// b's timer is not due at 10s: only a's fired, once although it was
	// registered twice.
	if len(got) != 7 {
		t.Fatalf("after 10s: %v, want exactly one timer (a's)", got)
	}
	waitTimers(t, clk, 1)
	clk.Advance(10 * time.Second)
	out.WaitFor(t, "timer b", func(r []string) bool { return slices.Contains(r, "timer b +20s seen 1") })
	// Past c's deleted timer to d's: d fires after c would have.
	waitTimers(t, clk, 1)
	clk.Advance(time.Minute)
	out.WaitFor(t, "timer d", func(r []string) bool { return slices.Contains(r, "timer d +40s seen 1") })
	src.Close()
	if _, err := x.wait(t); err != nil {
		t.Fatalf("Execute: %v", err)
	}
	want := []string{"timer a +10s seen 2", "timer b +20s seen 1", "timer d +40s seen 1"}
	var timers []string
	for _, r := range out.Records() {
		if r[:5] == "timer" {
			timers = append(timers, r)
		}
	}
	if !slices.Equal(timers, want) {
		t.Fatalf("timers fired: %v, want %v (c's was deleted)", timers, want)
	}
}

// noOnTimer registers a timer but has no OnTimer method: it is not a
// TimerFunction.
type noOnTimer struct{}

func (noOnTimer) Open(*sluice.RuntimeContext[string]) error { return nil }
func (noOnTimer) ProcessElement(e event, pc *sluice.ProcessContext[string, string]) error {
	pc.RegisterProcessingTimeTimer(t0.Add(e.Delay))
	return nil
}

// TestTimerWithoutOnTimerFails: registering a timer in a function that does
// not implement TimerFunction (no OnTimer, or one with the wrong signature)
// fails the job with an error saying so, instead of keeping a timer that can
// never fire in the state forever.
func TestTimerWithoutOnTimerFails(t *testing.T) {
	t.Parallel()
	env := sluice.New(testConfig(t, 1))
	src := newLogSource[event]()
	keyed := sluice.KeyBy(sluice.FromSource(env, "src", src), func(e event) string { return e.Key })
	p := sluice.Process(keyed, "no-ontimer", func() sluice.KeyedProcessFunction[string, event, string] { return noOnTimer{} })
	sluice.Sink(p, "sink", sluice.DiscardSink[string]())
	src.Append(event{Key: "a", Delay: time.Second})
	src.Close()
	_, err := env.Execute(ctxTimeout(t))
	if err == nil || !strings.Contains(err.Error(), "TimerFunction") || !strings.Contains(err.Error(), "no-ontimer") {
		t.Fatalf("Execute: %v, want an error naming the operator and TimerFunction", err)
	}
}
