package coordinator

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/sluicehq/sluice/checkpoint"
)

// CoordinatorOptions describe the job to a Coordinator; what is not user
// configuration (that is checkpoint.Config) but comes from the job graph and from
// checkpoint storage.
type CoordinatorOptions struct {
	// JobName is written into every Metadata.
	JobName string
	// Sources is written into every Metadata: what each source reads
	// (docs/design.md §10).
	Sources map[string]checkpoint.SourceIdentity
	// MaxParallelism is the job's number of key groups, written into every
	// Metadata so that a restore can redistribute keyed state. Must be
	// positive; the runtime resolves the default (docs/design.md §1).
	MaxParallelism int
	// Tasks lists every task that must ack each checkpoint. Acks and
	// declines from other tasks are ignored.
	Tasks []checkpoint.TaskID
	// FirstID is the id of the first checkpoint or savepoint triggered, at
	// least 1. After a restore it should exceed every id the previous
	// attempts used (at least the restored id + 1), so that ids never repeat
	// within a job's storage.
	FirstID int64
	// Start is "now" when the coordinator is made; the first periodic
	// checkpoint is due at Start+Config.Interval.
	Start time.Time
	// Completed lists the completed checkpoints (not savepoints) already in
	// storage, oldest first; they count towards Config.Retained. Every id
	// must be below FirstID.
	Completed []int64
}

// Coordinator is the checkpoint coordinator of one job attempt (docs/design.md §3),
// written as a deterministic state machine in the manner of etcd's raft: it
// reads no clock, starts no goroutine and does no I/O. The runtime feeds it
// events with Step, learns the time to wake it with NextDeadline, and carries
// out the actions that Ready returns, in order:
//
//	for {
//		for _, a := range c.Ready() {
//			carry out a
//		}
//		d, ok := c.NextDeadline()
//		wait for an event, or (if ok) until d
//		c.Step(TickEvent{Now: clock.Now()}) and/or c.Step(event)
//	}
//
// Time advances only with TickEvent and the Now of the trigger events, so
// every interleaving of acks, declines, persists and ticks can be replayed
// exactly in a test. A Coordinator is not safe for concurrent use; the
// runtime owns it from one goroutine.
//
// The protocol follows Flink's CheckpointCoordinator; where it differs, the
// comments in the code say why.
//
// What the runtime must know when carrying out actions:
//   - An AbortAction can name a snapshot whose PersistAction write is still
//     in flight (it timed out, or was subsumed, while persisting). Its files
//     may be deleted only once that write returned; the late PersistedEvent
//     is ignored.
//   - A CompleteAction is emitted for every completed savepoint, so the user
//     learns of it. Flink (1.15 and later) commits no side effects for an
//     intermediate savepoint (Kind savepoint, Stop unset): a failover
//     restores the latest checkpoint, which is older than the savepoint, and
//     replaying from there after sinks committed up to the savepoint would
//     duplicate output. Retention here likewise ignores savepoints.
//   - After a FailJobAction the coordinator ignores every event; the next
//     attempt needs a new Coordinator, whose FirstID is above every id used
//     before.
type Coordinator struct {
	cfg   checkpoint.Config
	opts  CoordinatorOptions
	tasks map[checkpoint.TaskID]struct{}

	// now is the time of the latest event. When an event's time is earlier
	// (the clock stepped back, or two events were stamped out of order) the
	// coordinator rebases: every time it keeps moves back by as much, so
	// that no time has passed between the two events. A deadline that has
	// passed stays passed, and a step back neither stalls the schedule for
	// the length of the step nor re-arms anything (docs/design.md §3).
	now time.Time
	// nextID is the id of the next trigger, shared by checkpoints and
	// savepoints so that barrier ids strictly increase.
	nextID int64
	// lastPeriodic is when the last periodic checkpoint was triggered
	// (initially Start). Savepoints and final checkpoints do not move it:
	// the periodic schedule is the user's setting and a manual savepoint
	// should not push the next checkpoint back by a whole interval.
	lastPeriodic time.Time
	// lastEnd is when the last snapshot of any kind completed or was
	// aborted; MinPause is measured from it. ended says whether there was
	// one.
	lastEnd time.Time
	ended   bool

	pending map[int64]*pending
	// retained holds the ids of the completed checkpoints retention keeps,
	// oldest first.
	retained []int64
	// stopCompleted is set once a final checkpoint or stop-with-savepoint
	// completed: the sources are ending, periodic triggers stay off.
	stopCompleted bool
	// failed is set once FailJobAction was emitted. The coordinator is then
	// finished: the next attempt gets a new one.
	failed bool

	actions []Action
	stats   checkpoint.Stats // counters only; Stats() fills in the rest
	history []*checkpoint.CheckpointStats
}

