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
}

// taskCtl is control mail from the job master to a task.
type taskCtl struct {
	kind    ctlKind
	barrier Barrier // trigger
	id      int64   // notify
}

type ctlKind uint8

const (
	ctlTrigger ctlKind = iota
	ctlComplete
	ctlAborted
	ctlFinish
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

	// Alignment state (docs/design.md §3 step 3).
	aligning       int64
	pendingBarrier Barrier
	maxStarted     int64
	alignStart     time.Time
	seen           []bool
	nSeen          int
	ended          []bool
	nEnded         int
	inputDone      bool

	flushAt     time.Time
	parallelism int
}

func (t *task) ops() []OpInstance { return t.chain.Ops }

// run is the task goroutine. Any error or panic fails the attempt.
func (t *task) run(ctx context.Context) (err error) {
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
	if !now.Before(t.flushAt) {
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

// nextWake returns when the task must wake up without mail: to flush or to
// fire a timer.
func (t *task) nextWake() (time.Time, bool) {
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
	return at, !at.IsZero()
}

func (t *task) onWake() error {
	now := t.job.clock.Now()
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

func (t *task) runSource(ctx context.Context) error {
	src := t.chain.Source
	exhausted, stopped := false, false
	// handle serves control mail; a stop barrier ends the source's input.
	handle := func(c taskCtl) (done bool, err error) {
		if c.kind == ctlTrigger && c.barrier.Stop {
			stopped = true
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
			start := time.Now()
			st, err := src.Poll(ctx)
			t.stats.BusyNanos.Add(int64(time.Since(start)))
			if err != nil {
				return fmt.Errorf("source %s: %w", t.chain.SourceUID, err)
			}
			if err := t.afterWork(); err != nil {
				return err
			}
			switch st {
			case MoreAvailable:
				continue
			case EndOfInput:
				exhausted = true
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
		wake, stop := t.wakeTimer()
		select {
		case c := <-t.ctl:
			stop()
			if done, err := handle(c); err != nil || done {
				return err
			}
		case <-avail:
			stop()
		case <-wake:
			if err := t.onWake(); err != nil {
				return err
			}
		case <-ctx.Done():
			stop()
			return ctx.Err()
		}
	}
}

func (t *task) wakeTimer() (<-chan time.Time, func()) {
	at, ok := t.nextWake()
	if !ok {
		return nil, func() {}
	}
	tm := clock.TimerAt(t.job.clock, at)
	return tm.C(), func() { tm.Stop() }
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
		select {
		case c := <-t.ctl:
			done, err := t.handleCtl(c)
			if err != nil || done {
				return err
			}
		case <-ctx.Done():
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
		if t.aligning == c.id {
			t.releaseGates()
		}
		t.maxStarted = max(t.maxStarted, c.id)
		for _, op := range t.ops() {
			if err := op.Op.NotifyAborted(t.job.ctx, c.id); err != nil {
				return false, fmt.Errorf("%s: checkpoint %d aborted: %w", op.UID, c.id, err)
			}
		}
	case ctlFinish:
		return true, nil
	}
	return false, nil
}

func (t *task) runInputs(ctx context.Context) error {
	n := len(t.chain.Inputs)
	t.seen = make([]bool, n)
	t.ended = make([]bool, n)
	t.gates = make([]chan struct{}, n)
	aligned := t.job.cfg.Mode != checkpoint.AtLeastOnce
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
		wake, stop := t.wakeTimer()
		select {
		case c := <-t.ctl:
			stop()
			done, err := t.handleCtl(c)
			if err != nil || done {
				return err
			}
		case m := <-t.mailbox:
			stop()
			if err := t.handleMail(m); err != nil {
				return err
			}
			if t.inputDone {
				return t.endAndWait(ctx)
			}
		case <-wake:
			if err := t.onWake(); err != nil {
				return err
			}
		case <-ctx.Done():
			stop()
			return ctx.Err()
		}
	}
}

func (t *task) handleMail(m mail) error {
	switch m.kind {
	case mailData:
		start := time.Now()
		if err := t.chain.Inputs[m.channel].process(m.data); err != nil {
			return err
		}
		t.stats.BusyNanos.Add(int64(time.Since(start)))
		return t.afterWork()
	case mailBarrier:
		return t.onBarrier(m.channel, m.barrier)
	case mailEnd:
		t.ended[m.channel] = true
		t.nEnded++
		if t.nEnded == len(t.ended) {
			// Everything ended; an alignment in progress can never finish.
			if t.aligning != 0 {
				t.job.decline(t.id, t.aligning, errors.New("input ended during alignment"))
				t.aligning = 0
			}
			t.inputDone = true
			return nil
		}
		return t.maybeAligned()
	}
	return nil
}

// onBarrier implements barrier alignment (docs/design.md §3 step 3). A newer barrier
// than the one being aligned abandons the older checkpoint (it was aborted
// or will time out); an older one is stale and ignored.
func (t *task) onBarrier(ch int, b Barrier) error {
	switch {
	case b.ID < t.aligning || (b.ID != t.aligning && b.ID <= t.maxStarted):
		// A barrier of a checkpoint this task already snapshotted or
		// abandoned: let the channel go on.
		t.release(ch)
		return nil
	case b.ID > t.aligning:
		t.maxStarted = b.ID
		if t.aligning != 0 {
			t.job.decline(t.id, t.aligning, fmt.Errorf("barrier %d overtook barrier %d", b.ID, t.aligning))
			t.releaseGates()
		}
		t.aligning = b.ID
		t.alignStart = time.Now()
	}
	if !t.seen[ch] {
		t.seen[ch] = true
		t.nSeen++
	}
	return t.maybeAlignedWith(b)
}

func (t *task) maybeAligned() error {
	if t.aligning == 0 {
		return nil
	}
	return t.maybeAlignedWith(t.pendingBarrier)
}

func (t *task) maybeAlignedWith(b Barrier) error {
	t.pendingBarrier = b
	live := 0
	for i := range t.seen {
		if t.seen[i] || t.ended[i] {
			live++
		}
	}
	if live < len(t.seen) {
		return nil
	}
	t.stats.AlignmentNanos.Add(int64(time.Since(t.alignStart)))
	align := time.Since(t.alignStart)
	t.aligning = 0
	err := t.checkpointAligned(b, align)
	t.releaseGates()
	return err
}

func (t *task) release(ch int) {
	select {
	case t.gates[ch] <- struct{}{}:
	default:
	}
}

func (t *task) releaseGates() {
	for i := range t.seen {
		if t.seen[i] {
			t.seen[i] = false
			t.release(i)
		}
	}
	t.nSeen = 0
	t.aligning = 0
}

func (t *task) checkpoint(b Barrier) error { return t.checkpointAligned(b, 0) }

// checkpointAligned takes the task's snapshot for barrier b: the synchronous
// part now, on the task goroutine; the barrier goes downstream; the state
// files are written asynchronously and the task acks (docs/design.md §3 step 4).
func (t *task) checkpointAligned(b Barrier, align time.Duration) error {
	if t.chain.Source != nil {
		t.job.faults.Hit(fault.OnBarrier, t.chain.SourceUID, t.id.Subtask)
	}
	for _, op := range t.ops() {
		t.job.faults.Hit(fault.OnBarrier, op.UID, t.id.Subtask)
	}
	start := time.Now()
	snaps := make([]pendingSnap, 0, len(t.ops())+1)
	if src := t.chain.Source; src != nil {
		st, err := src.Snapshot(t.job.ctx, b)
		if err != nil {
			t.job.decline(t.id, b.ID, fmt.Errorf("source %s snapshot: %w", t.chain.SourceUID, err))
			return nil
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
			return fmt.Errorf("%s: snapshot for checkpoint %d: %w", op.UID, b.ID, err)
		}
		if s == nil {
			s = &OperatorSnapshot{}
		}
		snaps = append(snaps, pendingSnap{uid: op.UID, snap: s})
	}
	sync := time.Since(start)
	for _, o := range t.chain.Outputs {
		if err := o.Broadcast(b); err != nil {
			return err
		}
	}
	t.job.writeSnapshot(t.id, b, snaps, align, sync)
	return nil
}

type pendingSnap struct {
	uid  string
	snap *OperatorSnapshot
}
