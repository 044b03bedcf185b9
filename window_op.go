package sluice

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/internal/runtime"
	"github.com/sluicehq/sluice/internal/state/heap"
	"github.com/sluicehq/sluice/state"
	"github.com/sluicehq/sluice/window"
)

// The window operator (docs/design.md §14) composes the deterministic
// cores of package window the way Flink's WindowOperator does. Its keyed
// state lives in a heap backend whose key is the pair (key, window), so
// that contents, trigger state and timers are per key and window for
// free; the pair's codec hashes only the key, so key groups, and with
// them routing and rescaling, are those of the user's key. State of a
// whole key (the merging set of session windows) lives under the
// sentinel window perKey. Non-merging event-time windows with the default
// trigger and an incremental function take the fast path instead
// (window_fast.go): the same state, checkpointed in the same layout, kept
// window-major.

// wkey is the state key of the window operator.
type wkey[K comparable] struct {
	key K
	w   window.Window
}

// perKey is the namespace of per-key state: an empty window no assigner
// produces.
var perKey = window.Window{Start: math.MinInt64, End: math.MinInt64}

// wkeyCodec encodes a wkey as the key's encoding and the window's bounds
// (two varints) and hashes the key alone. It remembers the last hash:
// the operator sets the same key once per window of a record. Only the
// task goroutine hashes (SetCurrentKey, restore); snapshots only encode.
type wkeyCodec[K comparable] struct {
	kc   codec.KeyCodec[K]
	memo *hashMemo[K]
}

type hashMemo[K comparable] struct {
	key K
	h   uint64
	ok  bool
}

func newWkeyCodec[K comparable](kc codec.KeyCodec[K]) wkeyCodec[K] {
	return wkeyCodec[K]{kc: kc, memo: &hashMemo[K]{}}
}

func (c wkeyCodec[K]) Append(dst []byte, k wkey[K]) []byte {
	return appendWindow(c.kc.Append(dst, k.key), k.w) // the fast path's encoding too
}

func (c wkeyCodec[K]) Decode(src []byte) (wkey[K], int, error) {
	var k wkey[K]
	key, n, err := c.kc.Decode(src)
	if err != nil {
		return k, 0, err
	}
	s, m := binary.Varint(src[n:])
	if m <= 0 {
		return k, 0, fmt.Errorf("%w: window start", codec.ErrTruncated)
	}
	n += m
	e, m := binary.Varint(src[n:])
	if m <= 0 {
		return k, 0, fmt.Errorf("%w: window end", codec.ErrTruncated)
	}
	return wkey[K]{key: key, w: window.Window{Start: s, End: e}}, n + m, nil
}

func (c wkeyCodec[K]) Hash(k wkey[K]) uint64 {
	m := c.memo
	if m.ok && m.key == k.key {
		return m.h
	}
	m.key, m.h, m.ok = k.key, c.kc.Hash(k.key), true
	return m.h
}

// CodecID names the wrapper and the key's codec, so that a restore
// checks both (docs/design.md §10).
func (c wkeyCodec[K]) CodecID() codec.ID {
	id := codec.IDOf[K](c.kc)
	if !id.Declared() {
		return codec.ID{Name: "window-key(" + id.Name + ")"}
	}
	return codec.ID{Name: "window-key(" + id.String() + ")", Version: 1}
}

// tsElem is an element of a window kept as a list, with its timestamp
// (evictors read it).
type tsElem[T any] struct {
	ts int64
	v  T
}

type tsElemCodec[T any] struct{ c codec.Codec[T] }

func (c tsElemCodec[T]) Append(dst []byte, e tsElem[T]) []byte {
	return c.c.Append(binary.AppendVarint(dst, e.ts), e.v)
}

func (c tsElemCodec[T]) Decode(src []byte) (tsElem[T], int, error) {
	ts, n := binary.Varint(src)
	if n <= 0 {
		return tsElem[T]{}, 0, fmt.Errorf("%w: element timestamp", codec.ErrTruncated)
	}
	v, m, err := c.c.Decode(src[n:])
	if err != nil {
		return tsElem[T]{}, 0, err
	}
	return tsElem[T]{ts: ts, v: v}, n + m, nil
}

func (c tsElemCodec[T]) CodecID() codec.ID {
	id := codec.IDOf(c.c)
	if !id.Declared() {
		return codec.ID{Name: "timestamped(" + id.Name + ")"}
	}
	return codec.ID{Name: "timestamped(" + id.String() + ")", Version: 1}
}

