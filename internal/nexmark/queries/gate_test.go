package queries_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/fault"
	"github.com/sluicehq/sluice/internal/nexmark"
	"github.com/sluicehq/sluice/watermark"
)

// faultGate makes a restart test's failure certain to fire after a
// completed checkpoint, however slow the machine. Its source
// (gatedEvents) emits hold events of every split, then stays idle until
// a checkpoint taken while every reader held completes; that checkpoint's
// OnCheckpointComplete arms the injector and lets the rest of the input
// through. The restart so restores a checkpoint with at least hold events
// of each split in its state, and the failure strikes on what follows:
// at least half the input for a hold under half a split, more record hits
// than an OnRecord target skips. A reader whose splits ended reports the
// end of input only once the failure fired: until then it stays idle, so
// that barriers still flow and checkpoints (with their barrier and
// snapshot-write points) go on.
//
// An idle reader returns NothingAvailable and waits on a channel; the
// source task keeps serving its control mail meanwhile (checkpoint
// triggers included), so the holds never keep a barrier back.
type faultGate struct {
	inj     *fault.Injector
	target  fault.Target
	hold    int64
	readers int // source subtasks: all must hold for a checkpoint to count

	open      chan struct{} // closed when the injector is armed
	openOnce  sync.Once
	fired     chan struct{} // closed when the failure fired
	firedOnce sync.Once

	mu sync.Mutex
	// heldAt is, per source subtask of the first attempt, the first
	// checkpoint it snapshotted while holding.
	heldAt map[int]int64
	// armedAt is the checkpoint whose completion armed the failure.
	armedAt int64
}

func newFaultGate(env *sluice.Environment, inj *fault.Injector, target fault.Target, hold int64, readers int) *faultGate {
	g := &faultGate{inj: inj, target: target, hold: hold, readers: readers,
		open: make(chan struct{}), fired: make(chan struct{}), heldAt: map[int]int64{}}
	inj.OnFire(func(fault.Injected) { g.firedOnce.Do(func() { close(g.fired) }) })
	env.OnCheckpointComplete(g.checkpointComplete)
	return g
}

// checkpointComplete arms the failure on the first completed checkpoint
// that every reader took while holding: its state covers hold events of
// every split. It runs on the job master loop.
func (g *faultGate) checkpointComplete(cs checkpoint.CheckpointStats) {
	if cs.Kind != checkpoint.KindCheckpoint {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.armedAt != 0 || len(g.heldAt) < g.readers {
		return
	}
	for _, id := range g.heldAt {
		if id > cs.ID {
			return
		}
	}
	g.armedAt = cs.ID
	g.inj.Arm(g.target)
	g.openOnce.Do(func() { close(g.open) })
}

func (g *faultGate) isOpen() bool {
	select {
	case <-g.open:
		return true
	default:
		return false
	}
}

func (g *faultGate) hasFired() bool {
	select {
	case <-g.fired:
		return true
	default:
		return false
	}
}

// ArmedAt returns the checkpoint whose completion armed the failure, 0 if
// none did.
func (g *faultGate) ArmedAt() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.armedAt
}

// events adds the gated generator of cfg to env, as nexmark.Events does:
// same name, splits, event time and watermarks.
func (g *faultGate) events(env *sluice.Environment, cfg nexmark.GeneratorConfig) sluice.Stream[nexmark.Event] {
	src := &gatedSource{EventSource: nexmark.Source(cfg), g: g}
	return sluice.FromSourceWithWatermarks(env, "nexmark", src, watermark.ForBoundedOutOfOrderness(nexmark.OutOfOrderness), nil)
}

// gatedSource is a nexmark.EventSource whose readers a faultGate holds.
type gatedSource struct {
	*nexmark.EventSource
	g *faultGate
}

func (s *gatedSource) NewReader(ctx context.Context, oc *sluice.OperatorContext) (sluice.SourceReader[nexmark.Event], error) {
	r, err := s.EventSource.NewReader(ctx, oc)
	if err != nil {
		return nil, err
	}
	return &gatedReader{SourceReader: r, g: s.g, subtask: oc.Subtask}, nil
}

// gatedReader wraps a nexmark reader; it passes the engine's output
// through unchanged, so that the reader still emits per split.
type gatedReader struct {
	sluice.SourceReader[nexmark.Event]
	g       *faultGate
	subtask int
	holding bool // idle at the hold, waiting for the gate to open
	ended   bool // the splits ended; idle until the failure fired
}

// EmitsPerSplit: the nexmark reader is sluice.SplitAware, and so must its
// wrapper be, for its splits to hold the watermark back from the start.
func (r *gatedReader) EmitsPerSplit() {}

func (r *gatedReader) Poll(ctx context.Context, out sluice.Emitter[nexmark.Event]) (sluice.PollStatus, error) {
	if r.ended {
		if r.g.hasFired() {
			return sluice.EndOfInput, nil
		}
		return sluice.NothingAvailable, nil
	}
	if !r.g.isOpen() {
		held, err := r.atHold(ctx)
		if err != nil {
			return sluice.NothingAvailable, err
		}
		if held {
			r.holding = true
			return sluice.NothingAvailable, nil
		}
	}
	r.holding = false
	st, err := r.SourceReader.Poll(ctx, out)
	if err == nil && st == sluice.EndOfInput && !r.g.hasFired() {
		r.ended = true
		return sluice.NothingAvailable, nil
	}
	return st, err
}

// atHold reports whether every split of the reader emitted hold events
// (or ended), from the positions its snapshot gives: the nexmark reader
// keeps a split's position as the uvarint number of its next event.
func (r *gatedReader) atHold(ctx context.Context) (bool, error) {
	splits, err := r.SourceReader.SnapshotSplits(ctx, 0)
	if err != nil {
		return false, err
	}
	for _, s := range splits {
		next, n := binary.Uvarint(s.State)
		if n <= 0 {
			return false, fmt.Errorf("split %s: position %x is not a uvarint", s.ID, s.State)
		}
		if int64(next) < r.g.hold {
			return false, nil
		}
	}
	return true, nil
}

func (r *gatedReader) Available() <-chan struct{} {
	switch {
	case r.ended:
		return r.g.fired
	case r.holding:
		return r.g.open
	}
	return r.SourceReader.Available()
}

// SnapshotSplits records the first checkpoint the reader takes while
// holding.
func (r *gatedReader) SnapshotSplits(ctx context.Context, id int64) ([]sluice.Split, error) {
	if r.holding {
		r.g.mu.Lock()
		if _, ok := r.g.heldAt[r.subtask]; !ok {
			r.g.heldAt[r.subtask] = id
		}
		r.g.mu.Unlock()
	}
	return r.SourceReader.SnapshotSplits(ctx, id)
}
