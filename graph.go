package sluice

import (
	"fmt"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/internal/runtime"
)

// node is one operator of the job graph.
type node struct {
	id      int
	name    string
	uid     string
	par     int
	isSink  bool
	noChain bool
	// codec is the codec.Codec of the node's output given with WithCodec,
	// or nil.
	codec any
	ins   []*edge
	outs  []*edge
	// make builds subtask sub of the operator given its typed output
	// (an Emitter[OUT], or nil for sinks).
	make func(sub int, out any) (instance, error)
	// fanout joins the typed Emitters of the outgoing edges into one.
	fanout func(outs []any) any
	// source is what a source node reads, if its source describes itself.
	source *checkpoint.SourceIdentity
	// sideCapable is set for operators whose function can emit to side
	// outputs (Process, CoProcess); sides holds the side outputs consumed
	// (SideOutput), by tag id.
	sideCapable bool
	sides       map[string]*sideSpec
	// winProbe is set for window operators (tests read what they left in
	// state).
	winProbe *windowProbe
	// advice is what the advisor knows of a source or sink (advice.go).
	advice nodeAdvice
	// keyedState is set for operators with a keyed-state backend per
	// subtask (keyed functions, windows).
	keyedState bool
}

// instance is one subtask of an operator: an operator with its typed input
// Emitters (one per logical input), or a source driver.
type instance struct {
	op  runtime.Operator
	ins []any
	src runtime.SourceDriver
}

// edge joins two nodes. Everything typed about it is captured in closures.
type edge struct {
	id          int
	from, to    *node
	toInput     int
	part        runtime.Partitioning
	chained     bool
	newChannels func(up, down, capacity int) any
	newWriter   func(ch any, sub int, w *runtime.Wiring) (any, runtime.OutputWriter)
	newInputs   func(ch any, sub int, in any, w *runtime.Wiring) []runtime.InputChannel
	// tag is the side output of from the edge carries, empty for the main
	// output.
	tag string
	// codecErr says why the edge's records have no codec (nil: they have
	// one); unaligned checkpoints need one on every network edge.
	codecErr error
}

// OpOption sets a property of one operator.
type OpOption func(*opConfig)

type opConfig struct {
	uid     string
	par     int
	noChain bool
	codec   any
}

// UID sets the operator's stable id, under which its state is stored in
// checkpoints and savepoints. Default: the operator's name. Set it
// explicitly before renaming an operator of a job that has savepoints.
func UID(uid string) OpOption { return func(c *opConfig) { c.uid = uid } }

// Parallelism sets how many subtasks run the operator. Default: the job's
// Config.Parallelism.
func Parallelism(n int) OpOption { return func(c *opConfig) { c.par = n } }

// WithCodec gives the records the operator emits (its main output, of type
// T) a codec. Unaligned checkpoints (checkpoint.unaligned) store the
// records in flight on every network edge with the codec of its records:
// built-in types (strings, integers, floats, bools, byte slices and named
// types over them) have one already (codec.For), other types need this
// option on the operator producing the edge, or the plan is refused.
// Nothing else uses it: without unaligned checkpoints records cross edges
// as Go values, never encoded. A codec whose type is not the operator's
// output type is refused when the job is planned.
func WithCodec[T any](c codec.Codec[T]) OpOption { return func(o *opConfig) { o.codec = c } }

// StartNewChain keeps the operator out of its input's chain, so it runs in
// a goroutine of its own (Flink's startNewChain/disableChaining).
func StartNewChain() OpOption { return func(c *opConfig) { c.noChain = true } }

// addNode registers a node; the name must be unique per job because it is
// the default uid.
func (e *Environment) addNode(name string, opts []OpOption, defPar int) *node {
	c := opConfig{par: defPar}
	for _, o := range opts {
		o(&c)
	}
	if c.uid == "" {
		c.uid = name
	}
	if name == "" {
		e.fail(fmt.Errorf("operator %d: empty name", len(e.nodes)))
	}
	if e.uids[c.uid] {
		e.fail(fmt.Errorf("operator %q: uid %q is used twice; give one of them sluice.UID", name, c.uid))
	}
	e.uids[c.uid] = true
	if c.par < 1 || c.par > e.cfg.MaxParallelism {
		e.fail(fmt.Errorf("operator %q: parallelism must be in 1..%d (max-parallelism), got %d", name, e.cfg.MaxParallelism, c.par))
	}
	n := &node{id: len(e.nodes), name: name, uid: c.uid, par: c.par, noChain: c.noChain, codec: c.codec}
	e.nodes = append(e.nodes, n)
	return n
}

// connect adds an edge carrying the stream s (the main or a side output of
// its node) to input toInput of `to`, partitioned by part (not Hash: see
// connectKeyed) with target.
func connect[T any](e *Environment, s Stream[T], to *node, toInput int, part runtime.Partitioning, target func(T) int) {
	connectEdge(e, s, to, toInput, part, target, nil)
}

