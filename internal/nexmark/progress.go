package nexmark

import (
	"sync/atomic"
	"time"
)

// progressBuckets is the number of event-time slices a Progress tracks.
const progressBuckets = 1 << 14

// Progress records when, in wall time, each split of a source first
// emitted an event of each slice of event time, so that a sink can tell how
// long ago the input behind a row entered the job: the latency `sluice
// bench nexmark` reports. The event-time span of the stream is cut into
// 16384 slices, so a latency is known to within the wall time a split takes
// to cover one slice. A row's latency is measured from the last split to
// reach its slice: the splits run in different tasks, one may be seconds
// ahead of another, and a row of event time t (a window's end, say) needs
// every split's input up to t. For a row of the leading split that is too
// late a start, so its latency counts as 0. Safe for concurrent use.
type Progress struct {
	base, width int64 // ms: slice i covers [base + i·width, base + (i+1)·width)
	epoch       time.Time
	// first[g%len][i]: wall ns since epoch + 1 when split g first reached
	// slice i; 0 = not yet.
	first [][progressBuckets]atomic.Int64
}

// progressSplits bounds the splits a Progress tells apart; splits beyond
// share rows (g mod progressSplits).
const progressSplits = 64

// NewProgress returns a Progress for the stream cfg describes.
func NewProgress(cfg GeneratorConfig) *Progress {
	span := int64(1)
	if cfg.Rate > 0 {
		span = int64(float64(cfg.PerGenerator())*float64(max(cfg.Generators, 1))*1000/cfg.Rate) + 1
	}
	return &Progress{base: cfg.BaseTime, width: max(1, (span+progressBuckets-1)/progressBuckets), epoch: time.Now(),
		first: make([][progressBuckets]atomic.Int64, min(max(cfg.Generators, 1), progressSplits))}
}

func (p *Progress) slot(t int64) int {
	i := (t - p.base) / p.width
	return int(min(max(i, 0), progressBuckets-1))
}

// mark records that split g emitted an event of event time t (ms) now.
func (p *Progress) mark(g int, t int64) {
	s := &p.first[g%len(p.first)][p.slot(t)]
	if s.Load() == 0 {
		s.CompareAndSwap(0, int64(time.Since(p.epoch))+1)
	}
}

// Since returns how long ago the last split to reach event time t's slice
// first emitted an event of it (0 if that is in the future), false if no
// split did yet.
func (p *Progress) Since(t int64) (time.Duration, bool) {
	i := p.slot(t)
	var last int64
	for g := range p.first {
		last = max(last, p.first[g][i].Load())
	}
	if last == 0 {
		return 0, false
	}
	return max(0, time.Since(p.epoch)-time.Duration(last-1)), true
}
