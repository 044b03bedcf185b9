package runtime

import (
	"context"
	"errors"
	"sync"

	"github.com/sluicehq/sluice/keygroup"
)

// Partitioning decides which downstream subtask a record goes to.
type Partitioning int

// The partitionings (docs/design.md §2).
const (
	// Forward sends subtask i's records to subtask i (equal parallelism).
	Forward Partitioning = iota
	// Rebalance sends records round-robin to every downstream subtask.
	Rebalance
	// Hash sends a record to the subtask owning its key group.
	Hash
	// Broadcast sends every record to every downstream subtask.
	Broadcast
)

func (p Partitioning) String() string {
	switch p {
	case Forward:
		return "forward"
	case Rebalance:
		return "rebalance"
	case Hash:
		return "hash"
	case Broadcast:
		return "broadcast"
	}
	return "unknown"
}

type batchKind uint8

const (
	kindData batchKind = iota
	kindBarrier
	kindEnd
	kindWatermark
	kindStatus
)

// batch is what travels on an edge: records, or one control event. Control
// events share the channel with data, so they stay ordered with it.
//
// ts holds the records' timestamps, parallel to records, or is nil when no
// record of the batch has one: a job that uses no timestamps pays a compare
// per record and nothing else (docs/design.md §14).
//
// kgs and hs hold the records' key groups and key hashes, parallel to
// records, when the batch comes from a writer that routes by key group
// (NewKeyGroupWriter): the partitioner hashed each key once, and the keyed
// operator downstream reuses the key group and the hash instead of hashing
// again (docs/design.md §2). Empty for every other writer.
type batch[T any] struct {
	kind    batchKind
	records []T
	ts      []int64
	kgs     []uint16
	hs      []uint64
	barrier Barrier
	// wm is the watermark of a kindWatermark batch; idle the status of a
	// kindStatus batch.
	wm   int64
	idle bool
}

// Channels is the set of bounded channels of one logical edge for one
// attempt: Chans[up][down].
type Channels[T any] struct {
	Chans [][]chan *batch[T]
	pool  sync.Pool
	// credits[up][down], when set (unaligned checkpoints, credit.go),
	// bound the data batches in flight on each channel, counting those a
	// consumer read ahead and has not processed yet.
	credits [][]*credit
}

// NewChannels makes the channels between up producer and down consumer
// subtasks, each holding at most capacity batches.
func NewChannels[T any](up, down, capacity int) *Channels[T] {
	c := &Channels[T]{Chans: make([][]chan *batch[T], up)}
	for i := range c.Chans {
		c.Chans[i] = make([]chan *batch[T], down)
		for j := range c.Chans[i] {
			c.Chans[i][j] = make(chan *batch[T], capacity)
		}
	}
	return c
}

func (c *Channels[T]) get(size int) *batch[T] {
	if b, ok := c.pool.Get().(*batch[T]); ok {
		return b
	}
	return &batch[T]{records: make([]T, 0, size)}
}

func (c *Channels[T]) put(b *batch[T]) {
	clear(b.records) // drop references so the pool does not pin records
	b.records = b.records[:0]
	b.ts = b.ts[:0]
	b.kgs = b.kgs[:0]
	b.hs = b.hs[:0]
	c.pool.Put(b)
}

// errCancelled is returned by edge operations once the attempt is cancelled.
var errCancelled = errors.New("attempt cancelled")

// OutputWriter is the non-generic face of a partition writer, used by the
// task to flush and to send control events.
type OutputWriter interface {
	Flush() error
	Broadcast(b Barrier) error
	// Watermark flushes and sends watermark wm on every channel.
	Watermark(wm int64) error
	// Status flushes and sends the idle status on every channel.
	Status(idle bool) error
	End() error
	Buffered() bool
}

// Writer is the producer side of an edge for one subtask: it batches records
// per target channel and blocks when a channel is full (backpressure).
type Writer[T any] struct {
	c        *Channels[T]
	outs     []chan *batch[T]
	credits  []*credit // parallel to outs, nil without credits
	bufs     []*batch[T]
	part     Partitioning
	target   func(T) int
	rr       int
	size     int
	buffered int
	done     <-chan struct{}
	stats    *TaskStats
	time     *Time
	// keyHash, maxP and owner route a key-group writer
	// (NewKeyGroupWriter): owner[kg] is the channel of key group kg.
	keyHash func(T) uint64
	maxP    int
	owner   []int32
}