// trigStateCodec encodes window.State: varint count, then a flag byte and
// the next firing.
type trigStateCodec struct{}

func (trigStateCodec) Append(dst []byte, s window.State) []byte {
	dst, _ = s.AppendBinary(dst) // never fails
	return dst
}

func (trigStateCodec) Decode(src []byte) (window.State, int, error) {
	var s window.State
	_, n := binary.Varint(src)
	if n <= 0 || n >= len(src) {
		return s, 0, fmt.Errorf("%w: trigger state", codec.ErrTruncated)
	}
	end := n + 1
	if src[n] == 1 {
		_, m := binary.Varint(src[end:])
		if m <= 0 {
			return s, 0, fmt.Errorf("%w: trigger state next firing", codec.ErrTruncated)
		}
		end += m
	}
	if err := s.UnmarshalBinary(src[:end]); err != nil {
		return s, 0, fmt.Errorf("%w: %v", codec.ErrCorrupt, err)
	}
	return s, end, nil
}

func (trigStateCodec) CodecID() codec.ID { return codec.ID{Name: "window-trigger-state", Version: 1} }

// setCodec encodes a merging set as its length-prefixed AppendBinary.
type setCodec struct{}

func (setCodec) Append(dst []byte, s *window.MergingSet) []byte {
	var tmp [binary.MaxVarintLen64]byte
	start := len(dst)
	dst = append(dst, tmp[:]...) // room for the length, moved below
	dst, _ = s.AppendBinary(dst) // never fails
	body := len(dst) - start - len(tmp)
	n := binary.PutUvarint(tmp[:], uint64(body))
	copy(dst[start+n:], dst[start+len(tmp):])
	copy(dst[start:], tmp[:n])
	return dst[:start+n+body]
}

func (setCodec) Decode(src []byte) (*window.MergingSet, int, error) {
	l, n := binary.Uvarint(src)
	if n <= 0 || uint64(len(src)-n) < l {
		return nil, 0, fmt.Errorf("%w: merging set", codec.ErrTruncated)
	}
	s := &window.MergingSet{}
	if err := s.UnmarshalBinary(src[n : n+int(l)]); err != nil {
		return nil, 0, fmt.Errorf("%w: %v", codec.ErrCorrupt, err)
	}
	return s, n + int(l), nil
}

func (setCodec) CodecID() codec.ID { return codec.ID{Name: "window-merging-set", Version: 1} }

// winFuncs is what the public constructors give the operator: either an
// incremental aggregation (add, merge, accCodec) fired by fireAcc, or a
// full-window function fireList over the elements. With an evictor the
// elements are kept and folded with add at firing.
type winFuncs[K comparable, T, ACC, OUT any] struct {
	add       func(acc ACC, has bool, v T) ACC
	merge     func(a, b ACC) ACC
	accCodec  codec.Codec[ACC]
	elemCodec codec.Codec[T]
	fireAcc   func(key K, acc ACC, wc *WindowContext[OUT]) error
	fireList  func(key K, elems []T, wc *WindowContext[OUT]) error
}

// windowProbe counts what the subtasks of a window operator left in state
// at the end of input (tests: nothing leaks).
type windowProbe struct {
	keys, eventTimers, procTimers atomic.Int64
	// fast counts the subtasks opened on the fast path (window_fast.go).
	fast atomic.Int64
}

