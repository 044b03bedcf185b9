package sluice

import (
	"context"
	"fmt"
	"time"

	"github.com/sluicehq/sluice/internal/runtime"
	"github.com/sluicehq/sluice/watermark"
)

// NoTimestamp is the timestamp of a record that has none: math.MinInt64.
// Timestamps are int64 nanoseconds since the Unix epoch (docs/design.md
// §14), the same unit as package watermark.
const NoTimestamp = runtime.NoTimestamp

// TimestampAssigner returns the event time of v, in nanoseconds since the
// Unix epoch; ts is the timestamp the source gave it (a Kafka record's
// timestamp), NoTimestamp if none. Flink's TimestampAssigner.
type TimestampAssigner[T any] func(v T, ts int64) int64

// SplitOutput is what a source reader emits one split's records into, so
// that they feed that split's watermark generator (docs/design.md §14).
type SplitOutput[T any] interface {
	// Emit emits v; its timestamp is the assigner's, or none.
	Emit(v T) error
	// EmitAt emits v with the source's timestamp ts (nanoseconds since the
	// epoch); a TimestampAssigner given at FromSource overrides it.
	EmitAt(v T, ts int64) error
}

// ReaderOutput is implemented by the Emitter the engine passes to
// SourceReader.Poll. A reader that reads several splits emits each split's
// records through ForSplit(id), so that watermarks are generated per split
// (a Kafka partition, a datagen split) and combined as the minimum over the
// reader's active splits; records emitted through the Emitter itself
// belong to one reader-wide split. Readers should type-assert the Emitter
// and fall back to it when it is not a ReaderOutput (in tests).
type ReaderOutput[T any] interface {
	Emitter[T]
	// ForSplit returns the output of split id; the same one on every call.
	ForSplit(id string) SplitOutput[T]
	// FinishSplit says that split id has ended (a bounded split): it no
	// longer holds the watermark back.
	FinishSplit(id string)
	// Direct returns the engine's downstream Emitter, true, when the source
	// neither generates watermarks nor assigns timestamps: a reader whose
	// records have no timestamps of their own (datagen) may then emit into
	// it and save a call per record. False otherwise.
	Direct() (Emitter[T], bool)
}

// WatermarkOption configures WithWatermarks.
type WatermarkOption[T any] func(*eventTimeSpec[T])

// WithTimestampAssigner sets the function that gives every record of the
// source its event time, overriding the source's own timestamps.
func WithTimestampAssigner[T any](f TimestampAssigner[T]) WatermarkOption[T] {
	return func(s *eventTimeSpec[T]) { s.assign = f }
}

type eventTimeSpec[T any] struct {
	strategy watermark.Strategy
	assign   TimestampAssigner[T]
	set      bool
	// group is the source's alignment group, nil without alignment.
	group *alignGroup
	every time.Duration
}

// FromSourceWithWatermarks adds a source whose readers generate watermarks
// with strategy: one generator per split, the reader's watermark the
// minimum over its active splits, emitted every Config.WatermarkInterval
// and at the end of input as watermark.Final (docs/design.md §14).
//
// With Strategy.WithAlignment the source's splits align with every split
// of every source of the same group (Flink's FLIP-182 and FLIP-217): each
// source subtask reports its splits' watermarks and idleness to the
// group's coordinator every update interval of its clock (at the
// watermark emission due then, so not more often than
// Config.WatermarkInterval), and pauses the splits whose watermark is more
// than the drift ahead of the group's slowest active split until the group
// catches up. The source must be a PausableSource, and the sources of a
// group must agree on the drift: the job fails to plan otherwise, naming
// the source.
func FromSourceWithWatermarks[T any](e *Environment, name string, src Source[T], strategy watermark.Strategy, wopts []WatermarkOption[T], opts ...OpOption) Stream[T] {
	spec := &eventTimeSpec[T]{strategy: strategy, set: true}
	for _, o := range wopts {
		o(spec)
	}
	if err := strategy.Validate(); err != nil {
		e.fail(fmt.Errorf("source %q: watermark strategy: %w", name, err))
	}
	if a, ok := strategy.Alignment(); ok {
		if _, ok := any(src).(PausableSource); !ok {
			e.fail(fmt.Errorf("source %q: watermark alignment (group %q) needs a source whose readers can pause splits, and %T cannot (it implements no sluice.PausableSource)", name, a.Group, src))
		} else if g, err := e.alignmentGroup(name, a); err != nil {
			e.fail(fmt.Errorf("source %q: %w", name, err))
		} else {
			spec.group, spec.every = g, a.UpdateInterval
		}
	}
	return fromSource(e, name, src, spec, opts)
}

