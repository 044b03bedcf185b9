package sluice

import (
	"context"
	"fmt"
	"time"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/internal/runtime"
	"github.com/sluicehq/sluice/internal/state/heap"
	"github.com/sluicehq/sluice/state"
)

// KeyedProcessFunction processes a keyed stream with keyed state and
// processing-time and event-time timers (Flink's KeyedProcessFunction).
type KeyedProcessFunction[K comparable, IN, OUT any] interface {
	// Open is called once per subtask and attempt, after state was
	// restored: register state here.
	Open(rc *RuntimeContext[K]) error
	// ProcessElement is called for every record, with the record's key set
	// as the current key.
	ProcessElement(in IN, pc *ProcessContext[K, OUT]) error
}

// TimerFunction is implemented by a KeyedProcessFunction that uses timers.
type TimerFunction[K comparable, OUT any] interface {
	// OnTimer is called when a timer registered for pc.CurrentKey() fires;
	// pc.TimeDomain() says whether it is an event-time or a processing-time
	// timer. Records collected from an event-time timer carry its time as
	// their timestamp, those from a processing-time timer none.
	OnTimer(at time.Time, pc *ProcessContext[K, OUT]) error
}

// RuntimeContext gives a keyed function its state and where it runs.
type RuntimeContext[K comparable] struct {
	backend keyedBackend[K]
	op      *OperatorContext
}

// Operator returns the operator's context (uid, subtask, parallelism...).
func (rc *RuntimeContext[K]) Operator() *OperatorContext { return rc.op }

// NewValueState registers (or returns the restored) value state name.
func NewValueState[K comparable, V any](rc *RuntimeContext[K], name string, c codec.Codec[V], opts ...state.Option) (state.ValueState[V], error) {
	return newValueState(rc.backend, name, c, opts...)
}

// NewListState registers (or returns the restored) list state name.
func NewListState[K comparable, V any](rc *RuntimeContext[K], name string, c codec.Codec[V], opts ...state.Option) (state.ListState[V], error) {
	return newListState(rc.backend, name, c, opts...)
}

// NewMapState registers (or returns the restored) map state name.
func NewMapState[K, UK comparable, UV any](rc *RuntimeContext[K], name string, kc codec.Codec[UK], vc codec.Codec[UV], opts ...state.Option) (state.MapState[UK, UV], error) {
	return newMapState(rc.backend, name, kc, vc, opts...)
}

// NewReducingState registers (or returns the restored) reducing state name.
func NewReducingState[K comparable, V any](rc *RuntimeContext[K], name string, c codec.Codec[V], reduce func(a, b V) V, opts ...state.Option) (state.ReducingState[V], error) {
	return newReducingState(rc.backend, name, c, reduce, opts...)
}

// ProcessContext is what a keyed function sees per record or timer.
type ProcessContext[K comparable, OUT any] struct {
	Collector[OUT]
	backend keyedBackend[K]
	op      *OperatorContext
	// noTimers is set when the function is not a TimerFunction: its timers
	// could never fire.
	noTimers bool
	// tm carries the timestamp of the record or timer being processed;
	// wm is the operator's current watermark; domain the firing timer's.
	tm     *runtime.Time
	wm     int64
	domain TimeDomain
	// side holds the consumed side outputs (Output), sorted by tag id.
	side []sideEmitter
	// bcast is the operator's broadcast state (ProcessKeyedBroadcast),
	// nil for other keyed operators.
	bcast *broadcastStates
}

// TimeDomain says which clock a timer belongs to (Flink's TimeDomain).
type TimeDomain uint8

// The time domains.
const (
	// NoTimeDomain: not in OnTimer (processing a record).
	NoTimeDomain TimeDomain = iota
	// EventTime timers fire when the watermark passes them.
	EventTime
	// ProcessingTime timers fire when the job's clock passes them.
	ProcessingTime
)

// String returns "event-time", "processing-time" or "none".
func (d TimeDomain) String() string {
	switch d {
	case EventTime:
		return "event-time"
	case ProcessingTime:
		return "processing-time"
	}
	return "none"
}

// Timestamp returns the event time of the record being processed, in
// nanoseconds since the Unix epoch, or NoTimestamp if it has none; in
// OnTimer, the time of an event-time timer (NoTimestamp for a
// processing-time one).
func (c *ProcessContext[K, OUT]) Timestamp() int64 { return c.tm.TS }