// windowNode validates ws and adds the window operator.
func windowNode[K comparable, T, ACC, OUT any](ws WindowedStream[K, T], name string, opts []OpOption, mk func() *winFuncs[K, T, ACC, OUT]) Stream[OUT] {
	e := ws.ks.s.env
	n := e.addNode(name, opts, ws.ks.s.n.par)
	n.keyedState = true
	n.sideCapable = true
	n.winProbe = &windowProbe{}
	setFanout[OUT](n)
	fail := func(err error) { e.fail(fmt.Errorf("window operator %q: %w", name, err)) }
	a := ws.assigner
	if err := a.Validate(); err != nil {
		fail(err)
	}
	tr := a.DefaultTrigger()
	if ws.hasTrig {
		tr = ws.trigger
	}
	if err := tr.Validate(); err != nil {
		fail(err)
	}
	if ws.hasEvict {
		if err := ws.evictor.Validate(); err != nil {
			fail(err)
		}
	}
	if ws.lateness < 0 {
		fail(fmt.Errorf("AllowedLateness %v must not be negative", ws.lateness))
	}
	probe := mk()
	if ws.hasEvict && probe.fireList == nil && probe.elemCodec == nil {
		c, ok := codec.For[T]()
		if !ok {
			var zero T
			fail(fmt.Errorf("an Evictor keeps the records, and %T has no built-in codec: evict in a WindowProcess, which takes one", zero))
		}
		probe.elemCodec = c
	}
	elemCodec := probe.elemCodec
	n.make = func(sub int, out any) (instance, error) {
		f := mk()
		if f.elemCodec == nil {
			f.elemCodec = elemCodec
		}
		op := &windowOp[K, T, ACC, OUT]{
			f: f, key: ws.ks.key, kc: ws.ks.codec, a: a, tr: tr, lateness: ws.lateness,
			lateTag: ws.lateTag, probe: n.winProbe,
			domain: a.Domain(), merging: a.IsMerging(),
			list:    f.fireList != nil || ws.hasEvict,
			trigSt:  tr.UsesState(),
			fixedTm: tr.FixedTimers() && !a.IsMerging(),
		}
		if ws.hasEvict {
			ev := ws.evictor
			op.ev = &ev
		}
		if slide, ok := a.Panes(); ok && !op.list && tr == a.DefaultTrigger() {
			op.panes, op.slide = true, slide
		}
		// The window-major fast path is heap state; the Pebble backend
		// keeps the generic path's layout, which both checkpoint alike.
		op.fast = fastPath(a, tr, op.list) && !ws.generic && e.state.cfg.Backend == StateBackendHeap
		op.state = e.state
		op.wc.out = out.(Emitter[OUT])
		return instance{op: op, ins: []any{Emitter[T](op)}}, nil
	}
	connectKeyed(e, ws.ks.s, n, 0, keyHashOf(ws.ks))
	return Stream[OUT]{env: e, n: n}
}

// windowOp is one subtask of a window operator.
type windowOp[K comparable, T, ACC, OUT any] struct {
	baseOp
	f        *winFuncs[K, T, ACC, OUT]
	key      func(T) K
	kc       codec.KeyCodec[K]
	a        window.Assigner
	tr       window.Trigger
	ev       *window.Evictor
	lateness time.Duration
	lateTag  string
	probe    *windowProbe
	domain   window.Domain
	merging  bool
	// list: the contents are the elements (full-window function or
	// evictor), else one accumulator. trigSt: the trigger keeps State.
	// fixedTm: the trigger's and the cleanup timer need registering only
	// with a window's first record.
	list, trigSt, fixedTm bool
	// panes: a sliding window with an incremental function and the
	// default trigger keeps one accumulator per pane of length slide
	// (window.Assigner.Panes) and combines a window's panes when it
	// fires: a record updates one accumulator instead of size/slide.
	panes bool
	slide int64
	// fast: window-major state (window_fast.go), in ws.
	fast bool
	// pbuf is PrefetchKeys' window buffer.
	pbuf       []window.Window
	ws         *heap.WindowMajor[wkey[K], K, ACC]
	scratchAcc map[K]ACC

	backend keyedBackend[wkey[K]]
	// state is the job's state configuration (set by the builder).
	state *stateEnv
	acc   state.ValueState[ACC]
	elems state.ListState[tsElem[T]]
	trig  state.ValueState[window.State]
	sets  state.ValueState[*window.MergingSet]

	wc   WindowContext[OUT]
	tm   *runtime.Time
	wm   int64
	late *atomic.Int64
	// lateSide counts the late records sent to lateOut.
	lateSide *atomic.Int64
	lateOut  Emitter[T]
	sideErr  error
	warned   bool

	buf     []window.Window
	scratch *window.MergingSet
	ebuf    []T
	kbuf    []tsElem[T]
	tsbuf   []int64
	ibuf    []int
}

func (o *windowOp[K, T, ACC, OUT]) setSideOutputs(s []sideEmitter) {
	for _, se := range s {
		if se.id != o.lateTag {
			continue // no other side output: its stream stays empty
		}
		so, ok := se.em.(*sideOut[T])
		if !ok {
			o.sideErr = fmt.Errorf("late side output %q carries %T, not the window's records %T", se.id, se.em, so)
			return
		}
		o.lateOut = so.out
	}
}

// plannedStates returns the verdicts of a restore check (see keyedCore).
func (o *windowOp[K, T, ACC, OUT]) plannedStates() []heap.Resolution { return o.backend.Plan() }

