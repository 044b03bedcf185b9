package sluice

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/internal/runtime"
	"github.com/sluicehq/sluice/state"
)

// BroadcastStateDescriptor names a broadcast state, a map from UK to UV,
// and gives its codecs (Flink's MapStateDescriptor used for broadcast).
// The name is the state's identity in checkpoints: keep it, and the
// codecs' encodings, across versions of a job that restores its
// checkpoints; a restore whose codecs differ from those the state was
// written with is refused (docs/design.md §10).
type BroadcastStateDescriptor[UK comparable, UV any] struct {
	name string
	kc   codec.Codec[UK]
	vc   codec.Codec[UV]
}

// NewBroadcastStateDescriptor returns the descriptor of broadcast state
// name whose keys kc and values vc encode in checkpoints.
func NewBroadcastStateDescriptor[UK comparable, UV any](name string, kc codec.Codec[UK], vc codec.Codec[UV]) BroadcastStateDescriptor[UK, UV] {
	return BroadcastStateDescriptor[UK, UV]{name: name, kc: kc, vc: vc}
}

// Name returns the state's name.
func (d BroadcastStateDescriptor[UK, UV]) Name() string { return d.name }

func (d BroadcastStateDescriptor[UK, UV]) validate() error {
	switch {
	case d.name == "":
		return errors.New("empty broadcast state name")
	case d.kc == nil || d.vc == nil:
		return fmt.Errorf("broadcast state %q: nil key or value codec", d.name)
	}
	return nil
}

func (d BroadcastStateDescriptor[UK, UV]) newState() bcastState {
	return &bcastMap[UK, UV]{name: d.name, kc: d.kc, vc: d.vc, kcID: codec.IDOf(d.kc), vcID: codec.IDOf(d.vc), idx: map[UK]int{}}
}

// AnyBroadcastStateDescriptor is a BroadcastStateDescriptor of any key and
// value types, as BroadcastWith takes them.
type AnyBroadcastStateDescriptor interface {
	// Name returns the state's name.
	Name() string
	validate() error
	newState() bcastState
}

// BroadcastStream is a stream to be broadcast to every subtask of the
// operator it is connected to, with the broadcast states that operator
// keeps (Flink's BroadcastStream). Make one with BroadcastWith; connect it
// with ConnectBroadcast or ConnectKeyedBroadcast.
type BroadcastStream[T any] struct {
	s     Stream[T]
	descs []AnyBroadcastStateDescriptor
}

// BroadcastWith declares s as a broadcast stream and the broadcast states
// the operator it is connected to keeps (Flink's DataStream.broadcast(
// descriptors...)): the broadcast state pattern, in which a low-rate
// stream of rules or configuration is sent to every subtask of an
// operator, which keeps it in broadcast state, a map per descriptor that
// every subtask holds in full, and applies it to the records of its main
// input, keyed or not. At least one descriptor is needed, with unique
// non-empty names and non-nil codecs; a mistake fails the job build. (The
// name Broadcast is the partitioning that sends every record to every
// subtask without state.)
//
// Only ProcessBroadcastElement may change broadcast state; ProcessElement
// (and OnTimer) sees it read-only. This is what keeps every subtask's copy
// the same: each subtask sees every broadcast record, and, if the function
// is deterministic, applies the same changes. Only the order between the
// inputs differs: broadcast records reach the subtasks at different points
// of their main input, so a main record may be processed before the rule
// it would match on one subtask and after it on another. A function that
// must not depend on that holds records back (in keyed state, until an
// event-time timer: the operator's watermark is the minimum over both
// inputs) until the rules in force for them have arrived; see
// examples/broadcastrules.
//
// Broadcast state is operator state (docs/design.md §4): each subtask
// writes its copy, with the codecs' IDs, inline into the checkpoint's
// _metadata, so keep it small. On a restore at another parallelism, new
// subtask i reads the copy of old subtask i mod the old parallelism; any
// copy will do, because they are identical when the function is
// deterministic. Its entries iterate in insertion order, the same on every
// subtask and after a restore.
func BroadcastWith[T any](s Stream[T], descs ...AnyBroadcastStateDescriptor) BroadcastStream[T] {
	if len(descs) == 0 {
		s.env.fail(fmt.Errorf("BroadcastWith after %q: no broadcast state descriptor", s.n.name))
	}
	seen := map[string]bool{}
	for _, d := range descs {
		if err := d.validate(); err != nil {
			s.env.fail(fmt.Errorf("BroadcastWith after %q: %w", s.n.name, err))
			continue
		}
		if seen[d.Name()] {
			s.env.fail(fmt.Errorf("BroadcastWith after %q: broadcast state %q is declared twice", s.n.name, d.Name()))
		}
		seen[d.Name()] = true
	}
	return BroadcastStream[T]{s: s, descs: slices.Clone(descs)}
}

