package watermark

import "fmt"

// Inputs combines the watermarks a task receives in-band on its input
// channels (StatusWatermarkValve in Flink): the output is the minimum of
// the last watermark of every active channel, it never decreases, and it
// is emitted only when it rises. It is the per-task combination of
// docs/design.md §14 Event time. Inputs is not safe for concurrent use.
//
// Idleness: a channel marked idle by its upstream is left out of the
// minimum. When every channel is idle the output turns idle, and it first
// advances to the largest watermark any channel reached, so that this
// task's own windows and timers fire up to it (Flink's valve flushes
// likewise). A channel that
// turns active again with a watermark below the output does not lower it;
// it holds the output where it is until it catches up.
//
// An upstream sends an active status before any record on a channel it
// had marked idle (see Reader.MarkActive), so records never arrive on a
// channel this combiner treats as idle.
//
// End of input on a channel is its Final watermark; the channel never
// turns idle again. When every channel ended, the output is Final.
type Inputs struct {
	ch   []channel
	out  int64
	idle bool
}

type channel struct {
	wm    int64
	idle  bool
	ended bool
}

// NewInputs returns the combiner of n input channels, each active at
// NoWatermark. n must be positive.
func NewInputs(n int) (*Inputs, error) {
	if n <= 0 {
		return nil, fmt.Errorf("watermark: %d input channels, want at least 1", n)
	}
	v := &Inputs{ch: make([]channel, n), out: NoWatermark}
	for i := range v.ch {
		v.ch[i].wm = NoWatermark
	}
	return v, nil
}

// OnWatermark records watermark wm received on channel i (0 <= i < n). A
// watermark lower than the channel's last is ignored. One received on an
// idle channel is recorded but counts only once the channel is active.
func (v *Inputs) OnWatermark(i int, wm int64) Output {
	c := &v.ch[i]
	if !c.ended && wm > c.wm {
		c.wm = wm
	}
	return v.combine()
}

// OnStatus records that channel i turned idle (idle true) or active. An
// ended channel ignores it.
func (v *Inputs) OnStatus(i int, idle bool) Output {
	c := &v.ch[i]
	if !c.ended {
		c.idle = idle
	}
	return v.combine()
}

// OnEndOfInput records the end of channel i: its watermark is Final.
func (v *Inputs) OnEndOfInput(i int) Output {
	v.ch[i] = channel{wm: Final, ended: true}
	return v.combine()
}

// Watermark returns the last output watermark.
func (v *Inputs) Watermark() int64 { return v.out }

// Idle reports whether the output is idle.
func (v *Inputs) Idle() bool { return v.idle }

// combine recomputes the output. When both change, send the status first
// if the output turns active and the watermark first if it turns idle.
func (v *Inputs) combine() Output {
	// An ended channel neither holds the output back nor keeps it active:
	// otherwise one ended channel next to idle ones would make the output
	// Final while the idle ones may still send records.
	min, max, active, open := Final, NoWatermark, false, false
	for i := range v.ch {
		c := &v.ch[i]
		if c.ended {
			continue
		}
		open = true
		if c.wm > max {
			max = c.wm
		}
		if !c.idle {
			active = true
			if c.wm < min {
				min = c.wm
			}
		}
	}
	o := Output{Idle: open && !active}
	o.StatusChanged = o.Idle != v.idle
	next := min // Final when every channel ended
	if o.Idle {
		next = NoWatermark
		if o.StatusChanged {
			next = max // flush on turning idle
		}
	}
	if next > v.out {
		v.out, o.Advanced = next, true
	}
	v.idle = o.Idle
	o.Watermark = v.out
	return o
}
