package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/clock"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The headers the source adds to a record it writes to the dead-letter
// topic, after the record's own headers.
const (
	// HeaderDLQTopic is the topic the record was read from.
	HeaderDLQTopic = "sluice.dlq.topic"
	// HeaderDLQPartition is its partition, in decimal.
	HeaderDLQPartition = "sluice.dlq.partition"
	// HeaderDLQOffset is its offset, in decimal.
	HeaderDLQOffset = "sluice.dlq.offset"
	// HeaderDLQError is the deserializer's error message.
	HeaderDLQError = "sluice.dlq.error"
)

// partition is one partition a reader owns.
type partition struct {
	id    string
	topic string
	part  int32

	// The task goroutine's own.
	pos   position
	maxTs int64 // largest record timestamp emitted, unix ms; math.MinInt64 if none
	// paused: watermark alignment paused the partition (sluice.SplitPauser);
	// franz-go no longer fetches it, and held keeps, in offset order, the
	// batches fetched before the pause took effect until it is resumed.
	paused bool
	held   []batch

	// Published copies for the status accessors, safe from any goroutine.
	pubNext   atomic.Int64 // pos.next, -1 while pos.earliest
	pubMaxTs  atomic.Int64
	pubPaused atomic.Bool
	end       atomic.Int64 // end offset at the last look, -1 if unknown
}

func newPartition(topic string, part int32) *partition {
	p := &partition{id: SplitID(topic, part), topic: topic, part: part, maxTs: math.MinInt64}
	p.end.Store(-1)
	return p
}

func (p *partition) publish() {
	if p.pos.earliest {
		p.pubNext.Store(-1)
	} else {
		p.pubNext.Store(p.pos.next)
	}
	p.pubMaxTs.Store(p.maxTs)
}

func (p *partition) kgoOffset() kgo.Offset {
	if p.pos.earliest {
		return kgo.NewOffset().AtStart()
	}
	return kgo.NewOffset().At(p.pos.next)
}

// batch is the records of one partition from one fetch, in offset order.
type batch struct {
	topic string
	part  int32
	recs  []*kgo.Record
	end   int64 // the partition's end offset as the fetch saw it
	p     *partition
}