// BroadcastConnectedStreams are a non-keyed stream and a broadcast stream,
// to be processed together by ProcessBroadcast.
type BroadcastConnectedStreams[IN, BC any] struct {
	main Stream[IN]
	bc   BroadcastStream[BC]
}

// ConnectBroadcast connects the non-keyed stream s with the broadcast
// stream b (Flink's DataStream.connect(BroadcastStream)).
func ConnectBroadcast[IN, BC any](s Stream[IN], b BroadcastStream[BC]) BroadcastConnectedStreams[IN, BC] {
	return BroadcastConnectedStreams[IN, BC]{main: s, bc: b}
}

// KeyedBroadcastConnectedStreams are a keyed stream and a broadcast stream,
// to be processed together by ProcessKeyedBroadcast.
type KeyedBroadcastConnectedStreams[K comparable, IN, BC any] struct {
	main KeyedStream[K, IN]
	bc   BroadcastStream[BC]
}

// ConnectKeyedBroadcast connects the keyed stream ks with the broadcast
// stream b (Flink's KeyedStream.connect(BroadcastStream)).
func ConnectKeyedBroadcast[K comparable, IN, BC any](ks KeyedStream[K, IN], b BroadcastStream[BC]) KeyedBroadcastConnectedStreams[K, IN, BC] {
	return KeyedBroadcastConnectedStreams[K, IN, BC]{main: ks, bc: b}
}

// BroadcastProcessFunction processes a non-keyed stream with broadcast
// state (Flink's BroadcastProcessFunction). Broadcast records may reach the
// subtasks at different points of their main input: see ProcessBroadcast.
type BroadcastProcessFunction[IN, BC, OUT any] interface {
	// Open is called once per subtask and attempt, after the broadcast
	// state was restored.
	Open(oc *OperatorContext) error
	// ProcessElement is called for every record of the main input; it
	// reads broadcast state with ReadOnlyBroadcastStateFor.
	ProcessElement(in IN, c *ReadOnlyContext[OUT]) error
	// ProcessBroadcastElement is called, on every subtask, for every
	// record of the broadcast input; it changes broadcast state with
	// BroadcastStateFor. It must change it the same way on every subtask
	// (be deterministic), since every subtask keeps its own copy.
	ProcessBroadcastElement(in BC, c *BroadcastContext[OUT]) error
}

// KeyedBroadcastProcessFunction processes a keyed stream with keyed state,
// timers and broadcast state (Flink's KeyedBroadcastProcessFunction). It
// may implement TimerFunction for processing-time and event-time timers;
// OnTimer reads broadcast state as ProcessElement does. No key is current
// in ProcessBroadcastElement: keyed state handles are used there only
// inside KeyedBroadcastContext.ApplyToKeyedState, which makes each key of
// the subtask current in turn.
type KeyedBroadcastProcessFunction[K comparable, IN, BC, OUT any] interface {
	// Open is called once per subtask and attempt, after keyed and
	// broadcast state were restored: register keyed state here.
	Open(rc *RuntimeContext[K]) error
	// ProcessElement is called for every record of the keyed input, with
	// its key as the current key; it reads broadcast state with
	// ReadOnlyBroadcastStateFor(pc, descriptor).
	ProcessElement(in IN, pc *ProcessContext[K, OUT]) error
	// ProcessBroadcastElement is called, on every subtask, for every
	// record of the broadcast input; it changes broadcast state with
	// BroadcastStateFor, deterministically (see BroadcastProcessFunction).
	ProcessBroadcastElement(in BC, c *KeyedBroadcastContext[K, OUT]) error
}

// ProcessBroadcast applies a function made by newFn (once per subtask and
// attempt) to a non-keyed stream connected to a broadcast stream. The main
// input reaches the operator as any input would (forward at equal
// parallelism, else rebalanced), the broadcast input reaches every subtask.
//
// Ordering: each subtask sees the broadcast records in the order each
// upstream subtask sent them, but interleaved with its main input at points
// that differ between subtasks and between runs (as in Flink). Barriers are
// aligned on both inputs, so a checkpoint's broadcast state and the
// positions of both inputs are consistent; the operator's watermark is the
// minimum over both inputs, so a broadcast source with no watermarks of its
// own holds event time back until it ends: give it a watermark strategy with
// idleness (watermark.Strategy.WithIdleness). The function emits to side
// outputs with BroadcastOutput.
func ProcessBroadcast[IN, BC, OUT any](cs BroadcastConnectedStreams[IN, BC], name string, newFn func() BroadcastProcessFunction[IN, BC, OUT], opts ...OpOption) Stream[OUT] {
	e := cs.main.env
	n := e.addNode(name, opts, cs.main.n.par)
	n.sideCapable = true
	setFanout[OUT](n)
	descs := cs.bc.descs
	n.make = func(sub int, out any) (instance, error) {
		op := &bcastOp[IN, BC, OUT]{fn: newFn()}
		op.states = newBroadcastStates(descs)
		op.ro.out = out.(Emitter[OUT])
		op.bc.out = op.ro.out
		return instance{op: op, ins: []any{Emitter[IN](bcastMain[IN, BC, OUT]{op}), Emitter[BC](bcastSide[IN, BC, OUT]{op})}}, nil
	}
	connect(e, cs.main, n, 0, runtime.Forward, nil)
	connect(e, cs.bc.s, n, 1, runtime.Broadcast, nil)
	return Stream[OUT]{env: e, n: n}
}