func (o *windowOp[K, T, ACC, OUT]) Open(ctx context.Context, rc *runtime.OperatorContext) error {
	if err := o.baseOp.Open(ctx, rc); err != nil {
		return err
	}
	if o.sideErr != nil {
		return fmt.Errorf("%s: %w", o.uid, o.sideErr)
	}
	oc := o.oc
	if o.state != nil {
		oc.State = o.state.cfg
	}
	var err error
	if o.backend, err = newKeyedBackend[wkey[K]](o.state, newWkeyCodec(o.kc), oc); err != nil {
		return err
	}
	if err := restoreKeyed(ctx, o.backend, oc); err != nil {
		return err
	}
	if o.fast {
		err = o.openFast()
		o.probe.fast.Add(1)
	} else if o.list {
		o.elems, err = newListState(o.backend, "window-elements", codec.Codec[tsElem[T]](tsElemCodec[T]{o.f.elemCodec}))
	} else if o.panes {
		o.acc, err = newValueState(o.backend, "window-panes", o.f.accCodec)
	} else {
		o.acc, err = newValueState(o.backend, "window-acc", o.f.accCodec)
	}
	if err == nil && o.trigSt {
		o.trig, err = newValueState(o.backend, "window-trigger", codec.Codec[window.State](trigStateCodec{}))
	}
	if err == nil && o.merging {
		o.sets, err = newValueState(o.backend, "window-sessions", codec.Codec[*window.MergingSet](setCodec{}))
		o.scratch = &window.MergingSet{}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", o.uid, err)
	}
	for _, name := range o.backend.Unregistered() {
		if oc.plan != nil {
			break // a restore check reports them
		}
		oc.Logger.Warn("restored window state not used by this window operator: kept unchanged in checkpoints (was the window function or trigger changed?)",
			"operator", oc.UID, "state", name, "checkpoint", oc.Restored.CheckpointID)
	}
	o.tm, o.wm = rc.Time, runtime.NoTimestamp
	if o.tm == nil {
		o.tm = runtime.NewTime()
	}
	if rc.Stats != nil {
		o.late, o.lateSide = &rc.Stats.LateRecords, &rc.Stats.LateToSide
	} else {
		o.late, o.lateSide = &atomic.Int64{}, &atomic.Int64{}
	}
	o.wc.op = oc
	return nil
}

// NotifyComplete tells the backend that checkpoint id completed.
func (o *windowOp[K, T, ACC, OUT]) NotifyComplete(_ context.Context, id int64) error {
	if o.backend != nil {
		notifyBackend(o.backend, id)
	}
	return nil
}

// Close releases the state backend (Pebble: closes its database).
func (o *windowOp[K, T, ACC, OUT]) Close(context.Context) error {
	if o.backend == nil {
		return nil
	}
	b := o.backend
	o.backend = nil
	if err := b.Close(); err != nil {
		return fmt.Errorf("%s/%d: close state backend: %w", o.uid, o.sub, err)
	}
	return nil
}

func (o *windowOp[K, T, ACC, OUT]) Snapshot(_ context.Context, b runtime.Barrier) (*runtime.OperatorSnapshot, error) {
	return &runtime.OperatorSnapshot{Keyed: o.backend.Snapshot(b.ID)}, nil
}

// EndInput records what is left in state for the probe (after the final
// watermark, only global windows and processing-time windows hold any).
func (o *windowOp[K, T, ACC, OUT]) EndInput(context.Context) error {
	o.probe.keys.Add(int64(o.backend.NumKeys()))
	o.probe.eventTimers.Add(int64(o.backend.NumEventTimers()))
	if o.fast {
		o.probe.eventTimers.Add(int64(o.ws.NumWindows()))
	}
	o.probe.procTimers.Add(int64(o.backend.NumTimers()))
	return nil
}

func (o *windowOp[K, T, ACC, OUT]) setKey(key K, w window.Window) error {
	if err := o.backend.SetCurrentKey(wkey[K]{key: key, w: w}); err != nil {
		return fmt.Errorf("%s: %w", o.uid, err)
	}
	return nil
}

// Emit assigns a record to its windows and adds it to each that is not
// late, asking the trigger after each add (Flink's processElement).
func (o *windowOp[K, T, ACC, OUT]) Emit(v T) error {
	o.hit()
	ts := o.tm.TS
	if o.domain == window.ProcessingTime {
		ts = o.oc.Clock.Now().UnixNano()
	} else if ts == NoTimestamp {
		return fmt.Errorf("%s: a record without timestamp reached an event-time window: give the source a watermark strategy (FromSourceWithWatermarks) or a TimestampAssigner, or use processing-time windows", o.uid)
	}
	key := o.key(v)
	o.buf = o.a.Assign(ts, o.buf[:0])
	if o.fast {
		return o.emitFast(key, ts, v)
	}
	if o.merging {
		return o.emitMerging(key, ts, v)
	}
	if o.panes {
		return o.emitPane(key, ts, v)
	}
	now := window.Now{Watermark: o.wm, Processing: ts}
	skipped := true
	for _, w := range o.buf {
		if o.isLate(w) {
			continue
		}
		skipped = false
		if err := o.setKey(key, w); err != nil {
			return err
		}
		existed := o.addElement(ts, v)
		if err := o.onElement(key, w, w, ts, now, existed); err != nil {
			return err
		}
	}
	if skipped && o.domain == window.EventTime && satAddLate(ts, o.lateness) <= o.wm {
		return o.onLate(v, ts)
	}
	return nil
}