// CollectWithTimestamp emits v with timestamp ts instead of the current
// record's (Flink's TimestampedCollector.setAbsoluteTimestamp, for one
// record).
func (c *ProcessContext[K, OUT]) CollectWithTimestamp(v OUT, ts int64) {
	saved := c.tm.TS
	c.tm.TS = ts
	c.Collect(v)
	c.tm.TS = saved
}

// CurrentWatermark returns the operator's current watermark, the minimum
// over its inputs' (watermark.NoWatermark before the first).
func (c *ProcessContext[K, OUT]) CurrentWatermark() int64 { return c.wm }

// TimeDomain returns the domain of the timer firing in OnTimer, and
// NoTimeDomain while a record is processed.
func (c *ProcessContext[K, OUT]) TimeDomain() TimeDomain { return c.domain }

// RegisterEventTimeTimer asks for OnTimer for the current key once the
// watermark reaches ts (nanoseconds since the epoch). One timer per key and
// time: registering it again is a no-op. Timers are checkpointed by key
// group. The function must implement TimerFunction.
func (c *ProcessContext[K, OUT]) RegisterEventTimeTimer(ts int64) {
	if c.noTimers {
		if c.err == nil {
			c.err = fmt.Errorf("%s: RegisterEventTimeTimer: the function does not implement sluice.TimerFunction (OnTimer(time.Time, *ProcessContext[K, OUT]) error), so its timers could never fire", c.op.UID)
		}
		return
	}
	c.backend.RegisterEventTimer(ts)
}

// DeleteEventTimeTimer removes the current key's event-time timer at ts.
func (c *ProcessContext[K, OUT]) DeleteEventTimeTimer(ts int64) { c.backend.DeleteEventTimer(ts) }

// CurrentKey returns the key of the record or timer being processed.
func (c *ProcessContext[K, OUT]) CurrentKey() K { return c.backend.CurrentKey() }

// CurrentProcessingTime returns the time of the job's clock.
func (c *ProcessContext[K, OUT]) CurrentProcessingTime() time.Time { return c.op.Clock.Now() }

// RegisterProcessingTimeTimer asks for OnTimer at t for the current key.
// Timers are part of the checkpointed state. The function must implement
// TimerFunction; otherwise the call fails the record (and the job).
func (c *ProcessContext[K, OUT]) RegisterProcessingTimeTimer(t time.Time) {
	if c.noTimers {
		// Silently keeping a timer that never fires would grow the state
		// forever; most likely OnTimer is missing or has the wrong
		// signature.
		if c.err == nil {
			c.err = fmt.Errorf("%s: RegisterProcessingTimeTimer: the function does not implement sluice.TimerFunction (OnTimer(time.Time, *ProcessContext[K, OUT]) error), so its timers could never fire", c.op.UID)
		}
		return
	}
	c.backend.RegisterTimer(t)
}

// DeleteProcessingTimeTimer removes the current key's timer at t.
func (c *ProcessContext[K, OUT]) DeleteProcessingTimeTimer(t time.Time) { c.backend.DeleteTimer(t) }

// Process applies a keyed process function to a keyed stream. newFn is
// called once per subtask and attempt: every subtask gets its own function
// value, so fields holding state handles are never shared.
func Process[K comparable, IN, OUT any](ks KeyedStream[K, IN], name string, newFn func() KeyedProcessFunction[K, IN, OUT], opts ...OpOption) Stream[OUT] {
	e := ks.s.env
	n := e.addNode(name, opts, ks.s.n.par)
	n.sideCapable, n.keyedState = true, true
	setFanout[OUT](n)
	n.make = func(sub int, out any) (instance, error) {
		fn := newFn()
		op := &keyedOp[K, IN, OUT]{fn: fn, key: ks.key}
		op.init(ks.codec, out.(Emitter[OUT]), fn, fn.Open)
		op.withState(e.state)
		return instance{op: op, ins: []any{Emitter[IN](op)}}, nil
	}
	connectKeyed(e, ks.s, n, 0, keyHashOf(ks))
	return Stream[OUT]{env: e, n: n}
}