// ProcessKeyedBroadcast applies a function made by newFn (once per subtask
// and attempt) to a keyed stream connected to a broadcast stream: the keyed
// input is partitioned by key as for Process, the broadcast input reaches
// every subtask. Ordering, barriers and watermarks are as for
// ProcessBroadcast; keyed state and timers are as for Process. The
// function emits to side outputs with Output from ProcessElement and
// OnTimer, with BroadcastOutput from ProcessBroadcastElement.
func ProcessKeyedBroadcast[K comparable, IN, BC, OUT any](cs KeyedBroadcastConnectedStreams[K, IN, BC], name string, newFn func() KeyedBroadcastProcessFunction[K, IN, BC, OUT], opts ...OpOption) Stream[OUT] {
	ks := cs.main
	e := ks.s.env
	n := e.addNode(name, opts, ks.s.n.par)
	n.sideCapable, n.keyedState = true, true
	setFanout[OUT](n)
	descs := cs.bc.descs
	n.make = func(sub int, out any) (instance, error) {
		fn := newFn()
		op := &keyedBcastOp[K, IN, BC, OUT]{fn: fn, key: ks.key}
		op.init(ks.codec, out.(Emitter[OUT]), fn, fn.Open)
		op.withState(e.state)
		op.states = newBroadcastStates(descs)
		op.pc.bcast = op.states
		op.bc.out = op.pc.out
		return instance{op: op, ins: []any{Emitter[IN](keyedBcastMain[K, IN, BC, OUT]{op}), Emitter[BC](keyedBcastSide[K, IN, BC, OUT]{op})}}, nil
	}
	connectKeyed(e, ks.s, n, 0, keyHashOf(ks))
	connect(e, cs.bc.s, n, 1, runtime.Broadcast, nil)
	return Stream[OUT]{env: e, n: n}
}

// BroadcastStateReader is a context that can read broadcast state: a
// *ReadOnlyContext, a *BroadcastContext, or the *ProcessContext of a
// KeyedBroadcastProcessFunction.
type BroadcastStateReader interface {
	broadcastStates() *broadcastStates
}

// ReadOnlyBroadcastStateFor returns the broadcast state of d as c's
// function sees it outside ProcessBroadcastElement: read-only. It fails if
// d was not declared with BroadcastWith, or was declared with other types.
// The lookup is cheap (a scan of the declared states, no allocation): call
// it per record.
func ReadOnlyBroadcastStateFor[UK comparable, UV any](c BroadcastStateReader, d BroadcastStateDescriptor[UK, UV]) (ReadOnlyBroadcastState[UK, UV], error) {
	m, err := lookupBroadcast(c.broadcastStates(), d)
	return ReadOnlyBroadcastState[UK, UV]{m: m}, err
}

// BroadcastStateWriter is the context of ProcessBroadcastElement: a
// *BroadcastContext or a *KeyedBroadcastContext.
type BroadcastStateWriter interface {
	writableStates() *broadcastStates
}

// BroadcastStateFor returns the writable broadcast state of d, in
// ProcessBroadcastElement. It fails as ReadOnlyBroadcastStateFor does.
func BroadcastStateFor[UK comparable, UV any](c BroadcastStateWriter, d BroadcastStateDescriptor[UK, UV]) (BroadcastState[UK, UV], error) {
	m, err := lookupBroadcast(c.writableStates(), d)
	return BroadcastState[UK, UV]{ReadOnlyBroadcastState[UK, UV]{m: m}}, err
}

func lookupBroadcast[UK comparable, UV any](bs *broadcastStates, d BroadcastStateDescriptor[UK, UV]) (*bcastMap[UK, UV], error) {
	if bs == nil {
		return nil, fmt.Errorf("broadcast state %q: the function does not run in a broadcast operator (ProcessBroadcast, ProcessKeyedBroadcast)", d.name)
	}
	for _, s := range bs.states {
		if s.stateName() != d.name {
			continue
		}
		m, ok := s.(*bcastMap[UK, UV])
		if !ok {
			return nil, fmt.Errorf("%s: broadcast state %q is declared as %s, not %T", bs.uid, d.name, s.typeName(), map[UK]UV(nil))
		}
		return m, nil
	}
	return nil, fmt.Errorf("%s: broadcast state %q is not declared (BroadcastWith)", bs.uid, d.name)
}

