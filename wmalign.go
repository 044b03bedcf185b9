package sluice

import (
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/sluicehq/sluice/watermark"
)

// SplitPauser is implemented by source readers that can stop and resume
// reading single splits, which watermark alignment needs
// (watermark.Strategy.WithAlignment; docs/design.md §14). The engine calls
// both on the subtask's goroutine, between polls, with split ids the reader
// owns, each at most once per change (a split is paused, then resumed, then
// perhaps paused again). A paused split emits nothing until it is resumed,
// but keeps its position: the reader still snapshots it, and records it
// fetched before the pause are emitted after the resume, in order. A reader
// whose splits are all paused returns NothingAvailable from Poll, and its
// Available must not fire for them (the task wakes on its own clock to
// learn when to resume).
type SplitPauser interface {
	// PauseSplits stops reading the splits ids.
	PauseSplits(ids []string)
	// ResumeSplits reads the splits ids again.
	ResumeSplits(ids []string)
}

// PausableSource is implemented by sources whose readers implement
// SplitPauser and SplitAware (the Kafka source, datagen). A source with a
// watermark alignment must be one: FromSourceWithWatermarks refuses the
// others when the job is planned, naming the source.
type PausableSource interface {
	// ReadersPauseSplits is a marker.
	ReadersPauseSplits()
}

// alignGroup is the coordinator of one watermark alignment group, the
// in-process counterpart of Flink's SourceCoordinator for FLIP-182: every
// source subtask of the group reports its splits' watermarks and idleness
// on its own alignment timer, and learns in the same call which of them the
// group's watermark.Aligner pauses. The Aligner decides; the group only
// serialises the calls (a mutex, held for no I/O) and keys them by attempt:
// the first subtask of a new attempt to open resets the group, so a restart
// starts from a fresh Aligner and a report of an earlier attempt's
// abandoned task is ignored.
type alignGroup struct {
	name   string
	drift  time.Duration
	source string // the first source of the group, for errors

	mu  sync.Mutex
	run string // the RunID of the attempt the Aligner belongs to
	al  *watermark.Aligner
}

// alignReport is one split's report to its group.
type alignReport struct {
	id   string
	wm   int64
	idle bool
}

// alignmentGroup returns the group of a source's alignment, creating it,
// or an error if the group exists with another drift.
func (e *Environment) alignmentGroup(source string, a watermark.Alignment) (*alignGroup, error) {
	if e.alignGroups == nil {
		e.alignGroups = map[string]*alignGroup{}
	}
	g := e.alignGroups[a.Group]
	if g == nil {
		if _, err := watermark.NewAligner(a.MaxDrift); err != nil {
			return nil, err
		}
		g = &alignGroup{name: a.Group, drift: a.MaxDrift, source: source}
		e.alignGroups[a.Group] = g
		return g, nil
	}
	if g.drift != a.MaxDrift {
		return nil, fmt.Errorf("watermark alignment group %q: max drift %v differs from %v of source %q; the sources of a group must agree on it",
			a.Group, a.MaxDrift, g.drift, g.source)
	}
	return g, nil
}

// join adds members at NoWatermark, active: the group waits for them (or
// for their idleness) before it lets anything run further than the drift.
// A join from a new attempt resets the group.
func (g *alignGroup) join(run string, ids []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if run != g.run || g.al == nil {
		g.run = run
		g.al, _ = watermark.NewAligner(g.drift) // the drift was checked at plan time
	}
	for _, id := range ids {
		g.al.Report(id, watermark.NoWatermark, false)
	}
}

// exchange removes the members removed, records reps, runs the Aligner and
// sets paused[i] to whether reps[i]'s member is paused now. It reports
// false, and changes nothing, for a caller of an earlier attempt.
func (g *alignGroup) exchange(run string, reps []alignReport, removed []string, paused []bool) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if run != g.run {
		return false
	}
	for _, id := range removed {
		g.al.Remove(id)
	}
	for _, r := range reps {
		g.al.Report(r.id, r.wm, r.idle)
	}
	g.al.Update()
	for i, r := range reps {
		paused[i] = g.al.Paused(r.id)
	}
	return true
}