// keyedBackend is a subtask's keyed-state backend as the keyed operators
// use it (docs/design.md §4): the heap backend (heapBackend) or the Pebble
// one, chosen per job by Config.State.Backend. State handles are made by
// NewValueState and its siblings, which dispatch on the concrete type.
type keyedBackend[K comparable] interface {
	// SetCurrentKey makes k the current key, hashing it for its key group;
	// a key outside the subtask's range is an error
	// (heap.ErrKeyGroupOutOfRange).
	SetCurrentKey(k K) error
	// SetCurrentKeyInGroup is SetCurrentKey for a key whose hash and key
	// group the caller already computed (the hash partitioner did); it
	// checks the range but does not hash again.
	SetCurrentKeyInGroup(k K, kh uint64, kg int) error
	CurrentKey() K
	CurrentKeyGroup() int
	KeyGroupRange() checkpoint.KeyGroupRange
	MaxParallelism() int
	NumKeys() int
	NumTimers() int
	NumEventTimers() int
	// Unregistered names the restored states not registered (yet).
	Unregistered() []string
	// KeysOf returns the keys with an entry in state name, in key-group
	// order, then by encoded key.
	KeysOf(name string) ([]K, error)
	RegisterTimer(t time.Time)
	DeleteTimer(t time.Time)
	NextTimer() (time.Time, bool)
	PopDueTimer(now time.Time) (K, time.Time, bool)
	RegisterEventTimer(ts int64)
	DeleteEventTimer(ts int64)
	PopEventTimer(wm int64) (K, int64, bool)
	// Snapshot is the synchronous part of a checkpoint or savepoint.
	Snapshot(checkpointID int64) keyedSnapshot
	// Restore reads canonical keyed-state files (format 2).
	Restore(files []heap.RestoreFile) error
	// PlanRestore and Plan are the restore check's planning mode
	// (docs/design.md §10).
	PlanRestore(keyCodec string, states []checkpoint.StateInfo) error
	Plan() []heap.Resolution
	// Close releases files and memory; the backend is not used after it.
	Close() error
}

// keyedSnapshot is what a backend's Snapshot returns: the runtime writes
// it (WriteKeyGroups, or WriteIncremental where it implements
// runtime.IncrementalSnapshot) and records its key codec and states in
// _metadata.
type keyedSnapshot interface {
	runtime.KeyedSnapshot
	KeyCodec() string
	States() []checkpoint.StateInfo
}

// nativeRestorer is implemented by a backend that restores its own native
// checkpoint files (checkpoint.StateHandle.Format set).
type nativeRestorer interface {
	RestoreNative(ctx context.Context, files []runtime.RestoredKeyed) error
}

// keyedCore is what every keyed operator shares: the state backend, the
// process context, timers, and the keyed lifecycle.
type keyedCore[K comparable, OUT any] struct {
	baseOp
	kc      codec.KeyCodec[K]
	timers  TimerFunction[K, OUT]
	open    func(*RuntimeContext[K]) error
	backend keyedBackend[K]
	pc      ProcessContext[K, OUT]
	// state is the job's state configuration and shared backend memory
	// (set by the builder: withState).
	state *stateEnv
	// pf is the backend if it can warm a batch's state (the heap
	// backend), nil if not.
	pf interface {
		Prefetch(kgs []uint16, hs []uint64)
	}
}

// withState gives the core the job's state configuration.
func (k *keyedCore[K, OUT]) withState(st *stateEnv) { k.state = st }

// init wires the core; fn is the user function (checked for timers), open
// its Open.
func (k *keyedCore[K, OUT]) init(kc codec.KeyCodec[K], out Emitter[OUT], fn any, open func(*RuntimeContext[K]) error) {
	k.kc, k.open = kc, open
	k.pc.out = out
	k.timers, _ = fn.(TimerFunction[K, OUT])
	k.pc.noTimers = k.timers == nil
}

// Open creates the backend, restores the keyed state of this subtask's key
// groups, and opens the user function.
func (k *keyedCore[K, OUT]) Open(ctx context.Context, rc *runtime.OperatorContext) error {
	if err := k.baseOp.Open(ctx, rc); err != nil {
		return err
	}
	oc := k.oc
	if k.state != nil {
		oc.State = k.state.cfg
	}
	b, err := newKeyedBackend(k.state, k.kc, oc)
	if err != nil {
		return err
	}
	k.backend = b
	k.pf, _ = b.(interface {
		Prefetch(kgs []uint16, hs []uint64)
	})
	if err := restoreKeyed(ctx, k.backend, oc); err != nil {
		return err
	}
	k.pc.backend, k.pc.op = k.backend, oc
	k.pc.tm, k.pc.wm = rc.Time, runtime.NoTimestamp
	if k.pc.tm == nil {
		k.pc.tm = runtime.NewTime()
	}
	if err := k.open(&RuntimeContext[K]{backend: k.backend, op: oc}); err != nil {
		return err
	}
	for _, name := range k.backend.Unregistered() {
		if oc.plan != nil {
			break // a restore check reports them
		}
		oc.Logger.Warn("restored keyed state not registered in Open: kept unchanged in checkpoints, but the function does not see it (was the state renamed?)",
			"operator", oc.UID, "state", name, "checkpoint", oc.Restored.CheckpointID)
	}
	return nil
}

