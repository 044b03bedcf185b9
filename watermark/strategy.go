package watermark

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// NoWatermark is the watermark before any: it holds every downstream
// operator back.
const NoWatermark int64 = math.MinInt64

// Final is the watermark at the end of input: every pending event-time
// timer and window fires, and no record follows.
const Final int64 = math.MaxInt64

// Generator produces the watermark of one split from the timestamps of its
// records. Implementations need not be safe for concurrent use: the engine
// calls one generator from one goroutine.
type Generator interface {
	// OnEvent is called with the timestamp of every record of the split,
	// in arrival order.
	OnEvent(ts int64)
	// OnPeriodicEmit is called every Config.Interval and returns the
	// current watermark, or NoWatermark if there is none yet. A value
	// lower than an earlier one is ignored: watermarks never go back.
	OnPeriodicEmit() int64
}

// Strategy says how the watermarks of a source are generated: a generator
// per split and an optional idleness timeout. The zero Strategy generates
// no watermarks (every split stays at NoWatermark).
type Strategy struct {
	newGen    func() Generator
	idleness  time.Duration
	alignment Alignment
	err       error
}

// ForBoundedOutOfOrderness returns the strategy for records that arrive at
// most d out of order: the watermark trails the largest timestamp seen by
// d, precisely max - d - 1 (as in Flink, so that a record exactly d behind
// the largest is still on time). d must not be negative.
func ForBoundedOutOfOrderness(d time.Duration) Strategy {
	if d < 0 {
		return Strategy{err: fmt.Errorf("watermark: out-of-orderness bound %v is negative", d)}
	}
	bound := int64(d)
	return Strategy{newGen: func() Generator { return &bounded{bound: bound, max: NoWatermark} }}
}

// ForMonotonousTimestamps returns the strategy for records whose timestamps
// never decrease within a split: the watermark is the largest timestamp
// seen minus one. It is ForBoundedOutOfOrderness(0).
func ForMonotonousTimestamps() Strategy { return ForBoundedOutOfOrderness(0) }

// ForGenerator returns the strategy that calls newGen once per split for a
// custom Generator. newGen must not be nil.
func ForGenerator(newGen func() Generator) Strategy {
	if newGen == nil {
		return Strategy{err: errors.New("watermark: ForGenerator with a nil generator factory")}
	}
	return Strategy{newGen: newGen}
}

// WithIdleness returns s with an idleness timeout: a split that sends no
// record for d (as seen at the periodic emissions) is idle and no longer
// holds the reader's watermark back, until it sends a record again. Zero
// disables idleness detection (the default); d must not be negative.
func (s Strategy) WithIdleness(d time.Duration) Strategy {
	if d < 0 && s.err == nil {
		s.err = fmt.Errorf("watermark: idleness timeout %v is negative", d)
	}
	s.idleness = d
	return s
}

// DefaultAlignmentUpdateInterval is how often, by default, aligned
// sources report their watermarks and learn the group's bound (Flink's
// default too).
const DefaultAlignmentUpdateInterval = time.Second

// Alignment is the watermark alignment of a source (FLIP-182): the
// sources and splits of one group pause when they run more than MaxDrift
// ahead of the group's slowest; see Aligner.
type Alignment struct {
	// Group names the alignment group; sources with the same group align
	// with each other. Empty means no alignment.
	Group string
	// MaxDrift is how far ahead of the group's slowest active member a
	// member may run before it pauses.
	MaxDrift time.Duration
	// UpdateInterval is how often members report their watermarks and the
	// engine applies Aligner.Update. Default 1s; lower reacts faster at
	// more coordination traffic.
	UpdateInterval time.Duration
}

// WithAlignment returns s with watermark alignment in group: a split of
// this source whose watermark runs more than maxDrift ahead of the
// slowest active member of the group pauses until the group catches up.
// A zero updateInterval means DefaultAlignmentUpdateInterval. group must
// not be empty, maxDrift and updateInterval not negative.
func (s Strategy) WithAlignment(group string, maxDrift, updateInterval time.Duration) Strategy {
	if updateInterval == 0 {
		updateInterval = DefaultAlignmentUpdateInterval
	}
	if s.err == nil {
		switch {
		case group == "":
			s.err = errors.New("watermark: alignment group is empty")
		case maxDrift < 0:
			s.err = fmt.Errorf("watermark: alignment max drift %v is negative", maxDrift)
		case updateInterval < 0:
			s.err = fmt.Errorf("watermark: alignment update interval %v is negative", updateInterval)
		}
	}
	s.alignment = Alignment{Group: group, MaxDrift: maxDrift, UpdateInterval: updateInterval}
	return s
}

// Alignment returns the strategy's alignment and whether it has one.
func (s Strategy) Alignment() (Alignment, bool) { return s.alignment, s.alignment.Group != "" }

// Idleness returns the idleness timeout, zero if disabled.
func (s Strategy) Idleness() time.Duration { return s.idleness }

// Validate reports an invalid strategy (a negative bound or timeout, a nil
// factory). The engine calls it when the job is planned.
func (s Strategy) Validate() error { return s.err }

// NewGenerator returns a fresh generator for one split. The zero Strategy
// (and an invalid one) returns a generator that never emits a watermark.
func (s Strategy) NewGenerator() Generator {
	if s.newGen == nil || s.err != nil {
		return none{}
	}
	return s.newGen()
}

// bounded is the generator of ForBoundedOutOfOrderness.
type bounded struct {
	bound int64
	max   int64
}

// OnEvent keeps the largest timestamp.
func (b *bounded) OnEvent(ts int64) {
	if ts > b.max {
		b.max = ts
	}
}

// OnPeriodicEmit returns the largest timestamp - bound - 1.
func (b *bounded) OnPeriodicEmit() int64 {
	if b.max == NoWatermark {
		return NoWatermark
	}
	return satSub(b.max, b.bound+1)
}

// none is the generator of the zero Strategy.
type none struct{}

// OnEvent ignores the timestamp.
func (none) OnEvent(int64) {}

// OnPeriodicEmit returns NoWatermark.
func (none) OnPeriodicEmit() int64 { return NoWatermark }

// satSub returns a-b for b >= 0, saturated at NoWatermark.
func satSub(a, b int64) int64 {
	if a < math.MinInt64+b {
		return NoWatermark
	}
	return a - b
}

// satAdd returns a+b for b >= 0, saturated at Final.
func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return Final
	}
	return a + b
}

// DefaultInterval is the default periodic emission interval, as Flink's
// pipeline.auto-watermark-interval.
const DefaultInterval = 200 * time.Millisecond

// Config configures watermark emission of a job. The zero value means the
// defaults.
type Config struct {
	// Interval is how often the engine calls OnPeriodicEmit on every
	// source's generators and forwards a risen watermark. Default 200ms.
	// Lower means fresher results at more control traffic.
	Interval time.Duration
}

// Validate checks c and fills defaults. Its errors name the field.
func (c *Config) Validate() error {
	switch {
	case c.Interval == 0:
		c.Interval = DefaultInterval
	case c.Interval < 0:
		return fmt.Errorf("watermark: Config.Interval %v is negative", c.Interval)
	}
	return nil
}

// Output is what a combiner tells downstream after a step.
type Output struct {
	// Watermark is the combined watermark; it never decreases.
	Watermark int64
	// Advanced reports that Watermark rose in this step and must be sent.
	Advanced bool
	// Idle is the combined status: true if nothing holds the output back.
	Idle bool
	// StatusChanged reports that Idle flipped in this step and the new
	// status must be sent.
	StatusChanged bool
}
