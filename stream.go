package sluice

import (
	"context"
	"fmt"

	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/fault"
	"github.com/sluicehq/sluice/internal/runtime"
)

// Stream is a parallel stream of records of type T.
type Stream[T any] struct {
	env *Environment
	n   *node
	// tag is the id of the side output of n this stream is (SideOutput),
	// empty for n's main output.
	tag string
}

// Env returns the stream's environment.
func (s Stream[T]) Env() *Environment { return s.env }

// Name returns the name of the operator producing the stream.
func (s Stream[T]) Name() string { return s.n.name }

// KeyedStream is a stream partitioned by key: all records of one key go to
// the same subtask, and keyed operators keep state per key.
type KeyedStream[K comparable, T any] struct {
	s     Stream[T]
	key   func(T) K
	codec codec.KeyCodec[K]
}

// KeyOption configures KeyBy.
type KeyOption[K comparable] func(*codec.KeyCodec[K])

// WithKeyCodec sets the codec (encoding and stable hash) of the key type;
// needed when K is not a built-in type of package codec.
func WithKeyCodec[K comparable](c codec.KeyCodec[K]) KeyOption[K] {
	return func(p *codec.KeyCodec[K]) { *p = c }
}

// baseOp is the no-op lifecycle shared by operators.
type baseOp struct {
	oc     *OperatorContext
	faults *fault.Injector
	uid    string
	sub    int
}

func (b *baseOp) Open(_ context.Context, rc *runtime.OperatorContext) error {
	oc := operatorContext(rc)
	b.oc, b.faults, b.uid, b.sub = oc, oc.Faults, oc.UID, oc.Subtask
	return nil
}
func (b *baseOp) Snapshot(context.Context, runtime.Barrier) (*runtime.OperatorSnapshot, error) {
	return nil, nil
}
func (b *baseOp) NotifyComplete(context.Context, int64) error { return nil }
func (b *baseOp) NotifyAborted(context.Context, int64) error  { return nil }
func (b *baseOp) EndInput(context.Context) error              { return nil }
func (b *baseOp) Close(context.Context) error                 { return nil }

// hit is the per-record failure-injection point; it costs a nil check when
// no injector is configured.
func (b *baseOp) hit() {
	if b.faults != nil {
		b.faults.Hit(fault.OnRecord, b.uid, b.sub)
	}
}

// oneInput adds a node with one input edge from s, producing OUT, whose
// subtasks are built by mk.
func oneInput[IN, OUT any](s Stream[IN], name string, opts []OpOption, part runtime.Partitioning, target func(IN) int,
	mk func(sub int, out Emitter[OUT]) (runtime.Operator, Emitter[IN], error)) Stream[OUT] {
	e := s.env
	n := e.addNode(name, opts, s.n.par)
	setFanout[OUT](n)
	n.make = func(sub int, out any) (instance, error) {
		op, in, err := mk(sub, out.(Emitter[OUT]))
		if err != nil {
			return instance{}, err
		}
		return instance{op: op, ins: []any{in}}, nil
	}
	connect(e, s, n, 0, part, target)
	return Stream[OUT]{env: e, n: n}
}

// Map applies f to every record.
func Map[IN, OUT any](s Stream[IN], name string, f func(IN) OUT, opts ...OpOption) Stream[OUT] {
	return oneInput(s, name, opts, runtime.Forward, nil, func(_ int, out Emitter[OUT]) (runtime.Operator, Emitter[IN], error) {
		op := &mapOp[IN, OUT]{f: f, out: out}
		return op, op, nil
	})
}

type mapOp[IN, OUT any] struct {
	baseOp
	f   func(IN) OUT
	out Emitter[OUT]
}

func (m *mapOp[IN, OUT]) Emit(v IN) error {
	m.hit()
	return m.out.Emit(m.f(v))
}

// Filter keeps the records for which keep returns true.
func Filter[T any](s Stream[T], name string, keep func(T) bool, opts ...OpOption) Stream[T] {
	return oneInput(s, name, opts, runtime.Forward, nil, func(_ int, out Emitter[T]) (runtime.Operator, Emitter[T], error) {
		op := &filterOp[T]{keep: keep, out: out}
		return op, op, nil
	})
}