// NewWriter returns subtask's writer onto c. target maps a record to a
// downstream subtask for Hash partitioning.
// tm is the task's Time, whose TS is stored beside every record; nil means
// records carry no timestamps.
func NewWriter[T any](c *Channels[T], subtask int, part Partitioning, target func(T) int, batchSize int, done <-chan struct{}, stats *TaskStats, tm *Time) *Writer[T] {
	outs := c.Chans[subtask]
	if tm == nil {
		tm = NewTime()
	}
	w := &Writer[T]{c: c, outs: outs, bufs: make([]*batch[T], len(outs)), part: part, target: target, size: batchSize, done: done, stats: stats, time: tm}
	if c.credits != nil {
		w.credits = c.credits[subtask]
	}
	if part == Forward && len(outs) != 1 {
		// Forward across equal parallelism: subtask i talks to subtask i only.
		w.outs = outs[subtask : subtask+1]
		w.bufs = w.bufs[:1]
		if w.credits != nil {
			w.credits = w.credits[subtask : subtask+1]
		}
	}
	return w
}

// NewKeyGroupWriter returns subtask's Hash writer onto c that routes by key
// group: keyHash(v) is the hash of v's key, keygroup.Of gives its key group
// in [0, maxParallelism), and the record goes to the consumer subtask owning
// it (keygroup.SubtaskFor). The key group and the hash travel with the
// record in the batch, so that the consumer's keyed operator need not hash
// the key again (Time.KG, Time.Hash).
func NewKeyGroupWriter[T any](c *Channels[T], subtask int, keyHash func(T) uint64, maxParallelism, batchSize int, done <-chan struct{}, stats *TaskStats, tm *Time) *Writer[T] {
	w := NewWriter(c, subtask, Hash, nil, batchSize, done, stats, tm)
	w.keyHash, w.maxP = keyHash, maxParallelism
	w.owner = make([]int32, maxParallelism)
	for kg := range w.owner {
		w.owner[kg] = int32(keygroup.SubtaskFor(kg, len(w.outs), maxParallelism))
	}
	return w
}

// Emit adds v to the batch of its target channel, sending the batch when it
// is full.
func (w *Writer[T]) Emit(v T) error {
	switch w.part {
	case Forward:
		return w.add(0, v)
	case Rebalance:
		i := w.rr
		w.rr++
		if w.rr == len(w.outs) {
			w.rr = 0
		}
		return w.add(i, v)
	case Hash:
		if w.keyHash != nil {
			h := w.keyHash(v)
			kg := keygroup.Of(h, w.maxP)
			return w.addInGroup(int(w.owner[kg]), v, kg, h)
		}
		return w.add(w.target(v), v)
	default:
		for i := range w.outs {
			if err := w.add(i, v); err != nil {
				return err
			}
		}
		return nil
	}
}

func (w *Writer[T]) add(i int, v T) error {
	b := w.bufs[i]
	if b == nil {
		b = w.c.get(w.size)
		w.bufs[i] = b
	}
	if ts := w.time.TS; ts != NoTimestamp || b.ts != nil {
		if b.ts == nil || len(b.ts) < len(b.records) {
			b.ts = padTimestamps(b.ts, len(b.records))
		}
		b.ts = append(b.ts, ts)
	}
	b.records = append(b.records, v)
	w.buffered++
	if len(b.records) >= w.size {
		w.bufs[i] = nil
		w.buffered -= len(b.records)
		return w.send(i, b)
	}
	return nil
}

// addInGroup is add for a key-group writer: kg and the key hash h go
// beside v. Every record of such a writer has them, so kgs and hs stay
// parallel to records.
func (w *Writer[T]) addInGroup(i int, v T, kg int, h uint64) error {
	b := w.bufs[i]
	if b == nil {
		b = w.c.get(w.size)
		w.bufs[i] = b
	}
	if ts := w.time.TS; ts != NoTimestamp || b.ts != nil {
		if b.ts == nil || len(b.ts) < len(b.records) {
			b.ts = padTimestamps(b.ts, len(b.records))
		}
		b.ts = append(b.ts, ts)
	}
	b.records = append(b.records, v)
	b.kgs = append(b.kgs, uint16(kg))
	b.hs = append(b.hs, h)
	w.buffered++
	if len(b.records) >= w.size {
		w.bufs[i] = nil
		w.buffered -= len(b.records)
		return w.send(i, b)
	}
	return nil
}