// connectKeyed is connect for a keyed stream: keyHash returns a record's
// key hash (keyHashOf); the writer routes the record to the subtask owning
// the key's group and passes the group and the hash along, so the keyed
// operator hashes the key neither for its key group nor for its state's
// hash tables (docs/design.md §2).
func connectKeyed[T any](e *Environment, s Stream[T], to *node, toInput int, keyHash func(T) uint64) {
	connectEdge(e, s, to, toInput, runtime.Hash, nil, keyHash)
}

func connectEdge[T any](e *Environment, s Stream[T], to *node, toInput int, part runtime.Partitioning, target func(T) int, keyHash func(T) uint64) {
	from := s.n
	if part == runtime.Forward && from.par != to.par {
		part = runtime.Rebalance
	}
	ed := &edge{id: len(e.edges), from: from, to: to, toInput: toInput, tag: s.tag, part: part}
	maxP := e.cfg.MaxParallelism
	ed.newChannels = func(up, down, capacity int) any { return runtime.NewChannels[T](up, down, capacity) }
	ed.newWriter = func(ch any, sub int, w *runtime.Wiring) (any, runtime.OutputWriter) {
		var wr *runtime.Writer[T]
		if ed.part == runtime.Hash {
			wr = runtime.NewKeyGroupWriter(ch.(*runtime.Channels[T]), sub, keyHash, maxP, w.BatchSize, w.Done, w.Stats, w.Time)
		} else {
			wr = runtime.NewWriter(ch.(*runtime.Channels[T]), sub, ed.part, target, w.BatchSize, w.Done, w.Stats, w.Time)
		}
		return Emitter[T](wr), wr
	}
	c, err := edgeCodec[T](from, s.tag)
	ed.codecErr = err
	ed.newInputs = func(ch any, sub int, in any, w *runtime.Wiring) []runtime.InputChannel {
		ins := runtime.NewInputs(ch.(*runtime.Channels[T]), sub, ed.part, in.(Emitter[T]), w.Stats, w.Time)
		if c != nil {
			ins = runtime.WithCodec(ins, c)
		}
		return ins
	}
	e.edges = append(e.edges, ed)
	from.outs = append(from.outs, ed)
	to.ins = append(to.ins, ed)
}

// edgeCodec returns the codec of the records of an edge out of from: the
// one given with WithCodec for its main output, else the built-in one.
func edgeCodec[T any](from *node, tag string) (codec.Codec[T], error) {
	if from.codec != nil && tag == "" {
		c, ok := from.codec.(codec.Codec[T])
		if !ok {
			return nil, fmt.Errorf("operator %q: sluice.WithCodec was given a %T, but the operator emits %T records", from.name, from.codec, *new(T))
		}
		return c, nil
	}
	if c, ok := codec.For[T](); ok {
		return c, nil
	}
	return nil, fmt.Errorf("its records (%T) have no built-in codec: give the operator %q sluice.WithCodec", *new(T), from.name)
}

// keyHashOf returns the Hash partitioner of a keyed stream: the hash of
// the record's key, from which the writer computes its key group and the
// subtask owning it.
func keyHashOf[K comparable, T any](ks KeyedStream[K, T]) func(T) uint64 {
	key, kc := ks.key, ks.codec
	return func(v T) uint64 {
		return kc.Hash(key(v))
	}
}

// setFanout gives n the fan-out for its output type.
func setFanout[T any](n *node) {
	n.fanout = func(outs []any) any {
		switch len(outs) {
		case 0:
			return Emitter[T](discard[T]{})
		case 1:
			return outs[0].(Emitter[T])
		}
		f := make(fanout[T], len(outs))
		for i, o := range outs {
			f[i] = o.(Emitter[T])
		}
		return Emitter[T](f)
	}
}

type discard[T any] struct{}

func (discard[T]) Emit(T) error { return nil }

// fanout sends each record to several outputs.
type fanout[T any] []Emitter[T]

func (f fanout[T]) Emit(v T) error {
	for _, o := range f {
		if err := o.Emit(v); err != nil {
			return err
		}
	}
	return nil
}

// checkCodec refuses a network edge without a codec for its records when
// checkpoints are unaligned: its in-flight records could not be stored
// (docs/design.md §3 "Unaligned checkpoints"). A mismatched WithCodec is
// refused whatever the mode.
func (ed *edge) checkCodec(cfg checkpoint.Config) error {
	if ed.codecErr == nil {
		return nil
	}
	if ed.from.codec != nil && ed.tag == "" {
		return fmt.Errorf("edge %s → %s: %w", ed.from.name, ed.to.name, ed.codecErr)
	}
	if !cfg.Unaligned {
		return nil
	}
	return fmt.Errorf("edge %s → %s (%s): %s is on, and %w", ed.from.name, ed.to.name, ed.part, checkpoint.KeyUnaligned, ed.codecErr)
}
