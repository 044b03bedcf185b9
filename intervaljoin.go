package sluice

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/state"
)

// IntervalJoinBuilder is an interval join of two keyed streams being set
// up (Flink's KeyedStream.IntervalJoin and IntervalJoined): IntervalJoin
// makes one, its methods refine it, and IntervalJoinProcess turns it into
// a stream.
type IntervalJoinBuilder[K comparable, A, B any] struct {
	a            KeyedStream[K, A]
	b            KeyedStream[K, B]
	lower, upper time.Duration
	lowerExcl    bool
	upperExcl    bool
	lateA        OutputTag[A]
	lateB        OutputTag[B]
}

// IntervalJoin joins every record a of the left stream with every record
// b of the right stream of the same key whose event time lies in
// [a.ts+lower, a.ts+upper] (Flink's a.keyBy(..).intervalJoin(b.keyBy(..))
// .between(lower, upper)). lower may be negative (b before a), and must
// not be above upper. Both bounds are inclusive unless LowerBoundExclusive
// or UpperBoundExclusive say otherwise.
//
// It works in event time only: every record needs a timestamp, so both
// streams must come from FromSourceWithWatermarks (or carry timestamps an
// operator set). Each side is buffered in keyed state until the watermark
// passes the last time it could still join; a record whose timestamp is
// at or below the operator's current watermark is late and is not joined:
// it goes to the side output set with SideOutputLeftLateData or
// SideOutputRightLateData, or is dropped, and is counted either way
// (docs/design.md §14). As for Connect, the left stream's key codec
// partitions and stores the keys of both.
func IntervalJoin[K comparable, A, B any](a KeyedStream[K, A], b KeyedStream[K, B], lower, upper time.Duration) IntervalJoinBuilder[K, A, B] {
	return IntervalJoinBuilder[K, A, B]{a: a, b: b, lower: lower, upper: upper}
}

// LowerBoundExclusive excludes the lower bound: b.ts > a.ts+lower.
func (ij IntervalJoinBuilder[K, A, B]) LowerBoundExclusive() IntervalJoinBuilder[K, A, B] {
	ij.lowerExcl = true
	return ij
}

// UpperBoundExclusive excludes the upper bound: b.ts < a.ts+upper.
func (ij IntervalJoinBuilder[K, A, B]) UpperBoundExclusive() IntervalJoinBuilder[K, A, B] {
	ij.upperExcl = true
	return ij
}

// SideOutputLeftLateData sends the left records that arrive late (at or
// below the watermark) to the side output tag of the join's result
// stream, with their own timestamps; read them with SideOutput (Flink's
// sideOutputLeftLateData).
func (ij IntervalJoinBuilder[K, A, B]) SideOutputLeftLateData(tag OutputTag[A]) IntervalJoinBuilder[K, A, B] {
	ij.lateA = tag
	return ij
}

// SideOutputRightLateData is SideOutputLeftLateData for the right stream.
func (ij IntervalJoinBuilder[K, A, B]) SideOutputRightLateData(tag OutputTag[B]) IntervalJoinBuilder[K, A, B] {
	ij.lateB = tag
	return ij
}

// ProcessJoinFunction is called for every joined pair of an interval join
// (Flink's ProcessJoinFunction). A function that also has an Open(rc
// *RuntimeContext[K]) error method (JoinOpener) is opened once per subtask
// and attempt, after state was restored, and may register keyed state of
// its own there.
type ProcessJoinFunction[K comparable, A, B, OUT any] interface {
	// ProcessElement is called with a left and a right record of the same
	// key whose timestamps are within the join's bounds; what it collects
	// carries the larger of the two timestamps.
	ProcessElement(left A, right B, jc *JoinContext[K, OUT]) error
}

// JoinOpener is implemented by join functions that need Open.
type JoinOpener[K comparable] interface {
	// Open is called once per subtask and attempt, after state was
	// restored.
	Open(rc *RuntimeContext[K]) error
}

// ProcessJoinFunc adapts a plain function to a ProcessJoinFunction.
type ProcessJoinFunc[K comparable, A, B, OUT any] func(left A, right B, jc *JoinContext[K, OUT]) error

