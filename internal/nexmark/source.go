package nexmark

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/watermark"
)

// OutOfOrderness is the watermark bound of Events and FromEvents: each
// split's watermark trails its largest DateTime by 4 s.
const OutOfOrderness = 4 * time.Second

// pollBatch is the most events one Poll emits.
const pollBatch = 256

// feed is one split's events, by event number.
type feed interface {
	len() int64
	at(n int64, ev *Event)
}

type genFeed struct{ g *Generator }

func (f genFeed) len() int64            { return f.g.count }
func (f genFeed) at(n int64, ev *Event) { f.g.At(n, ev) }

type sliceFeed []Event

func (f sliceFeed) len() int64            { return int64(len(f)) }
func (f sliceFeed) at(n int64, ev *Event) { *ev = f[n] }

// EventSource is a bounded sluice.Source of Nexmark events with one split
// per generator ("nexmark-<g>"), each split's position (the event number of
// its next event) kept in checkpoints, so that a restore resumes exactly
// where the checkpoint was taken. Records carry their DateTime as the
// source timestamp. Make one with Source or (for tests) through FromEvents.
type EventSource struct {
	cfg    GeneratorConfig
	err    error
	slices [][]Event // FromEvents; nil for a generator

	once sync.Once
	ch   *channels
	// progress, when set, learns when each slice of event time was
	// first emitted (EventsWithProgress).
	progress *Progress
}

var (
	_ sluice.Source[Event]       = (*EventSource)(nil)
	_ sluice.SplitAssigner       = (*EventSource)(nil)
	_ sluice.SourceDescriber     = (*EventSource)(nil)
	_ sluice.SourceReader[Event] = (*reader)(nil)
	_ sluice.SplitAware          = (*reader)(nil)
)

// Source returns the generator as a source. An invalid cfg is reported when
// the job starts (call cfg.Validate to report it earlier).
func Source(cfg GeneratorConfig) *EventSource {
	return &EventSource{cfg: cfg, err: cfg.Validate()}
}

// Events adds the generator to env as a source named "nexmark", with event
// time from each event's DateTime and watermarks of bounded
// out-of-orderness OutOfOrderness per split (docs/design.md §14). Use
// cfg.Generators >= the environment's parallelism, or some source subtasks
// read nothing.
func Events(env *sluice.Environment, cfg GeneratorConfig) sluice.Stream[Event] {
	return withEventTime(env, "nexmark", Source(cfg))
}

// FromEvents adds a bounded source of the given events to env, one split
// per inner slice read in order, with the same timestamps and watermarks as
// Events: the input of the query tests. The slices must not be changed
// while the job runs.
func FromEvents(env *sluice.Environment, splits [][]Event) sluice.Stream[Event] {
	s := &EventSource{cfg: GeneratorConfig{Generators: len(splits)}, slices: splits}
	if len(splits) == 0 {
		s.err = errors.New("nexmark: FromEvents: no splits")
	}
	return withEventTime(env, "events", s)
}

// EventsWithProgress is Events with the source recording in p when it
// first emitted each slice of event time (the benchmark's latency).
func EventsWithProgress(env *sluice.Environment, cfg GeneratorConfig, p *Progress) sluice.Stream[Event] {
	s := Source(cfg)
	s.progress = p
	return withEventTime(env, "nexmark", s)
}

func withEventTime(env *sluice.Environment, name string, s *EventSource) sluice.Stream[Event] {
	return sluice.FromSourceWithWatermarks(env, name, s, watermark.ForBoundedOutOfOrderness(OutOfOrderness), nil)
}

// Config returns the generator configuration of the source.
func (s *EventSource) Config() GeneratorConfig { return s.cfg }

func (s *EventSource) channels() *channels {
	s.once.Do(func() { s.ch = sharedChannels(s.cfg) })
	return s.ch
}

// SplitID returns the id of split g: "nexmark-<g>".
func SplitID(g int) string { return "nexmark-" + strconv.Itoa(g) }

