package datagen

import (
	"context"
	"fmt"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/clock"
)

// Source is a datagen source: a sluice.Source[Record] and a
// sluice.SplitAssigner. Make one with New.
type Source struct {
	cfg Config // with defaults
	err error  // the configuration error, reported when the job starts

	once sync.Once
	gen  *generator
}

var (
	_ sluice.Source[Record]       = (*Source)(nil)
	_ sluice.SplitAssigner        = (*Source)(nil)
	_ sluice.PausableSource       = (*Source)(nil)
	_ sluice.SourceReader[Record] = (*reader)(nil)
	_ sluice.SplitPauser          = (*reader)(nil)
)

// ReadersPauseSplits marks the source as one whose readers pause splits
// (sluice.PausableSource), so it can take part in watermark alignment.
func (s *Source) ReadersPauseSplits() {}

// New returns a source generating records as cfg says. An invalid cfg is
// reported by Splits and NewReader, that is when the job starts; call
// cfg.Validate first to report it earlier.
func New(cfg Config) *Source {
	return &Source{cfg: cfg.withDefaults(), err: cfg.Validate()}
}

// Config returns the source's configuration, with defaults filled in.
func (s *Source) Config() Config { return s.cfg }

// generator builds the key table once per source, not once per reader: it
// is immutable and shared by every subtask.
func (s *Source) generator() *generator {
	s.once.Do(func() { s.gen = newGenerator(s.cfg) })
	return s.gen
}

// Splits lists the Config.Splits splits "datagen-0" … at their start.
func (s *Source) Splits(context.Context) ([]sluice.Split, error) {
	if s.err != nil {
		return nil, s.err
	}
	out := make([]sluice.Split, s.cfg.Splits)
	for i := range out {
		out[i] = sluice.Split{ID: SplitID(i)}
	}
	return out, nil
}

// AssignSplit assigns split n to subtask n mod parallelism, so that splits
// spread evenly whatever the parallelism. Ids that are not datagen's
// (impossible unless a checkpoint of another source was restored under
// this uid) go to subtask 0, where AddSplits rejects them loudly.
func (s *Source) AssignSplit(id string, parallelism int) int {
	n, err := ParseSplitID(id)
	if err != nil || parallelism <= 0 {
		return 0
	}
	return n % parallelism
}

// NewReader returns the reader of one subtask.
func (s *Source) NewReader(_ context.Context, oc *sluice.OperatorContext) (sluice.SourceReader[Record], error) {
	if s.err != nil {
		return nil, s.err
	}
	clk := s.cfg.Clock
	if clk == nil && oc != nil {
		clk = oc.Clock
	}
	if clk == nil {
		clk = clock.Real{}
	}
	ready := make(chan struct{})
	close(ready)
	r := &reader{
		g:     s.generator(),
		cfg:   s.cfg,
		clk:   clk,
		ready: ready,
		never: make(chan struct{}),
		quit:  make(chan struct{}),
	}
	return r, nil
}

// splitState is one split a reader owns.
type splitState struct {
	index  int
	id     string
	base   uint64 // splitBase(seed, index)
	next   int64  // sequence number of the next record to emit
	paused bool   // by watermark alignment: not polled
	// pub is next as published for ReportSplits, once per emitted batch.
	pub atomic.Int64
}

// reader reads the splits of one subtask. Every method runs on the
// subtask's goroutine; only the timer goroutines of Available run
// elsewhere, and they touch nothing but their own channels.
type reader struct {
	g   *generator
	cfg Config
	clk clock.Clock

	splits []*splitState // every split owned, by id, for snapshots
	// published is splits as ReportSplits reads it, from another goroutine.
	published atomic.Pointer[[]*splitState]
	active    []*splitState // the splits not ended yet, polled round-robin
	turn      int           // index into active of the split polled next
	// zs and offs are emit's draws and key offsets made ahead; sink keeps
	// touch's loads.
	zs   [keyChunk]uint64
	offs [keyChunk]int32
	sink byte
	// paused counts the splits of active that watermark alignment paused
	// (sluice.SplitPauser): Poll skips them, and a reader whose active
	// splits are all paused waits on the task's clock, not on Available.
	paused int

	// Token bucket (rate limiting). Tokens are counted from an anchor
	// rather than accumulated, so that float rounding cannot drift: the
	// tokens at time t are floor((t-anchor)·rate) - used.
	limited bool
	rate    float64 // records per second of this reader
	burst   int64   // most tokens kept while idle
	started bool
	anchor  time.Time
	used    int64

	// Waiting for the next token after NothingAvailable.
	waiting bool
	waitAt  time.Time     // when the next token is due
	wait    chan struct{} // closed by a timer goroutine at armedAt
	armedAt time.Time

	ready chan struct{} // always closed: poll again at once
	never chan struct{} // never closed: nothing will ever come
	quit  chan struct{} // closed by Close, stops timer goroutines
	done  bool          // Close was called

	// toldEnded: the splits restored already ended were reported to the
	// engine's watermarking (docs/design.md §14).
	toldEnded bool
}

