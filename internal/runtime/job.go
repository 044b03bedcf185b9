package runtime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/checkpoint/store"
	"github.com/sluicehq/sluice/clock"
	"github.com/sluicehq/sluice/fault"
	"github.com/sluicehq/sluice/internal/coordinator"
	"github.com/sluicehq/sluice/keygroup"
	"github.com/sluicehq/sluice/restart"
)

// Plan is a job graph ready to run: vertices are chains of operators,
// edges are shuffles between them.
type Plan struct {
	JobName        string
	MaxParallelism int
	// BufferTimeout is how long a record may wait in a partially filled
	// batch (Flink's buffer timeout). 0 flushes after every batch of work.
	BufferTimeout time.Duration
	// BatchSize is the number of records per batch on an edge.
	BatchSize int
	// ChannelCapacity is the number of batches an edge channel holds.
	ChannelCapacity int
	// Vertices in topological order.
	Vertices []*Vertex
	Edges    []*EdgeSpec
	// Sources says what each source operator reads, by uid, for the
	// sources that describe themselves (docs/design.md §10).
	Sources map[string]checkpoint.SourceIdentity
}

// Vertex is one chain of operators with its parallelism.
type Vertex struct {
	ID          int
	Name        string
	UID         string
	Parallelism int
	// UIDs lists every operator uid in the chain, the source's first;
	// Names their names, in the same order (nil: the uids).
	UIDs  []string
	Names []string
	// Instantiate builds subtask w.Subtask of the vertex for one attempt.
	Instantiate func(w *Wiring) (*Chain, error)
}

// EdgeSpec is a shuffle between two vertices.
type EdgeSpec struct {
	ID       int
	From, To int
	// Partitioning is how records cross the edge.
	Partitioning Partitioning
	// NewChannels makes the typed channels (a *Channels[T]).
	NewChannels func(up, down, capacity int) any
}

// Wiring is what Instantiate gets: the attempt's channels and context.
type Wiring struct {
	Subtask   int
	Channels  map[int]any
	Done      <-chan struct{}
	Stats     *TaskStats
	BatchSize int
	// Time is the task's event-time state (docs/design.md §14): writers and
	// input channels of the chain carry record timestamps through it.
	Time *Time
}

// Config configures how a job runs.
type Config struct {
	Checkpoint checkpoint.Config
	Restart    restart.Strategy
	// Store keeps checkpoints; required.
	Store *store.Checkpoints
	// Savepoints opens the savepoint root (each savepoint is a
	// savepoint-<id>-<random> directory in it) when the first savepoint
	// is asked for, on the caller's goroutine. Nil: savepoints are refused
	// with an error naming savepoint-dir.
	Savepoints func() (store.Storage, error)
	// FromCheckpoint restores the first attempt from this checkpoint or
	// savepoint directory instead of the latest in Store.
	FromCheckpoint string
	// AllowNonRestoredState and AllowSourceChange relax the restore
	// compatibility checks (docs/design.md §10; see sluice.Config).
	AllowNonRestoredState bool
	AllowSourceChange     bool
	Clock                 clock.Clock
	Logger                *slog.Logger
	Faults                *fault.Injector
	// StatusWindow is the sliding window of Status's ratios and rates
	// (docs/design.md §8); zero means DefaultStatusWindow.
	StatusWindow time.Duration
	// StopTimeout bounds Stop: how long the final checkpoint and the
	// commits after it may take before the attempt is cancelled and Run
	// returns ErrStopped. Default the checkpoint timeout plus 10s.
	StopTimeout time.Duration
	// State configures incremental checkpoints and local recovery of
	// keyed state, and the operator subtasks' local directories.
	State StateOptions
	// OnCheckpointComplete, when set, is called once for every checkpoint
	// or savepoint completed, with its statistics, on the job master loop:
	// it must return quickly (the metrics fold it into a histogram).
	OnCheckpointComplete func(checkpoint.CheckpointStats)
}

// ErrStopped is wrapped by the error Run returns when Stop ended the job
// without a final checkpoint: when an attempt kept failing or could not be
// restarted within the bound, when an attempt's start did not end in time,
// or when the final checkpoint did not finish within Config.StopTimeout.
// The job resumes from its latest checkpoint when it is started again.
var ErrStopped = errors.New("stopped without a final checkpoint")

// errStopCancelled wraps the error of an attempt that Stop's bound
// cancelled: its start did not end within stopWhileStarting, or its final
// checkpoint not within StopTimeout. Such an attempt is not restarted.
var errStopCancelled = errors.New("attempt cancelled by the stop")

// stopGrace is how long a stopping job waits for its tasks to end after it
// cancelled them; a task stuck in a call that ignores cancellation is then
// abandoned so that Stop stays bounded.
const stopGrace = 10 * time.Second

// stopWhileStarting is how long a Stop waits for a starting attempt to run
// (and take a final checkpoint) before it cancels the start.
const stopWhileStarting = 5 * time.Second

// Job runs a Plan with restarts until it finishes, fails for good, or its
// context is cancelled.
type Job struct {
	plan  *Plan
	cfg   Config
	clock clock.Clock
	log   *slog.Logger

	stopOnce sync.Once
	stopCh   chan struct{}
	// stopBy is when a Stop must have ended the job (UnixNano of the job
	// clock): Stop's time plus StopTimeout. Set before stopCh is closed.
	stopBy atomic.Int64

	mu    sync.Mutex
	stats map[checkpoint.TaskID]*TaskStats

	// info is what Status reports about the run beyond counters (under
	// infoMu).
	infoMu sync.Mutex
	info   runInfo

	restarts      atomic.Int64
	completed     atomic.Int64
	failedCP      atomic.Int64
	lastCompleted atomic.Int64
	// lastCompletedAt is when lastCompleted completed (UnixNano of the job
	// clock), 0 if none.
	lastCompletedAt atomic.Int64
	// lastTriggered is the highest checkpoint id used by this run: ids keep
	// increasing across attempts even after aborted checkpoints' files were
	// deleted, so logs never name one id twice.
	lastTriggered atomic.Int64
	lastRecovery  atomic.Int64
	lastMeta      atomic.Pointer[checkpoint.Metadata]
	coordStats    atomic.Pointer[checkpoint.Stats]

	// spReqs carries savepoint requests to the running attempt's job
	// master loop; done is closed when Run returns.
	spReqs chan *savepointReq
	done   chan struct{}
	// cpReqs carries checkpoint requests (TriggerCheckpoint) the same way.
	cpReqs chan *checkpointReq
	// cancelCh is closed by Cancel.
	cancelOnce sync.Once
	cancelCh   chan struct{}
	// stopSP is the completed stop-with-savepoint, answered when Run
	// returns (its transactions are committed by then).
	stopMu  sync.Mutex
	stopSP  *savepointReq
	stopDir string
	// spRoot is the savepoint root, opened by the first request (under
	// stopMu).
	spRoot store.Storage
}