// ReadOnlyBroadcastState is a read-only view of one broadcast state. Its
// entries iterate in insertion order (a Put of an existing key keeps its
// place), the same on every subtask and after a restore.
type ReadOnlyBroadcastState[UK comparable, UV any] struct {
	m *bcastMap[UK, UV]
}

// Get returns the value of k, and whether there is one.
func (s ReadOnlyBroadcastState[UK, UV]) Get(k UK) (UV, bool) {
	i, ok := s.m.idx[k]
	if !ok {
		var zero UV
		return zero, false
	}
	return s.m.vals[i], true
}

// Contains reports whether k has a value.
func (s ReadOnlyBroadcastState[UK, UV]) Contains(k UK) bool {
	_, ok := s.m.idx[k]
	return ok
}

// Len returns the number of entries.
func (s ReadOnlyBroadcastState[UK, UV]) Len() int { return len(s.m.keys) }

// All iterates over the entries in insertion order. The state must not be
// changed during the iteration.
func (s ReadOnlyBroadcastState[UK, UV]) All() iter.Seq2[UK, UV] {
	return func(yield func(UK, UV) bool) {
		for i, k := range s.m.keys {
			if !yield(k, s.m.vals[i]) {
				return
			}
		}
	}
}

// BroadcastState is the writable view of one broadcast state, which
// ProcessBroadcastElement gets.
type BroadcastState[UK comparable, UV any] struct {
	ReadOnlyBroadcastState[UK, UV]
}

// Put sets the value of k.
func (s BroadcastState[UK, UV]) Put(k UK, v UV) { s.m.put(k, v) }

// Remove deletes k's entry, if any.
func (s BroadcastState[UK, UV]) Remove(k UK) { s.m.remove(k) }

// Clear deletes every entry.
func (s BroadcastState[UK, UV]) Clear() {
	clear(s.m.idx)
	clear(s.m.keys)
	clear(s.m.vals)
	s.m.keys, s.m.vals = s.m.keys[:0], s.m.vals[:0]
}

// bcastCtx is what both broadcast contexts share.
type bcastCtx[OUT any] struct {
	Collector[OUT]
	op     *OperatorContext
	tm     *runtime.Time
	wm     *int64
	states *broadcastStates
	side   []sideEmitter
}

// Timestamp returns the event time of the record being processed, or
// NoTimestamp if it has none.
func (c *bcastCtx[OUT]) Timestamp() int64 { return c.tm.TS }

// CollectWithTimestamp emits v with timestamp ts instead of the current
// record's.
func (c *bcastCtx[OUT]) CollectWithTimestamp(v OUT, ts int64) {
	saved := c.tm.TS
	c.tm.TS = ts
	c.Collect(v)
	c.tm.TS = saved
}

// CurrentWatermark returns the operator's current watermark, the minimum
// over both inputs' (watermark.NoWatermark before the first).
func (c *bcastCtx[OUT]) CurrentWatermark() int64 { return *c.wm }

// CurrentProcessingTime returns the time of the job's clock.
func (c *bcastCtx[OUT]) CurrentProcessingTime() time.Time { return c.op.Clock.Now() }

// Operator returns the operator's context (uid, subtask, parallelism...).
func (c *bcastCtx[OUT]) Operator() *OperatorContext { return c.op }

func (c *bcastCtx[OUT]) broadcastStates() *broadcastStates { return c.states }

func (c *bcastCtx[OUT]) sideTarget() ([]sideEmitter, string, *error) {
	return c.side, c.op.UID, &c.err
}

// BroadcastOutputContext is the context of a broadcast function that side
// outputs are emitted from with BroadcastOutput: a *ReadOnlyContext, a
// *BroadcastContext or a *KeyedBroadcastContext. (The *ProcessContext of a
// KeyedBroadcastProcessFunction uses Output.)
type BroadcastOutputContext interface {
	sideTarget() (side []sideEmitter, uid string, errp *error)
}

// BroadcastOutput emits v to the side output tag of the broadcast operator
// running c's function (Flink's Context.output), from ProcessElement of a
// BroadcastProcessFunction or from ProcessBroadcastElement of either kind,
// with the timestamp of the record being processed. It behaves as Output:
// a tag no SideOutput consumes drops v; a downstream error, an empty tag id
// or another type than the consumer's fails the record.
func BroadcastOutput[T any](c BroadcastOutputContext, tag OutputTag[T], v T) {
	side, uid, errp := c.sideTarget()
	if *errp != nil {
		return
	}
	if tag.id == "" {
		*errp = fmt.Errorf("%s: sluice.BroadcastOutput: empty OutputTag id", uid)
		return
	}
	for i := range side {
		if side[i].id != tag.id {
			continue
		}
		so, ok := side[i].em.(*sideOut[T])
		if !ok {
			*errp = fmt.Errorf("%s: sluice.BroadcastOutput: side output %q carries %T, not %T", uid, tag.id, side[i].em, so)
			return
		}
		*errp = so.out.Emit(v)
		return
	}
}