// EmitsPerSplit marks the reader as emitting every split's records through
// its own split output (sluice.SplitAware), so that each split has its own
// watermark generator.
func (r *reader) EmitsPerSplit() {}

// AddSplits takes over splits with their positions.
func (r *reader) AddSplits(_ context.Context, splits []sluice.Split) error {
	for _, s := range splits {
		n, err := ParseSplitID(s.ID)
		if err != nil {
			return err
		}
		if n >= r.cfg.Splits {
			// A checkpoint with more splits than the configuration: the
			// records of the missing splits would silently vanish.
			return fmt.Errorf("datagen: split %s is out of range: the source has %d splits, and the split count must not change for the life of a job", s.ID, r.cfg.Splits)
		}
		pos, err := decodePosition(s.State)
		if err != nil {
			return fmt.Errorf("split %s: %w", s.ID, err)
		}
		for _, o := range r.splits {
			if o.index == n {
				return fmt.Errorf("datagen: split %s assigned twice", s.ID)
			}
		}
		sp := &splitState{index: n, id: s.ID, base: r.g.bases[n], next: pos}
		sp.pub.Store(pos)
		r.splits = append(r.splits, sp)
		if !r.ended(sp) {
			r.active = append(r.active, sp)
		}
	}
	sort.Slice(r.splits, func(i, j int) bool { return r.splits[i].index < r.splits[j].index })
	pub := append([]*splitState(nil), r.splits...)
	r.published.Store(&pub)
	sort.Slice(r.active, func(i, j int) bool { return r.active[i].index < r.active[j].index })
	r.setRate()
	return nil
}

func (r *reader) ended(sp *splitState) bool {
	return r.cfg.RecordsPerSplit > 0 && sp.next >= r.cfg.RecordsPerSplit
}

// setRate gives the reader the share of the total rate of its active
// splits, keeping the tokens it has. A split that ends takes its share
// with it, so every split runs at Rate/Splits whatever its reader.
func (r *reader) setRate() {
	if r.cfg.RatePerSecond == 0 {
		return
	}
	if r.started {
		now := r.clk.Now()
		tokens := r.available(now)
		r.anchor, r.used = now, -tokens
	}
	r.limited = true
	r.rate = r.cfg.RatePerSecond * float64(len(r.active)-r.paused) / float64(r.cfg.Splits)
	// Keep at most 100ms of records while idle (or backpressured): enough
	// to absorb timer latency at high rates, little enough that the rate
	// holds over any window longer than that.
	r.burst = max(1, int64(r.rate/10))
}

// available returns the tokens at now, starting the bucket (empty) at the
// first call.
func (r *reader) available(now time.Time) int64 {
	if !r.started {
		r.started, r.anchor, r.used = true, now, 0
		return 0
	}
	// Compare in float first: after a long idle time elapsed·rate may not
	// fit an int64.
	earned := float64(now.Sub(r.anchor)) * r.rate / 1e9
	if earned-float64(r.used) >= float64(r.burst) {
		r.anchor, r.used = now, -r.burst
		return r.burst
	}
	return int64(earned) - r.used
}

// nextTokens returns when n more tokens will have been earned.
func (r *reader) nextTokens(n int64) time.Time {
	want := r.used + n
	d := int64(math.Ceil(float64(want) * 1e9 / r.rate))
	// Ceil of a rounded quotient can still land a nanosecond short of
	// what available computes; step until they agree, so a wake-up at d
	// always finds a token.
	for int64(float64(d)*r.rate/1e9) < want {
		d++
	}
	return r.anchor.Add(time.Duration(d))
}