// ProcessElement calls f.
func (f ProcessJoinFunc[K, A, B, OUT]) ProcessElement(left A, right B, jc *JoinContext[K, OUT]) error {
	return f(left, right, jc)
}

// JoinContext is what a ProcessJoinFunction sees per joined pair (Flink's
// ProcessJoinFunction.Context).
type JoinContext[K comparable, OUT any] struct {
	pc          *ProcessContext[K, OUT]
	left, right int64
}

// Collect emits v with timestamp Timestamp().
func (c *JoinContext[K, OUT]) Collect(v OUT) { c.pc.Collect(v) }

// LeftTimestamp returns the left record's timestamp (nanoseconds since
// the epoch).
func (c *JoinContext[K, OUT]) LeftTimestamp() int64 { return c.left }

// RightTimestamp returns the right record's timestamp.
func (c *JoinContext[K, OUT]) RightTimestamp() int64 { return c.right }

// Timestamp returns the timestamp of the joined pair, the larger of the
// two: what Collect and JoinOutput give the records they emit.
func (c *JoinContext[K, OUT]) Timestamp() int64 { return max(c.left, c.right) }

// CurrentKey returns the key of the pair.
func (c *JoinContext[K, OUT]) CurrentKey() K { return c.pc.CurrentKey() }

// CurrentWatermark returns the operator's current watermark.
func (c *JoinContext[K, OUT]) CurrentWatermark() int64 { return c.pc.CurrentWatermark() }

// Operator returns the operator's context (uid, subtask, parallelism...).
func (c *JoinContext[K, OUT]) Operator() *OperatorContext { return c.pc.op }

// JoinOutput emits v to the side output tag of the join, with the pair's
// timestamp; see Output.
func JoinOutput[K comparable, OUT, T any](jc *JoinContext[K, OUT], tag OutputTag[T], v T) {
	Output(jc.pc, tag, v)
}

// IntervalJoinProcess applies the function made by newFn (once per subtask
// and attempt) to every joined pair of ij and returns what it collects.
// aCodec and bCodec encode the buffered records of either side in keyed
// state. It is a keyed co-process operator: barriers are aligned across
// both inputs, the buffers and their cleanup timers are checkpointed by
// key group and restored at any parallelism, and the function may emit to
// side outputs with JoinOutput. Matches are emitted in timestamp order of
// the buffered side, in arrival order within a timestamp.
func IntervalJoinProcess[K comparable, A, B, OUT any](ij IntervalJoinBuilder[K, A, B], name string, newFn func() ProcessJoinFunction[K, A, B, OUT],
	aCodec codec.Codec[A], bCodec codec.Codec[B], opts ...OpOption) Stream[OUT] {
	lower, upper := int64(ij.lower), int64(ij.upper)
	if ij.lowerExcl {
		lower = addSat(lower, 1)
	}
	if ij.upperExcl {
		upper = addSat(upper, -1)
	}
	e := ij.a.s.env
	switch {
	case lower > upper:
		e.fail(fmt.Errorf("interval join %q: lower bound %v (exclusive %t) is above upper bound %v (exclusive %t): nothing could join",
			name, ij.lower, ij.lowerExcl, ij.upper, ij.upperExcl))
	case aCodec == nil || bCodec == nil:
		e.fail(fmt.Errorf("interval join %q: the codecs of both sides are needed to buffer them in state", name))
	}
	return CoProcess(Connect(ij.a, ij.b), name, func() KeyedCoProcessFunction[K, A, B, OUT] {
		return &intervalJoin[K, A, B, OUT]{
			fn: newFn(), lower: lower, upper: upper, aCodec: aCodec, bCodec: bCodec,
			lateA: ij.lateA, lateB: ij.lateB,
		}
	}, opts...)
}

