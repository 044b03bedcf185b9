package runtime

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/clock"
	"github.com/sluicehq/sluice/fault"
	"github.com/sluicehq/sluice/watermark"
)

// PollStatus is what a source reader's Poll found.
type PollStatus int

// The poll outcomes.
const (
	// MoreAvailable: call Poll again right away.
	MoreAvailable PollStatus = iota
	// NothingAvailable: wait on Available before polling again.
	NothingAvailable
	// EndOfInput: the reader's splits are exhausted (bounded source).
	EndOfInput
)

// SourceDriver is the non-generic face of a source reader joined to the
// head of its chain.
type SourceDriver interface {
	// Open hands the reader its splits (restored ones with positions).
	Open(ctx context.Context, oc *OperatorContext) error
	// Poll emits what is available now into the chain.
	Poll(ctx context.Context) (PollStatus, error)
	// Available is closed or sends when Poll may find records again.
	Available() <-chan struct{}
	// Snapshot returns the reader's operator state (its split positions).
	Snapshot(ctx context.Context, b Barrier) (map[string][][]byte, error)
	// NotifyComplete tells the reader that a checkpoint is durable.
	NotifyComplete(ctx context.Context, id int64) error
	// Close releases the reader, with a context of its own (see
	// CloseTimeout).
	Close(ctx context.Context) error
}

// OpInstance is one operator of a chain.
type OpInstance struct {
	UID  string
	Name string
	Op   Operator
}

// Chain is one subtask of a vertex: its operators (head first), its source
// reader if it is a source, its input channels and its network outputs.
type Chain struct {
	SourceUID string
	Source    SourceDriver
	Ops       []OpInstance
	Inputs    []InputChannel
	Outputs   []OutputWriter
	// Time is the task's event-time state, set by the runtime.
	Time *Time
}

// taskCtl is control mail from the job master to a task.
type taskCtl struct {
	kind    ctlKind
	barrier Barrier   // trigger, unaligned
	id      int64     // notify
	at      time.Time // unaligned: when (zero: now)
}

type ctlKind uint8

const (
	ctlTrigger ctlKind = iota
	ctlComplete
	ctlAborted
	ctlFinish
	// ctlUnaligned: checkpoint barrier.ID runs unaligned, at once or
	// from at on (its aligned timeout); non-source tasks only.
	ctlUnaligned
)

// task runs one subtask: one goroutine, a mailbox, no locks on operator
// state (docs/design.md §2).
type task struct {
	id      checkpoint.TaskID
	chain   *Chain
	job     *attempt
	ctl     chan taskCtl
	mailbox chan mail
	gates   []chan struct{}
	stats   *TaskStats

	// Alignment (docs/design.md §3 step 3): the decisions are the
	// aligner's; the task carries them out.
	align      *aligner
	alignStart time.Time
	// snap is the synchronous snapshot taken for an alignSnapshot action,
	// written out at the alignEmit that follows it.
	snap      takenSnapshot
	inputDone bool
	// Unaligned checkpoints (channelstate.go): the checkpoint whose
	// channel state is being captured, the mails taken from the mailbox
	// and not handled yet, and the announced aligned timeouts.
	unaligned unalignedState

	flushAt     time.Time
	parallelism int
	// Event time (docs/design.md §14): the combined watermark of the
	// inputs, and for a watermarking source the next periodic emission.
	wms    *watermark.Inputs
	wmSrc  WatermarkSource
	wmIval time.Duration
	wmAt   time.Time
	// split attributes the task's time to busy, idle and backpressured.
	split timeSplit
}

func (t *task) ops() []OpInstance { return t.chain.Ops }

// run is the task goroutine. Any error or panic fails the attempt.
func (t *task) run(ctx context.Context) (err error) {
	t.split = newTimeSplit(t.stats, t.job.clock)
	if t.chain.Time == nil {
		t.chain.Time = NewTime()
	}
	t.chain.Time.t = t
	defer t.split.stop() // the last stretch
	defer func() {
		if r := recover(); r != nil {
			var inj *fault.Injected
			if e, ok := r.(error); ok && errors.As(e, &inj) {
				err = fmt.Errorf("task %s/%d: %w", t.id.Vertex, t.id.Subtask, inj)
			} else {
				err = fmt.Errorf("task %s/%d panicked: %v\n%s", t.id.Vertex, t.id.Subtask, r, debug.Stack())
			}
		}
		// The attempt's context is likely done by now: Close gets its own.
		cctx, cancel := closeContext(ctx)
		defer cancel()
		for _, op := range t.ops() {
			if cerr := op.Op.Close(cctx); cerr != nil && err == nil {
				err = fmt.Errorf("close %s: %w", op.UID, cerr)
			}
		}
		if t.chain.Source != nil {
			if cerr := t.chain.Source.Close(cctx); cerr != nil && err == nil {
				err = fmt.Errorf("close source %s: %w", t.chain.SourceUID, cerr)
			}
		}
	}()
	if t.chain.Source != nil {
		return t.runSource(ctx)
	}
	return t.runInputs(ctx)
}

