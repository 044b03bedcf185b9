package runtime

import (
	"math"
	goruntime "runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/clock"
)

// DefaultStatusWindow is the default sliding window over which Status
// computes the busy, idle and backpressured ratios and the record rates
// (docs/design.md §8).
const DefaultStatusWindow = 10 * time.Second

// TaskStats are the counters a task keeps for metrics and the demo. One
// TaskStats lives as long as the job: the counters add up over every
// attempt, so after a restart they count the replayed records again; the
// values at the start of the current attempt are kept to report that attempt
// alone (docs/design.md §8).
//
// The task's time is split, as Flink defines it, into three disjoint parts
// that sum to the time the task ran: backpressured (blocked on a full output
// channel), idle (waiting for input, control mail or a timer) and busy (the
// rest: processing records, timers, snapshots). The task goroutine marks
// the edge of every stretch (enter); a reader on another goroutine adds the
// stretch still open to its part (Times), so a task stuck for a minute on a
// full channel shows that minute as backpressured while it is stuck.
type TaskStats struct {
	// RecordsIn and RecordsOut count records over every attempt.
	RecordsIn  atomic.Int64
	RecordsOut atomic.Int64
	// BackpressuredNanos, BusyNanos and IdleNanos are the closed stretches
	// of each part; Times adds the open one.
	BackpressuredNanos atomic.Int64
	BusyNanos          atomic.Int64
	IdleNanos          atomic.Int64
	AlignmentNanos     atomic.Int64
	// LateRecords counts the records window operators of the task found
	// late (past their windows' allowed lateness), over every attempt;
	// LateToSide the part of them sent to a late side output (the rest
	// were dropped).
	LateRecords atomic.Int64
	LateToSide  atomic.Int64
	// BytesIn and BytesOut count serialized bytes: read by a source reader,
	// written by a sink. Connectors add them per poll or per flush, never
	// per record.
	BytesIn  atomic.Int64
	BytesOut atomic.Int64

	// Two-phase-commit sink counters (docs/design.md §6), over every
	// attempt: transactions committed and aborted, commit calls and the
	// sum and newest of their latencies.
	TxCommitted       atomic.Int64
	TxAborted         atomic.Int64
	Commits           atomic.Int64
	CommitNanos       atomic.Int64
	LastCommitNanos   atomic.Int64
	sinkName          atomic.Pointer[string]
	splits            atomic.Pointer[SplitReporter]
	watermark         atomic.Int64
	hasWatermark      atomic.Bool
	attemptIn         atomic.Int64
	attemptOut        atomic.Int64
	attemptStartNanos atomic.Int64

	// clk times backpressure; nil means the real clock.
	clk clock.Clock

	// The open stretch, published for readers under a sequence lock: seq
	// is odd while the task goroutine updates the counters and the stretch.
	seq   atomic.Int64
	phase atomic.Int64
	since atomic.Int64
	// cur and mark are the open stretch's phase and start, for the task
	// goroutine only.
	cur  int64
	mark time.Time

	// samples are the cumulative counters at past Status calls, oldest
	// first: the sliding window's start (see Window).
	winMu   sync.Mutex
	samples []StatSample
}

// The phases of a task's time.
const (
	phaseNone int64 = iota // not running
	phaseBusy
	phaseIdle
	phaseBackpressured
)

// enter closes the open stretch at now, adding it to its part, and opens
// one of phase p. It returns the phase that was open. Only the task
// goroutine calls it (writers run on it too).
func (s *TaskStats) enter(p int64, now time.Time) int64 {
	prev := s.cur
	d := int64(now.Sub(s.mark))
	s.seq.Add(1)
	if !s.mark.IsZero() && d > 0 {
		switch prev {
		case phaseBusy:
			s.BusyNanos.Add(d)
		case phaseIdle:
			s.IdleNanos.Add(d)
		case phaseBackpressured:
			s.BackpressuredNanos.Add(d)
		}
	}
	s.cur, s.mark = p, now
	s.phase.Store(p)
	s.since.Store(now.UnixNano())
	s.seq.Add(1)
	return prev
}