// ReadOnlyContext is what a BroadcastProcessFunction's ProcessElement
// sees: a collector, the record's time, and read-only broadcast state
// (ReadOnlyBroadcastStateFor).
type ReadOnlyContext[OUT any] struct{ bcastCtx[OUT] }

// BroadcastContext is what ProcessBroadcastElement sees: a collector, the
// broadcast record's time, and writable broadcast state (BroadcastStateFor).
type BroadcastContext[OUT any] struct{ bcastCtx[OUT] }

func (c *BroadcastContext[OUT]) writableStates() *broadcastStates { return c.states }

// KeyedBroadcastContext is what ProcessBroadcastElement of a
// KeyedBroadcastProcessFunction sees: a BroadcastContext, and the keyed
// state of the subtask's keys through ApplyToKeyedState.
type KeyedBroadcastContext[K comparable, OUT any] struct {
	BroadcastContext[OUT]
	backend keyedBackend[K]
}

// ApplyToKeyedState calls fn for every key of this subtask that has an
// entry in the keyed state named state (registered in Open), with that key
// as the current key: the function's state handles read and write that
// key's state inside fn (Flink's applyToKeyedState). Keys are visited in
// key-group order, then by encoded key, the same on every run; fn may
// change or clear the current key's state. Each subtask visits only the
// keys it owns. It costs a pass over the state's keys and
// allocates: it is for broadcast records (a rule that must revisit every
// key), not for every record. The first error fn returns ends the visit
// and is returned.
func (c *KeyedBroadcastContext[K, OUT]) ApplyToKeyedState(state string, fn func(key K) error) error {
	keys, err := c.backend.KeysOf(state)
	if err != nil {
		return fmt.Errorf("ApplyToKeyedState: %w", err)
	}
	for _, k := range keys {
		if err := c.backend.SetCurrentKey(k); err != nil {
			return fmt.Errorf("ApplyToKeyedState %q: %w", state, err)
		}
		if err := fn(k); err != nil {
			return err
		}
	}
	return nil
}

// broadcastStates implements BroadcastStateReader for the context of a
// KeyedBroadcastProcessFunction (nil elsewhere: lookups then fail).
func (c *ProcessContext[K, OUT]) broadcastStates() *broadcastStates { return c.bcast }

// bcastState is one broadcast state of one subtask, untyped.
type bcastState interface {
	stateName() string
	typeName() string
	// encode returns the state's checkpoint entry.
	encode() []byte
	// restore replaces the content with that of entry, checking the
	// codecs it was written with.
	restore(entry []byte) error
	// plan says what restore would do with entry.
	plan(entry []byte) bcastVerdict
}

// broadcastStates are the broadcast states of one subtask, in declaration
// order, and the restored ones the function no longer declares (kept
// unchanged, by operator state name).
type broadcastStates struct {
	uid    string
	states []bcastState
	kept   map[string][]byte
}

func newBroadcastStates(descs []AnyBroadcastStateDescriptor) *broadcastStates {
	bs := &broadcastStates{states: make([]bcastState, len(descs))}
	for i, d := range descs {
		bs.states[i] = d.newState()
	}
	return bs
}

// broadcastPrefix prefixes the operator state name of a broadcast state.
const broadcastPrefix = checkpoint.BroadcastStatePrefix

// restore loads the subtask's copy of every broadcast state from the
// checkpoint: old subtask sub mod the old parallelism's entry (every old
// subtask wrote one per state, and restore lists them in subtask order).
func (bs *broadcastStates) restore(oc *OperatorContext) error {
	bs.uid = oc.UID
	if oc.Restored == nil {
		return nil
	}
	declared := map[string]bcastState{}
	for _, s := range bs.states {
		declared[broadcastPrefix+s.stateName()] = s
	}
	for name, entries := range oc.Restored.Operator {
		if !strings.HasPrefix(name, broadcastPrefix) || len(entries) == 0 {
			continue
		}
		entry := entries[oc.Subtask%len(entries)]
		s, ok := declared[name]
		if !ok {
			if bs.kept == nil {
				bs.kept = map[string][]byte{}
			}
			bs.kept[name] = entry
			oc.Logger.Warn("restored broadcast state not declared with BroadcastWith: kept unchanged in checkpoints, but the function does not see it (was the state renamed?)",
				"operator", oc.UID, "state", strings.TrimPrefix(name, broadcastPrefix), "checkpoint", oc.Restored.CheckpointID)
			continue
		}
		if err := s.restore(entry); err != nil {
			return fmt.Errorf("restore broadcast state from checkpoint %d: %w", oc.Restored.CheckpointID, err)
		}
	}
	return nil
}