// Poll emits up to BatchSize records of the next split in turn, fewer when
// the rate limit or the split's end says so.
func (r *reader) Poll(ctx context.Context, out sluice.Emitter[Record]) (sluice.PollStatus, error) {
	if err := ctx.Err(); err != nil {
		return sluice.NothingAvailable, err
	}
	r.waiting = false
	if len(r.active) == 0 {
		if r.cfg.RecordsPerSplit > 0 {
			return sluice.EndOfInput, nil
		}
		// An endless reader without splits (parallelism above the split
		// count) idles for the life of the job.
		return sluice.NothingAvailable, nil
	}
	em := out
	ro, eventTime := out.(sluice.ReaderOutput[Record])
	if eventTime {
		if direct, ok := ro.Direct(); ok {
			em, eventTime = direct, false
		}
	}
	// Before anything can wait: a restored split that already ended must
	// not hold the watermark (or, with alignment, the paused splits) back.
	if eventTime && !r.toldEnded {
		r.toldEnded = true
		for _, s := range r.splits {
			if r.ended(s) {
				ro.FinishSplit(s.id)
			}
		}
	}
	if r.paused == len(r.active) {
		return sluice.NothingAvailable, nil
	}
	if r.turn >= len(r.active) {
		r.turn = 0
	}
	for r.active[r.turn].paused {
		if r.turn++; r.turn == len(r.active) {
			r.turn = 0
		}
	}
	sp := r.active[r.turn]
	if eventTime {
		em = ro.ForSplit(sp.id)
	}
	n := int64(r.cfg.BatchSize)
	if r.cfg.RecordsPerSplit > 0 {
		n = min(n, r.cfg.RecordsPerSplit-sp.next)
	}
	if r.limited {
		tokens := r.available(r.clk.Now())
		if tokens <= 0 {
			// Wake up for up to 1ms of records, not for every single one:
			// at high rates a wake-up per token would cost more than the
			// records, and 1ms of latency is below the timer resolution
			// anyway.
			r.waiting, r.waitAt = true, r.nextTokens(max(1, min(int64(r.cfg.BatchSize), int64(r.rate/1000))))
			return sluice.NothingAvailable, nil
		}
		n = min(n, tokens)
		r.used += n
	}
	if err := r.emit(em, sp, n); err != nil {
		return sluice.MoreAvailable, err
	}
	if r.ended(sp) {
		if eventTime {
			ro.FinishSplit(sp.id)
		}
		r.active = append(r.active[:r.turn], r.active[r.turn+1:]...)
		if len(r.active) == 0 {
			return sluice.EndOfInput, nil
		}
		r.setRate()
	} else {
		r.turn++
	}
	return sluice.MoreAvailable, nil
}

// emit emits records sp.next … sp.next+n-1. The loops are written out per
// distribution so that the hot loop has no switch, no allocation and only
// the splitmix64 mix, an index and the Emit call per record. With
// Config.PrefetchKeys and a key table larger than cachedKeyTable the random
// distributions draw keyChunk keys ahead and touch their bytes first: the
// table is then far larger than the cache, and the loads of a chunk overlap
// where the consumer's reads (hashing the key to route it) would miss one
// after the other.
func (r *reader) emit(out sluice.Emitter[Record], sp *splitState, n int64) (err error) {
	keys, w := r.g.keys.all, r.g.keys.width
	nk := uint64(r.cfg.Keys)
	base, split := sp.base, sp.index
	seq, end := sp.next, sp.next+n
	switch r.cfg.Distribution {
	case Zipf:
		t := r.g.zipf
		if !r.cfg.PrefetchKeys || len(keys) <= cachedKeyTable {
			for ; seq < end; seq++ {
				z := draw(base, seq)
				off := int(t.sample(z)) * w
				if err = out.Emit(Record{Split: split, Seq: seq, Key: keys[off : off+w], Value: valueOf(z)}); err != nil {
					break
				}
			}
			break
		}
		for seq < end && err == nil {
			c := min(end-seq, keyChunk)
			for i := range c {
				z := draw(base, seq+i)
				r.zs[i], r.offs[i] = z, int32(t.sample(z))*int32(w)
			}
			seq, err = r.emitChunk(out, split, seq, int(c))
		}
	case Sequential:
		k := sequentialIndex(split, seq, r.cfg.Splits, r.cfg.Keys)
		step := uint64(r.cfg.Splits) % nk
		for ; seq < end; seq++ {
			z := draw(base, seq)
			off := int(k) * w
			if err = out.Emit(Record{Split: split, Seq: seq, Key: keys[off : off+w], Value: valueOf(z)}); err != nil {
				break
			}
			// Advance to sequentialIndex(split, seq+1) without a division.
			if k += step; k >= nk {
				k -= nk
			}
		}
	default:
		if !r.cfg.PrefetchKeys || len(keys) <= cachedKeyTable {
			for ; seq < end; seq++ {
				z := draw(base, seq)
				off := int(uniformIndex(z, nk)) * w
				if err = out.Emit(Record{Split: split, Seq: seq, Key: keys[off : off+w], Value: valueOf(z)}); err != nil {
					break
				}
			}
			break
		}
		for seq < end && err == nil {
			c := min(end-seq, keyChunk)
			for i := range c {
				z := draw(base, seq+i)
				r.zs[i], r.offs[i] = z, int32(uniformIndex(z, nk))*int32(w)
			}
			seq, err = r.emitChunk(out, split, seq, int(c))
		}
	}
	// A failed Emit fails the attempt anyway, but the position must never
	// claim a record that was not handed out whole.
	sp.next = seq
	sp.pub.Store(seq)
	return err
}