// NewJob prepares plan to run with cfg.
func NewJob(plan *Plan, cfg Config) (*Job, error) {
	cfg.Checkpoint = cfg.Checkpoint.WithDefaults()
	if err := cfg.Checkpoint.Validate(); err != nil {
		return nil, err
	}
	if cfg.Store == nil {
		return nil, errors.New("checkpoint storage: not configured")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Restart == nil {
		cfg.Restart = restart.NoRestart()
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = cfg.Checkpoint.Timeout + 10*time.Second
	}
	if plan.BatchSize <= 0 {
		plan.BatchSize = 512
	}
	if plan.ChannelCapacity <= 0 {
		plan.ChannelCapacity = 8
	}
	if plan.MaxParallelism <= 0 {
		plan.MaxParallelism = keygroup.DefaultMaxParallelism
	}
	if cfg.State.LocalDir == "" {
		cfg.State.LocalDir = defaultLocalDir(cfg.Store.Storage(), plan.JobName)
	}
	j := &Job{plan: plan, cfg: cfg, clock: cfg.Clock, log: cfg.Logger, stopCh: make(chan struct{}), stats: map[checkpoint.TaskID]*TaskStats{},
		spReqs: make(chan *savepointReq), done: make(chan struct{}),
		cpReqs: make(chan *checkpointReq), cancelCh: make(chan struct{})}
	return j, nil
}

// Stop asks the job to finish cleanly: a final checkpoint is taken, sinks
// commit it, and Run returns nil. An attempt that fails while stopping, or
// whose failure the Stop finds in the restart delay, is restarted (as the
// restart strategy allows; the first such restart at once) to take the
// final checkpoint, until StopTimeout after the Stop; then Run returns
// ErrStopped.
func (j *Job) Stop() {
	j.stopOnce.Do(func() {
		j.stopBy.Store(j.clock.Now().Add(j.cfg.StopTimeout).UnixNano())
		close(j.stopCh)
	})
}

// stopLeft is how much of Stop's bound is left (StopTimeout while no Stop
// was asked); zero or less when it is used up.
func (j *Job) stopLeft() time.Duration {
	if !j.stopping() {
		return j.cfg.StopTimeout
	}
	return time.Duration(j.stopBy.Load() - j.clock.Now().UnixNano())
}

// LastCompleted returns the metadata of the newest checkpoint completed by
// this run, or nil.
func (j *Job) LastCompleted() *checkpoint.Metadata { return j.lastMeta.Load() }

func (j *Job) taskStats(id checkpoint.TaskID) *TaskStats {
	j.mu.Lock()
	defer j.mu.Unlock()
	st, ok := j.stats[id]
	if !ok {
		st = &TaskStats{clk: j.clock}
		st.beginAttempt(j.clock.Now())
		j.stats[id] = st
	}
	return st
}

func (j *Job) stopping() bool {
	select {
	case <-j.stopCh:
		return true
	default:
		return false
	}
}

// Run runs the job: attempts, restarts per the restart strategy, restores
// from the latest complete checkpoint (docs/design.md §5).
//
// Run first takes the ownership of the checkpoint storage (docs/design.md
// §9): a second instance on the same checkpoint directory fails at once
// with a store.LockedError naming the holder, and an instance that finds
// another took over since (store.ErrFenced) fails for good, without a
// restart.
//
// An explicit restore point (FromCheckpoint) is recorded in the checkpoint
// directory (store.RestoredName) before the first attempt commits
// anything; a start without FromCheckpoint restores the recorded one when
// no checkpoint of the directory is newer (docs/design.md §5, §9).
func (j *Job) Run(ctx context.Context) (err error) {
	defer func() { j.endSavepoints(err) }()
	j.infoMu.Lock()
	j.info.startedAt = j.clock.Now()
	j.infoMu.Unlock()
	ctx, release := j.withCancel(ctx)
	defer release()
	defer func() { err = j.cancelErr(err) }()
	own, err := j.cfg.Store.Acquire(ctx, j.plan.JobName)
	if err != nil {
		j.log.Error("job not started: cannot take the checkpoints", "job", j.plan.JobName, "err", err)
		return fmt.Errorf("job %s: %w", j.plan.JobName, err)
	}
	defer own.Release()
	j.log.Debug("took ownership of the checkpoints", "job", j.plan.JobName, "epoch", own.Owner().Epoch)
	from := j.cfg.FromCheckpoint
	// recordedFrom is the restore point recorded in the checkpoint
	// directory (store.RestoredName) by this run or, when it starts
	// without FromCheckpoint, by the instance before it.
	recordedFrom := ""
	recorded := false
	if from == "" {
		p, err := j.recordedRestore(ctx)
		if err != nil {
			return err
		}
		from, recordedFrom, recorded = p, p, p != ""
	}
	// pinned is the newest checkpoint a restart may restore until this run
	// completed one of its own: the one the run started from (0: none).
	pinned := int64(-1)
	var failedAt time.Time
	var checked *checkpoint.Metadata
	// stopRestarts counts the restarts since Stop was asked.
	stopRestarts := 0
	for attempt := 0; ; attempt++ {
		rp, err := j.pickRestore(ctx, from, pinned)
		if err != nil {
			if recorded && from == recordedFrom {
				return j.recordUnusable(from, err)
			}
			return err
		}
		if pinned < 0 {
			pinned = 0
			if rp != nil {
				pinned = rp.meta.CheckpointID
			}
		}
		if rp != nil && rp.meta != checked {
			if err := j.checkRestore(rp, from != ""); err != nil {
				j.log.Error("checkpoint not restored", "job", j.plan.JobName, "checkpoint", rp.src.Location(), "err", err)
				return err
			}
			checked = rp.meta
		}
		if rp != nil {
			j.log.Info("restoring checkpoint", "job", j.plan.JobName, "attempt", attempt,
				"checkpoint", rp.meta.CheckpointID, "location", rp.src.Location(),
				"age", j.clock.Now().Sub(rp.meta.CompletedAt).Round(time.Millisecond))
		}
		if from != "" && from != recordedFrom && rp != nil {
			// An explicit restore point (FromCheckpoint, or the savepoint
			// of a stop whose commit failed), recorded before anything
			// is committed.
			if err := j.recordRestored(ctx, from, rp); err != nil {
				return err
			}
			recordedFrom = from
		}
		err = j.runAttempt(ctx, attempt, rp, failedAt)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		cause := j.failed(err, j.clock.Now())
		if errors.Is(err, checkpoint.ErrIncompatible) {
			// Another attempt would restore the same checkpoint into
			// the same job.
			j.log.Error("checkpoint not restored", "job", j.plan.JobName, "err", err)
			return fmt.Errorf("job %s: %w", j.plan.JobName, err)
		}
		if ferr := j.fenced(ctx, err); ferr != nil {
			return ferr
		}
		// A failure while stopping (during the final checkpoint) is
		// restarted like any other, so that the final checkpoint is
		// taken, but only within Stop's bound; so is a failure the Stop
		// finds in its restart delay (docs/design.md §5). The first
		// restart for the Stop is immediate; a later one waits its
		// restart delay, so that a job failing every attempt does not
		// spin until the bound, and one whose delay outlasts the bound
		// ends the stop at once.
		// An attempt the stop's own bound cancelled (a hung start or final
		// commit) is not retried: it would hang again.
		stopping := j.stopping()
		if stopping && (j.stopLeft() <= 0 || errors.Is(err, errStopCancelled) || errors.Is(err, context.Canceled)) {
			return j.stoppedErr(err)
		}
		failedAt = j.clock.Now()
		if errors.Is(err, errStopSavepointFailed) && !stopping {
			// The sources ended their input for a savepoint that then
			// failed: not a failure of the job, which keeps running, as
			// in Flink. Restart at once from the latest checkpoint,
			// outside the restart strategy.
			j.log.Warn("stop-with-savepoint failed; the job keeps running, restarting from its latest checkpoint",
				"job", j.plan.JobName, "attempt", attempt, "err", err)
			j.restarted(cause)
			if j.lastCompleted.Load() > 0 {
				from = ""
			}
			if dir := j.stopSavepointDir(); dir != "" {
				from = dir
			}
			continue
		}
		ok, delay := j.cfg.Restart.OnFailure(failedAt, err)
		if !ok && stopping {
			return j.stoppedErr(err)
		}
		if !ok {
			j.log.Error("job attempt failed, not restarting", "job", j.plan.JobName, "attempt", attempt, "err", err)
			return fmt.Errorf("job %s failed after %d restarts: %w", j.plan.JobName, j.restarts.Load(), err)
		}
		switch {
		case stopping && stopRestarts == 0:
			// No restart delay: the stop is waiting for this attempt.
			delay = 0
			j.log.Error("job attempt failed while stopping, restarting at once to take the final checkpoint", "job", j.plan.JobName,
				"attempt", attempt, "stop time left", j.stopLeft().Round(time.Millisecond), "err", err)
		case stopping && delay >= j.stopLeft():
			return j.stoppedErr(err)
		case stopping:
			j.log.Error("job attempt failed again while stopping, restarting to take the final checkpoint", "job", j.plan.JobName,
				"attempt", attempt, "delay", delay, "stop time left", j.stopLeft().Round(time.Millisecond), "err", err)
		default:
			// The attempt failed: an error, whether or not a restart follows.
			j.log.Error("job attempt failed, restarting", "job", j.plan.JobName, "attempt", attempt, "delay", delay, "err", err)
		}
		if delay > 0 {
			// A Stop in the delay cuts it short (once stopping, the delay
			// runs out: the bound allows it).
			stopCh := j.stopCh
			if stopping {
				stopCh = nil
			}
			tm := j.clock.NewTimer(delay)
			select {
			case <-tm.C():
			case <-stopCh:
				tm.Stop()
				j.log.Warn("stop asked during the restart delay; restarting at once to take the final checkpoint", "job", j.plan.JobName,
					"attempt", attempt, "stop time left", j.stopLeft().Round(time.Millisecond))
			case <-ctx.Done():
				tm.Stop()
				return ctx.Err()
			}
		}
		if j.stopping() {
			stopRestarts++
		}
		j.restarted(cause)
		// Once this run completed a checkpoint, that one is newer than the
		// user-given starting point.
		if j.lastCompleted.Load() > 0 {
			from = ""
		}
		if dir := j.stopSavepointDir(); dir != "" {
			// A stop-with-savepoint completed and then the attempt failed
			// (committing it): the savepoint is newer than every
			// checkpoint, and its transactions may be partly committed.
			// The next attempt restores it (committing them) and stops
			// with a savepoint again, which is the one the caller gets.
			from = dir
		}
	}
}

// recordRestored records in the checkpoint directory that this run starts
// from the explicit checkpoint or savepoint rp (store.RestoredName), before
// anything is committed: a later start without FromCheckpoint, after a
// crash before this run completed a checkpoint of its own, restores it
// rather than an older checkpoint of the directory whose transactions the
// savepoint's job already committed (docs/design.md §5, §9).
func (j *Job) recordRestored(ctx context.Context, from string, rp *restorePoint) error {
	path, err := filepath.Abs(from)
	if err != nil {
		path = from
	}
	above, err := j.cfg.Store.MaxID(ctx)
	if err != nil {
		err = fmt.Errorf("job %s: record the restored checkpoint: %w", j.plan.JobName, err)
		j.log.Error("job not started", "job", j.plan.JobName, "err", err)
		return err
	}
	r := store.Restored{Path: path, CheckpointID: rp.meta.CheckpointID, Above: max(above, rp.meta.CheckpointID),
		Job: j.plan.JobName, At: j.clock.Now()}
	if err := j.cfg.Store.WriteRestored(ctx, r); err != nil {
		err = fmt.Errorf("job %s: record the restored checkpoint %s: %w", j.plan.JobName, path, err)
		j.log.Error("job not started", "job", j.plan.JobName, "err", err)
		return err
	}
	return nil
}

// recordedRestore returns the path a start without FromCheckpoint must
// restore because of the directory's store.RestoredName record: the
// checkpoint or savepoint an earlier instance was started from, when no
// checkpoint of the directory is newer than it. It returns "" when there
// is no record or a newer checkpoint supersedes it.
func (j *Job) recordedRestore(ctx context.Context) (string, error) {
	fail := func(err error) (string, error) {
		j.log.Error("job not started", "job", j.plan.JobName, "err", err)
		return "", err
	}
	r, ok, err := j.cfg.Store.ReadRestored(ctx)
	if err != nil {
		return fail(restart.Unrecoverable(fmt.Errorf("job %s: %w; restore the job's latest checkpoint or savepoint explicitly "+
			"with --from-checkpoint PATH (Config.FromCheckpoint), which rewrites the record", j.plan.JobName, err)))
	}
	if !ok {
		return "", nil
	}
	ids, err := j.cfg.Store.Completed(ctx)
	if err != nil {
		return fail(fmt.Errorf("job %s: list checkpoints: %w", j.plan.JobName, err))
	}
	if len(ids) > 0 && ids[len(ids)-1] > r.Above {
		m, err := j.cfg.Store.Latest(ctx, j.log)
		if err == nil && m.CheckpointID > r.Above {
			// A checkpoint of the run that restored r, or of a later
			// one: newer than r.
			return "", nil
		}
		if err != nil && !errors.Is(err, store.ErrCorrupt) && !errors.Is(err, store.ErrNoCheckpoint) {
			return fail(fmt.Errorf("job %s: find latest checkpoint: %w", j.plan.JobName, err))
		}
	}
	j.log.Info("restoring the checkpoint this job was last started from: no checkpoint in the directory is newer "+
		"(the previous instance ended before completing one of its own)",
		"job", j.plan.JobName, "checkpoint", r.CheckpointID, "location", r.Path,
		"record", j.cfg.Store.RestoredLocation(), "newest own checkpoint", lastOr0(ids))
	return r.Path, nil
}

func lastOr0(ids []int64) int64 {
	if len(ids) == 0 {
		return 0
	}
	return ids[len(ids)-1]
}

// recordUnusable is the terminal error of a start that must restore the
// recorded checkpoint path and cannot: falling back to an older
// checkpoint would commit again what the recorded one's job committed.
func (j *Job) recordUnusable(path string, cause error) error {
	err := restart.Unrecoverable(fmt.Errorf("job %s: %w; it is the checkpoint the job was last started from "+
		"(recorded in %s), newer than every checkpoint in its directory, whose output was committed past them, "+
		"so none of those is restored instead: restore it, or a newer checkpoint or savepoint, explicitly with "+
		"--from-checkpoint PATH (Config.FromCheckpoint)", j.plan.JobName, cause, j.cfg.Store.RestoredLocation()))
	j.log.Error("job not started: the recorded restore point cannot be restored", "job", j.plan.JobName,
		"location", path, "err", cause)
	return err
}

// fenced checks, after a failed attempt, whether this instance lost the
// ownership of its checkpoints: then whatever the attempt failed with
// (often the Kafka sink's fenced producer) is the doing of the instance
// that took over, and restarting would fight it. The error it returns is
// terminal (restart.Unrecoverable), logged at ERROR.
func (j *Job) fenced(ctx context.Context, attemptErr error) error {
	if errors.Is(attemptErr, store.ErrFenced) {
		err := fmt.Errorf("job %s: %w", j.plan.JobName, attemptErr)
		j.log.Error("job fenced: another instance took over its checkpoints; stopping without committing anything more",
			"job", j.plan.JobName, "err", attemptErr)
		return restart.Unrecoverable(err)
	}
	err := j.cfg.Store.CheckOwnership(ctx, "restart after a failure")
	if !errors.Is(err, store.ErrFenced) {
		// Still the owner (or the check itself failed, which the next
		// attempt's checks see again): restart as usual.
		return nil
	}
	j.log.Error("job fenced: another instance took over its checkpoints; stopping without committing anything more",
		"job", j.plan.JobName, "err", err, "attempt error", attemptErr)
	return restart.Unrecoverable(fmt.Errorf("job %s: %w (the attempt failed with: %w)", j.plan.JobName, err, attemptErr))
}

// stoppedErr is what Run returns when Stop ended the job without a final
// checkpoint; cause is why the last attempt ended.
func (j *Job) stoppedErr(cause error) error {
	j.log.Warn("job stopped without a final checkpoint; it resumes from its latest checkpoint when started again",
		"job", j.plan.JobName, "latest checkpoint", j.lastCompleted.Load(), "last attempt", cause)
	return fmt.Errorf("job %s %w (last attempt: %w)", j.plan.JobName, ErrStopped, cause)
}

// pickRestore finds the checkpoint to restore: an explicit path, else the
// newest complete one in storage (corrupt ones skipped, loudly). A restart
// before this run completed a checkpoint restores at most pinned (if
// non-negative), the checkpoint the run started from: a newer one can only
// be a fenced instance's (docs/design.md §9).
func (j *Job) pickRestore(ctx context.Context, from string, pinned int64) (*restorePoint, error) {
	if from != "" {
		m, src, err := store.LoadPath(ctx, from)
		if err != nil {
			return nil, fmt.Errorf("restore from %s: %w", from, err)
		}
		return &restorePoint{meta: m, src: src}, nil
	}
	var m *checkpoint.Metadata
	var err error
	maxID := int64(math.MaxInt64)
	if pinned >= 0 && j.lastCompleted.Load() == 0 {
		maxID = pinned
	}
	m, err = j.cfg.Store.LatestVouched(ctx, j.log, maxID, j.localVouch())
	if errors.Is(err, store.ErrNoCheckpoint) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("find latest checkpoint: %w", err)
	}
	rp := &restorePoint{meta: m, src: j.cfg.Store.Snapshot(m.CheckpointID), own: true}
	ids, err := j.cfg.Store.Completed(ctx)
	if err != nil {
		return nil, fmt.Errorf("list checkpoints: %w", err)
	}
	for _, id := range ids {
		if id > m.CheckpointID {
			rp.superseded = append(rp.superseded, id)
		}
	}
	return rp, nil
}