// emitPane is Emit for sliding windows kept as panes: the record is
// added to its pane; the windows' timers are registered with the pane's
// first record (every window containing the pane then has them; those
// containing the previous pane have them already if it has records), and a
// window the watermark passed already (a late record within the allowed
// lateness) fires again at once, as the default trigger decides.
func (o *windowOp[K, T, ACC, OUT]) emitPane(key K, ts int64, v T) error {
	live := false
	for _, w := range o.buf {
		if !o.isLate(w) {
			live = true
			break
		}
	}
	if !live {
		if o.domain == window.EventTime && satAddLate(ts, o.lateness) <= o.wm {
			return o.onLate(v, ts)
		}
		return nil
	}
	pane := o.a.PaneOf(ts)
	if err := o.setKey(key, pane); err != nil {
		return err
	}
	acc, had := o.acc.Value()
	o.acc.Update(o.f.add(acc, had, v))
	// A new pane's windows need their timers, except those that contain
	// the previous pane too, if it has records: they got them with it.
	prevHad := false
	if !had && pane.Start > math.MinInt64+o.slide {
		if err := o.setKey(key, window.Window{Start: pane.Start - o.slide, End: pane.Start}); err != nil {
			return err
		}
		_, prevHad = o.acc.Value()
	}
	now := window.Now{Watermark: o.wm, Processing: ts}
	for _, w := range o.buf {
		if o.isLate(w) {
			continue
		}
		var st window.State
		r, timers := o.tr.OnElement(ts, w, now, &st)
		reg := !had && (!prevHad || w.Start == pane.Start)
		if !reg && r == window.Continue {
			continue
		}
		if err := o.setKey(key, w); err != nil {
			return err
		}
		if reg {
			o.register(timers)
			if c := window.CleanupTime(w, o.domain, o.lateness); c != math.MaxInt64 && !hasTimer(timers, o.domain, c) {
				o.registerAt(o.domain, c)
			}
		}
		if r != window.Continue {
			if err := o.fire(r, key, w, w); err != nil {
				return err
			}
		}
	}
	return nil
}

// paneAcc combines the panes of window w of key; false if all are empty.
func (o *windowOp[K, T, ACC, OUT]) paneAcc(key K, w window.Window) (ACC, bool, error) {
	var acc ACC
	has := false
	for p, n := w.Start, 0; p < w.End && n < maxPanes; p, n = p+o.slide, n+1 {
		if err := o.setKey(key, window.Window{Start: p, End: p + o.slide}); err != nil {
			return acc, false, err
		}
		a, ok := o.acc.Value()
		switch {
		case !ok:
		case has:
			acc = o.f.merge(acc, a)
		default:
			acc, has = a, true
		}
	}
	return acc, has, nil
}

// maxPanes bounds the panes paneAcc visits (windows clamped at the ends
// of int64 are not whole multiples of the slide).
const maxPanes = 1 << 20

// satAddLate returns ts plus the allowed lateness, saturated.
func satAddLate(ts int64, d time.Duration) int64 {
	if ts > math.MaxInt64-int64(d) {
		return math.MaxInt64
	}
	return ts + int64(d)
}

func (o *windowOp[K, T, ACC, OUT]) isLate(w window.Window) bool {
	return o.domain == window.EventTime && window.IsLate(w, o.lateness, o.wm)
}

// onElement asks the trigger after a record was added to actual window w
// (contents under state window sw; the current key is (key, w)), registers
// its timers and the cleanup timer, and fires.
func (o *windowOp[K, T, ACC, OUT]) onElement(key K, w, sw window.Window, ts int64, now window.Now, existed bool) error {
	var st window.State
	if o.trigSt {
		st, _ = o.trig.Value()
	}
	r, timers := o.tr.OnElement(ts, w, now, &st)
	if o.trigSt {
		o.saveTrig(st)
	}
	if !existed || !o.fixedTm {
		o.register(timers)
		if c := window.CleanupTime(w, o.domain, o.lateness); c != math.MaxInt64 && !hasTimer(timers, o.domain, c) {
			o.registerAt(o.domain, c)
		}
	}
	if r == window.Continue {
		return nil
	}
	return o.fire(r, key, w, sw)
}

