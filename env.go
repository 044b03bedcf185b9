package sluice

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/checkpoint/store"
	"github.com/sluicehq/sluice/clock"
	"github.com/sluicehq/sluice/fault"
	"github.com/sluicehq/sluice/internal/runtime"
	"github.com/sluicehq/sluice/keygroup"
	"github.com/sluicehq/sluice/restart"
	"github.com/sluicehq/sluice/watermark"
)

// FlushAlways as Config.BufferTimeout flushes every batch of work at once:
// lowest latency, least throughput (Flink's buffer timeout 0).
const FlushAlways time.Duration = -1

// Config configures a job. The zero value of every field means its default.
type Config struct {
	// JobName names the job in logs, metrics and checkpoints. Default "job".
	JobName string
	// Parallelism is the default parallelism of operators. Default 1.
	Parallelism int
	// MaxParallelism is the number of key groups, the upper bound for
	// rescaling keyed state. Default 128. It must not change between a
	// checkpoint and its restore.
	MaxParallelism int
	// BufferTimeout is how long a record may wait in a partly filled batch
	// before it is sent downstream: throughput against latency. Default
	// 100ms; FlushAlways sends at once.
	BufferTimeout time.Duration
	// BatchSize is the number of records in a full batch. Default 512.
	BatchSize int
	// ChannelCapacity is the number of batches an edge buffers before the
	// sender blocks (backpressure). Default 8.
	ChannelCapacity int
	// WatermarkInterval is how often sources made with
	// FromSourceWithWatermarks emit their watermark and idle status
	// (Flink's pipeline.auto-watermark-interval). Default 200ms.
	WatermarkInterval time.Duration
	// Checkpoint configures checkpointing (interval, timeout, mode, ...).
	Checkpoint checkpoint.Config
	// CheckpointDir is the local directory where checkpoints are kept
	// [checkpoint-dir]. Default "./data/checkpoints/<JobName>", unless
	// CheckpointStorage is set; set at most one of the two.
	CheckpointDir string
	// CheckpointStorage keeps the job's checkpoints in a storage of the
	// user's choosing (an object store, a test's in-memory storage)
	// instead of the directory CheckpointDir [checkpoint-storage]. The job
	// owns the storage's whole namespace: checkpoints are chk-<id> under
	// its root. Default nil: a store.FS on CheckpointDir.
	CheckpointStorage store.Storage
	// SavepointDir is the local directory where savepoints taken by
	// TriggerSavepoint and StopWithSavepoint are written, one
	// savepoint-<id>-<random> directory each [savepoint-dir]. Default
	// "<CheckpointDir>/savepoints"; required when CheckpointStorage is set
	// instead of CheckpointDir. Savepoints are self-contained (copy the
	// directory anywhere and restore it with FromCheckpoint) and checkpoint
	// retention never deletes them (docs/design.md §3).
	SavepointDir string
	// Restart is the restart strategy [restart.strategy]: a
	// restart.FixedDelay, restart.ExponentialDelay, restart.FailureRate or
	// restart.None value, or one read by restart.Parse. Default nil:
	// restart.Default(), exponential-delay with its defaults.
	Restart restart.Policy
	// FromCheckpoint restores the job from this checkpoint or savepoint
	// directory instead of the latest checkpoint in CheckpointDir. The
	// path is recorded in the checkpoint directory (store.RestoredName)
	// before anything is committed: a later start without FromCheckpoint
	// restores it again, unless the job completed a newer checkpoint of its
	// own since (docs/design.md §5).
	FromCheckpoint string
	// AllowNonRestoredState lets the job restore a checkpoint that holds
	// state of operator uids the job no longer has (an operator removed or
	// its uid renamed), dropping that state with a WARN per state, as
	// Flink's --allowNonRestoredState. Default false: such a restore is
	// refused with an error naming the uids and their states
	// (docs/design.md §10).
	AllowNonRestoredState bool
	// AllowSourceChange lets the job restore a checkpoint whose sources
	// read something else (other Kafka topics, other datagen parameters):
	// positions of splits the sources still read are restored, the others
	// dropped with a WARN, new splits start at the configured start
	// offsets. Default false: refused, naming the source uid and both
	// identities (docs/design.md §10).
	AllowSourceChange bool
	// Seed makes random choices (restart jitter) repeatable.
	Seed int64
	// Clock is the time source; default the wall clock.
	Clock clock.Clock
	// Logger receives structured logs; default slog.Default().
	Logger *slog.Logger
	// Faults injects failures (tests, chaos runs, `sluice demo --fail-every`).
	Faults *fault.Injector
	// StopTimeout bounds Stop: how long the final checkpoint and its
	// commits may take before the job is cancelled and Execute returns an
	// error wrapping ErrStopped. Default the checkpoint timeout plus 10s.
	StopTimeout time.Duration
	// State configures the keyed-state backend: where keyed state lives,
	// its memory budget, incremental checkpoints and local recovery
	// (docs/design.md §4).
	State StateConfig
	// StatusWindow is the sliding window over which Status computes the
	// busy, idle and backpressured ratios and the record rates, on Clock
	// (docs/design.md §8). Default 10s.
	StatusWindow time.Duration
}