type restorePoint struct {
	meta *checkpoint.Metadata
	src  *store.Snapshot
	// superseded are the complete checkpoints newer than meta that
	// Latest skipped as corrupt.
	superseded []int64
	// own is set for a checkpoint of the job's own storage (not
	// FromCheckpoint), of which local recovery may hold copies.
	own bool
}

func newRunID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// attempt is one run of the job graph between failures.
type attempt struct {
	j      *Job
	plan   *Plan
	cfg    checkpoint.Config
	clock  clock.Clock
	faults *fault.Injector
	// ctx is the attempt's context, cancelled when the attempt ends (a task
	// failed, the job was cancelled): every operator lifecycle call of the
	// attempt but Close runs under it, so that a hung commit returns.
	ctx   context.Context
	runID string

	tasks   []*task
	byID    map[checkpoint.TaskID]*task
	sources []*task

	events chan coordinator.Event
	errs   chan error
	// discarded carries the outcomes of checkpoint deletions.
	discarded chan discarded
	exhaust   chan checkpoint.TaskID
	endedCh   chan checkpoint.TaskID
	wg        sync.WaitGroup

	// writes counts the asynchronous snapshot writers still running per
	// checkpoint; an aborted checkpoint's files are deleted once its last
	// writer is done, so a writer never recreates what was deleted.
	writesMu sync.Mutex
	writes   map[int64]int
	aborted  map[int64]bool
	// savepoints holds the directory of every savepoint triggered in the
	// attempt and not yet deleted, by id (under writesMu).
	savepoints map[int64]*store.Snapshot

	// running is set once the tasks run and drive takes over (a Stop then
	// takes a final checkpoint).
	running   atomic.Bool
	runningCh chan struct{} // closed with running
	// stopCancelled is set when watchStop cancelled the attempt (a start
	// or a final checkpoint that outlasted its bound).
	stopCancelled atomic.Bool
}

