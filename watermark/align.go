package watermark

import (
	"fmt"
	"slices"
	"time"
)

// Aligner is the watermark alignment of a group of splits or sources
// (FLIP-182): a member whose watermark runs ahead of the group's slowest
// active member by more than the allowed drift is paused (its reader stops
// fetching it) until the group catches up, so that the state of
// downstream windows and joins does not grow without bound when one
// partition lags. See docs/design.md §14 Event time.
//
// The engine (package sluice, one Aligner per group and job attempt)
// reports every member's watermark and idleness (from Split) on each
// source subtask's alignment timer, calls Update, and pauses or resumes
// that subtask's splits as Paused says. An idle member does not hold the
// group back. A member that has not reported
// a watermark yet (NoWatermark) does: the group waits for it, or for it to
// turn idle. Pausing uses a member's own watermark whether or not it is
// idle (a paused member falls silent and may turn idle; that must not
// resume it). An Aligner is not safe for concurrent use.
type Aligner struct {
	drift   int64
	members map[string]*member
	pause   []string
	resume  []string
}

type member struct {
	wm     int64
	idle   bool
	paused bool
}

// NewAligner returns the aligner of a group whose members may drift at
// most maxDrift ahead of its slowest active member. maxDrift must not be
// negative.
func NewAligner(maxDrift time.Duration) (*Aligner, error) {
	if maxDrift < 0 {
		return nil, fmt.Errorf("watermark: alignment max drift %v is negative", maxDrift)
	}
	return &Aligner{drift: int64(maxDrift), members: map[string]*member{}}, nil
}

// Report records a member's current watermark and idleness, adding the
// member if it is new. A watermark below the member's last is ignored.
func (a *Aligner) Report(id string, wm int64, idle bool) {
	m := a.members[id]
	if m == nil {
		m = &member{wm: NoWatermark}
		a.members[id] = m
	}
	if wm > m.wm {
		m.wm = wm
	}
	m.idle = idle
}

// Remove drops a member (split finished or revoked) and reports whether it
// was paused: a member reported again later starts unpaused, so its reader
// must not keep it paused.
func (a *Aligner) Remove(id string) (wasPaused bool) {
	m := a.members[id]
	delete(a.members, id)
	return m != nil && m.paused
}

// MaxAllowed returns the largest watermark a member may have and keep
// running: the minimum over active members plus the drift, or Final if
// every member is idle (nothing to align with).
func (a *Aligner) MaxAllowed() int64 {
	min, active := Final, false
	for _, m := range a.members {
		if !m.idle {
			active = true
			if m.wm < min {
				min = m.wm
			}
		}
	}
	if !active {
		return Final
	}
	return satAdd(min, a.drift)
}

// Update decides which members must pause (watermark > MaxAllowed) and
// which paused members may resume (watermark <= MaxAllowed), and returns
// only the changes since the last Update, each sorted by id. The slices
// are reused by the next call.
func (a *Aligner) Update() (pause, resume []string) {
	limit := a.MaxAllowed()
	a.pause, a.resume = a.pause[:0], a.resume[:0]
	for id, m := range a.members {
		switch ahead := m.wm > limit; {
		case ahead && !m.paused:
			m.paused = true
			a.pause = append(a.pause, id)
		case !ahead && m.paused:
			m.paused = false
			a.resume = append(a.resume, id)
		}
	}
	slices.Sort(a.pause)
	slices.Sort(a.resume)
	return a.pause, a.resume
}

// Paused reports whether the member is paused as of the last Update.
func (a *Aligner) Paused(id string) bool {
	m := a.members[id]
	return m != nil && m.paused
}