// hasTimer reports whether ts holds the timer (d, t).
func hasTimer(ts window.Timers, d window.Domain, t int64) bool {
	for i := range ts.Len() {
		if x := ts.At(i); x.Domain == d && x.Time == t {
			return true
		}
	}
	return false
}

func (o *windowOp[K, T, ACC, OUT]) saveTrig(st window.State) {
	if st == (window.State{}) {
		o.trig.Clear()
	} else {
		o.trig.Update(st)
	}
}

func (o *windowOp[K, T, ACC, OUT]) register(ts window.Timers) {
	for i := range ts.Len() {
		t := ts.At(i)
		o.registerAt(t.Domain, t.Time)
	}
}

func (o *windowOp[K, T, ACC, OUT]) registerAt(d window.Domain, t int64) {
	if d == window.EventTime {
		o.backend.RegisterEventTimer(t)
	} else {
		o.backend.RegisterTimer(time.Unix(0, t))
	}
}

func (o *windowOp[K, T, ACC, OUT]) unregister(ts window.Timers) {
	for i := range ts.Len() {
		t := ts.At(i)
		o.deleteAt(t.Domain, t.Time)
	}
}

func (o *windowOp[K, T, ACC, OUT]) deleteAt(d window.Domain, t int64) {
	if d == window.EventTime {
		o.backend.DeleteEventTimer(t)
	} else {
		o.backend.DeleteTimer(time.Unix(0, t))
	}
}

// addElement adds v to the contents of the current (key, state window)
// and reports whether they held something before.
func (o *windowOp[K, T, ACC, OUT]) addElement(ts int64, v T) bool {
	if o.list {
		existed := len(o.elems.Get()) > 0
		o.elems.Add(tsElem[T]{ts: ts, v: v})
		return existed
	}
	acc, ok := o.acc.Value()
	o.acc.Update(o.f.add(acc, ok, v))
	return ok
}

// emitMerging is Emit for merging (session) windows: each window joins
// the key's MergingSet, merging with those it touches, and the record is
// added to the result's state window.
func (o *windowOp[K, T, ACC, OUT]) emitMerging(key K, ts int64, v T) error {
	if err := o.setKey(key, perKey); err != nil {
		return err
	}
	stored, _ := o.sets.Value()
	set := o.scratch
	set.CopyFrom(stored) // the stored set may be in a snapshot: change a copy
	before := set.Len()
	changed := false
	now := window.Now{Watermark: o.wm, Processing: ts}
	skipped := true
	for _, w := range o.buf {
		actual, m, merged := set.Add(w)
		if merged {
			changed = true
			if err := o.onMerge(key, actual, m, now); err != nil {
				return err
			}
		}
		sw, _ := set.StateWindow(actual)
		if o.isLate(actual) {
			if _, err := set.Remove(actual); err != nil {
				return fmt.Errorf("%s: %w", o.uid, err)
			}
			continue
		}
		skipped = false
		if err := o.setKey(key, sw); err != nil {
			return err
		}
		o.addElement(ts, v)
		if err := o.setKey(key, actual); err != nil {
			return err
		}
		if err := o.onElement(key, actual, sw, ts, now, false); err != nil {
			return err
		}
	}
	if changed || set.Len() != before {
		if err := o.storeSet(key, set); err != nil {
			return err
		}
	}
	if skipped && o.domain == window.EventTime && satAddLate(ts, o.lateness) <= o.wm {
		return o.onLate(v, ts)
	}
	return nil
}

// storeSet makes set (the scratch copy) the key's stored merging set.
func (o *windowOp[K, T, ACC, OUT]) storeSet(key K, set *window.MergingSet) error {
	if err := o.setKey(key, perKey); err != nil {
		return err
	}
	if set.Len() == 0 {
		o.sets.Clear()
		return nil
	}
	o.sets.Update(set)
	o.scratch = &window.MergingSet{}
	return nil
}