// ReportSplits describes the reader's splits for the job's status
// (sluice.SplitReporter, docs/design.md §8): a bounded split's end is its
// RecordsPerSplit, so its lag is the records still to generate, and it is
// idle once it ended; an endless split's end and lag are unknown (-1).
// Safe from any goroutine.
func (r *reader) ReportSplits() []sluice.SplitStatus {
	p := r.published.Load()
	if p == nil {
		return nil
	}
	out := make([]sluice.SplitStatus, len(*p))
	for i, sp := range *p {
		next := sp.pub.Load()
		st := sluice.SplitStatus{Split: sp.id, Next: next, End: -1, Lag: -1}
		if n := r.cfg.RecordsPerSplit; n > 0 {
			st.End, st.Lag = n, max(n-next, 0)
			st.Idle = st.Lag == 0
		}
		out[i] = st
	}
	return out
}

// Available returns a channel that fires when Poll may emit again: at the
// next token time when the rate limit stopped it, never for an endless
// reader without splits, and at once otherwise.
func (r *reader) Available() <-chan struct{} {
	if len(r.active) == 0 && r.cfg.RecordsPerSplit == 0 || len(r.active) > 0 && r.paused == len(r.active) {
		return r.never
	}
	if !r.waiting || r.done {
		return r.ready
	}
	// The task asks again after every control message; reuse the armed
	// timer instead of stacking one per call.
	if r.wait != nil && !r.armedAt.After(r.waitAt) {
		select {
		case <-r.wait:
		default:
			return r.wait
		}
	}
	d := r.waitAt.Sub(r.clk.Now())
	tm := r.clk.NewTimer(d)
	ch := make(chan struct{})
	r.wait, r.armedAt = ch, r.waitAt
	// clock.Timer delivers a time.Time, the reader promises a struct{}
	// channel that stays ready once fired: bridge the two.
	go func(quit <-chan struct{}) {
		select {
		case <-tm.C():
			close(ch)
		case <-quit:
			tm.Stop()
		}
	}(r.quit)
	return ch
}

// PauseSplits stops emitting the splits ids (sluice.SplitPauser): Poll
// skips them, their positions stay where they are, and a paused split no
// longer takes a share of the rate limit.
func (r *reader) PauseSplits(ids []string) { r.setPaused(ids, true) }

// ResumeSplits emits the splits ids again.
func (r *reader) ResumeSplits(ids []string) { r.setPaused(ids, false) }

func (r *reader) setPaused(ids []string, paused bool) {
	changed := false
	for _, id := range ids {
		for _, sp := range r.active {
			if sp.id == id && sp.paused != paused {
				sp.paused, changed = paused, true
				if paused {
					r.paused++
				} else {
					r.paused--
				}
			}
		}
	}
	if changed {
		r.setRate()
	}
}

// SnapshotSplits returns every split with the position of its next record.
func (r *reader) SnapshotSplits(context.Context, int64) ([]sluice.Split, error) {
	out := make([]sluice.Split, len(r.splits))
	for i, sp := range r.splits {
		out[i] = sluice.Split{ID: sp.id, State: encodePosition(sp.next)}
	}
	return out, nil
}

// NotifyCheckpointComplete does nothing: the positions live in the
// checkpoint, there is nothing outside to commit.
func (r *reader) NotifyCheckpointComplete(context.Context, int64) error { return nil }

// Close stops the pending timer.
func (r *reader) Close(context.Context) error {
	if !r.done {
		r.done = true
		close(r.quit)
	}
	return nil
}

// emitChunk touches the keys of the c records from seq that emit drew
// ahead (r.zs, r.offs), then emits them; it returns the seq after the last
// record emitted whole.
func (r *reader) emitChunk(out sluice.Emitter[Record], split int, seq int64, c int) (int64, error) {
	keys, w := r.g.keys.all, r.g.keys.width
	r.sink += touch(keys, r.offs[:c])
	for i := range c {
		off := int(r.offs[i])
		if err := out.Emit(Record{Split: split, Seq: seq, Key: keys[off : off+w], Value: valueOf(r.zs[i])}); err != nil {
			return seq, err
		}
		seq++
	}
	return seq, nil
}

// keyChunk is the number of keys emit draws and touches ahead, and
// cachedKeyTable the largest key table (in bytes) emit expects to stay in
// cache (half a core's L2 on the reference machine), for which it does not.
const (
	keyChunk       = 256
	cachedKeyTable = 512 << 10
)

// touch loads the first byte of each key at offs of keys, so that the
// loads miss together rather than one after the other.
func touch(keys string, offs []int32) (x byte) {
	for _, off := range offs {
		x += keys[off]
	}
	return x
}