// pending is a triggered snapshot that has neither completed nor been
// aborted.
type pending struct {
	id          int64
	kind        checkpoint.Kind
	stop        bool
	triggeredAt time.Time
	// acked holds the tasks whose first report was an ack. A task's first
	// report (ack or decline) is the one that counts.
	acked map[checkpoint.TaskID]struct{}
	// states holds the acked subtask states by operator uid and subtask.
	states map[string]map[int]ackedState
	// persisting is set once every task acked and the PersistAction for
	// metadata was emitted; the snapshot now waits for a PersistedEvent.
	persisting bool
	metadata   *checkpoint.Metadata
	stats      *checkpoint.CheckpointStats
}

// ackedState is one operator subtask's state and the task that reported it.
type ackedState struct {
	task  checkpoint.TaskID
	state *checkpoint.SubtaskState
}

// NewCoordinator returns a coordinator for one job attempt. cfg is validated
// (see checkpoint.Config.Validate) and completed with its defaults; opts must name at
// least one task, each once, and a FirstID above every id in Completed.
func NewCoordinator(cfg checkpoint.Config, opts CoordinatorOptions) (*Coordinator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("checkpoint: coordinator options: "+format, args...))
	}
	if opts.MaxParallelism < 1 {
		bad("MaxParallelism must be positive, got %d", opts.MaxParallelism)
	}
	if opts.FirstID < 1 {
		bad("FirstID must be at least 1, got %d", opts.FirstID)
	}
	if len(opts.Tasks) == 0 {
		bad("Tasks must not be empty: a checkpoint needs at least one task to ack it")
	}
	tasks := make(map[checkpoint.TaskID]struct{}, len(opts.Tasks))
	for _, t := range opts.Tasks {
		if _, dup := tasks[t]; dup {
			bad("task %s listed twice in Tasks", taskName(t))
		}
		tasks[t] = struct{}{}
	}
	for i, id := range opts.Completed {
		switch {
		case id < 1:
			bad("Completed[%d] = %d: ids start at 1", i, id)
		case i > 0 && id <= opts.Completed[i-1]:
			bad("Completed must be strictly increasing (oldest first), got %d after %d", id, opts.Completed[i-1])
		case id >= opts.FirstID:
			// Reusing an id would put two different checkpoints under one
			// name in storage.
			bad("Completed[%d] = %d is not below FirstID %d", i, id, opts.FirstID)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	opts.Tasks = slices.Clone(opts.Tasks)
	return &Coordinator{
		cfg:          cfg.WithDefaults(),
		opts:         opts,
		tasks:        tasks,
		now:          opts.Start,
		nextID:       opts.FirstID,
		lastPeriodic: opts.Start,
		pending:      make(map[int64]*pending),
		retained:     slices.Clone(opts.Completed),
	}, nil
}

// Config returns the configuration in effect, defaults filled in.
func (c *Coordinator) Config() checkpoint.Config { return c.cfg }

// Step feeds one event to the coordinator. Events that no longer matter (an
// ack for an aborted or completed checkpoint, a second ack from a task, an
// ack from a task outside CoordinatorOptions.Tasks) are ignored, because in
// an asynchronous runtime they are normal, not errors. After a FailJobAction
// every event is ignored. Pointers to events are accepted too.
func (c *Coordinator) Step(ev Event) {
	if c.failed {
		return
	}
	switch ev := ev.(type) {
	case TickEvent:
		c.advance(ev.Now)
		c.expire()
		c.maybeTriggerPeriodic()
	case TriggerSavepointEvent:
		// A savepoint is the user's explicit request: it ignores the
		// interval, the minimum pause and MaxConcurrent (docs/design.md §4,
		// Flink's "forced" checkpoint properties).
		c.advance(ev.Now)
		c.trigger(checkpoint.KindSavepoint, ev.Stop)
	case TriggerCheckpointEvent:
		c.advance(ev.Now)
		if !c.stopping() {
			c.trigger(checkpoint.KindCheckpoint, false)
		}
	case TriggerFinalCheckpointEvent:
		c.advance(ev.Now)
		c.trigger(checkpoint.KindCheckpoint, true)
	case AckEvent:
		c.ack(ev)
	case DeclineEvent:
		c.decline(ev)
	case PersistedEvent:
		c.persisted(ev)

	case *TickEvent:
		stepPtr(c, ev)
	case *TriggerSavepointEvent:
		stepPtr(c, ev)
	case *TriggerCheckpointEvent:
		stepPtr(c, ev)
	case *TriggerFinalCheckpointEvent:
		stepPtr(c, ev)
	case *AckEvent:
		stepPtr(c, ev)
	case *DeclineEvent:
		stepPtr(c, ev)
	case *PersistedEvent:
		stepPtr(c, ev)
	}
}

// stepPtr steps the event p points at; a nil pointer is no event.
func stepPtr[E Event](c *Coordinator, p *E) {
	if p != nil {
		c.Step(*p)
	}
}

// Ready returns the actions produced since the last call, in the order the
// runtime must carry them out, and forgets them. It returns nil when there
// is nothing to do.
func (c *Coordinator) Ready() []Action {
	a := c.actions
	c.actions = nil
	return a
}

// NextDeadline returns the earliest time at which a TickEvent could make the
// coordinator act: the next periodic trigger (if one is possible: periodic
// checkpoints enabled, fewer than MaxConcurrent pending, no stop requested)
// or the timeout of a pending snapshot. ok is false when no tick can change
// anything, until another event arrives. The time may be in the past, when
// the runtime ticked late; it should then tick at once.
func (c *Coordinator) NextDeadline() (deadline time.Time, ok bool) {
	if c.failed {
		return time.Time{}, false
	}
	consider := func(t time.Time) {
		if !ok || t.Before(deadline) {
			deadline, ok = t, true
		}
	}
	for _, p := range c.pending {
		consider(p.triggeredAt.Add(c.cfg.Timeout))
	}
	if t, due := c.nextPeriodic(); due {
		consider(t)
	}
	return deadline, ok
}

// Pending returns the ids of the snapshots triggered but neither completed
// nor aborted, ascending. A snapshot whose metadata is being persisted is
// still pending.
func (c *Coordinator) Pending() []int64 {
	return slices.Sorted(maps.Keys(c.pending))
}

// advance moves the coordinator's time to t. An earlier t rebases every
// time kept by the difference (see Coordinator.now): the intervals measured
// from them go on as if the clock had stood still.
func (c *Coordinator) advance(t time.Time) {
	if !t.Before(c.now) {
		c.now = t
		return
	}
	back := t.Sub(c.now)
	c.now = t
	c.lastPeriodic = c.lastPeriodic.Add(back)
	c.lastEnd = c.lastEnd.Add(back)
	for _, p := range c.pending {
		p.triggeredAt = p.triggeredAt.Add(back)
		p.stats.TriggeredAt = p.stats.TriggeredAt.Add(back)
	}
}

func (c *Coordinator) emit(a Action) { c.actions = append(c.actions, a) }

// sortedPending returns the pending snapshots in id order, so that actions
// come out the same on every run whatever Go's map order.
func (c *Coordinator) sortedPending() []*pending {
	ps := slices.Collect(maps.Values(c.pending))
	slices.SortFunc(ps, func(a, b *pending) int { return cmp.Compare(a.id, b.id) })
	return ps
}

// stopping reports whether a final checkpoint or stop-with-savepoint is
// pending or completed. docs/design.md §3 step 1 triggers periodic checkpoints only
// while the sources are running; after a stop barrier there is nothing new
// for them to capture. If the stop snapshot fails, the job is still running
// and periodic checkpoints resume.
func (c *Coordinator) stopping() bool {
	if c.stopCompleted {
		return true
	}
	for _, p := range c.pending {
		if p.stop {
			return true
		}
	}
	return false
}

// nextPeriodic returns when the next periodic checkpoint is due, and whether
// one can be triggered at all without another event first. docs/design.md §3 step 1:
// the later of lastPeriodic+Interval and lastEnd+MinPause. Pending
// savepoints count towards MaxConcurrent, as in Flink: they load the same
// tasks and storage.
func (c *Coordinator) nextPeriodic() (time.Time, bool) {
	if c.cfg.Interval < 0 || c.failed || len(c.pending) >= c.cfg.MaxConcurrent || c.stopping() {
		return time.Time{}, false
	}
	at := c.lastPeriodic.Add(c.cfg.Interval)
	if c.ended {
		if p := c.lastEnd.Add(c.cfg.MinPause); p.After(at) {
			at = p
		}
	}
	return at, true
}

// maybeTriggerPeriodic triggers a periodic checkpoint if one is due. At most
// one per tick: a runtime that ticked late gets one checkpoint, not a burst
// of the ones it missed; the schedule restarts from now.
func (c *Coordinator) maybeTriggerPeriodic() {
	if at, ok := c.nextPeriodic(); ok && !c.now.Before(at) {
		c.lastPeriodic = c.now
		c.trigger(checkpoint.KindCheckpoint, false)
	}
}

// trigger starts snapshot nextID now (docs/design.md §3 step 1).
func (c *Coordinator) trigger(kind checkpoint.Kind, stop bool) {
	id := c.nextID
	c.nextID++
	p := &pending{
		id:          id,
		kind:        kind,
		stop:        stop,
		triggeredAt: c.now,
		acked:       make(map[checkpoint.TaskID]struct{}, len(c.tasks)),
		states:      make(map[string]map[int]ackedState),
		stats: &checkpoint.CheckpointStats{
			ID: id, Kind: kind, Stop: stop, Status: checkpoint.StatusInProgress,
			TriggeredAt: c.now, Total: len(c.tasks),
		},
	}
	c.pending[id] = p
	c.record(p.stats)
	c.emit(TriggerAction{CheckpointID: id, Kind: kind, Timestamp: c.now, Stop: stop})
}

// expire aborts every pending snapshot whose timeout has passed (docs/design.md §3
// step 6). A deadline is met by a tick at exactly that time, so that
// NextDeadline is exact.
func (c *Coordinator) expire() {
	for _, p := range c.sortedPending() {
		if c.failed {
			return // failJob aborted the rest
		}
		if !c.now.Before(p.triggeredAt.Add(c.cfg.Timeout)) {
			c.abort(p, expiredError(p, c.cfg.Timeout, len(c.tasks)))
		}
	}
}

// ack records a task's snapshot (docs/design.md §3 step 4) and, once every task
// acked, asks for the metadata to be persisted (step 5).
func (c *Coordinator) ack(ev AckEvent) {
	p := c.pending[ev.CheckpointID]
	if p == nil || p.persisting {
		return // unknown, aborted, completed, or a duplicate after the last ack
	}
	if _, ok := c.tasks[ev.Task]; !ok {
		return
	}
	if _, dup := p.acked[ev.Task]; dup {
		return
	}
	// Two tasks reporting the same operator subtask is a runtime bug that
	// would silently drop one of the states if accepted; refuse the ack,
	// loudly, as a decline. Checked before recording anything so that the
	// pending state stays consistent.
	uids := slices.Sorted(maps.Keys(ev.States))
	for _, uid := range uids {
		st := ev.States[uid]
		if st == nil {
			continue
		}
		if prev, ok := p.states[uid][st.Subtask]; ok {
			c.abort(p, declinedError(p, ev.Task, fmt.Errorf(
				"invalid ack: state of operator %q subtask %d already reported by task %s",
				uid, st.Subtask, taskName(prev.task))))
			return
		}
	}
	p.acked[ev.Task] = struct{}{}
	for _, uid := range uids {
		st := ev.States[uid]
		if st == nil {
			continue
		}
		if p.states[uid] == nil {
			p.states[uid] = make(map[int]ackedState)
		}
		p.states[uid][st.Subtask] = ackedState{task: ev.Task, state: st}
	}
	s := p.stats
	s.Acked = len(p.acked)
	s.Bytes += ev.Bytes
	s.MaxAlignment = max(s.MaxAlignment, ev.AlignmentDuration)
	s.MaxSyncDuration = max(s.MaxSyncDuration, ev.SyncDuration)
	s.MaxAsyncDuration = max(s.MaxAsyncDuration, ev.AsyncDuration)
	// Every snapshot is written in full (docs/design.md §4): what it wrote
	// anew is all of it.
	s.FullBytes, s.IncrementalBytes = s.Bytes, s.Bytes
	s.Tasks = append(s.Tasks, checkpoint.TaskCheckpointStats{
		Vertex: ev.Task.Vertex, Subtask: ev.Task.Subtask, AckedAt: c.now, Duration: c.now.Sub(p.triggeredAt),
		Bytes: ev.Bytes, Alignment: ev.AlignmentDuration, SyncDuration: ev.SyncDuration, AsyncDuration: ev.AsyncDuration,
	})

	if len(p.acked) < len(c.tasks) {
		return
	}
	// docs/design.md §3 step 5: every task acked. The checkpoint is not complete
	// until its metadata is durable, so the coordinator only asks for the
	// write here and completes on the PersistedEvent.
	p.persisting = true
	p.metadata = c.metadata(p)
	c.emit(PersistAction{Metadata: p.metadata})
}

// metadata assembles the _metadata of p from its acks. CompletedAt is the
// coordinator's time at the last ack: acks carry no time of their own.
func (c *Coordinator) metadata(p *pending) *checkpoint.Metadata {
	m := &checkpoint.Metadata{
		Version:        checkpoint.FormatVersion,
		CheckpointID:   p.id,
		Kind:           p.kind,
		JobName:        c.opts.JobName,
		TriggeredAt:    p.triggeredAt,
		CompletedAt:    c.now,
		MaxParallelism: c.opts.MaxParallelism,
		Operators:      make(map[string]*checkpoint.OperatorState, len(p.states)),
		Sources:        c.opts.Sources,
	}
	for uid, bySubtask := range p.states {
		subs := make([]*checkpoint.SubtaskState, 0, len(bySubtask))
		for _, a := range bySubtask {
			subs = append(subs, a.state)
		}
		slices.SortFunc(subs, func(a, b *checkpoint.SubtaskState) int { return cmp.Compare(a.Subtask, b.Subtask) })
		m.Operators[uid] = &checkpoint.OperatorState{Parallelism: len(subs), Subtasks: subs}
	}
	return m
}

// decline aborts p because a task could not snapshot (docs/design.md §3 step 6).
// Only a task's first report counts: a decline from a task that already
// acked is stale (its snapshot is in hand), and in particular a decline can
// no longer abort a snapshot whose metadata is being persisted.
func (c *Coordinator) decline(ev DeclineEvent) {
	p := c.pending[ev.CheckpointID]
	if p == nil {
		return
	}
	if _, ok := c.tasks[ev.Task]; !ok {
		return
	}
	if _, acked := p.acked[ev.Task]; acked {
		return
	}
	c.abort(p, declinedError(p, ev.Task, ev.Err))
}

// persisted completes p once its metadata is durable (docs/design.md §3 step 5), or
// aborts it if the write failed.
func (c *Coordinator) persisted(ev PersistedEvent) {
	p := c.pending[ev.CheckpointID]
	if p == nil || !p.persisting {
		return // aborted meanwhile (late), or the runtime answered an unasked write
	}
	if ev.Err != nil {
		c.abort(p, persistError(p, ev.Err))
		return
	}
	c.complete(p)
}

// complete marks p complete and applies what follows from it: the
// CompleteAction (tasks get notifyCheckpointComplete, docs/design.md §3 step 5),
// subsumption of older pending checkpoints, and retention.
func (c *Coordinator) complete(p *pending) {
	delete(c.pending, p.id)
	c.lastEnd, c.ended = c.now, true
	p.stats.Status = checkpoint.StatusCompleted
	p.stats.CompletedAt = c.now
	p.stats.Duration = c.now.Sub(p.triggeredAt)
	c.stats.Completed++
	c.stats.LastCompletedID = p.id
	if p.stop {
		c.stopCompleted = true
	}
	c.emit(CompleteAction{CheckpointID: p.id, Kind: p.kind, Stop: p.stop, Metadata: p.metadata})

	if p.kind != checkpoint.KindCheckpoint {
		// Savepoints stand outside the checkpoint lineage: they neither
		// reset the failure count (their failures do not count either),
		// nor subsume pending checkpoints (the runtime does not restore
		// from an intermediate savepoint, so an older pending checkpoint
		// is still worth completing), nor take part in retention (they
		// belong to the user, who deletes them; FLINK-6328).
		return
	}
	c.stats.ConsecutiveFailures = 0

	// Subsumption: every pending checkpoint older than p is now useless,
	// since a restore would pick p. The aborts come after p's
	// CompleteAction so that a sink which commits everything up to p on
	// notifyCheckpointComplete does not first abort a transaction that p
	// covers. Pending savepoints are never subsumed: the user asked for
	// them.
	for _, q := range c.sortedPending() {
		if q.id < p.id && q.kind == checkpoint.KindCheckpoint {
			c.abort(q, subsumedError(q, p.id))
		}
	}

	// Retention: keep the newest Retained checkpoints, discard the oldest.
	// Checkpoints given in CoordinatorOptions.Completed are discarded only
	// here, once a newer checkpoint is durable, never at start-up: if the
	// job fails before its first checkpoint they are still what it
	// restores from.
	c.retained = append(c.retained, p.id)
	if n := len(c.retained) - c.cfg.Retained; n > 0 {
		for _, id := range c.retained[:n] {
			c.emit(DiscardAction{CheckpointID: id})
		}
		c.retained = append(c.retained[:0], c.retained[n:]...)
	}
}

// abort ends p without completing it and counts the failure (docs/design.md §3 step
// 6). Subsumption and the job failing are not failures of p. Savepoint
// failures are not counted either: a user's savepoint failing (say, to a
// full target directory) says nothing about the health of the job's
// checkpoints, and must not restart the job.
func (c *Coordinator) abort(p *pending, reason *AbortError) {
	delete(c.pending, p.id)
	c.lastEnd, c.ended = c.now, true
	p.stats.Status = checkpoint.StatusFailed
	p.stats.CompletedAt = c.now
	p.stats.Duration = c.now.Sub(p.triggeredAt)
	p.stats.FailureReason = reason.Error()
	c.stats.Failed++
	c.emit(AbortAction{CheckpointID: p.id, Kind: p.kind, Reason: reason})

	switch {
	case errors.Is(reason.Cause, ErrSubsumed):
		c.stats.Subsumed++
		return
	case errors.Is(reason.Cause, ErrJobFailing), p.kind != checkpoint.KindCheckpoint:
		return
	}
	c.stats.ConsecutiveFailures++
	if c.stats.ConsecutiveFailures > tolerable(c.cfg) {
		c.failJob(reason)
	}
}

// failJob gives up on the job attempt: more checkpoints failed in a row
// than tolerated. The remaining pending snapshots are aborted first, so the
// runtime can clean up their files, then the FailJobAction is emitted and
// the coordinator stops: the restarted attempt gets a new one.
func (c *Coordinator) failJob(last error) {
	c.failed = true
	err := fmt.Errorf("%w: %d in a row, more than the %d tolerated (%s); last: %w",
		checkpoint.ErrTooManyFailures, c.stats.ConsecutiveFailures, tolerable(c.cfg), checkpoint.KeyTolerableFailures, last)
	for _, q := range c.sortedPending() {
		c.abort(q, jobFailingError(q, err))
	}
	c.emit(FailJobAction{Err: err})
}

// tolerable is the number of consecutive checkpoint failures tolerated, with
// the -1 sentinel resolved to zero.
func tolerable(c checkpoint.Config) int {
	if c.TolerableFailures < 0 {
		return 0
	}
	return c.TolerableFailures
}