// ParseSplitID returns g of a split id "nexmark-<g>".
func ParseSplitID(id string) (int, error) {
	rest, ok := strings.CutPrefix(id, "nexmark-")
	n, err := strconv.Atoi(rest)
	if !ok || err != nil || n < 0 || strconv.Itoa(n) != rest {
		return 0, fmt.Errorf("nexmark: split id %q: want nexmark-<n> with n a non-negative integer", id)
	}
	return n, nil
}

// Splits lists the splits, each at its start.
func (s *EventSource) Splits(context.Context) ([]sluice.Split, error) {
	if s.err != nil {
		return nil, s.err
	}
	out := make([]sluice.Split, s.cfg.Generators)
	for i := range out {
		out[i] = sluice.Split{ID: SplitID(i)}
	}
	return out, nil
}

// AssignSplit gives split g to subtask g mod parallelism.
func (s *EventSource) AssignSplit(id string, parallelism int) int {
	n, err := ParseSplitID(id)
	if err != nil || parallelism <= 0 {
		return 0
	}
	return n % parallelism
}

// DescribeSource names the generator's parameters, so that a checkpoint of
// another stream is not restored into this one (docs/design.md §10).
func (s *EventSource) DescribeSource() checkpoint.SourceIdentity {
	if s.slices != nil {
		return checkpoint.SourceIdentity{Type: "nexmark-events", Names: []string{"splits=" + strconv.Itoa(len(s.slices))}}
	}
	c := s.cfg
	return checkpoint.SourceIdentity{Type: "nexmark", Names: []string{
		"base-time=" + strconv.FormatInt(c.BaseTime, 10),
		"events=" + strconv.FormatInt(c.Events, 10),
		"generators=" + strconv.Itoa(c.Generators),
		"profile=" + c.Profile.String(),
		"rate=" + strconv.FormatFloat(c.Rate, 'g', -1, 64),
		"seed=" + strconv.FormatUint(c.Seed, 10),
	}}
}

// NewReader returns the reader of one subtask.
func (s *EventSource) NewReader(context.Context, *sluice.OperatorContext) (sluice.SourceReader[Event], error) {
	if s.err != nil {
		return nil, s.err
	}
	ready := make(chan struct{})
	close(ready)
	return &reader{src: s, ready: ready}, nil
}

// split is one split a reader owns.
type split struct {
	index int
	id    string
	f     feed
	next  int64 // event number of the next event
	out   sluice.SplitOutput[Event]
}

type reader struct {
	src    *EventSource
	splits []*split // every split owned, by index, for snapshots
	active []*split // the splits not ended, polled round-robin
	turn   int
	told   bool // restored splits that ended were reported finished
	ready  chan struct{}
}

// EmitsPerSplit marks the reader as emitting each split through its own
// output (sluice.SplitAware): one watermark generator per split.
func (r *reader) EmitsPerSplit() {}

var errSplitState = errors.New("nexmark: corrupt split state (want a uvarint event number)")

func decodePosition(b []byte) (int64, error) {
	if len(b) == 0 {
		return 0, nil
	}
	v, n := binary.Uvarint(b)
	if n <= 0 || n != len(b) || v > math.MaxInt64 {
		return 0, errSplitState
	}
	return int64(v), nil
}

// AddSplits takes over splits at their positions.
func (r *reader) AddSplits(_ context.Context, splits []sluice.Split) error {
	for _, s := range splits {
		g, err := ParseSplitID(s.ID)
		if err != nil {
			return err
		}
		if g >= r.src.cfg.Generators {
			return fmt.Errorf("nexmark: split %s is out of range: the source has %d splits (nexmark.generators must not change for the life of a job)", s.ID, r.src.cfg.Generators)
		}
		pos, err := decodePosition(s.State)
		if err != nil {
			return fmt.Errorf("split %s: %w", s.ID, err)
		}
		for _, o := range r.splits {
			if o.index == g {
				return fmt.Errorf("nexmark: split %s assigned twice", s.ID)
			}
		}
		var f feed
		if r.src.slices != nil {
			f = sliceFeed(r.src.slices[g])
		} else {
			f = genFeed{newGenerator(r.src.cfg, g, r.src.channels())}
		}
		if pos > f.len() {
			return fmt.Errorf("nexmark: split %s: position %d is past its end %d", s.ID, pos, f.len())
		}
		sp := &split{index: g, id: s.ID, f: f, next: pos}
		r.splits = append(r.splits, sp)
		if pos < f.len() {
			r.active = append(r.active, sp)
		}
	}
	sort.Slice(r.splits, func(i, j int) bool { return r.splits[i].index < r.splits[j].index })
	sort.Slice(r.active, func(i, j int) bool { return r.active[i].index < r.active[j].index })
	return nil
}