// srcOutput is the ReaderOutput of one source subtask.
type srcOutput[T any] struct {
	out    Emitter[T]
	tm     *runtime.Time
	assign TimestampAssigner[T]
	// r is nil when the source generates no watermarks.
	r      *watermark.Reader
	clk    func() time.Time
	splits map[string]*splitOut[T]
	whole  *splitOut[T]
	// al is the subtask's side of its watermark alignment group, nil
	// without alignment.
	al *splitAlign
	// status is how the driver sends an idle status change.
	status func(idle bool) error
}

type splitOut[T any] struct {
	o  *srcOutput[T]
	ws *watermark.Split // nil without watermarks
	am *alignMember     // nil without alignment
}

// Emit emits a record of the reader-wide split.
func (o *srcOutput[T]) Emit(v T) error {
	if o.r == nil && o.assign == nil {
		return o.out.Emit(v)
	}
	if o.whole == nil {
		o.whole = o.forSplit("")
	}
	return o.whole.EmitAt(v, NoTimestamp)
}

// ForSplit implements ReaderOutput.
func (o *srcOutput[T]) ForSplit(id string) SplitOutput[T] {
	if o.r == nil && o.assign == nil {
		return directOutput[T]{o.out, o.tm}
	}
	return o.forSplit(id)
}

// Direct implements ReaderOutput.
func (o *srcOutput[T]) Direct() (Emitter[T], bool) {
	if o.r != nil || o.assign != nil {
		return nil, false
	}
	return o.out, true
}

// directOutput is a split output without watermarks or assigner: it only
// forwards, with the source's timestamp.
type directOutput[T any] struct {
	out Emitter[T]
	tm  *runtime.Time
}

func (d directOutput[T]) Emit(v T) error { return d.out.Emit(v) }

func (d directOutput[T]) EmitAt(v T, ts int64) error {
	d.tm.TS = ts
	err := d.out.Emit(v)
	d.tm.TS = NoTimestamp
	return err
}

func (o *srcOutput[T]) forSplit(id string) *splitOut[T] {
	if s, ok := o.splits[id]; ok {
		return s
	}
	s := &splitOut[T]{o: o}
	if o.r != nil {
		s.ws = o.r.Split(id)
		if s.ws == nil {
			s.ws, _ = o.r.AddSplit(id, o.clk()) // cannot fail: not there
		}
		// The reader-wide split "" cannot be paused by id: it does not
		// align (an aligned reader is SplitAware and emits per split).
		if o.al != nil && id != "" {
			s.am = o.al.add(s.ws)
		}
	}
	o.splits[id] = s
	return s
}

// FinishSplit implements ReaderOutput.
func (o *srcOutput[T]) FinishSplit(id string) {
	if o.r != nil && o.r.Split(id) != nil {
		_ = o.r.FinishSplit(id)
	}
	if s := o.splits[id]; s != nil && s.am != nil {
		s.am.finished = true // leaves the group at the next report
	}
}

func (s *splitOut[T]) Emit(v T) error { return s.EmitAt(v, NoTimestamp) }

func (s *splitOut[T]) EmitAt(v T, ts int64) error {
	o := s.o
	if o.assign != nil {
		ts = o.assign(v, ts)
	}
	if s.ws != nil {
		if o.r.Idle() {
			// Downstream must not see a record on a channel it believes
			// idle: the status change goes first.
			if st := o.r.MarkActive(); st.StatusChanged {
				if err := o.status(false); err != nil {
					return err
				}
			}
		}
		if ts != NoTimestamp {
			s.ws.OnEvent(ts)
		}
	}
	o.tm.TS = ts
	err := o.out.Emit(v)
	o.tm.TS = NoTimestamp
	return err
}

// OnPeriodicWatermark implements runtime.WatermarkSource. With alignment,
// the splits' fresh watermarks are then reported to the group when its
// update interval is due.
func (d *sourceDriver[T]) OnPeriodicWatermark(ctx context.Context, now time.Time) error {
	r := d.so.r
	if r == nil {
		return nil
	}
	if err := d.emitPeriodic(ctx, r, now); err != nil {
		return err
	}
	if d.so.al != nil {
		d.so.al.step(now)
	}
	return nil
}

func (d *sourceDriver[T]) emitPeriodic(ctx context.Context, r *watermark.Reader, now time.Time) error {
	o := r.OnPeriodicEmit(now)
	if o.StatusChanged && !o.Idle {
		if err := d.tm.EmitStatus(false); err != nil {
			return err
		}
	}
	if o.Advanced {
		if err := d.tm.EmitWatermark(ctx, o.Watermark); err != nil {
			return err
		}
	}
	if o.StatusChanged && o.Idle {
		return d.tm.EmitStatus(true)
	}
	return nil
}

// WatermarkInterval implements runtime.WatermarkSource.
func (d *sourceDriver[T]) WatermarkInterval() time.Duration {
	if d.so == nil || d.so.r == nil {
		return 0
	}
	return d.interval
}
