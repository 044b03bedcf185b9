package window

import (
	"fmt"
	"math"
	"time"
)

// Window is the half-open time interval [Start, End) in nanoseconds since
// the Unix epoch.
type Window struct {
	// Start is the first timestamp in the window.
	Start int64
	// End is the first timestamp after the window.
	End int64
}

// MaxTimestamp returns the largest timestamp in the window, End-1. The
// event-time trigger fires when the watermark reaches it.
func (w Window) MaxTimestamp() int64 { return w.End - 1 }

// Intersects reports whether w and o overlap or touch, the rule by which
// session windows merge (as Flink's TimeWindow.intersects: [0,10) and
// [10,20) merge, since a record at 10 bridges them).
func (w Window) Intersects(o Window) bool { return w.Start <= o.End && w.End >= o.Start }

// Cover returns the smallest window containing w and o.
func (w Window) Cover(o Window) Window {
	return Window{Start: min(w.Start, o.Start), End: max(w.End, o.End)}
}

// String formats w as [Start,End).
func (w Window) String() string { return fmt.Sprintf("[%d,%d)", w.Start, w.End) }

// GlobalWindow is the one window of the Global assigner: it spans all
// time and never ends.
var GlobalWindow = Window{Start: math.MinInt64, End: math.MaxInt64}

// Domain is the clock an assigner or timer uses.
type Domain uint8

// The clocks.
const (
	// EventTime is the records' timestamps and the watermark.
	EventTime Domain = iota
	// ProcessingTime is the wall clock of the task.
	ProcessingTime
)

// String returns "event-time" or "processing-time".
func (d Domain) String() string {
	if d == ProcessingTime {
		return "processing-time"
	}
	return "event-time"
}

type kind uint8

const (
	tumbling kind = iota + 1
	sliding
	session
	global
)

// Assigner assigns records to windows. Create one with Tumbling, Sliding,
// Session or Global; the zero Assigner is invalid. Assigners are values
// and safe for concurrent use.
type Assigner struct {
	kind   kind
	domain Domain
	size   int64 // tumbling, sliding; the gap for session
	slide  int64
	offset int64
	err    error
}

// Tumbling returns the event-time assigner of fixed, non-overlapping
// windows of the given size, aligned to the epoch plus offset: a record at
// ts belongs to [start, start+size) with start = ts - (ts-offset) mod size.
// An offset shifts the windows, e.g. to align daily windows to a time zone.
// size must be positive and |offset| < size.
func Tumbling(size, offset time.Duration) Assigner {
	a := Assigner{kind: tumbling, size: int64(size), slide: int64(size), offset: int64(offset)}
	switch {
	case size <= 0 || size > maxSize:
		a.err = fmt.Errorf("window: tumbling size %v must be positive and at most %v", size, time.Duration(maxSize))
	case offset <= -size || offset >= size:
		a.err = fmt.Errorf("window: tumbling offset %v must be within (-size, size), size %v", offset, size)
	}
	return a
}

// Sliding returns the event-time assigner of windows of the given size
// starting every slide (aligned to the epoch plus offset): a record belongs
// to ceil(size/slide) windows when slide divides size. size and slide must
// be positive and |offset| < slide. With slide > size there are gaps no
// window covers; a record there is assigned to no window.
func Sliding(size, slide, offset time.Duration) Assigner {
	a := Assigner{kind: sliding, size: int64(size), slide: int64(slide), offset: int64(offset)}
	switch {
	case size <= 0 || size > maxSize:
		a.err = fmt.Errorf("window: sliding size %v must be positive and at most %v", size, time.Duration(maxSize))
	case slide <= 0 || slide > maxSize:
		a.err = fmt.Errorf("window: sliding slide %v must be positive and at most %v", slide, time.Duration(maxSize))
	case offset <= -slide || offset >= slide:
		a.err = fmt.Errorf("window: sliding offset %v must be within (-slide, slide), slide %v", offset, slide)
	}
	return a
}

// Session returns the event-time assigner of session windows: a record at
// ts opens [ts, ts+gap), and windows of a key that touch or overlap merge
// (see MergingSet), so a session ends after gap without records. gap must
// be positive.
func Session(gap time.Duration) Assigner {
	a := Assigner{kind: session, size: int64(gap)}
	if gap <= 0 || gap > maxSize {
		a.err = fmt.Errorf("window: session gap %v must be positive and at most %v", gap, time.Duration(maxSize))
	}
	return a
}

// Global returns the assigner of the single GlobalWindow. Its default
// trigger never fires: use it with a count trigger (or a custom one).
func Global() Assigner { return Assigner{kind: global} }

// ProcessingTime returns a in processing time: the engine assigns with the
// task's clock at arrival and fires on processing-time timers.
func (a Assigner) ProcessingTime() Assigner {
	a.domain = ProcessingTime
	return a
}

// Domain returns the clock the assigner uses.
func (a Assigner) Domain() Domain { return a.domain }

// IsMerging reports whether windows of a key merge (session windows),
// which the engine tracks in a MergingSet per key.
func (a Assigner) IsMerging() bool { return a.kind == session }