// watchStop bounds a Stop of the attempt: before the attempt runs it
// cancels it at once; after, it cancels it when the final checkpoint has
// not ended the attempt within StopTimeout.
func (a *attempt) watchStop(cancel context.CancelFunc) {
	select {
	case <-a.j.stopCh:
	case <-a.ctx.Done():
		return
	}
	if !a.running.Load() {
		// Starting (restoring, committing restored transactions, opening
		// connections): a final checkpoint follows if it is up soon, but
		// a start that hangs on an unreachable system is cancelled.
		tm := a.clock.NewTimer(stopWhileStarting)
		select {
		case <-a.runningCh:
			tm.Stop()
		case <-tm.C():
			a.j.log.Warn("stop asked while the attempt is starting; cancelling it", "job", a.plan.JobName, "waited", stopWhileStarting)
			a.stopCancelled.Store(true)
			cancel()
			return
		case <-a.ctx.Done():
			tm.Stop()
			return
		}
	}
	// What is left of Stop's bound: an attempt restarted while stopping
	// has less than StopTimeout.
	tm := a.clock.NewTimer(max(a.j.stopLeft(), 0))
	defer tm.Stop()
	select {
	case <-tm.C():
		a.j.log.Error("stop: the final checkpoint did not end the job in time; cancelling it",
			"job", a.plan.JobName, "stop timeout", a.j.cfg.StopTimeout)
		a.stopCancelled.Store(true)
		cancel()
	case <-a.ctx.Done():
	}
}

// waitTasks waits for the attempt's goroutines after it was cancelled. A
// stopping job waits at most stopGrace, then abandons what is stuck (in a
// call that ignores cancellation, such as a hung commit) and reports it.
func (a *attempt) waitTasks() error {
	if !a.j.stopping() {
		a.wg.Wait()
		return nil
	}
	done := make(chan struct{})
	go func() { a.wg.Wait(); close(done) }()
	tm := a.clock.NewTimer(stopGrace)
	defer tm.Stop()
	select {
	case <-done:
		return nil
	case <-tm.C():
		a.j.log.Error("stop: tasks did not end after cancellation; abandoning them", "job", a.plan.JobName, "grace", stopGrace)
		return fmt.Errorf("tasks did not end within %v of cancellation (abandoned)", stopGrace)
	}
}

func (a *attempt) beginWrite(cp int64) {
	a.writesMu.Lock()
	if a.writes == nil {
		a.writes, a.aborted = map[int64]int{}, map[int64]bool{}
	}
	a.writes[cp]++
	a.writesMu.Unlock()
}

func (a *attempt) endWrite(cp int64) {
	a.writesMu.Lock()
	a.writes[cp]--
	discard := a.writes[cp] == 0 && a.aborted[cp]
	if a.writes[cp] == 0 {
		delete(a.writes, cp)
	}
	a.writesMu.Unlock()
	if discard {
		a.discardAborted(cp)
	}
}

// markAborted records that cp was aborted and deletes its files now if no
// writer is busy with them.
func (a *attempt) markAborted(cp int64) {
	a.writesMu.Lock()
	if a.writes == nil {
		a.writes, a.aborted = map[int64]int{}, map[int64]bool{}
	}
	a.aborted[cp] = true
	idle := a.writes[cp] == 0
	a.writesMu.Unlock()
	if idle {
		a.discardAborted(cp)
	}
}

func (a *attempt) discardAborted(cp int64) { a.discardAsync(cp, true) }

// discardAsync deletes checkpoint cp's files on a goroutine of its own and
// reports the outcome to the job master loop.
func (a *attempt) discardAsync(cp int64, aborted bool) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		var err error
		switch sn := a.savepoint(cp); {
		case sn != nil && aborted:
			err = a.deleteSavepoint(cp, sn)
		case aborted:
			// Its shared files may be reused already: left to the next
			// attempt's CleanIncomplete.
			err = a.j.cfg.Store.DiscardAborted(a.ctx, cp)
		default:
			err = a.j.cfg.Store.Discard(a.ctx, cp)
		}
		r := discarded{id: cp, err: err, aborted: aborted}
		select {
		case a.discarded <- r:
		default:
			// The loop is not reading (the attempt is finishing, and waits
			// for this goroutine): report it here.
			a.j.reportDiscard(a.ctx, r)
		}
	}()
}