// plannedStates returns the verdicts of a restore check on the key codec
// and the states (after Open with runtime.OperatorContext.PlanOnly).
func (k *keyedCore[K, OUT]) plannedStates() []heap.Resolution { return k.backend.Plan() }

// Snapshot freezes the keyed state (the synchronous part).
func (k *keyedCore[K, OUT]) Snapshot(_ context.Context, b runtime.Barrier) (*runtime.OperatorSnapshot, error) {
	return &runtime.OperatorSnapshot{Keyed: k.backend.Snapshot(b.ID)}, nil
}

// NotifyComplete tells the backend that checkpoint id completed.
func (k *keyedCore[K, OUT]) NotifyComplete(_ context.Context, id int64) error {
	if k.backend != nil {
		notifyBackend(k.backend, id)
	}
	return nil
}

// Close releases the backend (Pebble: closes its database).
func (k *keyedCore[K, OUT]) Close(context.Context) error {
	if k.backend == nil {
		return nil
	}
	b := k.backend
	k.backend, k.pc.backend = nil, nil
	if err := b.Close(); err != nil {
		return fmt.Errorf("%s/%d: close state backend: %w", k.uid, k.sub, err)
	}
	return nil
}

// NextTimer returns the earliest processing-time timer.
func (k *keyedCore[K, OUT]) NextTimer() (time.Time, bool) {
	if k.timers == nil {
		return time.Time{}, false
	}
	return k.backend.NextTimer()
}

// FireTimers calls OnTimer for every timer due at now, each with its key
// as the current key.
func (k *keyedCore[K, OUT]) FireTimers(now time.Time) error {
	for {
		key, at, ok := k.backend.PopDueTimer(now)
		if !ok {
			return nil
		}
		if err := k.backend.SetCurrentKey(key); err != nil {
			return fmt.Errorf("%s: timer: %w", k.uid, err)
		}
		k.pc.tm.TS, k.pc.domain = runtime.NoTimestamp, ProcessingTime
		err := k.timers.OnTimer(at, &k.pc)
		k.pc.domain = NoTimeDomain
		if err != nil {
			return fmt.Errorf("%s: timer: %w", k.uid, err)
		}
		if err := k.pc.take(); err != nil {
			return err
		}
	}
}

// OnWatermark fires, in timestamp order, every event-time timer at or
// before wm, each with its key as the current key and its time as the
// timestamp of what it emits; the task forwards wm afterwards.
func (k *keyedCore[K, OUT]) OnWatermark(_ context.Context, wm int64) error {
	k.pc.wm = wm
	if k.timers == nil {
		return nil
	}
	for {
		key, at, ok := k.backend.PopEventTimer(wm)
		if !ok {
			return nil
		}
		if err := k.backend.SetCurrentKey(key); err != nil {
			return fmt.Errorf("%s: event-time timer: %w", k.uid, err)
		}
		k.pc.tm.TS, k.pc.domain = at, EventTime
		err := k.timers.OnTimer(time.Unix(0, at), &k.pc)
		k.pc.domain = NoTimeDomain
		if err != nil {
			return fmt.Errorf("%s: event-time timer: %w", k.uid, err)
		}
		if err := k.pc.take(); err != nil {
			return err
		}
	}
}

// enter makes key the current key for the record about to be processed.
//
// The hash partitioner computed the key's hash and key group already and
// the input channel passed them in the task's Time (docs/design.md §2): the
// backend then checks its range without hashing the key again. A record without
// one (an operator tested alone) is hashed by the backend.
func (k *keyedCore[K, OUT]) enter(key K) error {
	k.hit()
	var err error
	if kg := k.pc.tm.KG; kg != runtime.NoKeyGroup {
		err = k.backend.SetCurrentKeyInGroup(key, k.pc.tm.Hash, kg)
	} else {
		err = k.backend.SetCurrentKey(key)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", k.uid, err)
	}
	return nil
}