// handoff carries fetched batches from the fetch goroutine to the task. It
// holds at most about limit records; the fetch goroutine waits while it is
// full, which is how backpressure reaches franz-go (whose own buffer is
// bounded by its fetch sizes).
type handoff struct {
	limit int
	ready chan struct{} // cap 1: something for the task (batches, an error, new partitions)
	space chan struct{} // cap 1: the task took batches

	mu      sync.Mutex
	chunks  [][]batch
	records int
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// push queues a chunk and waits while the handoff is full; false means ctx
// ended.
func (h *handoff) push(ctx context.Context, chunk []batch, n int) bool {
	h.mu.Lock()
	h.chunks = append(h.chunks, chunk)
	h.records += n
	full := h.records >= h.limit
	h.mu.Unlock()
	signal(h.ready)
	for full {
		select {
		case <-h.space:
		case <-ctx.Done():
			return false
		}
		h.mu.Lock()
		full = h.records >= h.limit
		h.mu.Unlock()
	}
	return true
}

// take returns every queued chunk.
func (h *handoff) take() [][]batch {
	h.mu.Lock()
	c := h.chunks
	h.chunks, h.records = nil, 0
	h.mu.Unlock()
	if c != nil {
		signal(h.space)
	}
	return c
}

// snapshotOffsets are the offsets a checkpoint recorded, committed to the
// group once it completes.
type snapshotOffsets struct {
	id      int64
	offsets kadm.Offsets
}

// maxPendingSnapshots bounds the snapshots kept for NotifyCheckpointComplete:
// aborted checkpoints are never notified, and must not pile up.
const maxPendingSnapshots = 64

// reader reads the partitions of one subtask.
//
// Three goroutines share it. The task goroutine calls the SourceReader
// methods. The fetch goroutine blocks in franz-go's PollRecords and hands
// the records over (Flink's split fetcher): the task never blocks on the
// network, so checkpoint barriers are never stuck behind a fetch. The
// monitor goroutine discovers partitions, refreshes end offsets, commits
// offsets to the group and watches the brokers' health; it only talks to
// the task through the fields guarded by mu and the ready signal.
//
// Positions are exact: a partition's position is the offset after the
// last record emitted downstream, however many more records were fetched,
// so a snapshot never skips or repeats a record.
type reader[T any] struct {
	src     *Source[T]
	cfg     SourceConfig[T]
	log     *slog.Logger
	clk     clock.Clock
	subtask int
	par     int
	// restoredRun says the job was restored from a checkpoint holding this
	// source's splits: a partition not in it is newer than the
	// checkpoint and starts at earliest, whatever StartOffsets says.
	restoredRun bool

	cl     *kgo.Client
	adm    *kadm.Client
	health *health
	hand   handoff
	poke   chan struct{} // wakes the monitor

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu         sync.Mutex
	parts      map[partitionID]*partition // written by the task under mu
	order      []*partition               // by id; written by the task under mu
	discovered []partitionID              // found by the monitor, added by the task
	commit     kadm.Offsets               // for the monitor to commit
	err        error                      // the first failure of a goroutine

	// octx is the reader's operator context (nil in some tests), for the
	// byte count.
	octx *sluice.OperatorContext

	// The task goroutine's own.
	pending  []batch
	snaps    []snapshotOffsets
	dlq      *kgo.Client
	dlqCount int64
	started  bool
	closed   bool
}

func newReader[T any](src *Source[T], octx *sluice.OperatorContext) (*reader[T], error) {
	cfg := src.cfg
	r := &reader[T]{
		src: src, cfg: cfg, log: slog.Default(), clk: clock.Real{}, par: 1,
		poke:  make(chan struct{}, 1),
		parts: map[partitionID]*partition{},
	}
	uid := "kafka-source"
	r.octx = octx
	if octx != nil {
		r.subtask, r.par, uid = octx.Subtask, max(octx.Parallelism, 1), octx.UID
		if octx.Logger != nil {
			r.log = octx.Logger
		}
		if octx.Clock != nil {
			r.clk = octx.Clock
		}
		if rs := octx.Restored; rs != nil {
			for _, entries := range rs.Operator {
				r.restoredRun = r.restoredRun || len(entries) > 0
			}
		}
	}
	r.hand = handoff{limit: 4 * cfg.MaxPollRecords, ready: make(chan struct{}, 1), space: make(chan struct{}, 1)}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.health = newHealth(r.clk, func() { signal(r.poke) })
	iso := kgo.ReadCommitted()
	if cfg.IsolationLevel == ReadUncommitted {
		iso = kgo.ReadUncommitted()
	}
	reset := kgo.NewOffset().AtStart()
	switch cfg.Reset {
	case ResetLatest:
		reset = kgo.NewOffset().AtEnd()
	case ResetNone:
		reset = kgo.NoResetOffset()
	}
	cl, err := newClient(cfg, r.log,
		kgo.ClientID("sluice-"+uid+"-"+strconv.Itoa(r.subtask)),
		kgo.FetchIsolationLevel(iso),
		kgo.ConsumeResetOffset(reset),
		kgo.WithHooks(r.health),
	)
	if err != nil {
		r.cancel()
		return nil, err
	}
	r.cl, r.adm = cl, kadm.NewClient(cl)
	return r, nil
}

func (r *reader[T]) readCommitted() bool { return r.cfg.IsolationLevel != ReadUncommitted }

// fail records the first failure of a goroutine and wakes the task, whose
// next Poll returns it.
func (r *reader[T]) fail(err error) {
	r.mu.Lock()
	if r.err == nil {
		r.err = err
	}
	r.mu.Unlock()
	signal(r.hand.ready)
}

func (r *reader[T]) failure() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// AddSplits takes over splits: restored ones at their checkpointed
// positions, fresh ones where StartOffsets says (or at earliest, when the
// job was restored from a checkpoint that predates them).
func (r *reader[T]) AddSplits(ctx context.Context, splits []sluice.Split) error {
	var all, fresh []*partition
	seen := map[partitionID]bool{}
	for _, s := range splits {
		topic, part, err := ParseSplitID(s.ID)
		if err != nil {
			return fmt.Errorf("kafka source: %w", err)
		}
		id := partitionID{topic, part}
		if !r.src.matches(topic) {
			// The job's topics changed since the checkpoint: stop
			// reading the topic, loudly.
			r.log.Warn("kafka source: dropping a restored split of a topic the source no longer reads", "split", s.ID)
			continue
		}
		if seen[id] || r.parts[id] != nil {
			return fmt.Errorf("kafka source: split %s assigned twice", s.ID)
		}
		seen[id] = true
		p := newPartition(topic, part)
		if s.State == nil {
			fresh = append(fresh, p)
		} else {
			pos, err := decodeState(s.State)
			if err != nil {
				return fmt.Errorf("kafka source: split %s: %w", s.ID, err)
			}
			p.pos = pos
		}
		all = append(all, p)
	}
	if err := r.resolveStarts(ctx, fresh); err != nil {
		return fmt.Errorf("kafka source: %w", err)
	}
	r.register(all)
	for _, p := range all {
		r.log.Debug("kafka source: reading partition", "split", p.id, "offset", p.kgoOffset().EpochOffset().Offset, "earliest", p.pos.earliest)
	}
	if !r.started {
		r.started = true
		r.wg.Add(2)
		go r.fetchLoop()
		go r.monitorLoop()
	}
	return nil
}

// register makes ps the reader's and starts fetching them.
func (r *reader[T]) register(ps []*partition) {
	if len(ps) == 0 {
		return
	}
	offsets := map[string]map[int32]kgo.Offset{}
	r.mu.Lock()
	for _, p := range ps {
		p.publish()
		r.parts[partitionID{p.topic, p.part}] = p
		r.order = append(r.order, p)
		if offsets[p.topic] == nil {
			offsets[p.topic] = map[int32]kgo.Offset{}
		}
		offsets[p.topic][p.part] = p.kgoOffset()
	}
	sort.Slice(r.order, func(i, j int) bool { return r.order[i].id < r.order[j].id })
	r.mu.Unlock()
	r.cl.AddConsumePartitions(offsets)
}

// resolveStarts sets the position of partitions without one.
func (r *reader[T]) resolveStarts(ctx context.Context, fresh []*partition) error {
	if len(fresh) == 0 {
		return nil
	}
	if r.restoredRun {
		for _, p := range fresh {
			p.pos = position{earliest: true}
			r.log.Info("kafka source: partition not in the restored checkpoint, starting at earliest", "split", p.id)
		}
		return nil
	}
	var need []*partition
	for _, p := range fresh {
		if off, ok := r.src.rememberedStart(p.id); ok {
			p.pos = position{next: off} // an earlier attempt of this run resolved it
		} else {
			need = append(need, p)
		}
	}
	if len(need) == 0 {
		return nil
	}
	switch r.src.start.kind {
	case startEarliest:
		for _, p := range need {
			p.pos = position{earliest: true}
		}
		return nil
	case startLatest:
		if err := r.startAtEnd(ctx, need); err != nil {
			return err
		}
	case startTimestamp:
		ms := r.src.start.millis
		offs, err := r.listOffsets(ctx, "list offsets after "+time.UnixMilli(ms).UTC().Format(time.RFC3339Nano), need,
			func(ctx context.Context, topics ...string) (kadm.ListedOffsets, error) {
				return r.adm.ListOffsetsAfterMilli(ctx, ms, topics...)
			})
		if err != nil {
			return err
		}
		for _, p := range need {
			p.pos = position{next: offs[partitionID{p.topic, p.part}]}
		}
	case startCommitted:
		if err := r.startAtCommitted(ctx, need); err != nil {
			return err
		}
	}
	for _, p := range need {
		if !p.pos.earliest {
			r.src.rememberStart(p.id, p.pos.next)
		}
	}
	return nil
}

// endLister lists the offsets the source treats as a partition's end: the
// last stable offset read committed (records of open transactions are not
// readable yet, and must not be skipped when they commit), the high
// watermark otherwise.
func (r *reader[T]) endLister() func(ctx context.Context, topics ...string) (kadm.ListedOffsets, error) {
	if r.readCommitted() {
		return r.adm.ListCommittedOffsets
	}
	return r.adm.ListEndOffsets
}

func (r *reader[T]) startAtEnd(ctx context.Context, ps []*partition) error {
	offs, err := r.listOffsets(ctx, "list end offsets", ps, r.endLister())
	if err != nil {
		return err
	}
	for _, p := range ps {
		p.pos = position{next: offs[partitionID{p.topic, p.part}]}
	}
	return nil
}

func (r *reader[T]) startAtCommitted(ctx context.Context, ps []*partition) error {
	group := r.cfg.GroupID
	var got kadm.OffsetResponses
	err := retry(ctx, r.cfg, r.clk, r.log, "fetch committed offsets of group "+group, func(ctx context.Context) error {
		var err error
		if got, err = r.adm.FetchOffsets(ctx, group); err != nil {
			return err
		}
		for _, p := range ps {
			if o, ok := got.Lookup(p.topic, p.part); ok && o.Err != nil {
				return &PartitionError{Topic: p.topic, Partition: p.part, Offset: -1, Err: o.Err}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	var missing []*partition
	for _, p := range ps {
		if o, ok := got.Lookup(p.topic, p.part); ok && o.At >= 0 {
			p.pos = position{next: o.At}
		} else {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	switch r.cfg.Reset {
	case ResetNone:
		p := missing[0]
		return &PartitionError{Topic: p.topic, Partition: p.part, Offset: -1, Err: fmt.Errorf(
			"%w: group %s has no committed offset for it (%d partitions have none; set %s to %s or %s to start them anyway)",
			ErrNoOffset, group, len(missing), KeyReset, ResetEarliest, ResetLatest)}
	case ResetLatest:
		return r.startAtEnd(ctx, missing)
	default:
		for _, p := range missing {
			p.pos = position{earliest: true}
		}
		return nil
	}
}

// listOffsets lists an offset for every partition of ps, retrying.
func (r *reader[T]) listOffsets(ctx context.Context, what string, ps []*partition, list func(ctx context.Context, topics ...string) (kadm.ListedOffsets, error)) (map[partitionID]int64, error) {
	var topics []string
	seen := map[string]bool{}
	for _, p := range ps {
		if !seen[p.topic] {
			seen[p.topic] = true
			topics = append(topics, p.topic)
		}
	}
	out := map[partitionID]int64{}
	err := retry(ctx, r.cfg, r.clk, r.log, what, func(ctx context.Context) error {
		lo, err := list(ctx, topics...)
		if err != nil {
			return err
		}
		for _, p := range ps {
			o, ok := lo.Lookup(p.topic, p.part)
			switch {
			case !ok:
				return &PartitionError{Topic: p.topic, Partition: p.part, Offset: -1, Err: kerr.UnknownTopicOrPartition}
			case o.Err != nil:
				return &PartitionError{Topic: p.topic, Partition: p.part, Offset: -1, Err: o.Err}
			case o.Offset < 0:
				return &PartitionError{Topic: p.topic, Partition: p.part, Offset: -1, Err: kerr.OffsetNotAvailable}
			}
			out[partitionID{p.topic, p.part}] = o.Offset
		}
		return nil
	})
	return out, err
}

// Poll emits up to MaxPollRecords fetched records. It never waits for the
// network: what the fetch goroutine has handed over is all it reads.
func (r *reader[T]) Poll(ctx context.Context, out sluice.Emitter[T]) (sluice.PollStatus, error) {
	if err := r.failure(); err != nil {
		return sluice.NothingAvailable, fmt.Errorf("kafka source: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return sluice.NothingAvailable, err
	}
	r.addDiscovered()
	budget := r.cfg.MaxPollRecords
	for budget > 0 {
		if len(r.pending) == 0 && !r.refill() {
			break
		}
		b := &r.pending[0]
		n, err := r.emit(ctx, out, b, budget)
		budget -= n
		if err != nil {
			return sluice.MoreAvailable, err
		}
		if len(b.recs) == 0 {
			r.pending[0] = batch{}
			r.pending = r.pending[1:]
		}
	}
	if budget == 0 || len(r.pending) > 0 {
		return sluice.MoreAvailable, nil
	}
	return sluice.NothingAvailable, nil
}

// refill takes the fetched batches; false if there are none.
func (r *reader[T]) refill() bool {
	chunks := r.hand.take()
	r.pending = r.pending[:0]
	for _, c := range chunks {
		for _, b := range c {
			p := r.parts[partitionID{b.topic, b.part}]
			if p == nil {
				// franz-go only fetches what we registered.
				r.log.Error("kafka source: fetched records of a partition the reader does not own; dropped", "topic", b.topic, "partition", b.part)
				continue
			}
			b.p = p
			if b.end >= 0 {
				p.end.Store(b.end)
			}
			if p.paused {
				p.held = append(p.held, b)
				continue
			}
			r.pending = append(r.pending, b)
		}
	}
	return len(r.pending) > 0
}

// emit emits up to budget records of b and moves the partition's position
// past each record handed downstream.
func (r *reader[T]) emit(ctx context.Context, out sluice.Emitter[T], b *batch, budget int) (int, error) {
	p, recs := b.p, b.recs
	n := min(budget, len(recs))
	maxTs := p.maxTs
	deser := r.cfg.Deserializer
	so := splitOutput(out, p.id)
	var err error
	var bytes int64
	i := 0
	for ; i < n; i++ {
		rec := recs[i]
		bytes += int64(len(rec.Key) + len(rec.Value))
		v, derr := deser.Deserialize(rec)
		if derr != nil {
			if err = r.deadLetter(ctx, rec, derr); err != nil {
				break
			}
		} else if err = so.EmitAt(v, rec.Timestamp.UnixNano()); err != nil {
			break
		}
		if ts := rec.Timestamp.UnixMilli(); ts > maxTs {
			maxTs = ts
		}
	}
	r.octx.CountBytesIn(bytes)
	if i > 0 {
		p.pos = position{next: recs[i-1].Offset + 1}
		p.maxTs = maxTs
		p.publish()
	}
	b.recs = recs[i:]
	return i, err
}

// splitOutput returns the output of split id: records emitted through it
// carry their Kafka timestamp and feed the partition's own watermark
// generator (docs/design.md §14).
func splitOutput[T any](out sluice.Emitter[T], id string) sluice.SplitOutput[T] {
	if ro, ok := out.(sluice.ReaderOutput[T]); ok {
		return ro.ForSplit(id)
	}
	return plainOutput[T]{out}
}

// plainOutput drops timestamps, for an emitter that is no ReaderOutput.
type plainOutput[T any] struct{ out sluice.Emitter[T] }

func (o plainOutput[T]) Emit(v T) error            { return o.out.Emit(v) }
func (o plainOutput[T]) EmitAt(v T, _ int64) error { return o.out.Emit(v) }

// EmitsPerSplit marks the reader as one that emits every partition's
// records through its own split output (sluice.SplitAware).
func (r *reader[T]) EmitsPerSplit() {}

// PauseSplits stops reading the partitions ids (sluice.SplitPauser, for
// watermark alignment): franz-go stops fetching them
// (PauseFetchPartitions; what it had buffered for them is dropped and
// fetched again after the resume, from the offset after what it returned),
// and the batches the reader had already taken wait with their partition.
// Positions do not move, so a checkpoint taken while paused records the
// offset of the next record not emitted. A paused partition's lag grows.
func (r *reader[T]) PauseSplits(ids []string) {
	tps := r.setPaused(ids, true)
	if len(tps) == 0 {
		return
	}
	r.cl.PauseFetchPartitions(tps)
	kept := r.pending[:0]
	for _, b := range r.pending {
		if b.p.paused {
			b.p.held = append(b.p.held, b)
		} else {
			kept = append(kept, b)
		}
	}
	clear(r.pending[len(kept):])
	r.pending = kept
}

// ResumeSplits reads the partitions ids again: their held batches first,
// then what franz-go fetches anew.
func (r *reader[T]) ResumeSplits(ids []string) {
	tps := r.setPaused(ids, false)
	if len(tps) == 0 {
		return
	}
	r.cl.ResumeFetchPartitions(tps)
	var back []batch
	for _, p := range r.order {
		if !p.paused && len(p.held) > 0 {
			back = append(back, p.held...)
			p.held = nil
		}
	}
	if len(back) > 0 {
		// No batch of a paused partition is in pending: the held ones are
		// older than anything fetched after the resume.
		r.pending = append(back, r.pending...)
	}
	signal(r.hand.ready)
}

// setPaused flips the partitions of ids that are not paused already and
// returns them by topic.
func (r *reader[T]) setPaused(ids []string, paused bool) map[string][]int32 {
	var tps map[string][]int32
	for _, id := range ids {
		topic, part, err := ParseSplitID(id)
		if err != nil {
			continue
		}
		p := r.parts[partitionID{topic, part}]
		if p == nil || p.paused == paused {
			continue
		}
		p.paused = paused
		p.pubPaused.Store(paused)
		if tps == nil {
			tps = map[string][]int32{}
		}
		tps[topic] = append(tps[topic], part)
	}
	return tps
}

// deadLetter writes a record the deserializer rejected to the dead-letter
// topic, synchronously, or returns the error that fails the job.
func (r *reader[T]) deadLetter(ctx context.Context, rec *kgo.Record, cause error) error {
	derr := &DeserializeError{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset, Err: cause}
	if r.cfg.DeadLetterTopic == "" {
		return fmt.Errorf("kafka source: %w (set %s to route such records aside)", derr, KeyDeadLetterTopic)
	}
	if r.dlq == nil {
		cl, err := newClient(r.cfg, r.log, kgo.RecordDeliveryTimeout(r.cfg.RetryTimeout), kgo.ProducerLinger(0))
		if err != nil {
			return fmt.Errorf("kafka source: dead-letter topic %s: %w", r.cfg.DeadLetterTopic, err)
		}
		r.dlq = cl
	}
	headers := make([]kgo.RecordHeader, 0, len(rec.Headers)+4)
	headers = append(headers, rec.Headers...)
	headers = append(headers,
		kgo.RecordHeader{Key: HeaderDLQTopic, Value: []byte(rec.Topic)},
		kgo.RecordHeader{Key: HeaderDLQPartition, Value: strconv.AppendInt(nil, int64(rec.Partition), 10)},
		kgo.RecordHeader{Key: HeaderDLQOffset, Value: strconv.AppendInt(nil, rec.Offset, 10)},
		kgo.RecordHeader{Key: HeaderDLQError, Value: []byte(cause.Error())},
	)
	dead := &kgo.Record{Topic: r.cfg.DeadLetterTopic, Key: rec.Key, Value: rec.Value, Headers: headers, Timestamp: rec.Timestamp}
	pctx, cancel := context.WithTimeout(ctx, r.cfg.RetryTimeout)
	defer cancel()
	if err := r.dlq.ProduceSync(pctx, dead).FirstErr(); err != nil {
		return fmt.Errorf("kafka source: write to dead-letter topic %s: %w (the record: %v)", r.cfg.DeadLetterTopic, err, derr)
	}
	r.dlqCount++
	// Log the first few and then every 1000th: a topic full of bad
	// records must not drown the log.
	if r.dlqCount <= 10 || r.dlqCount%1000 == 0 {
		r.log.Warn("kafka source: malformed record sent to the dead-letter topic",
			"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset,
			"dead_letter_topic", r.cfg.DeadLetterTopic, "total", r.dlqCount, "err", cause)
	}
	return nil
}

// addDiscovered starts reading the partitions the monitor discovered, at
// earliest: they are new, and every record written to them counts.
func (r *reader[T]) addDiscovered() {
	r.mu.Lock()
	ids := r.discovered
	r.discovered = nil
	r.mu.Unlock()
	var ps []*partition
	for _, id := range ids {
		if r.parts[id] != nil {
			continue
		}
		p := newPartition(id.topic, id.partition)
		p.pos = position{earliest: true}
		ps = append(ps, p)
		r.log.Info("kafka source: discovered partition, reading from earliest", "split", p.id)
	}
	r.register(ps)
}

// Available returns the channel the fetch and monitor goroutines signal
// when there are records, new partitions or an error for Poll.
func (r *reader[T]) Available() <-chan struct{} { return r.hand.ready }

// SnapshotSplits returns every partition with the offset of the next
// record it would emit.
func (r *reader[T]) SnapshotSplits(_ context.Context, checkpointID int64) ([]sluice.Split, error) {
	r.addDiscovered()
	out := make([]sluice.Split, len(r.order))
	var offs kadm.Offsets
	for i, p := range r.order {
		out[i] = sluice.Split{ID: p.id, State: encodeState(p.pos)}
		if r.cfg.GroupID != "" && !p.pos.earliest {
			offs.AddOffset(p.topic, p.part, p.pos.next, -1)
		}
	}
	if r.cfg.GroupID != "" {
		r.snaps = append(r.snaps, snapshotOffsets{id: checkpointID, offsets: offs})
		if len(r.snaps) > maxPendingSnapshots {
			r.snaps = r.snaps[len(r.snaps)-maxPendingSnapshots:]
		}
	}
	return out, nil
}

// NotifyCheckpointComplete hands the offsets of checkpoint id to the
// monitor goroutine, which commits them to GroupID: for monitoring only,
// and off the task goroutine. A failed commit is logged, not fatal.
func (r *reader[T]) NotifyCheckpointComplete(_ context.Context, id int64) error {
	var offs kadm.Offsets
	kept := r.snaps[:0]
	for _, s := range r.snaps {
		switch {
		case s.id == id:
			offs = s.offsets
		case s.id > id:
			kept = append(kept, s)
		}
	}
	r.snaps = kept
	if len(offs) == 0 {
		return nil
	}
	r.mu.Lock()
	r.commit = offs
	r.mu.Unlock()
	signal(r.poke)
	return nil
}

// Close stops the goroutines and closes the clients. It does not use ctx:
// the goroutines stop with the reader's own context, and franz-go's Close
// takes none.
func (r *reader[T]) Close(context.Context) error {
	if r.closed {
		return nil
	}
	r.closed = true
	r.cancel()
	r.wg.Wait()
	r.cl.Close()
	if r.dlq != nil {
		r.dlq.Close()
	}
	r.src.unregister(r)
	return nil
}

// ReportSplits describes the reader's partitions for the job's status
// (sluice.SplitReporter, docs/design.md §8), from the same published values
// as Source.Status: safe from any goroutine, no network call. The
// watermark is the partition's largest record timestamp emitted.
func (r *reader[T]) ReportSplits() []sluice.SplitStatus {
	ps := r.status()
	out := make([]sluice.SplitStatus, len(ps))
	for i, p := range ps {
		out[i] = sluice.SplitStatus{Split: SplitID(p.Topic, p.Partition), Topic: p.Topic, Partition: p.Partition,
			Subtask: p.Subtask, Next: p.Next, End: p.End, Lag: p.Lag, Watermark: p.MaxTimestamp, Idle: p.Idle}
	}
	return out
}

// status returns the published state of the reader's partitions.
func (r *reader[T]) status() []PartitionStatus {
	r.mu.Lock()
	ps := append([]*partition(nil), r.order...)
	r.mu.Unlock()
	out := make([]PartitionStatus, len(ps))
	for i, p := range ps {
		next, end, ts := p.pubNext.Load(), p.end.Load(), p.pubMaxTs.Load()
		st := PartitionStatus{Topic: p.topic, Partition: p.part, Subtask: r.subtask, Next: next, End: end, Lag: -1, Paused: p.pubPaused.Load()}
		if ts != math.MinInt64 {
			st.MaxTimestamp = time.UnixMilli(ts)
		}
		if end >= 0 {
			from := next
			if from < 0 {
				from = 0 // at earliest: the log start is at least 0
			}
			st.Lag = max(end-from, 0)
			st.Idle = st.Lag == 0
		}
		out[i] = st
	}
	return out
}

// fetchLoop is the fetch goroutine: it polls franz-go and hands the
// records to the task, in fetch order, so that each partition's records
// arrive in offset order.
func (r *reader[T]) fetchLoop() {
	defer r.wg.Done()
	committed := r.readCommitted()
	for {
		fs := r.cl.PollRecords(r.ctx, r.hand.limit)
		if r.ctx.Err() != nil {
			return
		}
		var chunk []batch
		n := 0
		for _, f := range fs {
			for _, t := range f.Topics {
				for _, p := range t.Partitions {
					if p.Err != nil {
						if err := r.fetchError(t.Topic, p.Partition, p.Err); err != nil {
							r.fail(err)
							return
						}
					}
					if len(p.Records) == 0 {
						continue
					}
					end := p.HighWatermark
					if committed {
						end = p.LastStableOffset
					}
					chunk = append(chunk, batch{topic: t.Topic, part: p.Partition, recs: p.Records, end: end})
					n += len(p.Records)
				}
			}
		}
		if n > 0 && !r.hand.push(r.ctx, chunk, n) {
			return
		}
	}
}

// fetchError turns an error franz-go returned from a fetch into the error
// that fails the task, or nil. franz-go retries retriable errors itself and
// only returns the others: those are fatal, except a data loss it
// recovered from by resetting as the Reset option says.
func (r *reader[T]) fetchError(topic string, part int32, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, kgo.ErrClientClosed) {
		return nil
	}
	if topic == "" {
		return fmt.Errorf("fetch: %w", err)
	}
	if dl, ok := errors.AsType[*kgo.ErrDataLoss](err); ok {
		if r.cfg.Reset == ResetNone {
			return &PartitionError{Topic: topic, Partition: part, Offset: dl.ConsumedTo, Err: fmt.Errorf("%w: %v", ErrNoOffset, dl)}
		}
		r.log.Warn("kafka source: records lost (truncated or deleted log); continuing where franz-go reset to", "topic", topic, "partition", part, "err", dl)
		return nil
	}
	offset := int64(-1)
	r.mu.Lock()
	if p := r.parts[partitionID{topic, part}]; p != nil {
		offset = p.pubNext.Load()
	}
	r.mu.Unlock()
	if errors.Is(err, kerr.OffsetOutOfRange) {
		return &PartitionError{Topic: topic, Partition: part, Offset: offset, Err: fmt.Errorf(
			"%w: the position is out of range (deleted by retention, or the topic was recreated); set %s to %s or %s to skip to what exists",
			ErrNoOffset, KeyReset, ResetEarliest, ResetLatest)}
	}
	return &PartitionError{Topic: topic, Partition: part, Offset: offset, Err: fmt.Errorf("fetch: %w", err)}
}

// monitorLoop is the monitor goroutine: partition discovery and end
// offsets every DiscoveryInterval, offset commits when a checkpoint
// completes, and the brokers' health.
func (r *reader[T]) monitorLoop() {
	defer r.wg.Done()
	interval, discover := r.cfg.DiscoveryInterval, true
	if interval < 0 {
		interval, discover = DefaultDiscoveryInterval, false
	}
	next := r.clk.Now().Add(interval)
	for {
		wake := next
		hnext, err := r.health.check(r.cfg.RetryTimeout)
		if err != nil {
			r.fail(err)
			return
		}
		if !hnext.IsZero() && hnext.Before(wake) {
			wake = hnext
		}
		t := r.clk.NewTimer(wake.Sub(r.clk.Now()))
		select {
		case <-t.C():
		case <-r.poke:
		case <-r.ctx.Done():
			t.Stop()
			return
		}
		t.Stop()
		r.commitOffsets()
		if r.clk.Now().Before(next) {
			continue
		}
		if err := r.look(discover); err != nil {
			if r.ctx.Err() == nil {
				r.fail(err)
			}
			return
		}
		next = r.clk.Now().Add(interval)
	}
}

// look discovers new partitions this subtask owns and refreshes the end
// offsets of the partitions it reads.
func (r *reader[T]) look(discover bool) error {
	if discover {
		var found []partitionID
		err := retry(r.ctx, r.cfg, r.clk, r.log, "discover partitions", func(ctx context.Context) error {
			var err error
			found, err = listPartitions(ctx, r.cl, r.cfg.Topics, r.src.re, false)
			return err
		})
		if err != nil {
			return err
		}
		r.mu.Lock()
		pending := map[partitionID]bool{}
		for _, id := range r.discovered {
			pending[id] = true
		}
		added := false
		for _, id := range found {
			if r.parts[id] == nil && !pending[id] && assign(id.topic, id.partition, r.par) == r.subtask {
				r.discovered = append(r.discovered, id)
				added = true
			}
		}
		r.mu.Unlock()
		if added {
			signal(r.hand.ready)
		}
	}
	r.mu.Lock()
	ps := append([]*partition(nil), r.order...)
	r.mu.Unlock()
	if len(ps) == 0 {
		return nil
	}
	ends, err := r.listOffsets(r.ctx, "list end offsets", ps, r.endLister())
	if err != nil {
		return err
	}
	for _, p := range ps {
		p.end.Store(ends[partitionID{p.topic, p.part}])
	}
	return nil
}

// commitOffsets commits the offsets of the latest completed checkpoint to
// the group, best effort.
func (r *reader[T]) commitOffsets() {
	r.mu.Lock()
	offs := r.commit
	r.commit = nil
	r.mu.Unlock()
	if len(offs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.RetryTimeout)
	defer cancel()
	resp, err := r.adm.CommitOffsets(ctx, r.cfg.GroupID, offs)
	if err == nil {
		err = resp.Error()
	}
	if err != nil && r.ctx.Err() == nil {
		r.log.Warn("kafka source: commit offsets to the group failed (monitoring only; positions live in the checkpoint)",
			"group", r.cfg.GroupID, "err", err)
	}
}