// snapshot adds the subtask's copy of every broadcast state to ops.
func (bs *broadcastStates) snapshot(ops map[string][][]byte) map[string][][]byte {
	if ops == nil {
		ops = make(map[string][][]byte, len(bs.states)+len(bs.kept))
	}
	for _, s := range bs.states {
		ops[broadcastPrefix+s.stateName()] = [][]byte{s.encode()}
	}
	for name, e := range bs.kept {
		ops[name] = [][]byte{e}
	}
	return ops
}

// bcastMap is one broadcast state: a map with its keys in insertion order.
type bcastMap[UK comparable, UV any] struct {
	name       string
	kc         codec.Codec[UK]
	vc         codec.Codec[UV]
	kcID, vcID codec.ID
	idx        map[UK]int
	keys       []UK
	vals       []UV
}

func (m *bcastMap[UK, UV]) stateName() string { return m.name }
func (m *bcastMap[UK, UV]) typeName() string  { return fmt.Sprintf("%T", map[UK]UV(nil)) }

func (m *bcastMap[UK, UV]) put(k UK, v UV) {
	if i, ok := m.idx[k]; ok {
		m.vals[i] = v
		return
	}
	m.idx[k] = len(m.keys)
	m.keys = append(m.keys, k)
	m.vals = append(m.vals, v)
}

func (m *bcastMap[UK, UV]) remove(k UK) {
	i, ok := m.idx[k]
	if !ok {
		return
	}
	delete(m.idx, k)
	m.keys = slices.Delete(m.keys, i, i+1)
	m.vals = slices.Delete(m.vals, i, i+1)
	for j := i; j < len(m.keys); j++ {
		m.idx[m.keys[j]] = j
	}
}

// codecRef is id as a checkpoint records it.
func codecRef(id codec.ID) checkpoint.CodecRef { return checkpoint.CodecRef(id) }

// encode lays the state out as a checkpoint.BroadcastHeader (layout
// version, the codecs' IDs, the number of entries), then each key and value
// with the codecs, in insertion order.
func (m *bcastMap[UK, UV]) encode() []byte {
	h := checkpoint.BroadcastHeader{KeyCodec: codecRef(m.kcID), ValueCodec: codecRef(m.vcID), Entries: uint64(len(m.keys))}
	b := h.Append(nil)
	for i, k := range m.keys {
		b = m.kc.Append(b, k)
		b = m.vc.Append(b, m.vals[i])
	}
	return b
}

// bcastVerdict is what restoring a broadcast state entry does: the one
// resolution (codec.Resolve on the key and value codecs) that the restore
// and CheckRestore apply (docs/design.md §10).
type bcastVerdict struct {
	outcome      Outcome // RestoredAsIs, Migrated or Incompatible
	reason       string
	written, now []string
}

// resolve resolves the codecs of an entry with header h against the
// state's, returning the decoders to restore with (nil if Incompatible).
func (m *bcastMap[UK, UV]) resolve(h checkpoint.BroadcastHeader) (bcastVerdict, codec.DecodeFunc[UK], codec.DecodeFunc[UV]) {
	kcID, vcID := codec.ID(h.KeyCodec), codec.ID(h.ValueCodec)
	v := bcastVerdict{outcome: RestoredAsIs, written: []string{kcID.String(), vcID.String()}, now: []string{m.kcID.String(), m.vcID.String()}}
	kcomp, kd := codec.Resolve(m.kc, kcID)
	vcomp, vd := codec.Resolve(m.vc, vcID)
	var refused, migrated []string
	for _, c := range []struct {
		comp      codec.Compatibility
		role      string
		then, now codec.ID
	}{{kcomp, "key", kcID, m.kcID}, {vcomp, "value", vcID, m.vcID}} {
		d := fmt.Sprintf("%s codec %s, the job reads it with %s", c.role, c.then, c.now)
		switch c.comp {
		case codec.CompatibleAfterMigration:
			migrated = append(migrated, c.role+" codec")
		case codec.Incompatible:
			refused = append(refused, d)
		}
	}
	switch {
	case len(refused) > 0:
		v.outcome = Incompatible
		v.reason = fmt.Sprintf("broadcast state %q was written with %s, which does not declare that it reads the old version (codec.Evolving)",
			m.name, strings.Join(refused, "; "))
		return v, nil, nil
	case len(migrated) > 0:
		v.outcome = Migrated
		v.reason = fmt.Sprintf("the %s reads the old version: migrated at restore, the next checkpoint writes the new one",
			strings.Join(migrated, " and "))
	}
	return v, kd, vd
}