// Times returns the busy, idle and backpressured time as of now, the open
// stretch included. Safe from any goroutine.
func (s *TaskStats) Times(now time.Time) (busy, idle, bp int64) {
	for i := 0; ; i++ {
		q := s.seq.Load()
		if q&1 == 0 {
			busy, idle, bp = s.BusyNanos.Load(), s.IdleNanos.Load(), s.BackpressuredNanos.Load()
			ph, since := s.phase.Load(), s.since.Load()
			if s.seq.Load() == q {
				if open := now.UnixNano() - since; open > 0 {
					switch ph {
					case phaseBusy:
						busy += open
					case phaseIdle:
						idle += open
					case phaseBackpressured:
						bp += open
					}
				}
				return busy, idle, bp
			}
		}
		if i > 1000 {
			// The task keeps changing stretch: the closed counters alone
			// are consistent enough.
			return s.BusyNanos.Load(), s.IdleNanos.Load(), s.BackpressuredNanos.Load()
		}
		goruntime.Gosched()
	}
}

// beginAttempt marks the start of an attempt for the per-attempt counts
// and restarts the sliding window at now: rates and ratios describe the
// current attempt only.
func (s *TaskStats) beginAttempt(now time.Time) {
	s.attemptIn.Store(s.RecordsIn.Load())
	s.attemptOut.Store(s.RecordsOut.Load())
	s.attemptStartNanos.Store(now.UnixNano())
	s.hasWatermark.Store(false)
	s.winMu.Lock()
	s.samples = append(s.samples[:0], s.sample(now))
	s.winMu.Unlock()
}

// AttemptRecordsIn returns the records received in the current attempt.
func (s *TaskStats) AttemptRecordsIn() int64 { return s.RecordsIn.Load() - s.attemptIn.Load() }

// AttemptRecordsOut returns the records sent in the current attempt.
func (s *TaskStats) AttemptRecordsOut() int64 { return s.RecordsOut.Load() - s.attemptOut.Load() }

func (s *TaskStats) now() time.Time {
	if s.clk == nil {
		return time.Now()
	}
	return s.clk.Now()
}

// SetWatermark publishes the task's current watermark (nanoseconds), for
// Status. Called once per watermark advance, not per record.
func (s *TaskStats) SetWatermark(wm int64) {
	s.watermark.Store(wm)
	s.hasWatermark.Store(true)
}

// Watermark returns the task's current watermark in the current attempt
// and whether it has one.
func (s *TaskStats) Watermark() (int64, bool) {
	if !s.hasWatermark.Load() {
		return math.MinInt64, false
	}
	return s.watermark.Load(), true
}

// SetSink marks the task as holding the two-phase-commit sink name, whose
// transactions its counters count (docs/design.md §8).
func (s *TaskStats) SetSink(name string) { s.sinkName.Store(&name) }

// Sink returns the name given to SetSink, and whether there was one.
func (s *TaskStats) Sink() (string, bool) {
	if p := s.sinkName.Load(); p != nil {
		return *p, true
	}
	return "", false
}

// CommitDone counts one commit call of a two-phase-commit sink that
// committed n transactions and took latency.
func (s *TaskStats) CommitDone(n int64, latency time.Duration) {
	s.TxCommitted.Add(n)
	s.Commits.Add(1)
	s.CommitNanos.Add(int64(latency))
	s.LastCommitNanos.Store(int64(latency))
}

// SplitInfo is one split of a source reader, as a SplitReporter describes
// it (see sluice.SplitStatus for the meaning of the fields).
type SplitInfo struct {
	Split     string
	Topic     string
	Partition int32
	Subtask   int
	Next, End int64
	Lag       int64
	// Watermark is in nanoseconds since the epoch, HasWatermark says whether
	// there is one.
	Watermark    int64
	HasWatermark bool
	Idle         bool
}

// SplitReporter returns the splits a source reader reads now. It is called
// from Status, on another goroutine than the task's, and must be safe for
// that.
type SplitReporter func() []SplitInfo

// SetSplitReporter installs (or, with nil, removes) the reporter of the
// task's source reader for the current attempt.
func (s *TaskStats) SetSplitReporter(r SplitReporter) {
	if r == nil {
		s.splits.Store(nil)
		return
	}
	s.splits.Store(&r)
}

// Splits returns what the task's source reader reports, nil if it reports
// nothing.
func (s *TaskStats) Splits() ([]SplitInfo, bool) {
	if p := s.splits.Load(); p != nil {
		return (*p)(), true
	}
	return nil, false
}

