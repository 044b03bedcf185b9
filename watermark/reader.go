package watermark

import (
	"fmt"
	"time"
)

// Reader combines the watermarks of the splits one source reader owns
// (Kafka partitions, files): one Generator per split, and a combined
// watermark that is the minimum over the active (non-idle) splits. It is
// the per-split watermarking of docs/design.md §14 Event time.
//
// The engine calls Split.OnEvent for every record and OnPeriodicEmit on
// its timer; only OnPeriodicEmit changes the combined watermark, so a
// record costs one generator call and one increment. A Reader is not safe
// for concurrent use.
type Reader struct {
	strategy Strategy
	splits   []*Split // in the order added
	out      int64
	idle     bool
	finished bool
}

// Split is one split's share of a Reader.
type Split struct {
	id       string
	gen      Generator
	wm       int64
	idle     bool
	finished bool
	activity uint64    // records seen, bumped by OnEvent
	seen     uint64    // activity at the last periodic emission that saw it change
	since    time.Time // when activity last changed, as seen by OnPeriodicEmit
}

// NewReader returns a Reader whose splits' generators come from s. A
// reader starts active at NoWatermark.
func NewReader(s Strategy) *Reader {
	return &Reader{strategy: s, out: NoWatermark}
}

// AddSplit adds a split (assignment, partition discovery, rescale). It
// starts active at NoWatermark, so it holds the reader back until it emits
// a watermark or, with idleness, turns idle. now starts its idleness clock.
func (r *Reader) AddSplit(id string, now time.Time) (*Split, error) {
	if r.Split(id) != nil {
		return nil, fmt.Errorf("watermark: split %q added twice", id)
	}
	s := &Split{id: id, gen: r.strategy.NewGenerator(), wm: NoWatermark, since: now}
	r.splits = append(r.splits, s)
	return s, nil
}

// Split returns the split with the id, nil if there is none.
func (r *Reader) Split(id string) *Split {
	for _, s := range r.splits {
		if s.id == id {
			return s
		}
	}
	return nil
}

// RemoveSplit removes a split (revoked in a rescale or rebalance): it no
// longer holds the reader back from the next OnPeriodicEmit.
func (r *Reader) RemoveSplit(id string) error {
	for i, s := range r.splits {
		if s.id == id {
			r.splits = append(r.splits[:i], r.splits[i+1:]...)
			return nil
		}
	}
	return fmt.Errorf("watermark: remove of unknown split %q", id)
}

// FinishSplit marks the end of a bounded split: its watermark is Final
// and it never turns idle. When every split finished, the reader's
// watermark becomes Final.
func (r *Reader) FinishSplit(id string) error {
	s := r.Split(id)
	if s == nil {
		return fmt.Errorf("watermark: finish of unknown split %q", id)
	}
	s.finished, s.wm, s.idle = true, Final, false
	return nil
}

// ID returns the split's id.
func (s *Split) ID() string { return s.id }

// OnEvent passes the timestamp of one record of the split to its generator
// and counts as activity for idleness: an idle split rejoins at the next
// periodic emission.
func (s *Split) OnEvent(ts int64) {
	s.gen.OnEvent(ts)
	s.activity++
}

// Watermark returns the split's last watermark.
func (s *Split) Watermark() int64 { return s.wm }

// Idle reports whether the split was idle at the last periodic emission.
func (s *Split) Idle() bool { return s.idle }

// OnPeriodicEmit asks every split's generator for its watermark, updates
// idleness as of now, and returns the combined output. A split is idle if
// it saw no record for the strategy's idleness timeout; the reader is idle
// if every split is idle or it has none (as Flink's source operator). The
// combined watermark is the minimum over active splits and never goes
// back: a split that rejoins below it holds it where it is until it
// catches up. When both change, send the status first if the reader turns
// active and the watermark first if it turns idle.
func (r *Reader) OnPeriodicEmit(now time.Time) Output {
	if r.finished {
		return Output{Watermark: Final}
	}
	timeout := r.strategy.idleness
	for _, s := range r.splits {
		if s.finished {
			continue
		}
		if s.activity != s.seen {
			s.seen, s.since, s.idle = s.activity, now, false
		} else if timeout > 0 && now.Sub(s.since) >= timeout {
			s.idle = true
		}
		if wm := s.gen.OnPeriodicEmit(); wm > s.wm {
			s.wm = wm
		}
	}
	// A finished split neither holds the reader back nor keeps it active
	// (else one finished split next to idle ones would make the reader
	// Final); when every split finished the watermark is Final.
	min, active, open := Final, false, false
	for _, s := range r.splits {
		if s.finished {
			continue
		}
		open = true
		if !s.idle {
			active = true
			if s.wm < min {
				min = s.wm
			}
		}
	}
	idle := len(r.splits) == 0 || (open && !active)
	o := Output{Watermark: r.out, Idle: idle}
	o.StatusChanged = o.Idle != r.idle
	r.idle = o.Idle
	if !idle && min > r.out {
		r.out, o.Watermark, o.Advanced = min, min, true
	}
	return o
}

// MarkActive turns an idle reader active at once, without waiting for the
// next periodic emission. The engine calls it before it forwards a record
// while Idle reports true, and sends the status change (if any) ahead of
// the record: downstream must not see records on a channel it believes
// idle. The watermark does not change; the split that spoke rejoins at
// the next OnPeriodicEmit.
func (r *Reader) MarkActive() Output {
	o := Output{Watermark: r.out, StatusChanged: r.idle}
	r.idle = false
	return o
}

// Finish ends the reader's input: its watermark becomes Final, whatever
// its splits say, and it is active so downstream sees the Final watermark.
func (r *Reader) Finish() Output {
	o := Output{Watermark: Final, Advanced: r.out != Final, StatusChanged: r.idle}
	r.out, r.idle, r.finished = Final, false, true
	return o
}

// Watermark returns the reader's last combined watermark.
func (r *Reader) Watermark() int64 { return r.out }

// Idle reports whether the reader was idle at the last periodic emission.
func (r *Reader) Idle() bool { return r.idle }