// plan is what restoring entry does, without restoring it (CheckRestore).
func (m *bcastMap[UK, UV]) plan(entry []byte) bcastVerdict {
	h, _, err := checkpoint.ParseBroadcastHeader(entry)
	if err != nil {
		return bcastVerdict{outcome: Incompatible, reason: fmt.Sprintf("broadcast state %q: %v", m.name, err)}
	}
	v, _, _ := m.resolve(h)
	return v
}

// restore replaces the content with entry's. The codecs it was written
// with are resolved first (resolve): a refusal names both IDs without
// decoding, a migration decodes with the old readers; where an ID is
// undeclared only decoding can tell, and a failure is then an
// incompatibility if the IDs differ, corruption if they are equal
// (docs/design.md §10, as for keyed state).
func (m *bcastMap[UK, UV]) restore(b []byte) error {
	corrupt := func(err error) error {
		return fmt.Errorf("broadcast state %q: %w: %w", m.name, state.ErrCorrupt, err)
	}
	h, n, err := checkpoint.ParseBroadcastHeader(b)
	switch {
	case errors.Is(err, checkpoint.ErrBroadcastFormat):
		return fmt.Errorf("%w: broadcast state %q: %w", checkpoint.ErrIncompatible, m.name, err)
	case err != nil:
		return corrupt(err)
	}
	b = b[n:]
	v, kd, vd := m.resolve(h)
	if v.outcome == Incompatible {
		return fmt.Errorf("%w: %s", checkpoint.ErrIncompatible, v.reason)
	}
	kcID, vcID := codec.ID(h.KeyCodec), codec.ID(h.ValueCodec)
	decodeErr := func(err error) error {
		if (kcID != m.kcID || vcID != m.vcID) && v.outcome == RestoredAsIs {
			return fmt.Errorf("%w: broadcast state %q was written with key codec %s and value codec %s, the job reads it with %s and %s, which cannot read it: %w",
				checkpoint.ErrIncompatible, m.name, kcID, vcID, m.kcID, m.vcID, err)
		}
		return corrupt(err)
	}
	clear(m.idx)
	m.keys, m.vals = m.keys[:0], m.vals[:0]
	for range h.Entries {
		k, n, err := kd(b)
		if err != nil {
			return decodeErr(err)
		}
		b = b[n:]
		v, n, err := vd(b)
		if err != nil {
			return decodeErr(err)
		}
		b = b[n:]
		m.put(k, v)
	}
	if len(b) != 0 {
		return decodeErr(fmt.Errorf("%d bytes after the last entry", len(b)))
	}
	return nil
}

// plan reports what restoring the operator's checkpointed state st does to
// every broadcast state: declared ones restored, migrated, refused or new,
// restored ones no longer declared dropped (kept, unseen).
func (bs *broadcastStates) plan(st *checkpoint.OperatorState) []StateRestore {
	entries := map[string][]byte{}
	for _, sub := range st.Subtasks {
		if sub == nil {
			continue
		}
		for name, es := range sub.Operator {
			if b, ok := strings.CutPrefix(name, broadcastPrefix); ok && len(es) > 0 {
				if _, seen := entries[b]; !seen {
					entries[b] = es[0]
				}
			}
		}
	}
	var out []StateRestore
	for _, s := range bs.states {
		e, ok := entries[s.stateName()]
		delete(entries, s.stateName())
		if !ok {
			out = append(out, StateRestore{Name: s.stateName(), Kind: "broadcast", Outcome: Added, Reason: "starts empty"})
			continue
		}
		v := s.plan(e)
		out = append(out, StateRestore{Name: s.stateName(), Kind: "broadcast", Outcome: v.outcome, Reason: v.reason, Written: v.written, Now: v.now})
	}
	for _, name := range slices.Sorted(maps.Keys(entries)) {
		out = append(out, StateRestore{Name: name, Kind: "broadcast", Outcome: Dropped,
			Reason: "in the checkpoint, but no longer declared with BroadcastWith: kept unchanged in later checkpoints, invisible to the function (was it renamed?)"})
	}
	return out
}

// broadcastPlan implements broadcastPlanner.
func (b *bcastOp[IN, BC, OUT]) broadcastPlan(st *checkpoint.OperatorState) []StateRestore {
	return b.states.plan(st)
}

// broadcastPlan implements broadcastPlanner.
func (k *keyedBcastOp[K, IN, BC, OUT]) broadcastPlan(st *checkpoint.OperatorState) []StateRestore {
	return k.states.plan(st)
}

// bcastOp is a subtask of ProcessBroadcast.
type bcastOp[IN, BC, OUT any] struct {
	baseOp
	fn     BroadcastProcessFunction[IN, BC, OUT]
	states *broadcastStates
	ro     ReadOnlyContext[OUT]
	bc     BroadcastContext[OUT]
	wm     int64
}

