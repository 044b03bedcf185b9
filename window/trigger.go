package window

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Result is a trigger's decision for a window.
type Result uint8

// The decisions. Fire and Purge are bits: FireAndPurge is both.
const (
	// Continue does nothing.
	Continue Result = 0
	// Fire evaluates the window function over the window's contents and
	// keeps them (a later firing sees them again).
	Fire Result = 1
	// Purge drops the window's contents without evaluating.
	Purge Result = 2
	// FireAndPurge evaluates, then drops the contents.
	FireAndPurge Result = Fire | Purge
)

// IsFire reports whether the window function must be evaluated.
func (r Result) IsFire() bool { return r&Fire != 0 }

// IsPurge reports whether the window's contents must be dropped.
func (r Result) IsPurge() bool { return r&Purge != 0 }

// String returns CONTINUE, FIRE, PURGE or FIRE_AND_PURGE, as in Flink.
func (r Result) String() string {
	switch r {
	case Continue:
		return "CONTINUE"
	case Fire:
		return "FIRE"
	case Purge:
		return "PURGE"
	case FireAndPurge:
		return "FIRE_AND_PURGE"
	}
	return fmt.Sprintf("Result(%d)", uint8(r))
}

// Timer is a timer a trigger asks the engine to register or delete. The
// engine keeps timers per key and window (deduplicated) and calls
// OnEventTime or OnProcessingTime with its Time when it fires.
type Timer struct {
	// Domain is the clock of the timer.
	Domain Domain
	// Time is when it fires, in nanoseconds since the epoch.
	Time int64
}

// Timers is the few timers one trigger call registers or deletes, held
// inline so that a decision does not allocate.
type Timers struct {
	t [2]Timer
	n uint8
}

// Len returns the number of timers.
func (ts *Timers) Len() int { return int(ts.n) }

// At returns timer i, 0 <= i < Len.
func (ts *Timers) At(i int) Timer { return ts.t[:ts.n][i] }

func (ts *Timers) add(d Domain, t int64) {
	ts.t[ts.n] = Timer{Domain: d, Time: t}
	ts.n++
}

// Now is the two clocks at a trigger call: the window operator's current
// watermark and the task's processing time, both in nanoseconds.
type Now struct {
	// Watermark is the current event time of the window operator.
	Watermark int64
	// Processing is the task's current processing time.
	Processing int64
}

// State is a trigger's state for one key and window, kept by the engine in
// keyed state namespaced by the window (the actual window, not the state
// window of a merging set). The zero State is the state of a fresh window.
type State struct {
	// Count is the records counted by CountTrigger since its last firing.
	Count int64
	// NextFire is the next early firing of ContinuousEventTimeTrigger,
	// valid if HasNext.
	NextFire int64
	// HasNext reports whether NextFire is set.
	HasNext bool
}

// AppendBinary appends the encoding of s to dst.
func (s State) AppendBinary(dst []byte) ([]byte, error) {
	dst = binary.AppendVarint(dst, s.Count)
	if !s.HasNext {
		return append(dst, 0), nil
	}
	dst = append(dst, 1)
	return binary.AppendVarint(dst, s.NextFire), nil
}

// UnmarshalBinary decodes what AppendBinary wrote.
func (s *State) UnmarshalBinary(b []byte) error {
	c, n := binary.Varint(b)
	if n <= 0 || n >= len(b) {
		return errors.New("window: trigger state truncated")
	}
	*s = State{Count: c}
	switch b[n] {
	case 0:
		if n+1 != len(b) {
			return errors.New("window: trigger state has trailing bytes")
		}
	case 1:
		f, m := binary.Varint(b[n+1:])
		if m <= 0 || n+1+m != len(b) {
			return errors.New("window: trigger state next firing truncated or trailing")
		}
		s.NextFire, s.HasNext = f, true
	default:
		return fmt.Errorf("window: trigger state flag %d unknown", b[n])
	}
	return nil
}

type tkind uint8