func (w *Writer[T]) send(i int, b *batch[T]) error {
	n := int64(len(b.records))
	if w.credits != nil {
		if err := w.credit(i); err != nil {
			return err
		}
	}
	if err := w.put(i, b); err != nil {
		return err
	}
	w.stats.RecordsOut.Add(n)
	return nil
}

// put sends b on channel i, timing any wait as backpressure.
func (w *Writer[T]) put(i int, b *batch[T]) error {
	select {
	case w.outs[i] <- b:
		return nil
	default:
	}
	// The channel is full: we are backpressured. Time the wait.
	prev := w.stats.enter(phaseBackpressured, w.stats.now())
	select {
	case w.outs[i] <- b:
	case <-w.done:
		w.stats.enter(prev, w.stats.now())
		return errCancelled
	}
	w.stats.enter(prev, w.stats.now())
	return nil
}

// padTimestamps returns ts extended with NoTimestamp to length n: the
// records before the batch's first timestamped one have none.
//
//go:noinline
func padTimestamps(ts []int64, n int) []int64 {
	if ts == nil {
		ts = make([]int64, 0, max(n+1, 16))
	}
	for len(ts) < n {
		ts = append(ts, NoTimestamp)
	}
	return ts
}

// Flush sends every non-empty batch.
func (w *Writer[T]) Flush() error {
	if w.buffered == 0 {
		return nil
	}
	for i, b := range w.bufs {
		if b != nil && len(b.records) > 0 {
			w.bufs[i] = nil
			if err := w.send(i, b); err != nil {
				return err
			}
		}
	}
	w.buffered = 0
	return nil
}

// Buffered reports whether records wait in a batch.
func (w *Writer[T]) Buffered() bool { return w.buffered > 0 }

// Broadcast flushes and then sends barrier b on every channel.
func (w *Writer[T]) Broadcast(b Barrier) error {
	return w.control(&batch[T]{kind: kindBarrier, barrier: b})
}

// Watermark flushes and then sends watermark wm on every channel.
func (w *Writer[T]) Watermark(wm int64) error {
	return w.control(&batch[T]{kind: kindWatermark, wm: wm})
}

// Status flushes and then sends the idle status on every channel.
func (w *Writer[T]) Status(idle bool) error {
	return w.control(&batch[T]{kind: kindStatus, idle: idle})
}

// End flushes and then tells every channel that this subtask's output ended.
func (w *Writer[T]) End() error { return w.control(&batch[T]{kind: kindEnd}) }

func (w *Writer[T]) control(b *batch[T]) error {
	if err := w.Flush(); err != nil {
		return err
	}
	for i := range w.outs {
		if err := w.put(i, b); err != nil {
			return err
		}
	}
	return nil
}

// mailKind says what a mail carries.
type mailKind uint8

const (
	mailData mailKind = iota
	mailBarrier
	mailEnd
	mailWatermark
	mailStatus
)

// mail is what input readers put into a task's mailbox.
type mail struct {
	kind    mailKind
	channel int
	data    any
	barrier Barrier
	wm      int64
	idle    bool
}

// InputChannel is one physical input of a task: a producer subtask's
// channel into this subtask.
type InputChannel interface {
	// run forwards the channel into the mailbox until the end event or
	// cancellation. After forwarding a barrier it waits on gate when aligned.
	run(ctx context.Context, idx int, mailbox chan<- mail, gate <-chan struct{}, aligned bool)
	// process hands a data mail's batch to the input's Emitter.
	process(data any) error
}

type inputChannel[T any] struct {
	c     *Channels[T]
	ch    chan *batch[T]
	cr    *credit // nil without credits
	in    Emitter[T]
	pf    KeyPrefetcher // in, if it is one
	stats *TaskStats
	time  *Time
}

// KeyPrefetcher is implemented by a keyed operator at the head of a
// consuming chain that can warm its state for a batch from a key-group
// writer before the batch's records reach it one by one: kgs, hs and ts
// are the records' key groups, key hashes and timestamps (ts nil when the
// batch has none). Looking up a batch's state entries one record at a time
// waits for each cache miss in turn; touching them all first lets the CPU
// overlap the misses (docs/design.md §2). PrefetchKeys must not change
// any state.
type KeyPrefetcher interface {
	PrefetchKeys(kgs []uint16, hs []uint64, ts []int64)
}

