package sluice

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sort"
	"time"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/fault"
	"github.com/sluicehq/sluice/internal/runtime"
	"github.com/sluicehq/sluice/watermark"
)

// PollStatus is what a SourceReader's Poll found.
type PollStatus int

// The poll outcomes.
const (
	// MoreAvailable means Poll should be called again right away.
	MoreAvailable = PollStatus(runtime.MoreAvailable)
	// NothingAvailable means the task waits on Available first.
	NothingAvailable = PollStatus(runtime.NothingAvailable)
	// EndOfInput means the reader's splits are exhausted (bounded source).
	EndOfInput = PollStatus(runtime.EndOfInput)
)

// Split is a unit of a source that one reader reads (a Kafka partition, a
// datagen sequence) with its position. State nil means "from the start the
// source is configured with".
type Split struct {
	// ID names the split, stable across runs (e.g. "topic-3").
	ID string
	// State is the split's position, encoded by its source; nil for the
	// configured start.
	State []byte
}

// Source is a replayable source in Flink's FLIP-27 shape: it lists splits,
// and a reader per subtask reads the splits assigned to it and keeps their
// positions in checkpoints. Rescaling reassigns splits.
type Source[T any] interface {
	// Splits lists the splits known at start. Splits restored from a
	// checkpoint keep their positions; new ones start fresh.
	Splits(ctx context.Context) ([]Split, error)
	// NewReader creates the reader of the subtask oc describes; ctx is
	// the attempt's context.
	NewReader(ctx context.Context, oc *OperatorContext) (SourceReader[T], error)
}

// SourceDescriber is implemented by sources that can say what they read
// (the Kafka source: its topics; datagen: its parameters). The identity is
// recorded in every checkpoint, and a job whose source reads something else
// refuses to restore the checkpoint's positions, naming both, unless
// Config.AllowSourceChange is set (docs/design.md §10). Sources that do not
// implement it are not checked.
type SourceDescriber interface {
	// DescribeSource returns what the source reads. It must depend on the
	// source's configuration only, not on what the cluster holds.
	DescribeSource() checkpoint.SourceIdentity
}

// SplitAssigner decides which subtask reads a split. Sources that do not
// implement it get a stable hash of the split id modulo the parallelism.
type SplitAssigner interface {
	// AssignSplit returns the subtask, in [0, parallelism), that reads the
	// split id.
	AssignSplit(id string, parallelism int) int
}

// SourceReader reads the splits of one subtask. All methods are called on
// the subtask's goroutine. The ctx of every call but Close is the
// attempt's context, cancelled when the attempt ends; Close gets a fresh
// context bounded by a timeout, so that it can release what the reader
// holds after a cancellation too.
type SourceReader[T any] interface {
	// AddSplits hands the reader splits to read, with their positions.
	AddSplits(ctx context.Context, splits []Split) error
	// Poll emits the records available now (a batch or so) into out and
	// returns quickly; it must not block for long, or checkpoints wait.
	Poll(ctx context.Context, out Emitter[T]) (PollStatus, error)
	// Available returns a channel that is closed or receives once Poll may
	// find records again after NothingAvailable.
	Available() <-chan struct{}
	// SnapshotSplits returns every split the reader owns with the position
	// of the next record it would emit.
	SnapshotSplits(ctx context.Context, checkpointID int64) ([]Split, error)
	// NotifyCheckpointComplete tells that a checkpoint is durable (Kafka
	// commits offsets to its group here, for monitoring only).
	NotifyCheckpointComplete(ctx context.Context, checkpointID int64) error
	// Close releases the reader.
	Close(ctx context.Context) error
}

// FromSource adds a source to the job. Its records carry the timestamps
// the source gives them (a Kafka record's); it generates no watermarks
// other than watermark.Final at the end of a bounded input (see
// FromSourceWithWatermarks).
func FromSource[T any](e *Environment, name string, src Source[T], opts ...OpOption) Stream[T] {
	return fromSource(e, name, src, nil, opts)
}

// SplitAware is implemented by source readers that emit every split's
// records through ReaderOutput.ForSplit. Their splits are registered with
// the watermark generators when they are assigned, so that a split that has
// not sent a record yet holds the watermark back (until it is idle).
type SplitAware interface {
	// EmitsPerSplit is a marker.
	EmitsPerSplit()
}