// leave removes members (a reader at the end of its input or closed).
func (g *alignGroup) leave(run string, ids []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if run != g.run {
		return
	}
	for _, id := range ids {
		g.al.Remove(id)
	}
}

// splitAlign is one source subtask's side of its alignment group. Only the
// task goroutine uses it.
type splitAlign struct {
	g      *alignGroup
	run    string
	uid    string
	every  time.Duration
	next   time.Time
	pauser SplitPauser
	log    *slog.Logger
	// members are the splits reported, in the order they were added.
	members []*alignMember
	left    bool

	// Reused per exchange.
	reps          []alignReport
	removed       []string
	paused        []bool
	pause, resume []string
}

// alignMember is the alignment state of one split of a subtask.
type alignMember struct {
	split    string
	id       string // in the group: the source uid and the split id
	ws       *watermark.Split
	paused   bool // as applied to the reader
	finished bool
}

// add makes split ws a member. Members added before open join the group
// there; a split added later (a partition discovered while the job runs)
// joins with its first report.
func (a *splitAlign) add(ws *watermark.Split) *alignMember {
	m := &alignMember{split: ws.ID(), id: a.uid + "/" + ws.ID(), ws: ws}
	a.members = append(a.members, m)
	return m
}

// open joins the subtask's members to the group of attempt run.
func (a *splitAlign) open(run string) {
	a.run = run
	ids := make([]string, len(a.members))
	for i, m := range a.members {
		ids[i] = m.id
	}
	a.g.join(run, ids)
}

// step reports every member's watermark and idleness to the group when the
// update interval is due at now, and pauses and resumes the reader's splits
// as the group's Aligner decided. Finished members leave the group.
func (a *splitAlign) step(now time.Time) {
	if a.left || now.Before(a.next) {
		return
	}
	a.next = now.Add(a.every)
	a.reps, a.removed = a.reps[:0], a.removed[:0]
	keep := a.members[:0]
	for _, m := range a.members {
		if m.finished {
			a.removed = append(a.removed, m.id)
			continue
		}
		keep = append(keep, m)
		// A paused split falls silent and turns idle: that silence is the
		// pause's, not the split's, so it is reported active. Else a group
		// whose active members are all paused would see every member idle,
		// lift its bound (nothing to align with) and resume them all. The
		// slowest member reported active is never paused, so this cannot
		// deadlock: when the unpaused members are idle, that member is a
		// paused one, and it resumes.
		a.reps = append(a.reps, alignReport{id: m.id, wm: m.ws.Watermark(), idle: m.ws.Idle() && !m.paused})
	}
	clear(a.members[len(keep):])
	a.members = keep
	a.paused = slices.Grow(a.paused[:0], len(a.reps))[:len(a.reps)]
	if !a.g.exchange(a.run, a.reps, a.removed, a.paused) {
		return
	}
	a.pause, a.resume = a.pause[:0], a.resume[:0]
	for i, m := range a.members {
		switch p := a.paused[i]; {
		case p && !m.paused:
			m.paused = true
			a.pause = append(a.pause, m.split)
		case !p && m.paused:
			m.paused = false
			a.resume = append(a.resume, m.split)
		}
	}
	if len(a.pause) > 0 {
		a.log.Debug("watermark alignment: pausing splits", "group", a.g.name, "splits", a.pause)
		a.pauser.PauseSplits(a.pause)
	}
	if len(a.resume) > 0 {
		a.log.Debug("watermark alignment: resuming splits", "group", a.g.name, "splits", a.resume)
		a.pauser.ResumeSplits(a.resume)
	}
}

// leave removes every member from the group: the reader's input ended or
// it closes. Nothing is reported after.
func (a *splitAlign) leave() {
	if a.left {
		return
	}
	a.left = true
	ids := make([]string, len(a.members))
	for i, m := range a.members {
		ids[i] = m.id
	}
	a.g.leave(a.run, ids)
}