// PrefetchKeys warms the value, reducing and list states' slots of a batch's keys
// before its records arrive one by one (runtime.KeyPrefetcher): the heap
// backend's lookups then find them in cache.
func (k *keyedCore[K, OUT]) PrefetchKeys(kgs []uint16, hs []uint64, _ []int64) {
	if k.pf != nil {
		k.pf.Prefetch(kgs, hs)
	}
}

// leave reports the user function's error, or the first downstream error
// its collector met.
func (k *keyedCore[K, OUT]) leave(err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", k.uid, err)
	}
	return k.pc.take()
}

type keyedOp[K comparable, IN, OUT any] struct {
	keyedCore[K, OUT]
	fn  KeyedProcessFunction[K, IN, OUT]
	key func(IN) K
}

// restoreKeyed restores the subtask's keyed state into b, or, for a restore
// check, puts b in planning mode for the checkpoint's states
// (heap.PlanRestore): registrations then record what a restore would do.
// Canonical keyed-state files restore into either backend; native files
// (checkpoint.StateHandle.Format, an incremental Pebble checkpoint) only
// into the backend that wrote them.
func restoreKeyed[K comparable](ctx context.Context, b keyedBackend[K], oc *OperatorContext) error {
	if oc.plan != nil {
		kc, states := oc.plan.States()
		if err := b.PlanRestore(kc, states); err != nil {
			return fmt.Errorf("%s: plan restore: %w", oc.UID, err)
		}
		return nil
	}
	if oc.Restored == nil || len(oc.Restored.Keyed) == 0 {
		return nil
	}
	var files []heap.RestoreFile
	var native []runtime.RestoredKeyed
	for _, f := range oc.Restored.Keyed {
		if f.Format == "" {
			files = append(files, heap.RestoreFile{Data: f.Data, Range: f.KeyGroups, Offsets: f.Offsets})
			continue
		}
		native = append(native, runtime.RestoredKeyed{Format: f.Format, Handles: f.Handles, Fetch: f.Fetch, KeyGroups: f.KeyGroups})
	}
	var err error
	switch {
	case len(native) > 0 && len(files) > 0:
		err = fmt.Errorf("%w: the checkpoint mixes canonical and %s keyed-state files for one subtask", state.ErrCorrupt, native[0].Format)
	case len(native) > 0:
		nr, ok := b.(nativeRestorer)
		if !ok {
			err = fmt.Errorf("%w: the checkpoint holds keyed state in the %q format of another state backend than this job's (state.backend %s): restore it with the backend that wrote it, or restore a savepoint (canonical format, any backend)",
				checkpoint.ErrIncompatible, native[0].Format, oc.State.Backend)
			break
		}
		err = nr.RestoreNative(ctx, native)
	default:
		err = b.Restore(files)
	}
	if err != nil {
		return fmt.Errorf("%s/%d: restore keyed state from checkpoint %d: %w", oc.UID, oc.Subtask, oc.Restored.CheckpointID, err)
	}
	return nil
}

func (k *keyedOp[K, IN, OUT]) Emit(v IN) error {
	if err := k.enter(k.key(v)); err != nil {
		return err
	}
	return k.leave(k.fn.ProcessElement(v, &k.pc))
}

// Reduce emits, for every record, the running reduction of its key's
// records so far (Flink's KeyedStream.reduce). The running value is keyed
// state encoded with c.
func Reduce[K comparable, T any](ks KeyedStream[K, T], name string, reduce func(acc, v T) T, c codec.Codec[T], opts ...OpOption) Stream[T] {
	return Process(ks, name, func() KeyedProcessFunction[K, T, T] { return &reducer[K, T]{reduce: reduce, c: c} }, opts...)
}

type reducer[K comparable, T any] struct {
	reduce func(acc, v T) T
	c      codec.Codec[T]
	acc    state.ValueState[T]
}

func (r *reducer[K, T]) Open(rc *RuntimeContext[K]) error {
	var err error
	r.acc, err = NewValueState(rc, "reduce", r.c)
	return err
}

func (r *reducer[K, T]) ProcessElement(v T, pc *ProcessContext[K, T]) error {
	if acc, ok := r.acc.Value(); ok {
		v = r.reduce(acc, v)
	}
	r.acc.Update(v)
	pc.Collect(v)
	return nil
}

