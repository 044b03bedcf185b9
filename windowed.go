package sluice

import (
	"fmt"
	"time"

	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/window"
)

// WindowedStream is a keyed stream with a window assigner (Flink's
// WindowedStream): WindowReduce, WindowAggregate, WindowProcess or
// WindowAggregateProcess turn it into a stream of window results. Its
// methods return a modified copy.
type WindowedStream[K comparable, T any] struct {
	ks       KeyedStream[K, T]
	assigner window.Assigner
	trigger  window.Trigger
	hasTrig  bool
	evictor  window.Evictor
	hasEvict bool
	lateness time.Duration
	lateTag  string
	// generic keeps the operator off its fast path (tests).
	generic bool
}

// Window groups the records of each key of ks into the windows a assigns
// (window.Tumbling, Sliding, Session, Global; ProcessingTime for the job
// clock's time). An invalid assigner fails the job when it is built.
//
// Event-time windows read each record's timestamp (a record without one
// fails the job) and fire as the watermark passes their end; the final
// watermark at the end of bounded input fires them all. Processing-time
// windows fire on the job clock; at the end of input, those still open
// are not fired (as in Flink). Window state and timers are keyed state:
// checkpointed, restored at any parallelism, and dropped at the window's
// cleanup time (its end plus the allowed lateness), see docs/design.md
// §14.
func Window[K comparable, T any](ks KeyedStream[K, T], a window.Assigner) WindowedStream[K, T] {
	return WindowedStream[K, T]{ks: ks, assigner: a}
}

// Trigger sets when windows fire; the default is the assigner's
// (window.Assigner.DefaultTrigger: event time, processing time, or never
// for global windows).
func (w WindowedStream[K, T]) Trigger(t window.Trigger) WindowedStream[K, T] {
	w.trigger, w.hasTrig = t, true
	return w
}

// Evictor sets an evictor: the windows then keep their elements as a list
// (with timestamps) and the evictor drops some before (or after) the
// window function runs.
func (w WindowedStream[K, T]) Evictor(e window.Evictor) WindowedStream[K, T] {
	w.evictor, w.hasEvict = e, true
	return w
}

// AllowedLateness keeps the state of an event-time window for d after the
// watermark passed its end (default 0): a record arriving within d is
// added and the window fires again with the updated result. Records later
// than that are late (see SideOutputLateData).
func (w WindowedStream[K, T]) AllowedLateness(d time.Duration) WindowedStream[K, T] {
	w.lateness = d
	return w
}

// SideOutputLateData sends late records (those all of whose windows are
// past their allowed lateness) to the side output tag of the window
// operator: read them with SideOutput(results, tag). Late records are
// counted in VertexStatus.LateRecords either way; without a tag they are
// dropped, with a WARN for the first one.
func (w WindowedStream[K, T]) SideOutputLateData(tag OutputTag[T]) WindowedStream[K, T] {
	w.lateTag = tag.id
	if tag.id == "" {
		w.ks.s.env.fail(fmt.Errorf("window after %q: SideOutputLateData: empty OutputTag id", w.ks.s.n.name))
	}
	return w
}

// AggregateFunction is Flink's AggregateFunction: an incremental
// aggregation keeping one accumulator per key and window.
type AggregateFunction[IN, ACC, OUT any] interface {
	// CreateAccumulator returns the accumulator of an empty window.
	CreateAccumulator() ACC
	// Add folds v into acc and returns the result.
	Add(v IN, acc ACC) ACC
	// Merge combines two accumulators: of merging (session) windows, and
	// of the panes of a sliding window (the engine keeps one accumulator
	// per slide and merges a window's when it fires), so it must agree
	// with Add: Merge(Add(v, a), b) and Add(v, Merge(a, b)) give the same
	// Result.
	Merge(a, b ACC) ACC
	// Result returns the window's result from its accumulator.
	Result(acc ACC) OUT
}

// ProcessWindowFunction sees a whole window when it fires (Flink's
// ProcessWindowFunction).
type ProcessWindowFunction[K comparable, IN, OUT any] interface {
	// Process is called when a window of key fires, with its elements (in
	// arrival order; after eviction if an evictor is set; the one
	// aggregated value for WindowAggregateProcess). elements is only valid
	// during the call. What it collects carries the timestamp
	// wc.Window().MaxTimestamp().
	Process(key K, elements []IN, wc *WindowContext[OUT]) error
}