func fromSource[T any](e *Environment, name string, src Source[T], spec *eventTimeSpec[T], opts []OpOption) Stream[T] {
	n := e.addNode(name, opts, e.cfg.Parallelism)
	setFanout[T](n)
	if d, ok := any(src).(SourceDescriber); ok {
		id := d.DescribeSource()
		n.source = &id
	}
	n.advice.partitions, _ = any(src).(PartitionCounter)
	n.make = func(sub int, out any) (instance, error) {
		return instance{src: &sourceDriver[T]{src: src, out: out.(Emitter[T]), spec: spec, interval: e.cfg.WatermarkInterval, advice: &n.advice}}, nil
	}
	return Stream[T]{env: e, n: n}
}

// SplitReporter is implemented by a SourceReader that can describe the
// splits it reads, for JobStatus.Sources (docs/design.md §8): per split its
// position, its end as last seen and the lag between them, its watermark
// and whether it is idle. The engine discovers it on the reader when the
// reader is created. ReportSplits is called by Status, from another
// goroutine than the reader's and as often as metrics are scraped: it must
// be safe for that and cheap (read published values, never the network).
// Subtask may be left zero: the engine sets it.
type SplitReporter interface {
	// ReportSplits returns one entry per split the reader reads now.
	ReportSplits() []SplitStatus
}

const splitState = "splits"

type sourceDriver[T any] struct {
	src    Source[T]
	reader SourceReader[T]
	out    Emitter[T]
	oc     *OperatorContext
	// Event time (docs/design.md §14): spec is nil for FromSource.
	spec     *eventTimeSpec[T]
	interval time.Duration
	tm       *runtime.Time
	so       *srcOutput[T]
	// advice logs the advisor's warnings on the splits (advice.go).
	advice *nodeAdvice
}

func (d *sourceDriver[T]) Open(ctx context.Context, rc *runtime.OperatorContext) error {
	oc := operatorContext(rc)
	d.oc = oc
	fresh, err := d.src.Splits(ctx)
	if err != nil {
		return fmt.Errorf("list splits: %w", err)
	}
	// Restored splits win; splits not in the checkpoint start fresh.
	all := map[string]Split{}
	for _, s := range fresh {
		all[s.ID] = s
	}
	if oc.Restored != nil {
		for _, e := range oc.Restored.Operator[splitState] {
			s, err := decodeSplit(e)
			if err != nil {
				return fmt.Errorf("restore splits from checkpoint %d: %w", oc.Restored.CheckpointID, err)
			}
			all[s.ID] = s
		}
	}
	assign := func(id string, p int) int {
		h := fnv.New32a()
		_, _ = h.Write([]byte(id))
		return int(h.Sum32() % uint32(p))
	}
	if a, ok := d.src.(SplitAssigner); ok {
		assign = a.AssignSplit
	}
	if d.advice != nil {
		d.advice.checkSplits(oc, all, assign)
	}
	var mine []Split
	for _, s := range all {
		if assign(s.ID, oc.Parallelism) == oc.Subtask {
			mine = append(mine, s)
		}
	}
	sort.Slice(mine, func(i, j int) bool { return mine[i].ID < mine[j].ID })
	d.reader, err = d.src.NewReader(ctx, oc)
	if err != nil {
		return fmt.Errorf("create reader: %w", err)
	}
	if rep, ok := d.reader.(SplitReporter); ok && rc.Stats != nil {
		sub := oc.Subtask
		rc.Stats.SetSplitReporter(func() []runtime.SplitInfo { return splitInfos(rep.ReportSplits(), sub) })
	}
	d.tm = rc.Time
	if d.tm == nil {
		d.tm = runtime.NewTime()
	}
	d.so = &srcOutput[T]{out: d.out, tm: d.tm, clk: oc.Clock.Now, splits: map[string]*splitOut[T]{}, status: d.tm.EmitStatus}
	if d.spec != nil {
		d.so.assign = d.spec.assign
		d.so.r = watermark.NewReader(d.spec.strategy)
		if g := d.spec.group; g != nil {
			p, pausable := d.reader.(SplitPauser)
			_, aware := d.reader.(SplitAware)
			if !pausable || !aware {
				return fmt.Errorf("watermark alignment (group %q): reader %T cannot pause splits (it must implement sluice.SplitPauser and sluice.SplitAware)", g.name, d.reader)
			}
			log := oc.Logger
			if log == nil {
				log = slog.Default()
			}
			d.so.al = &splitAlign{g: g, uid: oc.UID, every: d.spec.every, pauser: p, log: log}
		}
		if _, ok := d.reader.(SplitAware); ok {
			for _, s := range mine {
				d.so.forSplit(s.ID)
			}
		}
		if d.so.al != nil {
			// Before any task runs: the group knows every split of the
			// attempt before the first report.
			d.so.al.open(oc.RunID)
		}
	}
	return d.reader.AddSplits(ctx, mine)
}

