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
// Unaligned checkpoints (exactly-once only, docs/design.md §3 "Unaligned
// checkpoints"): a barrier flagged Unaligned, or the Unaligned event (the
// job master's notice that checkpoint n runs unaligned, or its aligned
// timeout passed at this task), snapshots checkpoint n at once and emits
// its barrier; every live input that has not delivered barrier n is then
// captured (alignCapture): its records up to barrier n are the channel
// state of n. When barrier n arrived, or the input ended, on every
// captured input, alignComplete hands snapshot and channel state to the
// writer and the blocked inputs are released. Further invariants:
//   - snapshot and emit come before any capture, and nothing is released
//     between the snapshot and alignComplete (or the discard of n): the
//     task reads ahead on captured inputs but processes nothing in between;
//   - an input is captured only while it is neither blocked nor ended, and
//     its capture ends exactly once (alignCaptured), by its barrier, its
//     end, or the discard of the checkpoint;
//   - an unaligned checkpoint abandoned after its snapshot (a newer
//     barrier, an abort) is discarded (alignDiscard) before anything else
//     is released.
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
	// capturing says checkpoint aligning went unaligned: its snapshot is
	// taken and its barrier emitted; capture[i] says input i's records are
	// its channel state until barrier aligning arrives on i.
	capturing bool
	capture   []bool
	out       []alignAction
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
	// alignCapture: checkpoint ID went unaligned; Input's records up to its
	// barrier ID are channel state (the task reads them ahead, stores
	// them, and processes them only after alignComplete).
	alignCapture
	// alignCaptured: Input's channel state for ID is complete (its barrier
	// arrived, it ended, or the checkpoint was abandoned).
	alignCaptured
	// alignComplete: every captured input is complete: write the snapshot
	// of unaligned checkpoint ID with its channel state, and ack.
	alignComplete
	// alignDiscard: unaligned checkpoint ID was abandoned after its
	// snapshot: drop the snapshot and its channel state.
	alignDiscard
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
		if a.Barrier.Unaligned {
			return "emit unaligned barrier " + strconv.FormatInt(a.ID, 10)
		}
		return "emit barrier " + strconv.FormatInt(a.ID, 10)
	case alignDecline:
		return fmt.Sprintf("decline %d: %s", a.ID, a.Reason)
	case alignStale:
		return fmt.Sprintf("stale barrier %d on %d", a.ID, a.Input)
	case alignInputsEnded:
		return "inputs ended"
	case alignCapture:
		return fmt.Sprintf("capture %d (until barrier %d)", a.Input, a.ID)
	case alignCaptured:
		return fmt.Sprintf("captured %d", a.Input)
	case alignComplete:
		return "complete " + strconv.FormatInt(a.ID, 10)
	case alignDiscard:
		return "discard " + strconv.FormatInt(a.ID, 10)
	}
	return fmt.Sprintf("alignOp(%d)", a.Op)
}

// newAligner returns the aligner of a task with inputs inputs.
func newAligner(inputs int, exactlyOnce bool) *aligner {
	return &aligner{exactlyOnce: exactlyOnce, seen: make([]bool, inputs), ended: make([]bool, inputs), capture: make([]bool, inputs), out: make([]alignAction, 0, 2*inputs+4)}
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
		a.start(b, fmt.Sprintf("barrier %d overtook barrier %d", b.ID, a.aligning))
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
	switch {
	case a.capturing:
		a.endCapture(input)
		a.maybeCaptured()
	case b.Unaligned && a.exactlyOnce:
		a.goUnaligned()
	default:
		a.maybeAligned()
	}
	return a.out
}

// Unaligned reports that checkpoint b.ID is to be unaligned at this task
// now: the job master announced it so (Config.Unaligned), or its aligned
// timeout passed. Ignored in at-least-once mode, for a checkpoint this
// task already snapshotted, abandoned or was told is aborted, and for one
// already unaligned.
func (a *aligner) Unaligned(b Barrier) []alignAction {
	a.out = a.out[:0]
	if !a.exactlyOnce || b.ID < a.aligning || (b.ID != a.aligning && b.ID <= a.maxStarted) || a.nEnded == len(a.ended) {
		return a.out
	}
	if b.ID > a.aligning {
		a.start(b, fmt.Sprintf("checkpoint %d overtook checkpoint %d", b.ID, a.aligning))
	}
	if !a.capturing {
		a.goUnaligned()
	}
	return a.out
}

// start abandons the checkpoint being aligned, if any, for the newer b.
func (a *aligner) start(b Barrier, reason string) {
	a.maxStarted = b.ID
	if a.aligning != 0 {
		a.abandon()
		a.emit(alignAction{Op: alignDecline, ID: a.aligning, Reason: reason})
		a.releaseSeen()
	}
	a.aligning = b.ID
	a.pending = b
	a.emit(alignAction{Op: alignBegin, ID: b.ID})
}

// goUnaligned snapshots checkpoint aligning now, emits its barrier and
// captures every live input that has not delivered it.
func (a *aligner) goUnaligned() {
	a.capturing = true
	a.pending.Unaligned = true
	b := a.pending
	a.emit(alignAction{Op: alignSnapshot, ID: b.ID, Barrier: b})
	a.emit(alignAction{Op: alignEmit, ID: b.ID, Barrier: b})
	for i := range a.capture {
		if !a.seen[i] && !a.ended[i] {
			a.capture[i] = true
			a.emit(alignAction{Op: alignCapture, Input: i, ID: b.ID})
		}
	}
	a.maybeCaptured()
}

// endCapture ends input i's capture, if it is captured.
func (a *aligner) endCapture(i int) {
	if a.capture[i] {
		a.capture[i] = false
		a.emit(alignAction{Op: alignCaptured, Input: i, ID: a.aligning})
	}
}

// maybeCaptured completes the unaligned checkpoint once no input is
// captured any more.
func (a *aligner) maybeCaptured() {
	for _, c := range a.capture {
		if c {
			return
		}
	}
	a.emit(alignAction{Op: alignComplete, ID: a.aligning, Barrier: a.pending})
	a.releaseSeen()
}

// abandon ends the captures of an unaligned checkpoint given up after its
// snapshot, and discards it.
func (a *aligner) abandon() {
	if !a.capturing {
		return
	}
	for i := range a.capture {
		a.endCapture(i)
	}
	a.emit(alignAction{Op: alignDiscard, ID: a.aligning})
}

// End reports that input ended (its producer sent its last record).
func (a *aligner) End(input int) []alignAction {
	a.out = a.out[:0]
	if a.ended[input] {
		return a.out
	}
	a.ended[input] = true
	a.nEnded++
	if a.capturing {
		// The input's channel state ends with it; an unaligned checkpoint
		// already snapshotted completes even if every input ended.
		a.endCapture(input)
		a.maybeCaptured()
		if a.nEnded == len(a.ended) {
			a.emit(alignAction{Op: alignInputsEnded})
		}
		return a.out
	}
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
		a.abandon()
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
	a.capturing = false
}