func (b *bcastOp[IN, BC, OUT]) Open(ctx context.Context, rc *runtime.OperatorContext) error {
	if err := b.baseOp.Open(ctx, rc); err != nil {
		return err
	}
	if err := b.states.restore(b.oc); err != nil {
		return err
	}
	tm := rc.Time
	if tm == nil {
		tm = runtime.NewTime()
	}
	b.wm = runtime.NoTimestamp
	for _, c := range []*bcastCtx[OUT]{&b.ro.bcastCtx, &b.bc.bcastCtx} {
		c.op, c.tm, c.wm, c.states = b.oc, tm, &b.wm, b.states
	}
	return b.fn.Open(b.oc)
}

// OnWatermark records the operator's watermark for CurrentWatermark.
func (b *bcastOp[IN, BC, OUT]) OnWatermark(_ context.Context, wm int64) error {
	b.wm = wm
	return nil
}

// setSideOutputs gives both contexts the subtask's side outputs.
func (b *bcastOp[IN, BC, OUT]) setSideOutputs(s []sideEmitter) { b.ro.side, b.bc.side = s, s }

// Snapshot writes the subtask's copy of the broadcast state.
func (b *bcastOp[IN, BC, OUT]) Snapshot(context.Context, runtime.Barrier) (*runtime.OperatorSnapshot, error) {
	return &runtime.OperatorSnapshot{Operator: b.states.snapshot(nil)}, nil
}

type bcastMain[IN, BC, OUT any] struct{ op *bcastOp[IN, BC, OUT] }

func (m bcastMain[IN, BC, OUT]) Emit(v IN) error {
	b := m.op
	b.hit()
	if err := b.fn.ProcessElement(v, &b.ro); err != nil {
		return fmt.Errorf("%s: %w", b.uid, err)
	}
	return b.ro.take()
}

type bcastSide[IN, BC, OUT any] struct{ op *bcastOp[IN, BC, OUT] }

func (s bcastSide[IN, BC, OUT]) Emit(v BC) error {
	b := s.op
	b.hit()
	if err := b.fn.ProcessBroadcastElement(v, &b.bc); err != nil {
		return fmt.Errorf("%s: broadcast element: %w", b.uid, err)
	}
	return b.bc.take()
}

// keyedBcastOp is a subtask of ProcessKeyedBroadcast.
type keyedBcastOp[K comparable, IN, BC, OUT any] struct {
	keyedCore[K, OUT]
	fn     KeyedBroadcastProcessFunction[K, IN, BC, OUT]
	key    func(IN) K
	states *broadcastStates
	bc     KeyedBroadcastContext[K, OUT]
}

func (k *keyedBcastOp[K, IN, BC, OUT]) Open(ctx context.Context, rc *runtime.OperatorContext) error {
	// The broadcast state is restored before the user function opens,
	// as the keyed state is.
	if err := k.states.restore(operatorContext(rc)); err != nil {
		return err
	}
	k.bc.states = k.states
	k.bc.wm = &k.pc.wm
	if err := k.keyedCore.Open(ctx, rc); err != nil {
		return err
	}
	k.bc.op, k.bc.tm, k.bc.backend = k.oc, k.pc.tm, k.backend
	return nil
}

// setSideOutputs gives the process and the broadcast context the
// subtask's side outputs.
func (k *keyedBcastOp[K, IN, BC, OUT]) setSideOutputs(s []sideEmitter) { k.pc.side, k.bc.side = s, s }

// Snapshot freezes the keyed state and writes the subtask's copy of the
// broadcast state.
func (k *keyedBcastOp[K, IN, BC, OUT]) Snapshot(ctx context.Context, b runtime.Barrier) (*runtime.OperatorSnapshot, error) {
	snap, err := k.keyedCore.Snapshot(ctx, b)
	if err != nil {
		return nil, err
	}
	snap.Operator = k.states.snapshot(snap.Operator)
	return snap, nil
}

type keyedBcastMain[K comparable, IN, BC, OUT any] struct{ op *keyedBcastOp[K, IN, BC, OUT] }

func (m keyedBcastMain[K, IN, BC, OUT]) Emit(v IN) error {
	k := m.op
	if err := k.enter(k.key(v)); err != nil {
		return err
	}
	return k.leave(k.fn.ProcessElement(v, &k.pc))
}

type keyedBcastSide[K comparable, IN, BC, OUT any] struct{ op *keyedBcastOp[K, IN, BC, OUT] }

func (s keyedBcastSide[K, IN, BC, OUT]) Emit(v BC) error {
	k := s.op
	k.hit()
	if err := k.fn.ProcessBroadcastElement(v, &k.bc); err != nil {
		return fmt.Errorf("%s: broadcast element: %w", k.uid, err)
	}
	return k.bc.take()
}