func (t *task) bufferTimeout() time.Duration { return t.job.plan.BufferTimeout }

// afterWork flushes the outputs when the buffer timeout says so. With a zero
// timeout every batch of work is flushed at once (lowest latency).
func (t *task) afterWork() error {
	bt := t.bufferTimeout()
	buffered := false
	for _, o := range t.chain.Outputs {
		if o.Buffered() {
			buffered = true
			break
		}
	}
	if !buffered {
		t.flushAt = time.Time{}
		return nil
	}
	now := t.job.clock.Now()
	if bt <= 0 {
		return t.flush()
	}
	if t.flushAt.IsZero() {
		t.flushAt = now.Add(bt)
		return nil
	}
	if !now.Before(t.flushAt) || t.flushAt.Sub(now) > bt {
		return t.flush()
	}
	return nil
}

func (t *task) flush() error {
	t.flushAt = time.Time{}
	for _, o := range t.chain.Outputs {
		if err := o.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// clampDeadlines makes the buffer flush and the periodic watermark due now
// if they lie further ahead than their own interval: the clock stepped
// back after they were set, and waiting for it to catch up would hold
// records and barriers in the buffers for the length of the step
// (docs/design.md §3). Processing-time timers keep their times: a step
// back delays them, as in Flink.
func (t *task) clampDeadlines(now time.Time) {
	if !t.flushAt.IsZero() && t.flushAt.Sub(now) > t.bufferTimeout() {
		t.flushAt = now
	}
	if !t.wmAt.IsZero() && t.wmAt.Sub(now) > t.wmIval {
		t.wmAt = now
	}
}

// nextWake returns when the task must wake up without mail: to flush or to
// fire a timer.
func (t *task) nextWake() (time.Time, bool) {
	t.clampDeadlines(t.job.clock.Now())
	var at time.Time
	for _, op := range t.ops() {
		if to, ok := op.Op.(TimerOperator); ok {
			if ts, ok := to.NextTimer(); ok && (at.IsZero() || ts.Before(at)) {
				at = ts
			}
		}
	}
	if !t.flushAt.IsZero() && (at.IsZero() || t.flushAt.Before(at)) {
		at = t.flushAt
	}
	if !t.wmAt.IsZero() && (at.IsZero() || t.wmAt.Before(at)) {
		at = t.wmAt
	}
	if ua, ok := t.unaligned.nextTimeout(); ok && (at.IsZero() || ua.Before(at)) {
		at = ua
	}
	return at, !at.IsZero()
}

func (t *task) onWake() error {
	now := t.job.clock.Now()
	t.clampDeadlines(now)
	if err := t.periodicWatermark(now); err != nil {
		return err
	}
	if err := t.alignedTimeouts(now); err != nil {
		return err
	}
	for _, op := range t.ops() {
		if to, ok := op.Op.(TimerOperator); ok {
			if ts, ok := to.NextTimer(); ok && !ts.After(now) {
				if err := to.FireTimers(now); err != nil {
					return fmt.Errorf("%s: timers: %w", op.UID, err)
				}
			}
		}
	}
	if !t.flushAt.IsZero() && !now.Before(t.flushAt) {
		return t.flush()
	}
	return t.afterWork()
}

// periodicWatermark lets a watermarking source emit when its interval is
// due at now.
func (t *task) periodicWatermark(now time.Time) error {
	if t.wmSrc == nil || now.Before(t.wmAt) {
		return nil
	}
	t.wmAt = now.Add(t.wmIval)
	if err := t.wmSrc.OnPeriodicWatermark(t.job.ctx, now); err != nil {
		return fmt.Errorf("source %s: watermark: %w", t.chain.SourceUID, err)
	}
	return nil
}

func (t *task) runSource(ctx context.Context) error {
	src := t.chain.Source
	exhausted, stopped := false, false
	if ws, ok := src.(WatermarkSource); ok {
		if iv := ws.WatermarkInterval(); iv > 0 {
			t.wmSrc, t.wmIval = ws, iv
			t.wmAt = t.job.clock.Now().Add(iv)
		}
	}
	// handle serves control mail; a stop barrier ends the source's input.
	handle := func(c taskCtl) (done bool, err error) {
		if c.kind == ctlTrigger && c.barrier.Stop {
			stopped = true
			if c.barrier.Drain && !exhausted {
				// Stop with drain: event time ends here, before the
				// barrier, so that the timers it fires are in the
				// savepoint and their output in its transactions.
				t.wmSrc, t.wmAt = nil, time.Time{}
				if err := t.emitStatus(false); err != nil {
					return false, err
				}
				if err := t.emitWatermark(ctx, FinalWatermark); err != nil {
					return false, err
				}
			}
		}
		return t.handleCtl(c)
	}
	for {
		// Control mail first: a checkpoint trigger must not wait behind data.
		for drained := false; !drained; {
			select {
			case c := <-t.ctl:
				if done, err := handle(c); err != nil || done {
					return err
				}
			default:
				drained = true
			}
		}
		if stopped {
			return t.endAndWait(ctx)
		}
		if !exhausted {
			st, err := src.Poll(ctx)
			if err != nil {
				return fmt.Errorf("source %s: %w", t.chain.SourceUID, err)
			}
			if err := t.afterWork(); err != nil {
				return err
			}
			if t.wmSrc != nil && st != EndOfInput {
				if err := t.periodicWatermark(t.job.clock.Now()); err != nil {
					return err
				}
			}
			switch st {
			case MoreAvailable:
				continue
			case EndOfInput:
				exhausted = true
				// The end of a bounded input is the end of event time:
				// the final watermark fires every pending event-time timer
				// downstream (docs/design.md §14). A stop barrier does not
				// (Flink's stop without drain).
				t.wmSrc, t.wmAt = nil, time.Time{}
				if err := t.emitStatus(false); err != nil {
					return err
				}
				if err := t.emitWatermark(ctx, FinalWatermark); err != nil {
					return err
				}
				if err := t.flush(); err != nil {
					return err
				}
				t.job.sourceExhausted(t.id)
			}
		}
		// Nothing to read now: sleep until mail, data or a wake-up.
		var avail <-chan struct{}
		if !exhausted {
			avail = src.Available()
		}
		wake, stop, err := t.wakeTimer()
		if err != nil {
			return err
		}
		t.split.idle()
		select {
		case c := <-t.ctl:
			t.split.busy()
			stop()
			if done, err := handle(c); err != nil || done {
				return err
			}
		case <-avail:
			t.split.busy()
			stop()
		case <-wake:
			t.split.busy()
			if err := t.onWake(); err != nil {
				return err
			}
		case <-ctx.Done():
			t.split.busy()
			stop()
			return ctx.Err()
		}
	}
}

// wakeTimer arms the timer for the task's next wake-up. A wake-up already
// due is carried out first: in the select that follows, a due timer and a
// mailbox that always has mail are both ready, and Go picks between them at
// random, so a backpressured task would put off its flush, its timers and
// an aligned timeout by a random number of mails (docs/design.md §3).
func (t *task) wakeTimer() (<-chan time.Time, func(), error) {
	at, ok := t.nextWake()
	if ok && !at.After(t.job.clock.Now()) {
		if err := t.onWake(); err != nil {
			return nil, nil, err
		}
		at, ok = t.nextWake()
	}
	if !ok {
		return nil, func() {}, nil
	}
	tm := clock.TimerAt(t.job.clock, at)
	return tm.C(), func() { tm.Stop() }, nil
}

// endAndWait ends the task's input: operators flush (EndInput), downstream
// is told, and the task waits for the job master's finish, still serving
// checkpoint notifications so that sinks commit the final checkpoint.
func (t *task) endAndWait(ctx context.Context) error {
	for _, op := range t.ops() {
		if err := op.Op.EndInput(ctx); err != nil {
			return fmt.Errorf("%s: end of input: %w", op.UID, err)
		}
	}
	for _, o := range t.chain.Outputs {
		if err := o.End(); err != nil {
			return err
		}
	}
	t.job.taskEnded(t.id)
	for {
		t.split.idle()
		select {
		case c := <-t.ctl:
			t.split.busy()
			done, err := t.handleCtl(c)
			if err != nil || done {
				return err
			}
		case <-ctx.Done():
			t.split.busy()
			return ctx.Err()
		}
	}
}

// handleCtl handles control mail; done reports the finish order.
func (t *task) handleCtl(c taskCtl) (done bool, err error) {
	switch c.kind {
	case ctlTrigger:
		// Only sources get triggers: record the position, emit the barrier.
		return false, t.checkpoint(c.barrier)
	case ctlComplete:
		if t.chain.Source != nil {
			if err := t.chain.Source.NotifyComplete(t.job.ctx, c.id); err != nil {
				return false, fmt.Errorf("source %s: checkpoint %d complete: %w", t.chain.SourceUID, c.id, err)
			}
		}
		for _, op := range t.ops() {
			if err := op.Op.NotifyComplete(t.job.ctx, c.id); err != nil {
				return false, fmt.Errorf("%s: checkpoint %d complete: %w", op.UID, c.id, err)
			}
		}
	case ctlAborted:
		// Stop aligning an aborted checkpoint, and remember it, so that its
		// barriers still on their way only release their channels.
		if t.align != nil {
			if err := t.applyAlign(t.align.Abort(c.id)); err != nil {
				return false, err
			}
		}
		for _, op := range t.ops() {
			if err := op.Op.NotifyAborted(t.job.ctx, c.id); err != nil {
				return false, fmt.Errorf("%s: checkpoint %d aborted: %w", op.UID, c.id, err)
			}
		}
	case ctlFinish:
		return true, nil
	case ctlUnaligned:
		return false, t.onUnalignedCtl(c)
	}
	return false, nil
}

func (t *task) runInputs(ctx context.Context) error {
	n := len(t.chain.Inputs)
	t.gates = make([]chan struct{}, n)
	aligned := t.job.cfg.Mode != checkpoint.AtLeastOnce
	t.align = newAligner(n, aligned)
	if n > 0 {
		t.wms, _ = watermark.NewInputs(n)
	}
	// The records in flight at the restored unaligned checkpoint go first,
	// before any new input (docs/design.md §3 "Unaligned checkpoints").
	if err := t.replayChannels(); err != nil {
		return err
	}
	for i, in := range t.chain.Inputs {
		t.gates[i] = make(chan struct{}, 1)
		go in.run(ctx, i, t.mailbox, t.gates[i], aligned)
	}
	for {
		// Control mail first: checkpoint notifications must not wait
		// behind a full mailbox of data.
		select {
		case c := <-t.ctl:
			done, err := t.handleCtl(c)
			if err != nil || done {
				return err
			}
			continue
		default:
		}
		if t.unaligned.capt != nil {
			// Capturing channel state: read ahead, process nothing.
			if err := t.captureStep(ctx); err != nil {
				return err
			}
			continue
		}
		if m, ok := t.unaligned.next(); ok {
			// Mails read ahead during a capture, in mailbox order; timers
			// (an aligned timeout among them) still fire in between.
			if err := t.wakeIfDue(); err != nil {
				return err
			}
			if err := t.handleMail(m); err != nil {
				return err
			}
			continue
		}
		if t.inputDone {
			return t.endAndWait(ctx)
		}
		wake, stop, err := t.wakeTimer()
		if err != nil {
			return err
		}
		t.split.idle()
		select {
		case c := <-t.ctl:
			t.split.busy()
			stop()
			done, err := t.handleCtl(c)
			if err != nil || done {
				return err
			}
		case m := <-t.mailbox:
			t.split.busy()
			stop()
			if err := t.handleMail(m); err != nil {
				return err
			}
		case <-wake:
			t.split.busy()
			if err := t.onWake(); err != nil {
				return err
			}
		case <-ctx.Done():
			t.split.busy()
			stop()
			return ctx.Err()
		}
	}
}

func (t *task) handleMail(m mail) error {
	switch m.kind {
	case mailData:
		if err := t.chain.Inputs[m.channel].process(m.data); err != nil {
			return err
		}
		return t.afterWork()
	case mailBarrier:
		return t.applyAlign(t.align.Barrier(m.channel, m.barrier))
	case mailWatermark:
		return t.applyWatermark(t.wms.OnWatermark(m.channel, m.wm))
	case mailStatus:
		return t.applyWatermark(t.wms.OnStatus(m.channel, m.idle))
	case mailEnd:
		// An input that ended after the final watermark no longer holds
		// the others back (it already counts as Final). One that ended
		// without it (a stop barrier) leaves the watermark where it is.
		return t.applyAlign(t.align.End(m.channel))
	}
	return nil
}

// applyWatermark forwards what the input combiner decided: a changed idle
// status, then a risen watermark through the chain.
func (t *task) applyWatermark(o watermark.Output) error {
	if o.StatusChanged && !o.Idle {
		if err := t.emitStatus(false); err != nil {
			return err
		}
	}
	if o.Advanced {
		if err := t.emitWatermark(t.job.ctx, o.Watermark); err != nil {
			return err
		}
	}
	if o.StatusChanged && o.Idle {
		if err := t.emitStatus(true); err != nil {
			return err
		}
	}
	return nil
}

// applyAlign carries out the aligner's actions, in order.
func (t *task) applyAlign(acts []alignAction) error {
	for _, act := range acts {
		switch act.Op {
		case alignBegin:
			t.alignStart = t.job.clock.Now()
		case alignBlock, alignStale:
			// The input's reader blocked itself behind the barrier; a stale
			// barrier is dropped (its release follows).
		case alignRelease:
			t.release(act.Input)
		case alignSnapshot:
			align := t.job.clock.Now().Sub(t.alignStart)
			t.stats.AlignmentNanos.Add(int64(align))
			snap, err := t.snapshot(act.Barrier)
			if err != nil {
				return err
			}
			snap.align = align
			t.snap = snap
		case alignEmit:
			snap := t.snap
			t.snap = takenSnapshot{}
			if act.Barrier.Unaligned {
				// The snapshot waits for its channel state (alignComplete).
				if err := t.emitUnaligned(act.Barrier, snap); err != nil {
					return err
				}
				continue
			}
			if err := t.emit(act.Barrier, snap); err != nil {
				return err
			}
		case alignCapture, alignCaptured, alignComplete, alignDiscard:
			if err := t.applyCapture(act); err != nil {
				return err
			}
		case alignDecline:
			t.job.decline(t.id, act.ID, errors.New(act.Reason))
		case alignInputsEnded:
			t.inputDone = true
		}
	}
	return nil
}

// release opens the gate of input ch, whose reader waits behind a barrier.
func (t *task) release(ch int) {
	select {
	case t.gates[ch] <- struct{}{}:
	default:
	}
}

// checkpoint takes a source task's snapshot for a triggered barrier b and
// emits the barrier.
func (t *task) checkpoint(b Barrier) error {
	snap, err := t.snapshot(b)
	if err != nil || snap.declined {
		return err
	}
	return t.emit(b, snap)
}

// takenSnapshot is the synchronous part of a task's snapshot.
type takenSnapshot struct {
	snaps       []pendingSnap
	align, sync time.Duration
	// declined: the source declined the checkpoint; nothing to emit.
	declined bool
}

// snapshot takes the synchronous part of the task's snapshot for barrier b,
// on the task goroutine (docs/design.md §3 step 4).
func (t *task) snapshot(b Barrier) (takenSnapshot, error) {
	if t.chain.Source != nil {
		t.job.faults.Hit(fault.OnBarrier, t.chain.SourceUID, t.id.Subtask)
	}
	for _, op := range t.ops() {
		t.job.faults.Hit(fault.OnBarrier, op.UID, t.id.Subtask)
	}
	start := t.job.clock.Now()
	snaps := make([]pendingSnap, 0, len(t.ops())+1)
	if src := t.chain.Source; src != nil {
		st, err := src.Snapshot(t.job.ctx, b)
		if err != nil {
			t.job.decline(t.id, b.ID, fmt.Errorf("source %s snapshot: %w", t.chain.SourceUID, err))
			return takenSnapshot{declined: true}, nil
		}
		snaps = append(snaps, pendingSnap{uid: t.chain.SourceUID, snap: &OperatorSnapshot{Operator: st}})
	}
	for _, op := range t.ops() {
		s, err := op.Op.Snapshot(t.job.ctx, b)
		if err != nil {
			for _, p := range snaps {
				if p.snap.Keyed != nil {
					p.snap.Keyed.Release()
				}
			}
			return takenSnapshot{}, fmt.Errorf("%s: snapshot for checkpoint %d: %w", op.UID, b.ID, err)
		}
		if s == nil {
			s = &OperatorSnapshot{}
		}
		snaps = append(snaps, pendingSnap{uid: op.UID, snap: s})
	}
	return takenSnapshot{snaps: snaps, sync: t.job.clock.Now().Sub(start)}, nil
}

// emit sends barrier b downstream and hands the snapshot to the
// asynchronous writer, which acks (docs/design.md §3 step 4).
func (t *task) emit(b Barrier, s takenSnapshot) error {
	for _, o := range t.chain.Outputs {
		if err := o.Broadcast(b); err != nil {
			for _, p := range s.snaps {
				if p.snap.Keyed != nil {
					p.snap.Keyed.Release()
				}
			}
			return err
		}
	}
	t.job.writeSnapshot(t.id, b, s.snaps, s.align, s.sync)
	return nil
}

type pendingSnap struct {
	uid  string
	snap *OperatorSnapshot
}
