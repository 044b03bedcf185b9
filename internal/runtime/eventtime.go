package runtime

import (
	"context"
	"fmt"
	"math"
	"time"
)

// NoTimestamp is the timestamp of a record that has none (docs/design.md
// §14): math.MinInt64, the same value as watermark.NoWatermark.
const NoTimestamp int64 = math.MinInt64

// FinalWatermark is the watermark at the end of input (watermark.Final).
const FinalWatermark int64 = math.MaxInt64

// Time is the event-time state one task shares with every operator of its
// chain (docs/design.md §14). TS is the timestamp of the record being
// processed, in the manner of Flink's StreamRecord: a partition writer
// stores it beside the record in the batch, an input channel sets it from
// the batch before it hands a record over, and chained operators inherit it
// because they run inside the same call. An operator that emits with
// another timestamp sets TS around its Emit call and restores it. Only the
// task goroutine uses a Time.
//
// KG is the current record's key group when it came through a key-group
// writer (NewKeyGroupWriter), which computed it from the key's hash: the
// keyed operator at the head of the consuming chain passes it to its state
// backend instead of hashing the key again (docs/design.md §2, §4). It is
// NoKeyGroup otherwise, and outside the input channel's record loop.
type Time struct {
	// TS is the current record's timestamp, NoTimestamp if it has none.
	TS int64
	// KG is the current record's key group, NoKeyGroup if not known.
	KG int
	// Hash is the current record's key hash, from which KG was computed;
	// meaningful only while KG is not NoKeyGroup.
	Hash uint64
	t    *task
	wm   int64
}

// NewTime returns a Time without a task, for operators tested alone.
func NewTime() *Time { return &Time{TS: NoTimestamp, KG: NoKeyGroup, wm: NoTimestamp} }

// NoKeyGroup is Time.KG when the current record's key group is not known.
const NoKeyGroup = -1

// Watermark returns the last watermark the task passed to its chain.
func (t *Time) Watermark() int64 { return t.wm }

// EmitWatermark is called by a source driver: the chain's operators see
// watermark wm, then it is sent on every output. A watermark not above the
// last one is ignored (watermarks never go back).
func (t *Time) EmitWatermark(ctx context.Context, wm int64) error {
	if t.t == nil {
		if wm > t.wm {
			t.wm = wm
		}
		return nil
	}
	return t.t.emitWatermark(ctx, wm)
}

// EmitStatus is called by a source driver to send its idle status on every
// output, ordered with the records before it.
func (t *Time) EmitStatus(idle bool) error {
	if t.t == nil {
		return nil
	}
	return t.t.emitStatus(idle)
}

// WatermarkOperator is an Operator that reacts to watermarks: a keyed
// operator fires its event-time timers up to wm, in timestamp order, before
// the task forwards wm downstream.
type WatermarkOperator interface {
	Operator
	OnWatermark(ctx context.Context, wm int64) error
}

// WatermarkSource is a SourceDriver that generates watermarks: the task
// calls OnPeriodicWatermark every WatermarkInterval of its clock, on the
// task goroutine, and the driver emits through its OperatorContext's Time.
type WatermarkSource interface {
	SourceDriver
	// WatermarkInterval returns the emission period; 0 for none.
	WatermarkInterval() time.Duration
	// OnPeriodicWatermark emits the watermark and idle status due at now.
	OnPeriodicWatermark(ctx context.Context, now time.Time) error
}

// emitWatermark passes wm through the chain (each operator in chain order,
// so timers fired by one reach the next before the watermark does) and
// then onto every output.
func (t *task) emitWatermark(ctx context.Context, wm int64) error {
	tm := t.chain.Time
	if wm <= tm.wm {
		return nil
	}
	tm.wm = wm
	if t.stats != nil {
		t.stats.SetWatermark(wm)
	}
	saved := tm.TS
	for _, op := range t.ops() {
		if wo, ok := op.Op.(WatermarkOperator); ok {
			if err := wo.OnWatermark(ctx, wm); err != nil {
				return fmt.Errorf("%s: watermark: %w", op.UID, err)
			}
		}
	}
	tm.TS = saved
	for _, o := range t.chain.Outputs {
		if err := o.Watermark(wm); err != nil {
			return err
		}
	}
	return nil
}

func (t *task) emitStatus(idle bool) error {
	for _, o := range t.chain.Outputs {
		if err := o.Status(idle); err != nil {
			return err
		}
	}
	return nil
}