// StateConfig configures the keyed-state backend of every keyed operator
// of the job (Flink's state.backend.* options). The names in brackets are
// the keys of the job's configuration file and flags.
type StateConfig struct {
	// Backend is "heap" (StateBackendHeap, the default: Go maps, state
	// must fit in memory, fastest) or "pebble" (StateBackendPebble: a
	// Pebble LSM tree per operator subtask on local disk, for state larger
	// than memory) [state.backend]. Both read and write the canonical
	// savepoint format, so a savepoint moves between them.
	Backend string
	// LocalDir is the directory of the backends' working files (Pebble's
	// databases) and of the task-local state copies that local recovery
	// restores from [state.local-dir]. Each operator subtask gets its own
	// directory under it, with the same path in every attempt and process
	// of the job, so a restart on the same machine finds it. Default
	// "<CheckpointDir>/../local/<JobName>" (a sibling of the checkpoint
	// directory), or a directory under os.TempDir() when CheckpointStorage
	// is set.
	LocalDir string
	// MemoryBytes is the managed memory of the Pebble backend: one budget
	// for block cache and memtables, shared by all keyed operator subtasks
	// of the job in this process [state.memory]. Default 256 MiB; at least
	// MinStateMemory. Ignored by the heap backend. Size it as the memory
	// the process may use beyond its Go heap: the hot part of the state
	// should fit in the block cache.
	MemoryBytes int64
	// Incremental writes checkpoints incrementally: only what changed
	// since an earlier checkpoint that is still retained is written, the
	// rest is shared with it [state.incremental]. Savepoints are always
	// complete and self-contained. Default off, as in Flink: a zero Config
	// must keep meaning what it meant before incremental checkpoints
	// existed, and "off" has no other zero value to be. Turn it on for
	// large Pebble state, where a full checkpoint rewrites every key.
	Incremental bool
	// LocalRecovery keeps a task-local copy of each checkpoint's keyed
	// state under LocalDir and restores from it, instead of reading
	// checkpoint storage, when it matches the checkpoint restored
	// [state.local-recovery]. Default off.
	LocalRecovery bool
}

// DefaultStateMemory is StateConfig.MemoryBytes's default: 256 MiB.
const DefaultStateMemory int64 = 256 << 20

// MinStateMemory is the least StateConfig.MemoryBytes: 8 MiB.
const MinStateMemory int64 = 8 << 20

// withDefaults fills the state defaults; c is the job's configuration with
// its own defaults applied (JobName, CheckpointDir).
func (s StateConfig) withDefaults(c Config) StateConfig {
	if s.Backend == "" {
		s.Backend = defaultStateBackend
	}
	if s.MemoryBytes == 0 {
		s.MemoryBytes = DefaultStateMemory
	}
	if s.LocalDir == "" {
		if c.CheckpointDir != "" {
			s.LocalDir = filepath.Join(filepath.Dir(filepath.Clean(c.CheckpointDir)), "local", c.JobName)
		} else {
			s.LocalDir = filepath.Join(os.TempDir(), "sluice-local", c.JobName)
		}
	}
	return s
}

