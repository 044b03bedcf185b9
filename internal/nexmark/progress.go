package nexmark

import (
	"sync/atomic"
	"time"
)

// progressBuckets is the number of event-time slices a Progress tracks.
const progressBuckets = 1 << 14

// Progress records when, in wall time, a source first emitted an event of
// each slice of event time, so that a sink can tell how long ago the input
// behind a row entered the job: the latency `sluice bench nexmark`
// reports. The event-time span of the stream is cut into 16384 slices, so
// a latency is known to within the wall time the source takes to cover one
// slice. Safe for concurrent use.
type Progress struct {
	base, width int64 // ms: slice i covers [base + i·width, base + (i+1)·width)
	epoch       time.Time
	first       [progressBuckets]atomic.Int64 // wall ns since epoch + 1; 0 = not yet
}

// NewProgress returns a Progress for the stream cfg describes.
func NewProgress(cfg GeneratorConfig) *Progress {
	span := int64(1)
	if cfg.Rate > 0 {
		span = int64(float64(cfg.PerGenerator())*float64(max(cfg.Generators, 1))*1000/cfg.Rate) + 1
	}
	return &Progress{base: cfg.BaseTime, width: max(1, (span+progressBuckets-1)/progressBuckets), epoch: time.Now()}
}

func (p *Progress) slot(t int64) int {
	i := (t - p.base) / p.width
	return int(min(max(i, 0), progressBuckets-1))
}

// mark records that the source emitted an event of event time t (ms) now.
func (p *Progress) mark(t int64) {
	s := &p.first[p.slot(t)]
	if s.Load() == 0 {
		s.CompareAndSwap(0, int64(time.Since(p.epoch))+1)
	}
}

// Since returns how long ago a source first emitted an event of event
// time t's slice, false if none did yet.
func (p *Progress) Since(t int64) (time.Duration, bool) {
	v := p.first[p.slot(t)].Load()
	if v == 0 {
		return 0, false
	}
	return time.Since(p.epoch) - time.Duration(v-1), true
}