func (a *attempt) sourceExhausted(id checkpoint.TaskID) {
	select {
	case a.exhaust <- id:
	case <-a.ctx.Done():
	}
}

func (a *attempt) taskEnded(id checkpoint.TaskID) {
	select {
	case a.endedCh <- id:
	case <-a.ctx.Done():
	}
}

func (a *attempt) decline(id checkpoint.TaskID, cp int64, err error) {
	a.event(coordinator.DeclineEvent{CheckpointID: cp, Task: id, Err: err})
}

func (a *attempt) event(ev coordinator.Event) {
	select {
	case a.events <- ev:
	case <-a.ctx.Done():
	}
}

// writeSnapshot is the asynchronous part of a task's snapshot: write the
// keyed state files, then ack with their handles (docs/design.md §3 step 4).
func (a *attempt) writeSnapshot(id checkpoint.TaskID, b Barrier, snaps []pendingSnap, align, sync time.Duration) {
	a.wg.Add(1)
	a.beginWrite(b.ID)
	go func() {
		began := a.clock.Now()
		defer a.wg.Done()
		defer a.endWrite(b.ID)
		defer func() {
			for _, p := range snaps {
				if p.snap.Keyed != nil {
					p.snap.Keyed.Release()
				}
			}
		}()
		defer func() {
			if r := recover(); r != nil {
				err := fmt.Errorf("task %s/%d: asynchronous snapshot %d panicked: %v\n%s", id.Vertex, id.Subtask, b.ID, r, debug.Stack())
				if e, ok := r.(error); ok {
					err = fmt.Errorf("task %s/%d: asynchronous snapshot %d: %w", id.Vertex, id.Subtask, b.ID, e)
				}
				select {
				case a.errs <- &taskError{id: id, err: err}:
				default:
				}
			}
		}()
		states := make(map[string]*checkpoint.SubtaskState, len(snaps))
		kgs := keygroup.RangeFor(id.Subtask, a.parallelism(id), a.plan.MaxParallelism)
		var total int64
		for _, p := range snaps {
			a.faults.Hit(fault.InSnapshotWrite, p.uid, id.Subtask)
			st := &checkpoint.SubtaskState{Subtask: id.Subtask, KeyGroups: kgs, Operator: p.snap.Operator, Channels: p.snap.Channels}
			total += channelBytes(p.snap.Channels)
			if d, ok := p.snap.Keyed.(describedSnapshot); ok {
				st.KeyCodec, st.States = d.KeyCodec(), d.States()
			}
			if p.snap.Keyed != nil {
				hs, n, err := a.writeKeyed(b.ID, p.uid, id.Subtask, p.snap.Keyed)
				if err != nil {
					a.decline(id, b.ID, fmt.Errorf("%s/%d: write keyed state: %w", p.uid, id.Subtask, err))
					return
				}
				total += n
				st.Keyed = hs
			}
			for _, es := range p.snap.Operator {
				for _, e := range es {
					total += int64(len(e))
				}
			}
			states[p.uid] = st
		}
		a.event(coordinator.AckEvent{CheckpointID: b.ID, Task: id, States: states, Bytes: total, AlignmentDuration: align, SyncDuration: sync,
			AsyncDuration: a.clock.Now().Sub(began)})
	}()
}

func (a *attempt) parallelism(id checkpoint.TaskID) int {
	if t, ok := a.byID[id]; ok {
		return t.parallelism
	}
	return 1
}

// runAttempt builds every task, restores state, opens operators (sinks
// recover before any source reads: docs/design.md §11 "Order on restore"), starts
// the tasks and drives the checkpoint coordinator until the job finishes
// or fails.
func (j *Job) runAttempt(parent context.Context, n int, rp *restorePoint, failedAt time.Time) (err error) {
	ctx, cancel := context.WithCancel(parent)
	began := j.clock.Now()
	a := &attempt{
		j: j, plan: j.plan, cfg: j.cfg.Checkpoint, clock: j.clock, faults: j.cfg.Faults, ctx: ctx, runID: newRunID(),
		byID:      map[checkpoint.TaskID]*task{},
		events:    make(chan coordinator.Event, 1024),
		errs:      make(chan error, 64),
		discarded: make(chan discarded, 64),
		exhaust:   make(chan checkpoint.TaskID, 1024),
		endedCh:   make(chan checkpoint.TaskID, 1024),
		runningCh: make(chan struct{}),
	}
	defer func() {
		cancel()
		if werr := a.waitTasks(); werr != nil {
			err = errors.Join(err, werr)
		}
		if err != nil && a.stopCancelled.Load() {
			// What the cancelled calls returned need not wrap
			// context.Canceled (a connector may report its own error).
			err = fmt.Errorf("%w: %w", errStopCancelled, err)
		}
	}()
	// Stop is bounded (docs/design.md §5): while the attempt starts there
	// is nothing to take a final checkpoint of, so it is cancelled at once;
	// once it runs, the final checkpoint has StopTimeout.
	go a.watchStop(cancel)
	// Leftovers of checkpoints that a crash or a failed attempt interrupted
	// are never restorable; no writer of this job is running now.
	if err := j.cfg.Store.CleanIncomplete(ctx); err != nil {
		return fmt.Errorf("checkpoint storage: clean incomplete checkpoints: %w", err)
	}
	if err := a.buildBounded(n, rp); err != nil {
		return err
	}
	firstID := int64(1)
	maxID, err := j.cfg.Store.MaxID(ctx)
	if err != nil {
		a.closeAll()
		return fmt.Errorf("checkpoint storage: %w", err)
	}
	if maxID >= firstID {
		firstID = maxID + 1
	}
	if rp != nil && rp.meta.CheckpointID >= firstID {
		firstID = rp.meta.CheckpointID + 1
	}
	firstID = max(firstID, j.lastTriggered.Load()+1)
	completed, err := j.cfg.Store.Completed(ctx)
	if err != nil {
		a.closeAll()
		return fmt.Errorf("checkpoint storage: %w", err)
	}
	var ids []checkpoint.TaskID
	for _, t := range a.tasks {
		ids = append(ids, t.id)
	}
	coord, err := coordinator.NewCoordinator(j.cfg.Checkpoint, coordinator.CoordinatorOptions{
		JobName: j.plan.JobName, MaxParallelism: j.plan.MaxParallelism, Tasks: ids,
		FirstID: firstID, Start: j.clock.Now(), Completed: completed, Sources: j.plan.Sources,
	})
	if err != nil {
		a.closeAll()
		return err
	}
	started := j.clock.Now()
	for _, t := range a.tasks {
		a.wg.Add(1)
		go func(t *task) {
			defer a.wg.Done()
			if err := t.run(ctx); err != nil && ctx.Err() == nil {
				select {
				case a.errs <- &taskError{id: t.id, err: err}:
				default:
				}
			}
		}(t)
	}
	if !failedAt.IsZero() {
		j.lastRecovery.Store(int64(started.Sub(failedAt)))
	}
	j.infoMu.Lock()
	j.info.attemptStartedAt = started
	if rp != nil {
		j.info.lastRestore = &RestoreInfo{At: began, Duration: started.Sub(began), CheckpointID: rp.meta.CheckpointID,
			Path: rp.src.Location(), Kind: rp.meta.Kind}
	}
	j.infoMu.Unlock()
	a.running.Store(true)
	close(a.runningCh)
	return a.drive(coord)
}

