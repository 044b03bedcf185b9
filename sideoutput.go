package sluice

import (
	"fmt"
	"reflect"
	"sort"

	"github.com/sluicehq/sluice/internal/runtime"
)

// OutputTag names a typed side output of an operator (Flink's OutputTag):
// a keyed process function emits to it with Output, and SideOutput turns it
// into a stream. Its id must be unique among the side outputs of one
// operator; the same tag may be used with several operators.
type OutputTag[T any] struct {
	id string
}

// NewOutputTag returns the tag of the side output id carrying records of
// type T. An empty id is refused when the job is built (by SideOutput) and
// fails the record when emitted to (by Output).
func NewOutputTag[T any](id string) OutputTag[T] { return OutputTag[T]{id: id} }

// ID returns the tag's id.
func (t OutputTag[T]) ID() string { return t.id }

// sideSpec is one consumed side output of a node: its record type, and
// how the Emitters of its edges are joined into the *sideOut[T] the
// operator emits to.
type sideSpec struct {
	typ    reflect.Type
	fanout func(outs []any) any
}

// sideEmitter is a side output as a subtask sees it: the tag id and the
// *sideOut[T] of its consumers.
type sideEmitter struct {
	id string
	em any
}

// sideOut is the typed Emitter of one side output; Output asserts to this
// concrete type (a type-word compare) to reach it.
type sideOut[T any] struct{ out Emitter[T] }

// sideOutputs is implemented by operators whose function can emit to side
// outputs (the keyed process and co-process operators).
type sideOutputs interface {
	setSideOutputs(s []sideEmitter)
}

// SideOutput returns the stream of s's operator's side output tag: records
// its function emitted with Output, with their timestamps, at the
// operator's parallelism. It is a stream like any other: the next operator
// chains to it over a forward edge where it can, and KeyBy, Rebalance or
// another parallelism shuffle it. Barriers and watermarks go to every
// output of an operator, side outputs included, so a side output's
// consumers align checkpoints and see event time as the main output's do
// (docs/design.md §1).
//
// s must be the main output of a Process, CoProcess, IntervalJoinProcess,
// ProcessBroadcast or ProcessKeyedBroadcast operator, or of a window
// operator, whose side output is its late data
// (WindowedStream.SideOutputLateData). A tag id used with two different
// types on one operator is a build error; calling SideOutput twice with the
// same tag gives two streams of the same records. Records emitted to a tag
// that no SideOutput consumes cost a lookup and are dropped, as in Flink;
// likewise, an operator whose side outputs are consumed may leave its main
// output without a consumer.
func SideOutput[X, T any](s Stream[X], tag OutputTag[T]) Stream[T] {
	e, n := s.env, s.n
	out := Stream[T]{env: e, n: n, tag: tag.id}
	switch {
	case tag.id == "":
		e.fail(fmt.Errorf("operator %q: SideOutput: empty OutputTag id", n.name))
		return out
	case s.tag != "":
		e.fail(fmt.Errorf("operator %q: SideOutput %q of side output %q: a side output has no side outputs of its own", n.name, tag.id, s.tag))
		return out
	case !n.sideCapable:
		e.fail(fmt.Errorf("operator %q: SideOutput %q: only the functions of Process, CoProcess, IntervalJoinProcess and the broadcast process operators, and window operators (late data), emit side outputs", n.name, tag.id))
		return out
	}
	typ := reflect.TypeFor[T]()
	if sp, ok := n.sides[tag.id]; ok {
		if sp.typ != typ {
			e.fail(fmt.Errorf("operator %q: side output %q is used with two types, %v and %v; give each its own tag id", n.name, tag.id, sp.typ, typ))
		}
		return out
	}
	if n.sides == nil {
		n.sides = map[string]*sideSpec{}
	}
	n.sides[tag.id] = &sideSpec{typ: typ, fanout: func(outs []any) any {
		var f Emitter[T]
		if len(outs) == 1 {
			f = outs[0].(Emitter[T])
		} else {
			fo := make(fanout[T], len(outs))
			for i, o := range outs {
				fo[i] = o.(Emitter[T])
			}
			f = fo
		}
		return &sideOut[T]{out: f}
	}}
	return out
}

// setSideOutputs hands op the Emitters of n's consumed side outputs, in
// the order of their ids.
func setSideOutputs(n *node, op runtime.Operator, sides map[string][]any) error {
	so, ok := op.(sideOutputs)
	if !ok {
		return fmt.Errorf("operator %q: its operator cannot emit side outputs", n.name)
	}
	list := make([]sideEmitter, 0, len(sides))
	for id, outs := range sides {
		list = append(list, sideEmitter{id: id, em: n.sides[id].fanout(outs)})
	}
	sort.Slice(list, func(i, j int) bool { return list[i].id < list[j].id })
	so.setSideOutputs(list)
	return nil
}

// Output emits v to the side output tag of the operator running pc's
// function, from ProcessElement or OnTimer, with the timestamp Collect
// would give it (the record's, or the event-time timer's). If no
// SideOutput consumes tag, v is dropped. A downstream error, an empty tag
// id, or a tag whose type differs from the one SideOutput consumes, fails
// the record (and the job attempt) like an error the function returned.
func Output[K comparable, OUT, T any](pc *ProcessContext[K, OUT], tag OutputTag[T], v T) {
	if pc.err != nil {
		return
	}
	if tag.id == "" {
		pc.err = fmt.Errorf("%s: sluice.Output: empty OutputTag id", pc.op.UID)
		return
	}
	for i := range pc.side {
		if pc.side[i].id != tag.id {
			continue
		}
		so, ok := pc.side[i].em.(*sideOut[T])
		if !ok {
			pc.err = fmt.Errorf("%s: sluice.Output: side output %q carries %T, not %T", pc.op.UID, tag.id, pc.side[i].em, so)
			return
		}
		pc.err = so.out.Emit(v)
		return
	}
}

// setSideOutputs gives the process context the subtask's side outputs.
func (k *keyedCore[K, OUT]) setSideOutputs(s []sideEmitter) { k.pc.side = s }