// onMerge carries out a merge of the MergingSet (Flink's
// MergingWindowSet.MergeFunction): trigger states fold into the result's
// and its timers are set, the merged windows' timers and trigger state
// go, and the contents of the merged state windows join the result's.
func (o *windowOp[K, T, ACC, OUT]) onMerge(key K, actual window.Window, m window.Merge, now window.Now) error {
	if o.domain == window.EventTime {
		now.Processing = o.oc.Clock.Now().UnixNano() // for a processing-time trigger
	}
	var st window.State
	for _, mw := range m.Merged {
		if err := o.setKey(key, mw); err != nil {
			return err
		}
		if o.trigSt {
			s, _ := o.trig.Value()
			o.tr.MergeState(&st, s)
			o.trig.Clear()
		}
		old := window.State{}
		o.unregister(o.tr.Clear(mw, &old))
		if c := window.CleanupTime(mw, o.domain, o.lateness); c != math.MaxInt64 {
			o.deleteAt(o.domain, c)
		}
	}
	if err := o.setKey(key, actual); err != nil {
		return err
	}
	o.register(o.tr.OnMerge(actual, now, &st))
	if o.trigSt {
		o.saveTrig(st)
	}
	for _, sw := range m.MergedStateWindows {
		if err := o.setKey(key, sw); err != nil {
			return err
		}
		if o.list {
			es := o.elems.Get()
			o.elems.Clear()
			if err := o.setKey(key, m.StateWindow); err != nil {
				return err
			}
			for _, e := range es {
				o.elems.Add(e)
			}
			continue
		}
		a, ok := o.acc.Value()
		if !ok {
			continue
		}
		o.acc.Clear()
		if err := o.setKey(key, m.StateWindow); err != nil {
			return err
		}
		if b, ok := o.acc.Value(); ok {
			a = o.f.merge(b, a)
		}
		o.acc.Update(a)
	}
	return nil
}

// fire evaluates window w of key (contents under state window sw) for
// trigger result r, and purges the contents if r says so. The current key
// is left at (key, sw).
func (o *windowOp[K, T, ACC, OUT]) fire(r window.Result, key K, w, sw window.Window) error {
	if err := o.setKey(key, sw); err != nil {
		return err
	}
	var err error
	if r.IsFire() {
		saved := o.tm.TS
		o.tm.TS = w.MaxTimestamp()
		o.wc.w, o.wc.wm = w, o.wm
		switch {
		case o.list:
			err = o.fireElements(key)
		case o.panes:
			var acc ACC
			var ok bool
			if acc, ok, err = o.paneAcc(key, w); err == nil && ok {
				err = o.f.fireAcc(key, acc, &o.wc)
			}
		default:
			if acc, ok := o.acc.Value(); ok {
				err = o.f.fireAcc(key, acc, &o.wc)
			}
		}
		o.tm.TS = saved
		if err != nil {
			return fmt.Errorf("%s: window %v: %w", o.uid, w, err)
		}
		if err := o.wc.take(); err != nil {
			return err
		}
	}
	if r.IsPurge() {
		o.clearContents()
	}
	return nil
}

func (o *windowOp[K, T, ACC, OUT]) clearContents() {
	if o.list {
		o.elems.Clear()
	} else {
		o.acc.Clear()
	}
}

// fireElements evaluates a window kept as a list, evicting before or
// after, and stores what the evictor kept.
func (o *windowOp[K, T, ACC, OUT]) fireElements(key K) error {
	es := o.elems.Get()
	if len(es) == 0 {
		return nil
	}
	evicted := false
	if o.ev != nil && !o.ev.EvictsAfter() {
		es, evicted = o.evict(es)
	}
	var err error
	if o.f.fireList != nil {
		o.ebuf = o.ebuf[:0]
		for _, e := range es {
			o.ebuf = append(o.ebuf, e.v)
		}
		err = o.f.fireList(key, o.ebuf, &o.wc)
		clear(o.ebuf) // do not pin the elements
	} else if len(es) > 0 {
		var acc ACC
		for i, e := range es {
			acc = o.f.add(acc, i > 0, e.v)
		}
		err = o.f.fireAcc(key, acc, &o.wc)
	}
	if err != nil {
		return err
	}
	if o.ev != nil && o.ev.EvictsAfter() {
		var ev bool
		es, ev = o.evict(es)
		evicted = evicted || ev
	}
	if evicted {
		o.elems.Update(es) // copies; empty clears
	}
	return nil
}