// NewInputs returns the input channels of consumer subtask sub on c, in
// producer order, each delivering records to in with their timestamps set
// in tm (nil: a Time of its own).
func NewInputs[T any](c *Channels[T], sub int, part Partitioning, in Emitter[T], stats *TaskStats, tm *Time) []InputChannel {
	if tm == nil {
		tm = NewTime()
	}
	var ins []InputChannel
	for up := range c.Chans {
		if part == Forward && len(c.Chans) == len(c.Chans[up]) && up != sub {
			continue
		}
		ic := &inputChannel[T]{c: c, ch: c.Chans[up][sub], in: in, stats: stats, time: tm}
		ic.pf, _ = in.(KeyPrefetcher)
		if c.credits != nil {
			ic.cr = c.credits[up][sub]
		}
		ins = append(ins, ic)
	}
	return ins
}

func (ic *inputChannel[T]) run(ctx context.Context, idx int, mailbox chan<- mail, gate <-chan struct{}, aligned bool) {
	done := ctx.Done()
	for {
		var b *batch[T]
		select {
		case b = <-ic.ch:
		case <-done:
			return
		}
		var m mail
		switch b.kind {
		case kindData:
			m = mail{kind: mailData, channel: idx, data: b}
		case kindBarrier:
			m = mail{kind: mailBarrier, channel: idx, barrier: b.barrier}
		case kindEnd:
			m = mail{kind: mailEnd, channel: idx}
		case kindWatermark:
			m = mail{kind: mailWatermark, channel: idx, wm: b.wm}
		case kindStatus:
			m = mail{kind: mailStatus, channel: idx, idle: b.idle}
		}
		select {
		case mailbox <- m:
		case <-done:
			return
		}
		switch {
		case b.kind == kindEnd:
			return
		case b.kind == kindBarrier && aligned:
			// Exactly-once alignment (docs/design.md §3 step 3): stop reading this
			// channel until the task saw the barrier on every channel. The
			// channel then fills up and backpressure reaches the producer.
			select {
			case <-gate:
			case <-done:
				return
			}
		}
	}
}

func (ic *inputChannel[T]) process(data any) error {
	b := data.(*batch[T])
	ic.stats.RecordsIn.Add(int64(len(b.records)))
	ic.time.KG = NoKeyGroup
	// A key-group writer gives every record its key group; a batch from
	// the pool that another writer filled has an empty kgs.
	kgs, hs := b.kgs, b.hs
	if len(kgs) != len(b.records) || len(hs) != len(b.records) || len(kgs) == 0 {
		kgs, hs = nil, nil
	}
	if kgs != nil && ic.pf != nil {
		var ts []int64
		if b.ts != nil {
			ts = b.ts[:len(b.records)]
		}
		ic.pf.PrefetchKeys(kgs, hs, ts)
	}
	var err error
	switch {
	case b.ts == nil && kgs == nil:
		ic.time.TS = NoTimestamp
		for _, r := range b.records {
			if err = ic.in.Emit(r); err != nil {
				break
			}
		}
	case kgs == nil:
		ts := b.ts[:len(b.records)]
		for i, r := range b.records {
			ic.time.TS = ts[i]
			if err = ic.in.Emit(r); err != nil {
				break
			}
		}
	case b.ts == nil:
		ic.time.TS = NoTimestamp
		for i, r := range b.records {
			ic.time.KG, ic.time.Hash = int(kgs[i]), hs[i]
			if err = ic.in.Emit(r); err != nil {
				break
			}
		}
	default:
		ts := b.ts[:len(b.records)]
		for i, r := range b.records {
			ic.time.TS, ic.time.KG, ic.time.Hash = ts[i], int(kgs[i]), hs[i]
			if err = ic.in.Emit(r); err != nil {
				break
			}
		}
	}
	// The key group belongs to the record just processed only: what the
	// task does next (a timer, another input's batch) has none.
	ic.time.KG = NoKeyGroup
	if err != nil {
		return err
	}
	ic.c.put(b)
	if ic.cr != nil {
		ic.cr.release()
	}
	return nil
}