// directSplit is the output of a split when the Emitter is not the
// engine's (tests): records go out without a timestamp.
type directSplit struct{ out sluice.Emitter[Event] }

func (d directSplit) Emit(v Event) error            { return d.out.Emit(v) }
func (d directSplit) EmitAt(v Event, _ int64) error { return d.out.Emit(v) }

// Poll emits up to pollBatch events of the next split in turn.
func (r *reader) Poll(ctx context.Context, out sluice.Emitter[Event]) (sluice.PollStatus, error) {
	if err := ctx.Err(); err != nil {
		return sluice.NothingAvailable, err
	}
	ro, _ := out.(sluice.ReaderOutput[Event])
	if !r.told {
		r.told = true
		for _, s := range r.splits {
			if ro != nil {
				s.out = ro.ForSplit(s.id)
				if s.next >= s.f.len() {
					ro.FinishSplit(s.id)
				}
			} else {
				s.out = directSplit{out}
			}
		}
	}
	if len(r.active) == 0 {
		return sluice.EndOfInput, nil
	}
	if r.turn >= len(r.active) {
		r.turn = 0
	}
	sp := r.active[r.turn]
	end := min(sp.next+pollBatch, sp.f.len())
	var err error
	if gf, ok := sp.f.(genFeed); ok {
		err = r.emitGenerated(sp, gf.g, end)
	} else {
		for ; sp.next < end && err == nil; sp.next++ {
			ev := &sp.f.(sliceFeed)[sp.next]
			err = sp.out.EmitAt(*ev, ev.DateTime()*int64(time.Millisecond))
		}
	}
	if err != nil {
		return sluice.MoreAvailable, err
	}
	if sp.next >= sp.f.len() {
		if ro != nil {
			ro.FinishSplit(sp.id)
		}
		r.active = append(r.active[:r.turn], r.active[r.turn+1:]...)
		if len(r.active) == 0 {
			return sluice.EndOfInput, nil
		}
	} else {
		r.turn++
	}
	return sluice.MoreAvailable, nil
}

// emitGenerated emits the generated events sp.next … end-1. The event is
// built in a local variable, not in the reader: on the stack, writing its
// strings costs no write barrier.
func (r *reader) emitGenerated(sp *split, g *Generator, end int64) error {
	var ev Event
	if p := r.src.progress; p != nil {
		p.mark(sp.index, g.timestamp(sp.next))
	}
	for sp.next < end {
		g.At(sp.next, &ev)
		if err := sp.out.EmitAt(ev, ev.DateTime()*int64(time.Millisecond)); err != nil {
			return err
		}
		sp.next++
	}
	return nil
}

// Available is always ready: a generator never waits.
func (r *reader) Available() <-chan struct{} { return r.ready }

// SnapshotSplits returns every split with the event number of its next
// event.
func (r *reader) SnapshotSplits(context.Context, int64) ([]sluice.Split, error) {
	out := make([]sluice.Split, len(r.splits))
	for i, sp := range r.splits {
		out[i] = sluice.Split{ID: sp.id, State: binary.AppendUvarint(nil, uint64(sp.next))}
	}
	return out, nil
}

// NotifyCheckpointComplete does nothing: the positions live in the
// checkpoint.
func (r *reader) NotifyCheckpointComplete(context.Context, int64) error { return nil }

// Close does nothing.
func (r *reader) Close(context.Context) error { return nil }