const (
	eventTimeTrigger tkind = iota + 1
	processingTimeTrigger
	countTrigger
	continuousEventTimeTrigger
	neverTrigger
)

// Trigger decides when a window fires. Its methods are pure decision
// functions: they read and update the State the engine passes, and return
// a Result and the timers to register (or, for Clear, to delete). Create
// one with EventTimeTrigger, ProcessingTimeTrigger, CountTrigger,
// ContinuousEventTimeTrigger or NeverTrigger. Triggers are values, safe
// for concurrent use; all of them can merge (session windows).
//
// The engine's contract, as Flink's WindowOperator: OnElement after
// adding each record to a window; OnEventTime and OnProcessingTime when a
// timer registered for the window fires; on a merge, MergeState the
// states of the merged windows into the result's, OnMerge the result,
// then Clear each merged window; Clear a window when its state is cleaned
// up. On a Fire decision evaluate the window function, on a Purge one
// drop the contents.
type Trigger struct {
	kind     tkind
	count    int64
	interval int64
	purging  bool
	err      error
}

// EventTimeTrigger fires a window once when the watermark passes its
// MaxTimestamp, and again for every record added afterwards (within the
// allowed lateness), which updates the result. It is the default of
// event-time assigners.
func EventTimeTrigger() Trigger { return Trigger{kind: eventTimeTrigger} }

// ProcessingTimeTrigger fires a window when the processing time passes
// its MaxTimestamp. It is the default of processing-time assigners.
func ProcessingTimeTrigger() Trigger { return Trigger{kind: processingTimeTrigger} }

// CountTrigger fires a window every n records (n positive). With Global
// windows, Purging makes it a tumbling count window.
func CountTrigger(n int64) Trigger {
	t := Trigger{kind: countTrigger, count: n}
	if n <= 0 {
		t.err = fmt.Errorf("window: count trigger count %d must be positive", n)
	}
	return t
}

// ContinuousEventTimeTrigger fires a window early every interval of event
// time (at the watermark passing multiples of interval, starting from the
// first record's), and at its MaxTimestamp. interval must be positive.
func ContinuousEventTimeTrigger(interval time.Duration) Trigger {
	t := Trigger{kind: continuousEventTimeTrigger, interval: int64(interval)}
	if interval <= 0 {
		t.err = fmt.Errorf("window: continuous trigger interval %v must be positive", interval)
	}
	return t
}

// NeverTrigger never fires, the default of Global windows.
func NeverTrigger() Trigger { return Trigger{kind: neverTrigger} }

// Purging returns t with every Fire turned into FireAndPurge, as Flink's
// PurgingTrigger: each firing sees only the records since the last one.
func (t Trigger) Purging() Trigger {
	t.purging = true
	return t
}

// Validate reports invalid parameters, naming them; the zero Trigger is
// invalid. The engine calls it when the job is planned.
func (t Trigger) Validate() error {
	if t.kind == 0 {
		return errors.New("window: zero Trigger; use EventTimeTrigger, ProcessingTimeTrigger, CountTrigger, ContinuousEventTimeTrigger or NeverTrigger")
	}
	return t.err
}

func (t Trigger) result(r Result) Result {
	if t.purging && r == Fire {
		return FireAndPurge
	}
	return r
}

// OnElement decides after a record with timestamp ts was added to w.
func (t Trigger) OnElement(ts int64, w Window, now Now, st *State) (Result, Timers) {
	var timers Timers
	switch t.kind {
	case eventTimeTrigger:
		if w.MaxTimestamp() <= now.Watermark {
			// A late record within the allowed lateness: fire again now.
			return t.result(Fire), timers
		}
		timers.add(EventTime, w.MaxTimestamp())
	case processingTimeTrigger:
		timers.add(ProcessingTime, w.MaxTimestamp())
	case countTrigger:
		st.Count++
		if st.Count >= t.count {
			st.Count = 0
			return t.result(Fire), timers
		}
	case continuousEventTimeTrigger:
		if w.MaxTimestamp() <= now.Watermark {
			return t.result(Fire), timers
		}
		timers.add(EventTime, w.MaxTimestamp())
		if !st.HasNext {
			t.nextFire(StartWithOffset(ts, 0, t.interval), w, st, &timers)
		}
	}
	return Continue, timers
}