type filterOp[T any] struct {
	baseOp
	keep func(T) bool
	out  Emitter[T]
}

func (f *filterOp[T]) Emit(v T) error {
	f.hit()
	if f.keep(v) {
		return f.out.Emit(v)
	}
	return nil
}

// FlatMap calls f for every record; f emits any number of outputs.
func FlatMap[IN, OUT any](s Stream[IN], name string, f func(IN, *Collector[OUT]) error, opts ...OpOption) Stream[OUT] {
	return oneInput(s, name, opts, runtime.Forward, nil, func(_ int, out Emitter[OUT]) (runtime.Operator, Emitter[IN], error) {
		op := &flatMapOp[IN, OUT]{f: f, c: Collector[OUT]{out: out}}
		return op, op, nil
	})
}

type flatMapOp[IN, OUT any] struct {
	baseOp
	f func(IN, *Collector[OUT]) error
	c Collector[OUT]
}

func (m *flatMapOp[IN, OUT]) Emit(v IN) error {
	m.hit()
	if err := m.f(v, &m.c); err != nil {
		return fmt.Errorf("%s: %w", m.uid, err)
	}
	return m.c.take()
}

// Rebalance redistributes records round-robin over the next operator's
// subtasks (to even out skew).
func Rebalance[T any](s Stream[T], name string, opts ...OpOption) Stream[T] {
	return oneInput(s, name, opts, runtime.Rebalance, nil, identity[T])
}

// Broadcast sends every record to every subtask of the next operator.
func Broadcast[T any](s Stream[T], name string, opts ...OpOption) Stream[T] {
	return oneInput(s, name, opts, runtime.Broadcast, nil, identity[T])
}

func identity[T any](_ int, out Emitter[T]) (runtime.Operator, Emitter[T], error) {
	op := &passOp[T]{out: out}
	return op, op, nil
}

type passOp[T any] struct {
	baseOp
	out Emitter[T]
}

func (p *passOp[T]) Emit(v T) error { return p.out.Emit(v) }

// Union merges streams of the same type into one.
func Union[T any](name string, first Stream[T], more []Stream[T], opts ...OpOption) Stream[T] {
	e := first.env
	n := e.addNode(name, append([]OpOption{StartNewChain()}, opts...), first.n.par)
	setFanout[T](n)
	all := append([]Stream[T]{first}, more...)
	n.make = func(sub int, out any) (instance, error) {
		op := &passOp[T]{out: out.(Emitter[T])}
		ins := make([]any, len(all))
		for i := range ins {
			ins[i] = Emitter[T](op)
		}
		return instance{op: op, ins: ins}, nil
	}
	for i, s := range all {
		connect[T](e, s, n, i, runtime.Forward, nil)
	}
	return Stream[T]{env: e, n: n}
}

// KeyBy partitions s by key. K needs a KeyCodec: built-in for strings,
// integers, floats and bools, and for every type whose underlying type is
// one of them (`type UserID string`, `type Shard int32`: codec.KeyFor);
// otherwise, as for a struct key, pass WithKeyCodec.
func KeyBy[T any, K comparable](s Stream[T], key func(T) K, opts ...KeyOption[K]) KeyedStream[K, T] {
	kc, _ := codec.KeyFor[K]()
	for _, o := range opts {
		o(&kc)
	}
	if kc == nil {
		var zero K
		s.env.fail(fmt.Errorf("KeyBy after %q: no built-in key codec for %T; pass sluice.WithKeyCodec", s.n.name, zero))
	}
	return KeyedStream[K, T]{s: s, key: key, codec: kc}
}

// Sink writes s to sink.
func Sink[T any](s Stream[T], name string, sink SinkProvider[T], opts ...OpOption) {
	e := s.env
	n := e.addNode(name, opts, s.n.par)
	n.isSink = true
	n.advice.txn, _ = any(sink).(TransactionalSink)
	n.fanout = func([]any) any { return nil }
	n.make = func(sub int, _ any) (instance, error) {
		op, err := sink.newSinkOperator()
		if err != nil {
			return instance{}, fmt.Errorf("sink %s: %w", name, err)
		}
		return instance{op: op, ins: []any{Emitter[T](op)}}, nil
	}
	connect[T](e, s, n, 0, runtime.Forward, nil)
}