// validate reports every problem of the state configuration (defaults
// applied), each prefixed with its key.
func (s StateConfig) validate() []error {
	var errs []error
	if s.Backend != StateBackendHeap && s.Backend != StateBackendPebble {
		errs = append(errs, fmt.Errorf("state.backend: %q is not a state backend (heap, pebble)", s.Backend))
	}
	if s.MemoryBytes < MinStateMemory {
		errs = append(errs, fmt.Errorf("state.memory: must be at least %d MiB, got %d bytes", MinStateMemory>>20, s.MemoryBytes))
	}
	if fi, err := os.Stat(s.LocalDir); err == nil && !fi.IsDir() {
		errs = append(errs, fmt.Errorf("state.local-dir: %s is not a directory", s.LocalDir))
	}
	return errs
}

// ErrStopped is wrapped by the error Execute returns when Stop ended the
// job without a final checkpoint: when the attempts restarted for the stop
// kept failing, while an attempt was starting, or after StopTimeout.
// Nothing is lost: the job resumes from its latest checkpoint when it is
// started again.
var ErrStopped = runtime.ErrStopped

func (c Config) withDefaults() Config {
	if c.JobName == "" {
		c.JobName = "job"
	}
	if c.Parallelism == 0 {
		c.Parallelism = 1
	}
	if c.MaxParallelism == 0 {
		c.MaxParallelism = keygroup.DefaultMaxParallelism
	}
	if c.BufferTimeout == 0 {
		c.BufferTimeout = 100 * time.Millisecond
	}
	if c.BatchSize == 0 {
		c.BatchSize = 512
	}
	if c.WatermarkInterval == 0 {
		c.WatermarkInterval = watermark.DefaultInterval
	}
	if c.ChannelCapacity == 0 {
		c.ChannelCapacity = 8
	}
	if c.CheckpointDir == "" && c.CheckpointStorage == nil {
		c.CheckpointDir = "data/checkpoints/" + c.JobName
	}
	if c.SavepointDir == "" && c.CheckpointDir != "" {
		c.SavepointDir = filepath.Join(c.CheckpointDir, store.SavepointsDir)
	}
	if c.Restart == nil {
		c.Restart = restart.Default()
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.State = c.State.withDefaults(c)
	return c
}

// Validate checks the configuration and reports every problem, each
// prefixed with its configuration key, joined with errors.Join. The zero
// value of every field is valid: it means the default.
func (c Config) Validate() error {
	var errs []error
	if c.CheckpointDir != "" && c.CheckpointStorage != nil {
		errs = append(errs, fmt.Errorf("checkpoint-storage: set either checkpoint-dir (%s) or checkpoint-storage, not both", c.CheckpointDir))
	}
	c = c.withDefaults()
	if c.Parallelism < 1 {
		errs = append(errs, fmt.Errorf("parallelism: must be at least 1, got %d", c.Parallelism))
	}
	if c.MaxParallelism < 1 || c.MaxParallelism > 1<<15 {
		errs = append(errs, fmt.Errorf("max-parallelism: must be in 1..32768, got %d", c.MaxParallelism))
	}
	if c.Parallelism > c.MaxParallelism {
		errs = append(errs, fmt.Errorf("parallelism: %d exceeds max-parallelism %d", c.Parallelism, c.MaxParallelism))
	}
	if c.BufferTimeout < 0 && c.BufferTimeout != FlushAlways {
		errs = append(errs, fmt.Errorf("buffer-timeout: must be positive or FlushAlways, got %v", c.BufferTimeout))
	}
	if c.BatchSize < 1 {
		errs = append(errs, fmt.Errorf("batch-size: must be at least 1, got %d", c.BatchSize))
	}
	if c.WatermarkInterval < 0 {
		errs = append(errs, fmt.Errorf("watermark-interval: must not be negative, got %v", c.WatermarkInterval))
	}
	if c.ChannelCapacity < 1 {
		errs = append(errs, fmt.Errorf("channel-capacity: must be at least 1, got %d", c.ChannelCapacity))
	}
	if err := c.Checkpoint.WithDefaults().Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Restart.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.SavepointDir != "" {
		if fi, err := os.Stat(c.SavepointDir); err == nil && !fi.IsDir() {
			errs = append(errs, fmt.Errorf("savepoint-dir: %s is not a directory", c.SavepointDir))
		}
	}
	if c.StopTimeout < 0 {
		errs = append(errs, fmt.Errorf("stop-timeout: must not be negative, got %v", c.StopTimeout))
	}
	errs = append(errs, c.State.validate()...)
	if c.StatusWindow < 0 || (c.StatusWindow > 0 && c.StatusWindow < 100*time.Millisecond) {
		errs = append(errs, fmt.Errorf("status-window (StatusWindow): must be 0 (the default, 10s) or at least 100ms, got %v", c.StatusWindow))
	}
	return errors.Join(errs...)
}

// Environment collects a job graph and executes it.
type Environment struct {
	cfg   Config
	nodes []*node
	edges []*edge
	uids  map[string]bool
	err   error
	job   *runtime.Job
	ready chan struct{}
	// executed is set by the first Execute: an Environment runs once.
	executed atomic.Bool
	// stopMu guards stopAsked and the hand-over of the job to Stop.
	stopMu    sync.Mutex
	stopAsked bool
	// cancelAsked is set by Cancel (under stopMu).
	cancelAsked bool
	// alignGroups are the job's watermark alignment groups, by name.
	alignGroups map[string]*alignGroup
	// jobID identifies this run (JobID).
	jobID string
	// exited is closed when Execute returns.
	exited chan struct{}
	// ckHooks are the OnCheckpointComplete functions.
	ckHooks checkpointHooks
	// state is what the job's keyed operators share (backend.go).
	state *stateEnv
}

// New returns an empty environment with cfg.
func New(cfg Config) *Environment {
	cfg = cfg.withDefaults()
	return &Environment{cfg: cfg, uids: map[string]bool{}, ready: make(chan struct{}), jobID: newJobID(), exited: make(chan struct{}),
		state: &stateEnv{cfg: cfg.State}}
}

func (e *Environment) fail(err error) {
	if e.err == nil {
		e.err = err
	}
}

// Result is what a finished job reports.
type Result struct {
	// Restarts counts the attempts that failed and were restarted.
	Restarts int64
	// Checkpoints counts completed checkpoints.
	Checkpoints int64
	// LastCheckpoint is the metadata of the newest checkpoint this run
	// completed (the final one for a job that ended cleanly, the savepoint
	// for one stopped by StopWithSavepoint), or nil. Intermediate
	// savepoints (TriggerSavepoint) are not checkpoints and never appear
	// here.
	LastCheckpoint *checkpoint.Metadata
	// Status holds the final counters.
	Status JobStatus
}

// Execute runs the job until its sources are exhausted and a final
// checkpoint is committed, Stop is called, the job fails past its restart
// strategy, or ctx is cancelled (a hard cancel: nothing more is committed).
//
// The job owns its CheckpointDir while it runs (docs/design.md §9): a second
// job on the same directory fails at once with an error wrapping
// store.ErrLocked that names the holder, and a job that finds another took
// over its checkpoints since it started (it was paused or cut off) fails for
// good with an error wrapping store.ErrFenced, committing nothing more.
func (e *Environment) Execute(ctx context.Context) (*Result, error) {
	if e.executed.Swap(true) {
		// A second run would replace the job that Status and Stop refer
		// to, and close ready twice.
		return nil, errors.New("sluice: Execute called twice; an Environment runs one job once")
	}
	defer close(e.exited)
	// The configuration first: an invalid parallelism or max-parallelism
	// also makes operators look invalid, and the error must name the key.
	if err := e.cfg.Validate(); err != nil {
		return nil, err
	}
	if e.err != nil {
		return nil, e.err
	}
	plan, err := e.plan()
	if err != nil {
		return nil, err
	}
	e.logAdvice()
	for _, n := range e.nodes {
		if n.keyedState {
			e.state.dbs += n.par
		}
	}
	defer e.state.close()
	st := e.cfg.CheckpointStorage
	if st == nil {
		fs, err := store.NewFS(e.cfg.CheckpointDir)
		if err != nil {
			return nil, fmt.Errorf("checkpoint-dir %s: %w", e.cfg.CheckpointDir, err)
		}
		st = fs
	}
	var spRoot func() (store.Storage, error)
	if dir := e.cfg.SavepointDir; dir != "" {
		// Made when the first savepoint is asked for, not before: a job
		// that takes none leaves no directory behind.
		spRoot = func() (store.Storage, error) {
			fs, err := store.NewFS(dir)
			if err != nil {
				return nil, fmt.Errorf("savepoint-dir %s: %w", dir, err)
			}
			return fs, nil
		}
	}
	strategy, err := restart.Build(e.cfg.Restart, e.cfg.Seed)
	if err != nil {
		return nil, err
	}
	job, err := runtime.NewJob(plan, runtime.Config{
		Checkpoint: e.cfg.Checkpoint, Restart: strategy, Store: store.NewCheckpoints(st), Savepoints: spRoot,
		FromCheckpoint: e.cfg.FromCheckpoint, Clock: e.cfg.Clock, Logger: e.cfg.Logger, Faults: e.cfg.Faults,
		AllowNonRestoredState: e.cfg.AllowNonRestoredState, AllowSourceChange: e.cfg.AllowSourceChange,
		StopTimeout: e.cfg.StopTimeout, StatusWindow: e.cfg.StatusWindow,
		OnCheckpointComplete: e.ckHooks.call,
		State: runtime.StateOptions{Incremental: e.cfg.State.Incremental, LocalRecovery: e.cfg.State.LocalRecovery,
			LocalDir: e.cfg.State.LocalDir},
	})
	if err != nil {
		return nil, err
	}
	e.stopMu.Lock()
	e.job = job
	close(e.ready)
	if e.stopAsked {
		job.Stop()
	}
	if e.cancelAsked {
		job.Cancel()
	}
	e.stopMu.Unlock()
	runErr := job.Run(ctx)
	st2 := jobStatus(job.Status())
	res := &Result{Restarts: st2.Restarts, Checkpoints: st2.CheckpointsCompleted, LastCheckpoint: job.LastCompleted(), Status: st2}
	return res, runErr
}

// Stop asks a running job to finish cleanly: sources stop after a final
// checkpoint, sinks commit it, and Execute returns. Safe to call before
// Execute started (it then stops as soon as it runs).
func (e *Environment) Stop() {
	e.stopMu.Lock()
	defer e.stopMu.Unlock()
	e.stopAsked = true
	if e.job != nil {
		e.job.Stop()
	}
}

// Status returns the counters of the running job (zero before Execute).
func (e *Environment) Status() JobStatus {
	select {
	case <-e.ready:
		return jobStatus(e.job.Status())
	default:
		return JobStatus{}
	}
}

// plan turns the graph into chains of operators joined by shuffles
// (docs/design.md §2 chaining): a node joins its input's chain when the edge is
// forward, the parallelism is equal and the node has that one input.
func (e *Environment) plan() (*runtime.Plan, error) {
	if len(e.nodes) == 0 {
		return nil, errors.New("job has no operators")
	}
	for _, n := range e.nodes {
		if len(n.outs) == 0 && !n.isSink {
			return nil, fmt.Errorf("operator %q: its output goes nowhere (add a sink)", n.name)
		}
	}
	for _, ed := range e.edges {
		ed.chained = ed.part == runtime.Forward && ed.from.par == ed.to.par && len(ed.to.ins) == 1 && !ed.to.noChain
	}
	bt := e.cfg.BufferTimeout
	if bt < 0 {
		bt = 0
	}
	p := &runtime.Plan{JobName: e.cfg.JobName, MaxParallelism: e.cfg.MaxParallelism, BufferTimeout: bt,
		BatchSize: e.cfg.BatchSize, ChannelCapacity: e.cfg.ChannelCapacity}
	vid := map[*node]int{}
	for _, n := range e.nodes { // nodes are created in topological order
		if len(n.ins) == 1 && n.ins[0].chained {
			continue
		}
		v := &runtime.Vertex{ID: len(p.Vertices), Name: n.name, UID: n.uid, Parallelism: n.par}
		var members []*node
		collectChain(n, &members)
		for _, m := range members {
			v.UIDs = append(v.UIDs, m.uid)
			v.Names = append(v.Names, m.name)
			vid[m] = v.ID
			if m.source != nil {
				if p.Sources == nil {
					p.Sources = map[string]checkpoint.SourceIdentity{}
				}
				p.Sources[m.uid] = *m.source
			}
		}
		head := n
		v.Instantiate = func(w *runtime.Wiring) (*runtime.Chain, error) { return instantiate(head, w) }
		p.Vertices = append(p.Vertices, v)
	}
	for _, ed := range e.edges {
		if ed.chained {
			continue
		}
		if err := ed.checkCodec(e.cfg.Checkpoint); err != nil {
			return nil, err
		}
		p.Edges = append(p.Edges, &runtime.EdgeSpec{ID: ed.id, From: vid[ed.from], To: vid[ed.to], Partitioning: ed.part, NewChannels: ed.newChannels})
	}
	return p, nil
}

func collectChain(n *node, out *[]*node) {
	*out = append(*out, n)
	for _, ed := range n.outs {
		if ed.chained {
			collectChain(ed.to, out)
		}
	}
}

// instantiate builds one subtask of the chain headed by head.
func instantiate(head *node, w *runtime.Wiring) (*runtime.Chain, error) {
	c := &runtime.Chain{}
	var build func(n *node) ([]any, error)
	build = func(n *node) ([]any, error) {
		outs := make([]any, 0, len(n.outs))
		// sides holds the Emitters of the side outputs' edges, by tag.
		// Their writers are outputs of the chain like the main output's, so
		// barriers and watermarks reach them too.
		var sides map[string][]any
		for _, ed := range n.outs {
			var em any
			if ed.chained {
				ins, err := build(ed.to)
				if err != nil {
					return nil, err
				}
				em = ins[ed.toInput]
			} else {
				var ow runtime.OutputWriter
				em, ow = ed.newWriter(w.Channels[ed.id], w.Subtask, w)
				c.Outputs = append(c.Outputs, ow)
			}
			if ed.tag == "" {
				outs = append(outs, em)
				continue
			}
			if sides == nil {
				sides = map[string][]any{}
			}
			sides[ed.tag] = append(sides[ed.tag], em)
		}
		inst, err := n.make(w.Subtask, n.fanout(outs))
		if err != nil {
			return nil, err
		}
		if len(sides) > 0 {
			if err := setSideOutputs(n, inst.op, sides); err != nil {
				return nil, err
			}
		}
		if inst.src != nil {
			c.Source, c.SourceUID = inst.src, n.uid
		}
		if inst.op != nil {
			// Prepend: children were built first, the chain lists head first.
			c.Ops = append([]runtime.OpInstance{{UID: n.uid, Name: n.name, Op: inst.op}}, c.Ops...)
		}
		for _, ed := range n.ins {
			if !ed.chained {
				c.Inputs = append(c.Inputs, ed.newInputs(w.Channels[ed.id], w.Subtask, inst.ins[ed.toInput], w)...)
			}
		}
		return inst.ins, nil
	}
	if _, err := build(head); err != nil {
		return nil, err
	}
	return c, nil
}

// Describe returns a readable outline of the job graph: chains, parallelism
// and shuffles.
func (e *Environment) Describe() (string, error) {
	if e.err != nil {
		return "", e.err
	}
	p, err := e.plan()
	if err != nil {
		return "", err
	}
	var s string
	for _, v := range p.Vertices {
		s += fmt.Sprintf("task %q parallelism %d: %v\n", v.Name, v.Parallelism, v.UIDs)
	}
	sort.Slice(p.Edges, func(i, j int) bool { return p.Edges[i].ID < p.Edges[j].ID })
	for _, ed := range p.Edges {
		var part string
		for _, x := range e.edges {
			if x.id == ed.ID {
				part = x.part.String()
				if x.tag != "" {
					part += fmt.Sprintf(", side output %q", x.tag)
				}
			}
		}
		s += fmt.Sprintf("edge %s -> %s (%s)\n", p.Vertices[ed.From].Name, p.Vertices[ed.To].Name, part)
	}
	return s, nil
}