// WindowContext is what a ProcessWindowFunction sees: a Collector for its
// results and the window's metadata.
type WindowContext[OUT any] struct {
	Collector[OUT]
	w  window.Window
	wm int64
	op *OperatorContext
}

// Window returns the window being evaluated.
func (c *WindowContext[OUT]) Window() window.Window { return c.w }

// CurrentWatermark returns the window operator's current watermark.
func (c *WindowContext[OUT]) CurrentWatermark() int64 { return c.wm }

// CurrentProcessingTime returns the time of the job's clock.
func (c *WindowContext[OUT]) CurrentProcessingTime() time.Time { return c.op.Clock.Now() }

// Operator returns the window operator's context (uid, subtask, ...).
func (c *WindowContext[OUT]) Operator() *OperatorContext { return c.op }

// WindowReduce emits, for each window that fires, the reduction of its
// records by reduce (one running value per key and window, encoded with
// c), with timestamp w.MaxTimestamp().
func WindowReduce[K comparable, T any](ws WindowedStream[K, T], name string, reduce func(a, b T) T, c codec.Codec[T], opts ...OpOption) Stream[T] {
	return windowNode(ws, name, opts, func() *winFuncs[K, T, T, T] {
		return &winFuncs[K, T, T, T]{
			add: func(acc T, has bool, v T) T {
				if !has {
					return v
				}
				return reduce(acc, v)
			},
			merge:     reduce,
			accCodec:  c,
			elemCodec: c,
			fireAcc: func(_ K, acc T, wc *WindowContext[T]) error {
				wc.Collect(acc)
				return nil
			},
		}
	})
}

// WindowAggregate emits, for each window that fires, agg's Result of the
// window's accumulator (one per key and window, encoded with acc), with
// timestamp w.MaxTimestamp(). With an Evictor the records themselves are
// kept, which needs a built-in codec for T (codec.For); for other record
// types, evict in a WindowProcess.
func WindowAggregate[K comparable, T, ACC, OUT any](ws WindowedStream[K, T], name string, agg AggregateFunction[T, ACC, OUT], acc codec.Codec[ACC], opts ...OpOption) Stream[OUT] {
	return windowNode(ws, name, opts, func() *winFuncs[K, T, ACC, OUT] {
		f := aggFuncs[K, T, ACC, OUT](agg, acc)
		f.fireAcc = func(_ K, a ACC, wc *WindowContext[OUT]) error {
			wc.Collect(agg.Result(a))
			return nil
		}
		return f
	})
}

// WindowProcess keeps every record of a window (encoded with elem) and
// calls a ProcessWindowFunction, made by newFn once per subtask and
// attempt, with all of them when the window fires.
func WindowProcess[K comparable, T, OUT any](ws WindowedStream[K, T], name string, newFn func() ProcessWindowFunction[K, T, OUT], elem codec.Codec[T], opts ...OpOption) Stream[OUT] {
	return windowNode(ws, name, opts, func() *winFuncs[K, T, struct{}, OUT] {
		fn := newFn()
		return &winFuncs[K, T, struct{}, OUT]{elemCodec: elem, fireList: fn.Process}
	})
}

// WindowAggregateProcess aggregates incrementally with agg (one
// accumulator per key and window, encoded with acc) and, when a window
// fires, calls the function made by newFn (once per subtask and attempt)
// with the one aggregated value and the window's metadata.
func WindowAggregateProcess[K comparable, T, ACC, V, OUT any](ws WindowedStream[K, T], name string, agg AggregateFunction[T, ACC, V], acc codec.Codec[ACC], newFn func() ProcessWindowFunction[K, V, OUT], opts ...OpOption) Stream[OUT] {
	return windowNode(ws, name, opts, func() *winFuncs[K, T, ACC, OUT] {
		fn := newFn()
		f := aggFuncs[K, T, ACC, OUT](agg, acc)
		one := make([]V, 1)
		f.fireAcc = func(key K, a ACC, wc *WindowContext[OUT]) error {
			one[0] = agg.Result(a)
			return fn.Process(key, one, wc)
		}
		return f
	})
}

func aggFuncs[K comparable, T, ACC, OUT, V any](agg AggregateFunction[T, ACC, V], acc codec.Codec[ACC]) *winFuncs[K, T, ACC, OUT] {
	return &winFuncs[K, T, ACC, OUT]{
		add: func(a ACC, has bool, v T) ACC {
			if !has {
				a = agg.CreateAccumulator()
			}
			return agg.Add(v, a)
		},
		merge:    agg.Merge,
		accCodec: acc,
	}
}