// intervalJoin is the interval join as a keyed co-process function with
// event-time timers (Flink's IntervalJoinOperator).
//
// Each side is a map state from timestamp to the records of that
// timestamp, in arrival order. A left record at ta can still be joined by
// a right record tb > watermark with tb <= ta+upper, so it is needed while
// ta+upper > watermark: it is buffered with a cleanup timer at ta+upper,
// or not at all when that time has passed already. Symmetrically a right
// record at tb is needed while tb-lower > watermark. One timer per key and
// time serves both sides: a timer at t removes the left bucket t-upper and
// the right bucket t+lower, neither of which can join anything once the
// watermark reached t (whichever side registered it).
type intervalJoin[K comparable, A, B, OUT any] struct {
	fn           ProcessJoinFunction[K, A, B, OUT]
	lower, upper int64
	aCodec       codec.Codec[A]
	bCodec       codec.Codec[B]
	lateA        OutputTag[A]
	lateB        OutputTag[B]

	left    state.MapState[int64, []A]
	right   state.MapState[int64, []B]
	jc      JoinContext[K, OUT]
	op      *OperatorContext
	scratch []int64
	warned  bool
}

// State names of the buffers, part of the savepoint format.
const (
	intervalJoinLeft  = "interval-join-left"
	intervalJoinRight = "interval-join-right"
)

func (j *intervalJoin[K, A, B, OUT]) Open(rc *RuntimeContext[K]) error {
	var err error
	if j.left, err = NewMapState(rc, intervalJoinLeft, codec.Codec[int64](codec.Int64), codec.List(j.aCodec)); err != nil {
		return err
	}
	if j.right, err = NewMapState(rc, intervalJoinRight, codec.Codec[int64](codec.Int64), codec.List(j.bCodec)); err != nil {
		return err
	}
	j.op = rc.Operator()
	if o, ok := j.fn.(JoinOpener[K]); ok {
		return o.Open(rc)
	}
	return nil
}

// ProcessElement1 buffers a left record and joins it with the buffered
// right records in [ta+lower, ta+upper].
func (j *intervalJoin[K, A, B, OUT]) ProcessElement1(v A, pc *ProcessContext[K, OUT]) error {
	ta, wm := pc.Timestamp(), pc.CurrentWatermark()
	if ta == NoTimestamp {
		return errNoTimestamp("left")
	}
	if ta <= wm {
		j.late("left", ta, wm)
		if j.lateA.id != "" {
			Output(pc, j.lateA, v)
		}
		return nil
	}
	j.scratch = matching(j.scratch[:0], j.right, addSat(ta, j.lower), addSat(ta, j.upper))
	j.jc.pc = pc
	for _, tb := range j.scratch {
		bs, _ := j.right.Get(tb)
		for _, b := range bs {
			if err := j.emit(v, b, ta, tb); err != nil {
				return err
			}
		}
	}
	if cleanup := addSat(ta, j.upper); cleanup > wm {
		as, _ := j.left.Get(ta)
		// Appending in place is safe with copy-on-write snapshots: a
		// frozen map holds the slice with its old length and never sees
		// the elements beyond it.
		j.left.Put(ta, append(as, v))
		pc.RegisterEventTimeTimer(cleanup)
	}
	return nil
}

// ProcessElement2 buffers a right record and joins it with the buffered
// left records in [tb-upper, tb-lower].
func (j *intervalJoin[K, A, B, OUT]) ProcessElement2(v B, pc *ProcessContext[K, OUT]) error {
	tb, wm := pc.Timestamp(), pc.CurrentWatermark()
	if tb == NoTimestamp {
		return errNoTimestamp("right")
	}
	if tb <= wm {
		j.late("right", tb, wm)
		if j.lateB.id != "" {
			Output(pc, j.lateB, v)
		}
		return nil
	}
	j.scratch = matching(j.scratch[:0], j.left, addSat(tb, neg(j.upper)), addSat(tb, neg(j.lower)))
	j.jc.pc = pc
	for _, ta := range j.scratch {
		as, _ := j.left.Get(ta)
		for _, a := range as {
			if err := j.emit(a, v, ta, tb); err != nil {
				return err
			}
		}
	}
	if cleanup := addSat(tb, neg(j.lower)); cleanup > wm {
		bs, _ := j.right.Get(tb)
		j.right.Put(tb, append(bs, v))
		pc.RegisterEventTimeTimer(cleanup)
	}
	return nil
}