// buildBounded runs build, closing what it opened if it fails. When the
// attempt is cancelled while build is stuck (an Open that waits on an
// unreachable system and ignores cancellation), it waits stopGrace more and
// then abandons the build, so that Stop and cancellation stay bounded.
func (a *attempt) buildBounded(n int, rp *restorePoint) error {
	done := make(chan error, 1)
	go func() {
		err := a.build(n, rp)
		if err != nil {
			a.closeAll()
		}
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-a.ctx.Done():
	}
	tm := a.clock.NewTimer(stopGrace)
	defer tm.Stop()
	select {
	case err := <-done:
		return err
	case <-tm.C():
		a.j.log.Error("attempt cancelled while starting, and the start did not end; abandoning it", "job", a.plan.JobName, "grace", stopGrace)
		return fmt.Errorf("start of the attempt did not end within %v of cancellation (abandoned): %w", stopGrace, a.ctx.Err())
	}
}

// closeAll closes operators of tasks that never started, with a context of
// their own (see CloseTimeout).
func (a *attempt) closeAll() {
	ctx, cancel := closeContext(a.ctx)
	defer cancel()
	for _, t := range a.tasks {
		for _, op := range t.chain.Ops {
			_ = op.Op.Close(ctx)
		}
		if t.chain.Source != nil {
			_ = t.chain.Source.Close(ctx)
		}
	}
}

func (a *attempt) build(n int, rp *restorePoint) error {
	channels := make(map[int]any, len(a.plan.Edges))
	par := map[int]int{}
	for _, v := range a.plan.Vertices {
		par[v.ID] = v.Parallelism
	}
	for _, e := range a.plan.Edges {
		channels[e.ID] = e.NewChannels(par[e.From], par[e.To], a.plan.ChannelCapacity)
		if a.cfg.Unaligned {
			if c, ok := channels[e.ID].(creditor); ok {
				c.enableCredits(a.plan.ChannelCapacity)
			}
		}
	}
	a.j.infoMu.Lock()
	a.j.info.channels = channels
	a.j.infoMu.Unlock()
	if err := checkChannelRescale(a.plan, rp); err != nil {
		return err
	}
	restorer := newRestorer(a.ctx, a.j, rp)
	for _, v := range a.plan.Vertices {
		for sub := 0; sub < v.Parallelism; sub++ {
			id := checkpoint.TaskID{Vertex: v.UID, Subtask: sub}
			stats := a.j.taskStats(id)
			stats.beginAttempt(a.clock.Now())
			tm := NewTime()
			chain, err := v.Instantiate(&Wiring{Subtask: sub, Channels: channels, Done: a.ctx.Done(), Stats: stats, BatchSize: a.plan.BatchSize, Time: tm})
			if err != nil {
				return fmt.Errorf("build %s/%d: %w", v.Name, sub, err)
			}
			chain.Time = tm
			t := &task{id: id, chain: chain, job: a, ctl: make(chan taskCtl, 64), mailbox: make(chan mail, 2*len(chain.Inputs)+4), stats: stats, parallelism: v.Parallelism}
			tm.t = t
			t.unaligned.restored = restoredChannels(rp, chain, sub)
			a.tasks = append(a.tasks, t)
			a.byID[id] = t
			if chain.Source != nil {
				a.sources = append(a.sources, t)
			}
		}
	}
	// Open sinks and other operators first, sources last, so that restored
	// transactions are committed before any record is read again.
	for _, t := range a.tasks {
		for i := len(t.chain.Ops) - 1; i >= 0; i-- {
			op := t.chain.Ops[i]
			oc, err := a.opContext(n, t, op.UID, op.Name, restorer)
			if err != nil {
				return err
			}
			if err := op.Op.Open(a.ctx, oc); err != nil {
				return fmt.Errorf("open %s/%d: %w", op.UID, t.id.Subtask, err)
			}
		}
	}
	for _, t := range a.sources {
		oc, err := a.opContext(n, t, t.chain.SourceUID, t.chain.SourceUID, restorer)
		if err != nil {
			return err
		}
		if err := t.chain.Source.Open(a.ctx, oc); err != nil {
			return fmt.Errorf("open source %s/%d: %w", t.chain.SourceUID, t.id.Subtask, err)
		}
	}
	return nil
}

func (a *attempt) opContext(n int, t *task, uid, name string, r *restorer) (*OperatorContext, error) {
	kgs := keygroup.RangeFor(t.id.Subtask, t.parallelism, a.plan.MaxParallelism)
	rs, err := r.forSubtask(uid, t.id.Subtask, kgs)
	if err != nil {
		return nil, err
	}
	var epoch int64
	if o := a.j.cfg.Store.Ownership(); o != nil {
		epoch = o.Owner().Epoch
	}
	return &OperatorContext{
		UID: uid, Name: name, Subtask: t.id.Subtask, Parallelism: t.parallelism, MaxParallelism: a.plan.MaxParallelism,
		KeyGroups: kgs, Restored: rs, Attempt: n, RunID: a.runID, Clock: a.clock,
		Logger: a.j.log.With("operator", uid, "subtask", t.id.Subtask), Faults: a.faults,
		Fence: a.j.cfg.Store.CheckOwnership, Orphaned: a.j.cfg.Store.Orphaned, OwnerEpoch: epoch, Time: t.chain.Time, Stats: t.stats,
		LocalDir: a.j.localDir(uid, t.id.Subtask),
	}, nil
}

// drive is the job master loop: it feeds the coordinator and carries out
// its actions (docs/design.md §3). Nothing on it blocks on I/O: _metadata
// writes and checkpoint deletions run on goroutines of their own and report
// back as events, so a slow disk delays no trigger, timeout or notification.
func (a *attempt) drive(coord *coordinator.Coordinator) (err error) {
	d := &driver{
		a: a, j: a.j, coord: coord,
		exhausted: map[checkpoint.TaskID]bool{},
		ended:     map[checkpoint.TaskID]bool{},
		stopCh:    a.j.stopCh,
		sps:       map[int64]*savepointReq{},
		cps:       map[int64]*checkpointReq{},
	}
	defer func() { d.failSavepoints(err); d.failCheckpoints(err) }()
	if r := d.j.resumeStop(); r != nil {
		d.request(r)
	}
	for {
		if err := d.carryOut(); err != nil {
			return err
		}
		st := coord.Stats()
		d.j.coordStats.Store(&st)
		if d.stopDone && len(d.ended) == len(a.tasks) {
			return d.finish()
		}
		if err := d.wait(); err != nil {
			return err
		}
	}
}

// driver is the state of one attempt's job master loop. Only the loop's
// goroutine uses it.
type driver struct {
	a     *attempt
	j     *Job
	coord *coordinator.Coordinator
	// exhausted and ended are the sources whose input ran out and the tasks
	// that ended their input.
	exhausted map[checkpoint.TaskID]bool
	ended     map[checkpoint.TaskID]bool
	// stopID is the final checkpoint's id once triggered.
	stopID    int64
	stopAsked bool
	// stopDone: the final checkpoint completed.
	stopDone bool
	stopCh   <-chan struct{}
	// sps are the savepoints triggered on request and not yet answered,
	// by id; nextSP is the request whose TriggerAction is due next.
	sps    map[int64]*savepointReq
	nextSP *savepointReq
	// cps are the checkpoints triggered by TriggerCheckpoint and not yet
	// answered, by id.
	cps map[int64]*checkpointReq
}

// discarded reports the end of a checkpoint deletion started by the loop.
type discarded struct {
	id  int64
	err error
	// aborted: the files of an aborted checkpoint, not a retired one.
	aborted bool
}

