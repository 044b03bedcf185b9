package runtime

import (
	"fmt"
	"strconv"
)

// aligner is barrier alignment (docs/design.md §3 step 3) as a deterministic
// core, in the manner of the checkpoint coordinator: it reads no clock,
// starts no goroutine, owns no channel and does no I/O. The task feeds it
// what its inputs delivered (a barrier on input i, the end of input i) and
// what the job master said (checkpoint n aborted), and carries out the
// actions it returns, in order. scripts in testdata/aligner replay every
// interleaving that matters (aligner_test.go).
//
// Invariants:
//   - In exactly-once mode an input that delivered a barrier is blocked (its
//     reader waits on its gate) until the aligner releases it; the aligner
//     releases an input only while it is blocked, and every blocked input
//     is released exactly once. A gate therefore never holds a stale token
//     that would let a later barrier through unaligned.
//   - Checkpoint n is snapshotted at most once, after barrier n arrived on
//     every input that has not ended; the barrier is emitted downstream
//     after the snapshot and before any input is released, so no record
//     after barrier n on any input reaches the snapshot or precedes the
//     barrier downstream.
//   - A barrier of a checkpoint this task already snapshotted, abandoned or
//     was told is aborted is stale: it releases its input and nothing else.
//   - A newer barrier overtaking the one being aligned declines the older
//     checkpoint (it was aborted, or will time out) and starts the newer.
//
// In at-least-once mode inputs are never blocked: the snapshot is taken
// once barrier n arrived on every input, and records after the barrier on
// the inputs that delivered it early are processed before the snapshot
// (and replayed after a restore).
type aligner struct {
	exactlyOnce bool
	// aligning is the checkpoint being aligned, 0 if none.
	aligning int64
	pending  Barrier
	// maxStarted is the highest checkpoint whose alignment started or that
	// was aborted: barriers up to it, other than aligning, are stale.
	maxStarted int64
	seen       []bool // input delivered barrier aligning (and is blocked if exactlyOnce)
	ended      []bool
	nEnded     int
	out        []alignAction
}

// alignOp says what an alignAction asks of the task.
type alignOp uint8

// The aligner's actions.
const (
	// alignBegin: the first barrier of checkpoint ID arrived; alignment
	// starts (the task notes the time, for the alignment duration).
	alignBegin alignOp = iota
	// alignBlock: Input delivered barrier ID and stays blocked behind it.
	alignBlock
	// alignRelease: Input may be read again (open its gate).
	alignRelease
	// alignSnapshot: barrier ID arrived on every live input: take the
	// synchronous snapshot for Barrier.
	alignSnapshot
	// alignEmit: send Barrier downstream on every output.
	alignEmit
	// alignDecline: checkpoint ID cannot complete at this task (Reason).
	alignDecline
	// alignStale: barrier ID on Input belongs to a checkpoint already
	// snapshotted, abandoned or aborted; it is dropped.
	alignStale
	// alignInputsEnded: every input ended; the task ends its input.
	alignInputsEnded
)

// alignAction is one output of the aligner.
type alignAction struct {
	Op      alignOp
	Input   int
	ID      int64
	Barrier Barrier
	Reason  string
}

func (a alignAction) String() string {
	switch a.Op {
	case alignBegin:
		return "begin " + strconv.FormatInt(a.ID, 10)
	case alignBlock:
		return fmt.Sprintf("block %d (barrier %d)", a.Input, a.ID)
	case alignRelease:
		return fmt.Sprintf("release %d", a.Input)
	case alignSnapshot:
		return "snapshot " + strconv.FormatInt(a.ID, 10)
	case alignEmit:
		return "emit barrier " + strconv.FormatInt(a.ID, 10)
	case alignDecline:
		return fmt.Sprintf("decline %d: %s", a.ID, a.Reason)
	case alignStale:
		return fmt.Sprintf("stale barrier %d on %d", a.ID, a.Input)
	case alignInputsEnded:
		return "inputs ended"
	}
	return fmt.Sprintf("alignOp(%d)", a.Op)
}

// newAligner returns the aligner of a task with inputs inputs.
func newAligner(inputs int, exactlyOnce bool) *aligner {
	return &aligner{exactlyOnce: exactlyOnce, seen: make([]bool, inputs), ended: make([]bool, inputs), out: make([]alignAction, 0, inputs+4)}
}

// Aligning returns the checkpoint being aligned.
func (a *aligner) Aligning() (int64, bool) { return a.aligning, a.aligning != 0 }

// Barrier reports that input delivered barrier b. The returned actions are
// valid until the next call.
func (a *aligner) Barrier(input int, b Barrier) []alignAction {
	a.out = a.out[:0]
	switch {
	case b.ID < a.aligning || (b.ID != a.aligning && b.ID <= a.maxStarted):
		a.emit(alignAction{Op: alignStale, Input: input, ID: b.ID})
		if a.exactlyOnce {
			a.emit(alignAction{Op: alignRelease, Input: input})
		}
		return a.out
	case b.ID > a.aligning:
		a.maxStarted = b.ID
		if a.aligning != 0 {
			a.emit(alignAction{Op: alignDecline, ID: a.aligning, Reason: fmt.Sprintf("barrier %d overtook barrier %d", b.ID, a.aligning)})
			a.releaseSeen()
		}
		a.aligning = b.ID
		a.pending = b
		a.emit(alignAction{Op: alignBegin, ID: b.ID})
	}
	if a.seen[input] {
		// Only possible in at-least-once mode (an exactly-once input is
		// blocked behind its barrier): a duplicate changes nothing.
		return a.out
	}
	a.seen[input] = true
	if a.exactlyOnce {
		a.emit(alignAction{Op: alignBlock, Input: input, ID: b.ID})
	}
	a.maybeAligned()
	return a.out
}

// End reports that input ended (its producer sent its last record).
func (a *aligner) End(input int) []alignAction {
	a.out = a.out[:0]
	if a.ended[input] {
		return a.out
	}
	a.ended[input] = true
	a.nEnded++
	if a.nEnded == len(a.ended) {
		// Everything ended; an alignment in progress can never finish.
		if a.aligning != 0 {
			a.emit(alignAction{Op: alignDecline, ID: a.aligning, Reason: "input ended during alignment"})
			a.releaseSeen()
		}
		a.emit(alignAction{Op: alignInputsEnded})
		return a.out
	}
	a.maybeAligned()
	return a.out
}

// Abort reports that checkpoint id was aborted: its alignment stops, and
// its barriers still on their way are stale.
func (a *aligner) Abort(id int64) []alignAction {
	a.out = a.out[:0]
	if a.aligning == id && id != 0 {
		a.releaseSeen()
	}
	a.maxStarted = max(a.maxStarted, id)
	return a.out
}

func (a *aligner) emit(act alignAction) { a.out = append(a.out, act) }

func (a *aligner) maybeAligned() {
	if a.aligning == 0 {
		return
	}
	for i := range a.seen {
		if !a.seen[i] && !a.ended[i] {
			return
		}
	}
	b := a.pending
	a.emit(alignAction{Op: alignSnapshot, ID: b.ID, Barrier: b})
	a.emit(alignAction{Op: alignEmit, ID: b.ID, Barrier: b})
	a.releaseSeen()
}

// releaseSeen ends the current alignment, releasing the inputs blocked
// behind its barrier.
func (a *aligner) releaseSeen() {
	for i := range a.seen {
		if a.seen[i] {
			a.seen[i] = false
			if a.exactlyOnce {
				a.emit(alignAction{Op: alignRelease, Input: i})
			}
		}
	}
	a.aligning = 0
	a.pending = Barrier{}
}