// StatSample is a subtask's cumulative counters at one time: the start or
// the end of a sliding window.
type StatSample struct {
	At                    time.Time
	Busy, Idle, BP        int64
	RecordsIn, RecordsOut int64
}

func (s *TaskStats) sample(now time.Time) StatSample {
	b, i, p := s.Times(now)
	return StatSample{At: now, Busy: b, Idle: i, BP: p, RecordsIn: s.RecordsIn.Load(), RecordsOut: s.RecordsOut.Load()}
}

// WindowStats are a subtask's ratios and rates over a sliding window.
type WindowStats struct {
	// Busy, Idle and Backpressured are shares of the time the subtask ran
	// in the window: disjoint, summing to 1, all zero when it did not run.
	Busy, Idle, Backpressured float64
	// RecordsInRate and RecordsOutRate are records per second.
	RecordsInRate, RecordsOutRate float64
	// Span is the window's actual length.
	Span time.Duration
	// Now is the sample the window ends with.
	Now StatSample
}

// Window returns the ratios and rates over the sliding window that ends
// at now (docs/design.md §8). The window starts at the newest sample at
// least w old, or at the oldest one (the attempt's start) while none is;
// samples are taken here, at most one per w/16, and those too old to start
// a window are dropped, so the ring stays small and the hot path pays
// nothing.
func (s *TaskStats) Window(now time.Time, w time.Duration) WindowStats {
	if w <= 0 {
		w = DefaultStatusWindow
	}
	cur := s.sample(now)
	s.winMu.Lock()
	if len(s.samples) == 0 {
		s.samples = append(s.samples, cur)
	}
	start := 0
	for i, sm := range s.samples {
		if !sm.At.After(now.Add(-w)) {
			start = i
		}
	}
	s.samples = append(s.samples[:0], s.samples[start:]...)
	base := s.samples[0]
	if last := s.samples[len(s.samples)-1]; now.Sub(last.At) >= w/16 {
		s.samples = append(s.samples, cur)
	}
	s.winMu.Unlock()
	ws := WindowStats{Now: cur, Span: now.Sub(base.At)}
	db, di, dp := cur.Busy-base.Busy, cur.Idle-base.Idle, cur.BP-base.BP
	if tot := db + di + dp; tot > 0 {
		ws.Busy = float64(db) / float64(tot)
		ws.Idle = float64(di) / float64(tot)
		ws.Backpressured = float64(dp) / float64(tot)
	}
	if ws.Span > 0 {
		sec := ws.Span.Seconds()
		ws.RecordsInRate = float64(cur.RecordsIn-base.RecordsIn) / sec
		ws.RecordsOutRate = float64(cur.RecordsOut-base.RecordsOut) / sec
	}
	return ws
}

// timeSplit attributes a task's time to busy or idle; backpressure is
// marked by the writers within busy stretches. Only the task goroutine
// uses it.
type timeSplit struct {
	stats *TaskStats
	clk   clock.Clock
}

func newTimeSplit(stats *TaskStats, clk clock.Clock) timeSplit {
	stats.enter(phaseBusy, clk.Now())
	return timeSplit{stats: stats, clk: clk}
}

// idle ends a busy stretch: the task is about to wait.
func (s *timeSplit) idle() { s.stats.enter(phaseIdle, s.clk.Now()) }

// busy ends an idle stretch: the task woke up.
func (s *timeSplit) busy() { s.stats.enter(phaseBusy, s.clk.Now()) }

// stop ends the task's last stretch: it no longer runs.
func (s *timeSplit) stop() { s.stats.enter(phaseNone, s.clk.Now()) }

// queueFiller is the non-generic face of an edge's Channels, for Status:
// the fill of channel up→down.
type queueFiller interface {
	fill(up, down int) (n, capacity int)
	dims() (up, down int)
}

func (c *Channels[T]) fill(up, down int) (int, int) {
	ch := c.Chans[up][down]
	return len(ch), cap(ch)
}

func (c *Channels[T]) dims() (int, int) {
	if len(c.Chans) == 0 {
		return 0, 0
	}
	return len(c.Chans), len(c.Chans[0])
}
