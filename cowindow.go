package sluice

import (
	"fmt"
	"time"

	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/window"
)

// CoWindowedStreams are two keyed streams with the same key type grouped
// into common windows, for a windowed join or coGroup (Flink's
// a.join(b).where(..).equalTo(..).window(..) and coGroup): CoWindow makes
// one, CoGroupWindow and JoinWindow turn it into a stream. Its methods
// return a modified copy.
type CoWindowedStreams[K comparable, A, B any] struct {
	a        KeyedStream[K, A]
	b        KeyedStream[K, B]
	assigner window.Assigner
	trigger  *window.Trigger
	evictor  *window.Evictor
	lateness time.Duration
}

// CoWindow groups the records of both streams, per key, into the windows a
// assigns (window.Tumbling, Sliding, Session, Global; event or processing
// time), so that a window holds the records of both sides whose key and
// time fall into it. The left stream's key codec partitions and stores the
// keys of both, as for Connect.
func CoWindow[K comparable, A, B any](a KeyedStream[K, A], b KeyedStream[K, B], assigner window.Assigner) CoWindowedStreams[K, A, B] {
	return CoWindowedStreams[K, A, B]{a: a, b: b, assigner: assigner}
}

// Trigger sets when the windows fire (default: the assigner's); see
// WindowedStream.Trigger.
func (c CoWindowedStreams[K, A, B]) Trigger(t window.Trigger) CoWindowedStreams[K, A, B] {
	c.trigger = &t
	return c
}

// Evictor sets an evictor, applied to the records of both sides together;
// see WindowedStream.Evictor.
func (c CoWindowedStreams[K, A, B]) Evictor(e window.Evictor) CoWindowedStreams[K, A, B] {
	c.evictor = &e
	return c
}

// AllowedLateness keeps event-time windows for d after the watermark
// passed their end (default 0); a record within it fires the window again
// with the updated result: the function runs again over the whole window,
// so a JoinWindow emits the window's earlier pairs again too, as in
// Flink. Later records are late: counted in VertexStatus.LateRecords and
// dropped (with a WARN for the first), as Flink's windowed joins drop
// them.
func (c CoWindowedStreams[K, A, B]) AllowedLateness(d time.Duration) CoWindowedStreams[K, A, B] {
	c.lateness = d
	return c
}

// CoGroupFunc is called once per key and fired window with the records of
// either side in the window, each in arrival order (Flink's
// CoGroupFunction); one side may be empty, not both. The slices are only
// valid during the call. What it collects carries the timestamp
// wc.Window().MaxTimestamp().
type CoGroupFunc[K comparable, A, B, OUT any] func(key K, as []A, bs []B, wc *WindowContext[OUT]) error

// CoGroupWindow calls fn for every key and window of cw when the window
// fires. aCodec and bCodec encode the records of either side in the
// window's state. The two streams are tagged by side, merged (a Union
// named name+"/union" after Maps named name+"/left" and name+"/right")
// and keyed into one window operator named name, whose state is
// checkpointed by key group and restored at any parallelism like any
// window's (docs/design.md §14).
func CoGroupWindow[K comparable, A, B, OUT any](cw CoWindowedStreams[K, A, B], name string, fn CoGroupFunc[K, A, B, OUT],
	aCodec codec.Codec[A], bCodec codec.Codec[B], opts ...OpOption) Stream[OUT] {
	e := cw.a.s.env
	if aCodec == nil || bCodec == nil {
		e.fail(fmt.Errorf("windowed coGroup/join %q: the codecs of both sides are needed to keep them in window state", name))
	}
	// The tagging Maps chain to their inputs and the Union keeps its
	// inputs' parallelism, so both sides reach the window operator over
	// one keyed shuffle, as a single keyed stream would.
	left := Map(cw.a.s, name+"/left", func(v A) coItem[A, B] { return coItem[A, B]{a: v} })
	right := Map(cw.b.s, name+"/right", func(v B) coItem[A, B] { return coItem[A, B]{b: v, right: true} })
	u := Union(name+"/union", left, []Stream[coItem[A, B]]{right})
	keyA, keyB := cw.a.key, cw.b.key
	ks := KeyedStream[K, coItem[A, B]]{s: u, codec: cw.a.codec, key: func(it coItem[A, B]) K {
		if it.right {
			return keyB(it.b)
		}
		return keyA(it.a)
	}}
	ws := Window(ks, cw.assigner).AllowedLateness(cw.lateness)
	if cw.trigger != nil {
		ws = ws.Trigger(*cw.trigger)
	}
	if cw.evictor != nil {
		ws = ws.Evictor(*cw.evictor)
	}
	return WindowProcess(ws, name, func() ProcessWindowFunction[K, coItem[A, B], OUT] {
		return &coGroupWindowFn[K, A, B, OUT]{fn: fn}
	}, coItemCodec[A, B]{a: aCodec, b: bCodec}, opts...)
}