// emit calls the user function for one pair, with the pair's timestamp as
// the current one, and restores the record's afterwards.
func (j *intervalJoin[K, A, B, OUT]) emit(a A, b B, ta, tb int64) error {
	pc := j.jc.pc
	saved := pc.tm.TS
	j.jc.left, j.jc.right = ta, tb
	pc.tm.TS = max(ta, tb)
	err := j.fn.ProcessElement(a, b, &j.jc)
	pc.tm.TS = saved
	return err
}

// OnTimer removes the buckets whose cleanup time is at: the left one at
// at-upper and the right one at at+lower (as Flink, the bounds are not
// checkpointed: a job restored with other bounds computes other buckets
// from the old timers, and records buffered under the old bounds may stay
// until the end of input). At the final watermark, or at a cleanup time
// clamped to it, it clears the key's buffers.
func (j *intervalJoin[K, A, B, OUT]) OnTimer(_ time.Time, pc *ProcessContext[K, OUT]) error {
	t := pc.Timestamp()
	if t == math.MaxInt64 || pc.CurrentWatermark() == math.MaxInt64 {
		j.left.Clear()
		j.right.Clear()
		return nil
	}
	if ta, ok := sub(t, j.upper); ok {
		j.left.Remove(ta)
	}
	if tb, ok := sub(t, neg(j.lower)); ok {
		j.right.Remove(tb)
	}
	return nil
}

// late counts a late record in the task's LateRecords and says so in the
// log, once per subtask and attempt.
func (j *intervalJoin[K, A, B, OUT]) late(side string, ts, wm int64) {
	if st := j.op.stats; st != nil {
		st.LateRecords.Add(1)
	}
	if j.warned {
		return
	}
	j.warned = true
	j.op.Logger.Warn("interval join: a late record (timestamp at or below the watermark) is not joined; later ones are not logged, all are counted in LateRecords",
		"operator", j.op.UID, "side", side, "timestamp", ts, "watermark", wm)
}

func errNoTimestamp(side string) error {
	return fmt.Errorf("interval join: a %s record has no timestamp: interval joins run in event time, so both inputs need timestamps (FromSourceWithWatermarks, a TimestampAssigner, or CollectWithTimestamp upstream)", side)
}

// keyAppender is implemented by the heap backend's map state: AppendKeys
// iterates without allocating.
type keyAppender interface {
	AppendKeys(dst []int64) []int64
}

// matching appends to dst, sorted, the timestamps of m's buckets in
// [lo, hi].
func matching[V any](dst []int64, m state.MapState[int64, V], lo, hi int64) []int64 {
	start := len(dst)
	if ka, ok := m.(keyAppender); ok {
		dst = ka.AppendKeys(dst)
	} else {
		dst = appendAll(dst, m)
	}
	n := start
	for _, t := range dst[start:] {
		if t >= lo && t <= hi {
			dst[n] = t
			n++
		}
	}
	dst = dst[:n]
	slices.Sort(dst[start:])
	return dst
}

// appendAll is matching's fallback for other map states; apart, so that
// its closure's captures do not make matching allocate.
func appendAll[V any](dst []int64, m state.MapState[int64, V]) []int64 {
	for t := range m.All() {
		dst = append(dst, t)
	}
	return dst
}

// addSat returns a+b clamped to the int64 range.
func addSat(a, b int64) int64 {
	s := a + b
	switch {
	case b > 0 && s < a:
		return math.MaxInt64
	case b < 0 && s > a:
		return math.MinInt64
	}
	return s
}

// neg returns -d, clamped (-MinInt64 is MaxInt64).
func neg(d int64) int64 {
	if d == math.MinInt64 {
		return math.MaxInt64
	}
	return -d
}

// sub returns t-d and whether it did not overflow.
func sub(t, d int64) (int64, bool) {
	s := t - d
	if (d > 0 && s > t) || (d < 0 && s < t) {
		return 0, false
	}
	return s, true
}