// nextFire schedules the early firing after from, not past the window.
func (t Trigger) nextFire(from int64, w Window, st *State, timers *Timers) {
	next := min(satAdd(from, t.interval), w.MaxTimestamp())
	st.NextFire, st.HasNext = next, true
	timers.add(EventTime, next)
}

// OnEventTime decides when an event-time timer of w fires at time.
func (t Trigger) OnEventTime(time int64, w Window, st *State) (Result, Timers) {
	var timers Timers
	switch t.kind {
	case eventTimeTrigger:
		if time == w.MaxTimestamp() {
			return t.result(Fire), timers
		}
	case continuousEventTimeTrigger:
		if time == w.MaxTimestamp() {
			return t.result(Fire), timers
		}
		if st.HasNext && st.NextFire == time {
			t.nextFire(time, w, st, &timers)
			return t.result(Fire), timers
		}
	}
	return Continue, timers
}

// OnProcessingTime decides when a processing-time timer of w fires.
func (t Trigger) OnProcessingTime(time int64, w Window, st *State) (Result, Timers) {
	if t.kind == processingTimeTrigger {
		return t.result(Fire), Timers{}
	}
	return Continue, Timers{}
}

// MergeState folds the state of a merged window into into: counts add up,
// the earliest pending early firing wins.
func (t Trigger) MergeState(into *State, from State) {
	into.Count += from.Count
	if from.HasNext && (!into.HasNext || from.NextFire < into.NextFire) {
		into.NextFire, into.HasNext = from.NextFire, true
	}
}

// OnMerge returns the timers to register for w, the result of a merge,
// once the merged windows' states were folded into st by MergeState. A
// timer already passed is not registered: the OnElement that follows the
// merge fires instead (a timer too would fire the window twice).
func (t Trigger) OnMerge(w Window, now Now, st *State) Timers {
	var timers Timers
	switch t.kind {
	case eventTimeTrigger:
		if w.MaxTimestamp() > now.Watermark {
			timers.add(EventTime, w.MaxTimestamp())
		}
	case processingTimeTrigger:
		if w.MaxTimestamp() > now.Processing {
			timers.add(ProcessingTime, w.MaxTimestamp())
		}
	case continuousEventTimeTrigger:
		if w.MaxTimestamp() > now.Watermark {
			timers.add(EventTime, w.MaxTimestamp())
		}
		if st.HasNext && st.NextFire != w.MaxTimestamp() {
			timers.add(EventTime, st.NextFire)
		}
	}
	return timers
}

// Clear resets st and returns the timers of w to delete, when w is
// cleaned up or merged into another window.
func (t Trigger) Clear(w Window, st *State) Timers {
	var timers Timers
	switch t.kind {
	case eventTimeTrigger:
		timers.add(EventTime, w.MaxTimestamp())
	case processingTimeTrigger:
		timers.add(ProcessingTime, w.MaxTimestamp())
	case continuousEventTimeTrigger:
		timers.add(EventTime, w.MaxTimestamp())
		if st.HasNext && st.NextFire != w.MaxTimestamp() {
			timers.add(EventTime, st.NextFire)
		}
	}
	*st = State{}
	return timers
}

// UsesState reports whether the trigger reads or writes its State (count
// and continuous triggers): the engine keeps no trigger state for the
// others.
func (t Trigger) UsesState() bool {
	return t.kind == countTrigger || t.kind == continuousEventTimeTrigger
}

// FixedTimers reports whether the only timer OnElement registers is at
// the window's MaxTimestamp (event-time and processing-time triggers), so
// that an engine may register it with a window's first record rather
// than with every record (registration is idempotent either way).
func (t Trigger) FixedTimers() bool {
	return t.kind == eventTimeTrigger || t.kind == processingTimeTrigger
}