// evict returns the elements the evictor keeps (in a scratch slice) and
// whether it dropped any.
func (o *windowOp[K, T, ACC, OUT]) evict(es []tsElem[T]) ([]tsElem[T], bool) {
	o.tsbuf = o.tsbuf[:0]
	for _, e := range es {
		o.tsbuf = append(o.tsbuf, e.ts)
	}
	o.ibuf = o.ev.Evict(o.tsbuf, o.ibuf[:0])
	if len(o.ibuf) == 0 {
		return es, false
	}
	o.kbuf = o.kbuf[:0]
	j := 0
	for i, e := range es {
		if j < len(o.ibuf) && o.ibuf[j] == i {
			j++
			continue
		}
		o.kbuf = append(o.kbuf, e)
	}
	return o.kbuf, true
}

// onLate counts a late record and sends it to the late side output, or
// drops it with a WARN for the first one.
func (o *windowOp[K, T, ACC, OUT]) onLate(v T, ts int64) error {
	o.late.Add(1)
	if o.lateOut != nil {
		o.lateSide.Add(1)
		return o.lateOut.Emit(v)
	}
	if !o.warned {
		o.warned = true
		o.oc.Logger.Warn("late record dropped: the window operator has no late side output (WindowedStream.SideOutputLateData); later ones are dropped without a log and counted in LateRecords",
			"operator", o.uid, "subtask", o.sub, "timestamp", ts, "watermark", o.wm, "allowed_lateness", o.lateness)
	}
	return nil
}

// OnWatermark fires the event-time timers up to wm, in time order.
func (o *windowOp[K, T, ACC, OUT]) OnWatermark(_ context.Context, wm int64) error {
	if o.fast {
		return o.fastWatermark(wm)
	}
	o.wm = wm
	for {
		wk, t, ok := o.backend.PopEventTimer(wm)
		if !ok {
			return nil
		}
		if err := o.onTimer(wk, t, window.EventTime); err != nil {
			return err
		}
	}
}

// NextTimer returns the earliest processing-time timer.
func (o *windowOp[K, T, ACC, OUT]) NextTimer() (time.Time, bool) { return o.backend.NextTimer() }

// FireTimers fires the processing-time timers due at now.
func (o *windowOp[K, T, ACC, OUT]) FireTimers(now time.Time) error {
	for {
		wk, at, ok := o.backend.PopDueTimer(now)
		if !ok {
			return nil
		}
		if err := o.onTimer(wk, at.UnixNano(), window.ProcessingTime); err != nil {
			return err
		}
	}
}

// onTimer handles a timer of window wk.w at t: the trigger decides, the
// window fires, and at the cleanup time its state and timers go (Flink's
// onEventTime, onProcessingTime).
func (o *windowOp[K, T, ACC, OUT]) onTimer(wk wkey[K], t int64, d window.Domain) error {
	key, w := wk.key, wk.w
	sw := w
	var set *window.MergingSet
	if o.merging {
		if err := o.setKey(key, perKey); err != nil {
			return err
		}
		set, _ = o.sets.Value()
		var ok bool
		if set != nil {
			sw, ok = set.StateWindow(w)
		}
		if !ok {
			return nil // the window merged into another or was removed
		}
	}
	if err := o.setKey(key, w); err != nil {
		return err
	}
	var st window.State
	if o.trigSt {
		st, _ = o.trig.Value()
	}
	var r window.Result
	var timers window.Timers
	if d == window.EventTime {
		r, timers = o.tr.OnEventTime(t, w, &st)
	} else {
		r, timers = o.tr.OnProcessingTime(t, w, &st)
	}
	if o.trigSt {
		o.saveTrig(st)
	}
	o.register(timers)
	if r != window.Continue {
		if err := o.fire(r, key, w, sw); err != nil {
			return err
		}
	}
	if d != o.domain || t != window.CleanupTime(w, o.domain, o.lateness) {
		return nil
	}
	// Cleanup: contents, trigger state and timers, the set's entry. With
	// panes, the window's first pane goes: every window containing it
	// starts no later, so is cleaned up by now.
	if o.panes {
		sw = window.Window{Start: w.Start, End: w.Start + o.slide}
	}
	if err := o.setKey(key, sw); err != nil {
		return err
	}
	o.clearContents()
	if err := o.setKey(key, w); err != nil {
		return err
	}
	// The timer that fired is gone already: delete only the others.
	cleared := o.tr.Clear(w, &st)
	for i := range cleared.Len() {
		if c := cleared.At(i); c.Domain != d || c.Time != t {
			o.deleteAt(c.Domain, c.Time)
		}
	}
	if o.trigSt {
		o.trig.Clear()
	}
	if set != nil {
		o.scratch.CopyFrom(set)
		if _, err := o.scratch.Remove(w); err != nil {
			return fmt.Errorf("%s: %w", o.uid, err)
		}
		return o.storeSet(key, o.scratch)
	}
	return nil
}
