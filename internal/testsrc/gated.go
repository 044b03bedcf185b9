// Package testsrc holds source wrappers that tests of several packages share.
package testsrc

import (
	"context"

	"github.com/sluicehq/sluice"
)

// Gated lets each reader of src emit at most per records (plus one poll)
// per completed checkpoint. A job then completes at least records/per
// checkpoints whatever the machine's load, so failures aimed at checkpoint
// steps (pre-commit, commit) fire before a bounded input ends.
func Gated[T any](src sluice.Source[T], per int) sluice.Source[T] {
	return gatedSource[T]{Source: src, per: per}
}

type gatedSource[T any] struct {
	sluice.Source[T]
	per int
}

// AssignSplit passes the inner source's assignment through, if it has one.
func (s gatedSource[T]) AssignSplit(id string, parallelism int) int {
	if a, ok := s.Source.(sluice.SplitAssigner); ok {
		return a.AssignSplit(id, parallelism)
	}
	return 0
}

func (s gatedSource[T]) NewReader(ctx context.Context, oc *sluice.OperatorContext) (sluice.SourceReader[T], error) {
	r, err := s.Source.NewReader(ctx, oc)
	if err != nil {
		return nil, err
	}
	return &gatedReader[T]{SourceReader: r, allowed: s.per, per: s.per, open: make(chan struct{}, 1)}, nil
}

type gatedReader[T any] struct {
	sluice.SourceReader[T]
	per, emitted, allowed int
	gated                 bool
	open                  chan struct{}
}

type countingEmitter[T any] struct {
	out sluice.Emitter[T]
	n   *int
}

func (e countingEmitter[T]) Emit(v T) error { *e.n++; return e.out.Emit(v) }

func (r *gatedReader[T]) Poll(ctx context.Context, out sluice.Emitter[T]) (sluice.PollStatus, error) {
	if r.emitted >= r.allowed {
		r.gated = true
		return sluice.NothingAvailable, nil
	}
	r.gated = false
	return r.SourceReader.Poll(ctx, countingEmitter[T]{out, &r.emitted})
}

func (r *gatedReader[T]) Available() <-chan struct{} {
	if r.gated {
		return r.open
	}
	return r.SourceReader.Available()
}

func (r *gatedReader[T]) NotifyCheckpointComplete(ctx context.Context, id int64) error {
	r.allowed = r.emitted + r.per
	select {
	case r.open <- struct{}{}:
	default:
	}
	return r.SourceReader.NotifyCheckpointComplete(ctx, id)
}