// JoinWindow is the inner windowed join (Flink's JoinedStreams ... apply
// (JoinFunction)): for every key and fired window of cw it emits join(a,
// b) for every pair of a left and a right record in the window, left
// records in arrival order, for each the right ones in arrival order. It
// is CoGroupWindow with a function that pairs the two sides.
func JoinWindow[K comparable, A, B, OUT any](cw CoWindowedStreams[K, A, B], name string, join func(a A, b B) OUT,
	aCodec codec.Codec[A], bCodec codec.Codec[B], opts ...OpOption) Stream[OUT] {
	return CoGroupWindow(cw, name, func(_ K, as []A, bs []B, wc *WindowContext[OUT]) error {
		for _, a := range as {
			for _, b := range bs {
				wc.Collect(join(a, b))
			}
		}
		return nil
	}, aCodec, bCodec, opts...)
}

// coItem is a record of either side of a windowed coGroup.
type coItem[A, B any] struct {
	a     A
	b     B
	right bool
}

// coItemCodec encodes a coItem as a side byte (0 left, 1 right) and the
// record with its side's codec.
type coItemCodec[A, B any] struct {
	a codec.Codec[A]
	b codec.Codec[B]
}

// CodecID names the encoding after both sides' codecs; undeclared if
// either is.
func (c coItemCodec[A, B]) CodecID() codec.ID {
	a, b := codec.IDOf(c.a), codec.IDOf(c.b)
	if !a.Declared() || !b.Declared() {
		return codec.ID{Name: "cogroup(" + a.Name + "," + b.Name + ")"}
	}
	return codec.ID{Name: "cogroup(" + a.String() + "," + b.String() + ")", Version: 1}
}

func (c coItemCodec[A, B]) Append(dst []byte, it coItem[A, B]) []byte {
	if it.right {
		return c.b.Append(append(dst, 1), it.b)
	}
	return c.a.Append(append(dst, 0), it.a)
}

func (c coItemCodec[A, B]) Decode(src []byte) (coItem[A, B], int, error) {
	var it coItem[A, B]
	if len(src) == 0 {
		return it, 0, codec.ErrTruncated
	}
	var n int
	var err error
	switch src[0] {
	case 0:
		it.a, n, err = c.a.Decode(src[1:])
	case 1:
		it.right = true
		it.b, n, err = c.b.Decode(src[1:])
	default:
		return it, 0, fmt.Errorf("%w: coGroup side byte %d", codec.ErrCorrupt, src[0])
	}
	if err != nil {
		return it, 0, err
	}
	return it, n + 1, nil
}

// coGroupWindowFn splits a window's records by side for a CoGroupFunc.
type coGroupWindowFn[K comparable, A, B, OUT any] struct {
	fn CoGroupFunc[K, A, B, OUT]
	as []A
	bs []B
}

func (f *coGroupWindowFn[K, A, B, OUT]) Process(key K, elements []coItem[A, B], wc *WindowContext[OUT]) error {
	as, bs := f.as[:0], f.bs[:0]
	for i := range elements {
		if elements[i].right {
			bs = append(bs, elements[i].b)
		} else {
			as = append(as, elements[i].a)
		}
	}
	err := f.fn(key, as, bs, wc)
	// Keep the capacity, not the records: they must not outlive the
	// window's state.
	clear(as)
	clear(bs)
	f.as, f.bs = as[:0], bs[:0]
	return err
}