// ConnectedStreams are two keyed streams with the same key type, processed
// together by one operator that shares keyed state between them (Flink's
// connect + keyBy).
type ConnectedStreams[K comparable, A, B any] struct {
	a KeyedStream[K, A]
	b KeyedStream[K, B]
}

// Connect joins two keyed streams for a KeyedCoProcessFunction. The first
// stream's key codec hashes and stores the keys of both.
func Connect[K comparable, A, B any](a KeyedStream[K, A], b KeyedStream[K, B]) ConnectedStreams[K, A, B] {
	return ConnectedStreams[K, A, B]{a: a, b: b}
}

// KeyedCoProcessFunction processes two keyed inputs with shared keyed state.
type KeyedCoProcessFunction[K comparable, A, B, OUT any] interface {
	// Open is called once per subtask and attempt, after state was
	// restored: register state here.
	Open(rc *RuntimeContext[K]) error
	// ProcessElement1 is called for every record of the first input, with
	// its key as the current key.
	ProcessElement1(in A, pc *ProcessContext[K, OUT]) error
	// ProcessElement2 is called for every record of the second input, with
	// its key as the current key.
	ProcessElement2(in B, pc *ProcessContext[K, OUT]) error
}

// CoProcess applies a function made by newFn (once per subtask and
// attempt) to connected streams. Barriers are aligned across both inputs.
func CoProcess[K comparable, A, B, OUT any](cs ConnectedStreams[K, A, B], name string, newFn func() KeyedCoProcessFunction[K, A, B, OUT], opts ...OpOption) Stream[OUT] {
	e := cs.a.s.env
	n := e.addNode(name, opts, cs.a.s.n.par)
	n.sideCapable, n.keyedState = true, true
	setFanout[OUT](n)
	n.make = func(sub int, out any) (instance, error) {
		fn := newFn()
		op := &coOp[K, A, B, OUT]{fn: fn, keyA: cs.a.key, keyB: cs.b.key}
		op.init(cs.a.codec, out.(Emitter[OUT]), fn, fn.Open)
		op.withState(e.state)
		return instance{op: op, ins: []any{Emitter[A](coInput1[K, A, B, OUT]{op}), Emitter[B](coInput2[K, A, B, OUT]{op})}}, nil
	}
	connectKeyed(e, cs.a.s, n, 0, keyHashOf(cs.a))
	// The keyed state is partitioned by the first stream's key codec, so
	// the second input is routed by it too: routed by its own codec's hash,
	// a record would reach a subtask that does not own its key group.
	bRoute := KeyedStream[K, B]{s: cs.b.s, key: cs.b.key, codec: cs.a.codec}
	connectKeyed(e, cs.b.s, n, 1, keyHashOf(bRoute))
	return Stream[OUT]{env: e, n: n}
}

type coOp[K comparable, A, B, OUT any] struct {
	keyedCore[K, OUT]
	fn   KeyedCoProcessFunction[K, A, B, OUT]
	keyA func(A) K
	keyB func(B) K
}

type coInput1[K comparable, A, B, OUT any] struct{ op *coOp[K, A, B, OUT] }

func (c coInput1[K, A, B, OUT]) Emit(v A) error {
	k := c.op
	if err := k.enter(k.keyA(v)); err != nil {
		return err
	}
	return k.leave(k.fn.ProcessElement1(v, &k.pc))
}

// PrefetchKeys warms the state of a batch of the first input
// (runtime.KeyPrefetcher).
func (c coInput1[K, A, B, OUT]) PrefetchKeys(kgs []uint16, hs []uint64, ts []int64) {
	c.op.PrefetchKeys(kgs, hs, ts)
}

type coInput2[K comparable, A, B, OUT any] struct{ op *coOp[K, A, B, OUT] }

// PrefetchKeys warms the state of a batch of the second input
// (runtime.KeyPrefetcher).
func (c coInput2[K, A, B, OUT]) PrefetchKeys(kgs []uint16, hs []uint64, ts []int64) {
	c.op.PrefetchKeys(kgs, hs, ts)
}

func (c coInput2[K, A, B, OUT]) Emit(v B) error {
	k := c.op
	if err := k.enter(k.keyB(v)); err != nil {
		return err
	}
	return k.leave(k.fn.ProcessElement2(v, &k.pc))
}