// Validate reports invalid parameters, naming them. The engine calls it
// when the job is planned; Assign on an invalid assigner assigns nothing.
func (a Assigner) Validate() error {
	if a.kind == 0 {
		return fmt.Errorf("window: zero Assigner; use Tumbling, Sliding, Session or Global")
	}
	return a.err
}

// DefaultTrigger returns the trigger used when the user sets none:
// EventTimeTrigger or ProcessingTimeTrigger by domain, NeverTrigger for
// Global.
func (a Assigner) DefaultTrigger() Trigger {
	switch {
	case a.kind == global:
		return NeverTrigger()
	case a.domain == ProcessingTime:
		return ProcessingTimeTrigger()
	default:
		return EventTimeTrigger()
	}
}

// Assign appends the windows of a record at ts to dst and returns it, so
// that the caller reuses one slice and assignment does not allocate.
// Sliding windows are appended latest start first. Windows whose bounds
// would overflow int64 are clamped to it.
func (a Assigner) Assign(ts int64, dst []Window) []Window {
	if a.err != nil {
		return dst
	}
	switch a.kind {
	case tumbling:
		r := remainder(ts, a.offset, a.size)
		return append(dst, Window{Start: satSub(ts, r), End: satAdd(ts, a.size-r)})
	case sliding:
		// d is the distance from the window's start to ts: the latest
		// window starts remainder(ts) before it, each earlier one a slide
		// further, while ts is still inside.
		for d := remainder(ts, a.offset, a.slide); d < a.size; d += a.slide {
			dst = append(dst, Window{Start: satSub(ts, d), End: satAdd(ts, a.size-d)})
		}
		return dst
	case session:
		return append(dst, Window{Start: ts, End: satAdd(ts, a.size)})
	case global:
		return append(dst, GlobalWindow)
	}
	return dst
}

// StartWithOffset returns the start of the window of the given size
// (aligned to the epoch plus offset) that contains ts, correct for
// negative timestamps too, clamped to math.MinInt64. size must be
// positive.
func StartWithOffset(ts, offset, size int64) int64 {
	return satSub(ts, remainder(ts, offset, size))
}

// remainder returns (ts - offset) mod size in [0, size), without
// overflow for size <= maxSize.
func remainder(ts, offset, size int64) int64 {
	var r int64
	if x := ts - offset; (ts^offset) >= 0 || (x^ts) >= 0 {
		r = x % size // ts-offset did not overflow: one division
	} else {
		r = (ts%size - offset%size) % size
	}
	if r < 0 {
		r += size
	}
	return r
}

// maxSize bounds window sizes, slides and gaps (about 146 years) so that
// remainder cannot overflow.
const maxSize = math.MaxInt64 / 2

// satSub returns a-b for b >= 0, saturated at math.MinInt64.
func satSub(a, b int64) int64 {
	if a < math.MinInt64+b {
		return math.MinInt64
	}
	return a - b
}

// satAdd returns a+b for b >= 0, saturated at math.MaxInt64.
func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// IsLate reports whether event-time window w is late at the watermark:
// its MaxTimestamp plus allowedLateness is at or below it (Flink's rule).
// The engine passes the watermark of the window operator. A record
// assigned only to late windows goes to the late side output; one in a
// window that is not late yet (within the allowed lateness) is added and
// fires the window again. Processing-time windows are never late: do not
// call IsLate for them.
func IsLate(w Window, allowedLateness time.Duration, watermark int64) bool {
	return CleanupTime(w, EventTime, allowedLateness) <= watermark
}

// CleanupTime returns when the state of window w may be dropped, on a timer
// of domain d: in event time MaxTimestamp plus allowedLateness, saturated
// at math.MaxInt64; in processing time MaxTimestamp (lateness does not
// apply). The GlobalWindow is never cleaned up. math.MaxInt64 means
// never: register no cleanup timer for it (the final watermark would fire
// it, and the window's state is not to be dropped at the end of input
// before its trigger ran).
func CleanupTime(w Window, d Domain, allowedLateness time.Duration) int64 {
	if w == GlobalWindow {
		return math.MaxInt64
	}
	if d == ProcessingTime {
		return w.MaxTimestamp()
	}
	return satAdd(w.MaxTimestamp(), max(int64(allowedLateness), 0))
}

// Panes reports whether the windows of a are unions of panes: a sliding
// assigner whose slide is smaller than its size and divides it. Each
// window is then the size/slide consecutive panes of length slide from
// its Start (PaneOf), so an engine may aggregate a record into its one
// pane and combine a window's panes when it fires, instead of adding the
// record to every window it belongs to. It returns the pane length.
func (a Assigner) Panes() (slide int64, ok bool) {
	if a.err != nil || a.kind != sliding || a.slide >= a.size || a.size%a.slide != 0 {
		return 0, false
	}
	return a.slide, true
}

// PaneOf returns the pane of a containing ts, aligned as its windows are;
// valid when Panes reports true.
func (a Assigner) PaneOf(ts int64) Window {
	r := remainder(ts, a.offset, a.slide)
	return Window{Start: satSub(ts, r), End: satAdd(ts, a.slide-r)}
}