func (d *sourceDriver[T]) Poll(ctx context.Context) (runtime.PollStatus, error) {
	if d.oc.Faults != nil {
		// The source's record point is per poll: a batch of records.
		d.oc.Faults.Hit(fault.OnRecord, d.oc.UID, d.oc.Subtask)
	}
	st, err := d.reader.Poll(ctx, d.so)
	if st == EndOfInput && d.so.al != nil {
		d.so.al.leave() // no more ticks: the group must not wait for it
	}
	return runtime.PollStatus(st), err
}

func (d *sourceDriver[T]) Available() <-chan struct{} { return d.reader.Available() }

func (d *sourceDriver[T]) Snapshot(ctx context.Context, b runtime.Barrier) (map[string][][]byte, error) {
	splits, err := d.reader.SnapshotSplits(ctx, b.ID)
	if err != nil {
		return nil, err
	}
	entries := make([][]byte, len(splits))
	for i, s := range splits {
		entries[i] = encodeSplit(s)
	}
	return map[string][][]byte{splitState: entries}, nil
}

func (d *sourceDriver[T]) NotifyComplete(ctx context.Context, id int64) error {
	return d.reader.NotifyCheckpointComplete(ctx, id)
}

func (d *sourceDriver[T]) Close(ctx context.Context) error {
	if d.so != nil && d.so.al != nil {
		d.so.al.leave()
	}
	if d.reader == nil {
		return nil
	}
	if d.oc != nil && d.oc.stats != nil {
		d.oc.stats.SetSplitReporter(nil)
	}
	return d.reader.Close(ctx)
}

func encodeSplit(s Split) []byte {
	b := binary.AppendUvarint(nil, uint64(len(s.ID)))
	b = append(b, s.ID...)
	return append(b, s.State...)
}

var errBadSplit = errors.New("corrupt split entry")

func decodeSplit(b []byte) (Split, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return Split{}, errBadSplit
	}
	id := string(b[k : k+int(n)])
	return Split{ID: id, State: append([]byte(nil), b[k+int(n):]...)}, nil
}

// SplitsFromMetadata returns the splits, with their positions, that the
// source with uid recorded in a checkpoint: what the job had read when the
// checkpoint was taken.
func SplitsFromMetadata(m *checkpoint.Metadata, uid string) ([]Split, error) {
	op, ok := m.Operators[uid]
	if !ok {
		return nil, fmt.Errorf("checkpoint %d has no operator %q", m.CheckpointID, uid)
	}
	var out []Split
	for _, st := range op.Subtasks {
		for _, e := range st.Operator[splitState] {
			s, err := decodeSplit(e)
			if err != nil {
				return nil, fmt.Errorf("checkpoint %d, %s/%d: %w", m.CheckpointID, uid, st.Subtask, err)
			}
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// splitInfos converts what a SplitReporter says for the runtime's Status.
func splitInfos(ss []SplitStatus, sub int) []runtime.SplitInfo {
	out := make([]runtime.SplitInfo, len(ss))
	for i, s := range ss {
		out[i] = runtime.SplitInfo{Split: s.Split, Topic: s.Topic, Partition: s.Partition, Subtask: sub,
			Next: s.Next, End: s.End, Lag: s.Lag, Idle: s.Idle}
		if !s.Watermark.IsZero() {
			out[i].Watermark, out[i].HasWatermark = s.Watermark.UnixNano(), true
		}
	}
	return out
}