// carryOut carries out what the coordinator decided, until it has nothing
// more to say.
func (d *driver) carryOut() error {
	for acts := d.coord.Ready(); len(acts) > 0; acts = d.coord.Ready() {
		for _, act := range acts {
			d.j.log.Debug("checkpoint coordinator action", "action", fmt.Sprintf("%T", act), "detail", act)
			var err error
			switch act := act.(type) {
			case coordinator.TriggerAction:
				err = d.trigger(act)
			case coordinator.PersistAction:
				d.persist(act)
			case coordinator.CompleteAction:
				err = d.complete(act)
			case coordinator.AbortAction:
				err = d.abort(act)
			case coordinator.DiscardAction:
				d.discard(act)
			case coordinator.FailJobAction:
				err = d.failJob(act)
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// trigger injects the barrier at every source.
func (d *driver) trigger(act coordinator.TriggerAction) error {
	d.j.lastTriggered.Store(max(d.j.lastTriggered.Load(), act.CheckpointID))
	if act.Stop {
		d.stopID = act.CheckpointID
	}
	b := Barrier{ID: act.CheckpointID, Kind: act.Kind, Timestamp: act.Timestamp, Stop: act.Stop}
	if act.Kind == checkpoint.KindSavepoint {
		b.Drain = d.savepointTriggered(act)
	}
	b = d.a.unalignedBarrier(b)
	for _, t := range d.a.sources {
		if err := d.a.sendCtl(t, taskCtl{kind: ctlTrigger, barrier: b}); err != nil {
			return err
		}
	}
	return d.a.announceUnaligned(b)
}

// persist writes the checkpoint's _metadata off the loop; the outcome comes
// back as a PersistedEvent. The write counts as a writer of the checkpoint,
// so that if the coordinator aborts it meanwhile (it expired or was
// subsumed while persisting) its files are deleted only after the write
// returned, never recreated by it.
func (d *driver) persist(act coordinator.PersistAction) {
	a, id := d.a, act.Metadata.CheckpointID
	a.wg.Add(1)
	a.beginWrite(id)
	go func() {
		defer a.wg.Done()
		defer a.endWrite(id)
		var err error
		if sn := a.savepoint(id); sn != nil {
			err = a.writeSavepointMetadata(sn, act.Metadata)
		} else {
			err = a.j.cfg.Store.WriteMetadata(a.ctx, act.Metadata)
		}
		if errors.Is(err, store.ErrFenced) {
			// Nothing of this checkpoint may be committed (docs/design.md
			// §9): fail the attempt; Run makes it terminal.
			select {
			case a.errs <- err:
			default:
			}
		}
		if err != nil && a.ctx.Err() == nil {
			// The abort that follows says whether it is tolerated.
			a.j.log.Warn("checkpoint metadata not written", "checkpoint", id, "err", err)
		}
		a.event(coordinator.PersistedEvent{CheckpointID: id, Err: err})
	}()
}

// complete counts a completed checkpoint and tells every task, so that
// two-phase-commit sinks commit.
func (d *driver) complete(act coordinator.CompleteAction) error {
	d.j.completed.Add(1)
	if fn := d.j.cfg.OnCheckpointComplete; fn != nil {
		if cs, ok := d.coord.CheckpointStats(act.CheckpointID); ok {
			fn(cs)
		}
	}
	if act.Kind == checkpoint.KindSavepoint {
		// A savepoint is not in the checkpoint lineage: a restart restores
		// the latest checkpoint, so it must not count as one (Run restores
		// from storage once this run completed a checkpoint).
		d.savepointComplete(act)
	} else {
		d.j.lastCompleted.Store(act.CheckpointID)
		at := d.a.clock.Now()
		if act.Metadata != nil && !act.Metadata.CompletedAt.IsZero() {
			at = act.Metadata.CompletedAt
		}
		d.j.lastCompletedAt.Store(at.UnixNano())
		d.checkpointComplete(act.CheckpointID)
	}
	if act.Kind != checkpoint.KindSavepoint || act.Stop {
		d.j.lastMeta.Store(act.Metadata)
	}
	if act.Kind == checkpoint.KindSavepoint && !act.Stop {
		// A savepoint does not commit sink transactions (as in Flink ≥
		// 1.15): a later restore from an older checkpoint would replay
		// output already visible. Its transactions are committed with the
		// next checkpoint.
		return nil
	}
	for _, t := range d.a.tasks {
		if err := d.a.sendCtl(t, taskCtl{kind: ctlComplete, id: act.CheckpointID}); err != nil {
			return err
		}
	}
	if act.Stop {
		d.stopDone = true
	}
	return nil
}

// abort counts a failed checkpoint, has its files deleted (off the loop,
// once no writer is busy with them) and tells every task.
func (d *driver) abort(act coordinator.AbortAction) error {
	d.j.failedCP.Add(1)
	d.j.log.Warn("checkpoint aborted", "checkpoint", act.CheckpointID, "kind", act.Kind, "reason", act.Reason)
	if act.Kind == checkpoint.KindCheckpoint || d.a.savepoint(act.CheckpointID) != nil {
		d.a.markAborted(act.CheckpointID)
	}
	if act.Kind == checkpoint.KindSavepoint {
		d.savepointAborted(act)
	} else {
		d.checkpointAborted(act)
	}
	for _, t := range d.a.tasks {
		if err := d.a.sendCtl(t, taskCtl{kind: ctlAborted, id: act.CheckpointID}); err != nil {
			return err
		}
	}
	if act.CheckpointID == d.stopID {
		// The sources already ended their input after this barrier; only a
		// restart can take another one.
		if act.Kind == checkpoint.KindSavepoint {
			return &checkpointError{err: fmt.Errorf("%w: savepoint %d: %w", errStopSavepointFailed, act.CheckpointID, act.Reason)}
		}
		return &checkpointError{err: fmt.Errorf("final checkpoint %d failed: %w", act.CheckpointID, act.Reason)}
	}
	return nil
}

// discard deletes a checkpoint that retention no longer keeps, off the
// loop.
func (d *driver) discard(act coordinator.DiscardAction) {
	d.a.discardAsync(act.CheckpointID, false)
}

// failJob fails the attempt: more checkpoints failed in a row than
// tolerated.
func (d *driver) failJob(act coordinator.FailJobAction) error {
	d.j.log.Error("checkpoint failures beyond tolerance fail the attempt", "job", d.j.plan.JobName, "err", act.Err)
	return &checkpointError{err: act.Err}
}

// askStop asks the coordinator for the final checkpoint, once.
func (d *driver) askStop() {
	if !d.stopAsked {
		d.stopAsked = true
		d.coord.Step(coordinator.TriggerFinalCheckpointEvent{Now: d.a.clock.Now()})
	}
}

// finish ends an attempt whose final checkpoint completed and whose tasks
// all ended their input.
func (d *driver) finish() error {
	for _, t := range d.a.tasks {
		if err := d.a.sendCtl(t, taskCtl{kind: ctlFinish}); err != nil {
			return err
		}
	}
	// The tasks commit the final checkpoint and end; a commit that hangs
	// is cut off by Stop's bound (watchStop).
	done := make(chan struct{})
	go func() { d.a.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-d.a.ctx.Done():
		return d.a.ctx.Err()
	}
	select {
	case err := <-d.a.errs:
		return err
	default:
	}
	if err := d.a.ctx.Err(); err != nil {
		// Cancelled while the tasks finished: a commit of the final
		// checkpoint may have been interrupted (its task's error is not
		// reported once the context is done), so this is not a clean stop.
		return err
	}
	return nil
}

// maxDriverWait bounds the job master's wait for the coordinator's next
// deadline.
const maxDriverWait = time.Second

// wait waits for the next event, or for the coordinator's next deadline,
// and hands it on.
func (d *driver) wait() error {
	a := d.a
	var wake <-chan time.Time
	if at, ok := d.coord.NextDeadline(); ok {
		// At most maxDriverWait: the coordinator learns the time only from
		// events, so a clock stepped back since the last one would put its
		// deadline hours away. The wake-up tells it the time, and it
		// rebases (docs/design.md §3).
		if now := a.clock.Now(); at.Sub(now) > maxDriverWait {
			at = now.Add(maxDriverWait)
		}
		tm := clock.TimerAt(a.clock, at)
		defer tm.Stop()
		wake = tm.C()
	}
	select {
	case ev := <-a.events:
		// Tell the coordinator the time first, so that completion times
		// and durations are those of the event, not of the last periodic
		// tick.
		d.coord.Step(coordinator.TickEvent{Now: a.clock.Now()})
		d.coord.Step(ev)
	case <-wake:
		// The job's clock, not the timer's value: a timer of the real
		// clock sends the wall time, which a stepped clock.Clock is not.
		d.coord.Step(coordinator.TickEvent{Now: a.clock.Now()})
	case r := <-a.discarded:
		d.onDiscarded(r)
	case id := <-a.exhaust:
		d.exhausted[id] = true
		if len(d.exhausted) == len(a.sources) {
			d.askStop()
		}
	case id := <-a.endedCh:
		d.ended[id] = true
	case <-d.stopCh:
		d.stopCh = nil
		d.askStop()
	case r := <-d.j.spReqs:
		d.request(r)
	case r := <-d.j.cpReqs:
		d.requestCheckpoint(r)
	case err := <-a.errs:
		return err
	case <-a.ctx.Done():
		return a.ctx.Err()
	}
	if d.stopCh != nil && d.j.stopping() {
		d.stopCh = nil
		d.askStop()
	}
	return nil
}

// onDiscarded reports the outcome of a checkpoint deletion.
func (d *driver) onDiscarded(r discarded) { d.j.reportDiscard(d.a.ctx, r) }

// reportDiscard logs a deletion that failed. The leftovers of an aborted
// checkpoint are cleaned up by the next attempt (or, if its _metadata write
// succeeded after the abort, form a consistent checkpoint: every task
// acked it); an old checkpoint left behind only takes space.
func (j *Job) reportDiscard(ctx context.Context, r discarded) {
	if r.err == nil || ctx.Err() != nil {
		return
	}
	if r.aborted {
		j.log.Warn("could not delete the files of an aborted checkpoint", "checkpoint", r.id, "err", r.err)
	} else {
		j.log.Warn("could not discard old checkpoint", "checkpoint", r.id, "err", r.err)
	}
}

func (a *attempt) sendCtl(t *task, c taskCtl) error {
	select {
	case t.ctl <- c:
		return nil
	case err := <-a.errs:
		return err
	case <-a.ctx.Done():
		return a.ctx.Err()
	}
}

// restorer selects, per operator uid and subtask, the state to restore from
// a checkpoint, reading each state file once (docs/design.md §11 "Order on
// restore" step 2): from the subtask's task-local copy where local recovery
// kept one of exactly this checkpoint and it verifies, else from checkpoint
// storage. Files of a backend's native format are not read: the subtask
// gets their handles and a Fetch.
type restorer struct {
	ctx   context.Context
	j     *Job
	rp    *restorePoint
	files map[string][]byte // by sharedKey
	// local is set when the restored checkpoint is this job's own, of
	// which local recovery may have kept copies.
	local bool
}

func newRestorer(ctx context.Context, j *Job, rp *restorePoint) *restorer {
	r := &restorer{ctx: ctx, j: j, rp: rp, files: map[string][]byte{}}
	r.local = rp != nil && rp.own && j.cfg.State.LocalRecovery
	return r
}

// fileKey tells a shared file from a private one of the same path.
func fileKey(h checkpoint.StateHandle) string {
	if h.Shared {
		return "s:" + h.Path
	}
	return "p:" + h.Path
}

func (r *restorer) forSubtask(uid string, sub int, kgs checkpoint.KeyGroupRange) (*RestoredState, error) {
	if r.rp == nil {
		return nil, nil
	}
	os, ok := r.rp.meta.Operators[uid]
	if !ok {
		return nil, nil
	}
	var local func(checkpoint.StateHandle) ([]byte, error)
	if r.local {
		id := r.rp.meta.CheckpointID
		local = func(h checkpoint.StateHandle) ([]byte, error) { return r.j.readLocalAny(id, uid, sub, h) }
	}
	rs := &RestoredState{CheckpointID: r.rp.meta.CheckpointID, Superseded: r.rp.superseded, Operator: map[string][][]byte{}}
	subs := append([]*checkpoint.SubtaskState(nil), os.Subtasks...)
	sort.Slice(subs, func(i, k int) bool { return subs[i].Subtask < subs[k].Subtask })
	for _, s := range subs {
		for name, entries := range s.Operator {
			rs.Operator[name] = append(rs.Operator[name], entries...)
		}
		if s.KeyGroups.Intersect(kgs).Len() == 0 {
			continue
		}
		if len(s.Keyed) > 0 && s.Keyed[0].Format != "" {
			format := s.Keyed[0].Format
			for _, h := range s.Keyed {
				if formatFamily(h.Format) != formatFamily(format) {
					return nil, fmt.Errorf("restore %s from checkpoint %d: %w: subtask %d mixes state file formats %q and %q",
						uid, r.rp.meta.CheckpointID, store.ErrCorrupt, s.Subtask, format, h.Format)
				}
			}
			src, log := r.rp.src, r.j.log.With("operator", uid, "subtask", sub, "checkpoint", r.rp.meta.CheckpointID)
			rs.Keyed = append(rs.Keyed, RestoredKeyed{KeyGroups: s.KeyGroups, Format: format, Handles: slices.Clone(s.Keyed),
				Fetch: func(ctx context.Context, h checkpoint.StateHandle, dst string) error {
					return fetchTo(ctx, log, src, local, h, dst)
				}})
			continue
		}
		for _, h := range s.Keyed {
			data, err := r.read(uid, sub, local, h)
			if err != nil {
				return nil, fmt.Errorf("restore %s from checkpoint %d: %w", uid, r.rp.meta.CheckpointID, err)
			}
			rs.Keyed = append(rs.Keyed, RestoredKeyed{Data: data, KeyGroups: s.KeyGroups, Offsets: h.KeyGroupOffsets})
		}
	}
	return rs, nil
}

// read returns the verified contents of the state file of h: read before,
// the local copy local finds (nil for none), or the file in storage.
func (r *restorer) read(uid string, sub int, local func(checkpoint.StateHandle) ([]byte, error), h checkpoint.StateHandle) ([]byte, error) {
	if data, ok := r.files[fileKey(h)]; ok {
		return data, nil
	}
	if local != nil {
		data, err := local(h)
		if err == nil {
			r.files[fileKey(h)] = data
			return data, nil
		}
		logLocalMiss(r.ctx, r.j.log.With("operator", uid, "subtask", sub, "checkpoint", r.rp.meta.CheckpointID), h, err)
	}
	data, err := r.rp.src.ReadState(r.ctx, h)
	if err != nil {
		return nil, err
	}
	r.files[fileKey(h)] = data
	return data, nil
}

// formatFamily is the backend a state file format belongs to: the part of
// a native format before its first '-' ("pebble" for "pebble-sst" and
// "pebble-meta"), empty for the canonical format. A subtask's handles are
// all of one family: one backend wrote them.
func formatFamily(f string) string {
	if i := strings.IndexByte(f, '-'); i >= 0 {
		return f[:i]
	}
	return f
}
