package windowjob

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/clock"
	"github.com/sluicehq/sluice/watermark"
)

// SplitID is the id of the source's one split.
const SplitID = "orders-0"

// Source emits the orders of a Config, in Seq order, from one split: a
// sluice.Source[Order] meant for FromSourceWithWatermarks with Strategy,
// at parallelism 1 (Build does both).
//
// Lateness is decided by the window operator against its watermark, which
// a restore resets (watermarks are not checkpointed, docs/design.md §14):
// a record that is late in one run could be on time right after a
// restore, before the first watermark. To make the results the same in
// every run the source holds each late record (Kind InLateness or TooLate)
// until the watermark that makes it late, and for InLateness not too
// late, has been emitted, and it starts the watermark of a restored split
// at the base time of its position (no on-time record from there on is
// earlier). With one source subtask every window subtask has that source
// as its only input, and a watermark is ordered with the records on an
// edge, so the window operator sees that watermark before the record. This
// is a property of the test input, not something a real source can do.
type Source struct {
	cfg Config // with defaults
	err error

	mu    sync.Mutex
	fresh *gateGen // the generator the engine made last, for AddSplits
}

var (
	_ sluice.Source[Order]       = (*Source)(nil)
	_ sluice.SourceReader[Order] = (*reader)(nil)
	_ sluice.SourceDescriber     = (*Source)(nil)
	_ sluice.SplitAware          = (*reader)(nil)
)

// NewSource returns the source of cfg; an invalid cfg fails the job when
// it starts (call cfg.Validate to report it earlier).
func NewSource(cfg Config) *Source {
	return &Source{cfg: cfg.withDefaults(), err: cfg.Validate()}
}

// Config returns the source's configuration with defaults.
func (s *Source) Config() Config { return s.cfg }

// Strategy returns the source's watermark strategy: bounded
// out-of-orderness Disorder (watermark.ForBoundedOutOfOrderness's
// generator), which the source can see and start at a restored position.
func (s *Source) Strategy() watermark.Strategy {
	return watermark.ForGenerator(func() watermark.Generator {
		g := &gateGen{inner: watermark.ForBoundedOutOfOrderness(Disorder).NewGenerator(), emitted: watermark.NoWatermark}
		s.mu.Lock()
		s.fresh = g
		s.mu.Unlock()
		return g
	})
}

// DescribeSource names what decides the records (docs/design.md §10).
func (s *Source) DescribeSource() checkpoint.SourceIdentity {
	return checkpoint.SourceIdentity{Type: "windowjob-orders", Names: []string{
		"keys=" + strconv.Itoa(s.cfg.Keys), "records=" + strconv.FormatInt(s.cfg.Records, 10),
		"seed=" + strconv.FormatUint(s.cfg.Seed, 10),
	}}
}

// gateGen is the bounded-out-of-orderness generator, recording what it
// returned: the reader's watermark, since the reader has one split.
type gateGen struct {
	inner   watermark.Generator
	emitted int64
}

func (g *gateGen) OnEvent(ts int64) { g.inner.OnEvent(ts) }

func (g *gateGen) OnPeriodicEmit() int64 {
	wm := g.inner.OnPeriodicEmit()
	if wm > g.emitted {
		g.emitted = wm
	}
	return wm
}

// Splits returns the one split at its start.
func (s *Source) Splits(context.Context) ([]sluice.Split, error) {
	if s.err != nil {
		return nil, s.err
	}
	return []sluice.Split{{ID: SplitID}}, nil
}

// NewReader returns the reader of a subtask.
func (s *Source) NewReader(_ context.Context, oc *sluice.OperatorContext) (sluice.SourceReader[Order], error) {
	if s.err != nil {
		return nil, s.err
	}
	if oc != nil && oc.Parallelism != 1 {
		return nil, fmt.Errorf("windowjob: the orders source must run at parallelism 1 (got %d): its late records are held until the watermark of the only source subtask makes them late", oc.Parallelism)
	}
	clk := clock.Clock(clock.Real{})
	if oc != nil && oc.Clock != nil {
		clk = oc.Clock
	}
	return &reader{src: s, cfg: s.cfg, keys: keyTable(s.cfg.Keys), clk: clk, never: make(chan struct{}), ready: closed(), quit: make(chan struct{})}, nil
}

func closed() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

type reader struct {
	src  *Source
	cfg  Config
	keys []string
	clk  clock.Clock

	has  bool  // the split is assigned
	next int64 // seq of the next record
	gen  *gateGen

	// Pacing: the tokens at t are floor((t-anchor)·rate) - used.
	started bool
	anchor  time.Time
	used    int64
	waitAt  time.Time // when the next token is due, if waiting
	wait    chan struct{}
	armedAt time.Time // the waitAt wait fires at

	gated bool // the next record waits for a watermark
	ended bool

	never, ready chan struct{}
	quit         chan struct{}
	closed       bool
}

// EmitsPerSplit implements sluice.SplitAware: the engine makes the split's
// watermark generator before AddSplits.
func (r *reader) EmitsPerSplit() {}

// AddSplits takes the split and its position.
func (r *reader) AddSplits(_ context.Context, splits []sluice.Split) error {
	for _, s := range splits {
		if s.ID != SplitID || r.has {
			return fmt.Errorf("windowjob: unexpected split %q (the source has the one split %s)", s.ID, SplitID)
		}
		pos, err := decodePosition(s.State)
		if err != nil {
			return fmt.Errorf("split %s: %w", s.ID, err)
		}
		if pos > r.cfg.Records {
			return fmt.Errorf("windowjob: split %s is at record %d, beyond the %d records of the input (restored with other records?)", s.ID, pos, r.cfg.Records)
		}
		r.has, r.next = true, pos
		r.src.mu.Lock()
		r.gen, r.src.fresh = r.src.fresh, nil
		r.src.mu.Unlock()
		if r.gen != nil {
			// No on-time record from pos on is earlier than its base time.
			r.gen.OnEvent(BaseTime(pos))
		}
	}
	return nil
}

// Poll emits the next records, up to BatchSize, stopping at a late record
// whose watermark has not been emitted yet.
func (r *reader) Poll(ctx context.Context, out sluice.Emitter[Order]) (sluice.PollStatus, error) {
	if err := ctx.Err(); err != nil {
		return sluice.NothingAvailable, err
	}
	r.gated, r.waitAt = false, time.Time{}
	if !r.has {
		return sluice.NothingAvailable, nil
	}
	ro, perSplit := out.(sluice.ReaderOutput[Order])
	var so sluice.SplitOutput[Order]
	if perSplit {
		if _, direct := ro.Direct(); !direct && r.gen == nil {
			// Without the generator the late records could not be held
			// for their watermark, and the results would vary by run.
			return sluice.NothingAvailable, errors.New("windowjob: the source's watermarks must come from Source.Strategy (its generator was not made before the split was assigned)")
		}
		so = ro.ForSplit(SplitID)
	}
	if r.next >= r.cfg.Records {
		if perSplit && !r.ended {
			ro.FinishSplit(SplitID)
		}
		r.ended = true
		return sluice.EndOfInput, nil
	}
	n := min(int64(r.cfg.BatchSize), r.cfg.Records-r.next)
	if r.cfg.RatePerSecond > 0 {
		tokens := r.tokens(r.clk.Now())
		if tokens <= 0 {
			r.waitAt = r.tokenDue(max(1, min(n, int64(r.cfg.RatePerSecond/1000))))
			return sluice.NothingAvailable, nil
		}
		n = min(n, tokens)
	}
	emitted := int64(0)
	for ; emitted < n; emitted++ {
		rec := r.cfg.at(r.next)
		if rec.gate != NoGate && r.gen != nil && r.gen.emitted < rec.gate {
			r.gated = true
			break
		}
		o := Order{Seq: r.next, Key: r.keys[rec.key], Amount: rec.amount, TS: rec.ts}
		var err error
		if perSplit {
			err = so.EmitAt(o, rec.ts)
		} else {
			err = out.Emit(o)
		}
		if err != nil {
			return sluice.MoreAvailable, err
		}
		r.next++
	}
	r.used += emitted
	if r.next >= r.cfg.Records {
		if perSplit {
			ro.FinishSplit(SplitID)
		}
		r.ended = true
		return sluice.EndOfInput, nil
	}
	if r.gated && emitted == 0 {
		return sluice.NothingAvailable, nil
	}
	return sluice.MoreAvailable, nil
}

func (r *reader) tokens(now time.Time) int64 {
	if !r.started {
		r.started, r.anchor, r.used = true, now, 0
		return 0
	}
	burst := max(1, int64(r.cfg.RatePerSecond/10))
	earned := float64(now.Sub(r.anchor)) * r.cfg.RatePerSecond / 1e9
	if earned-float64(r.used) >= float64(burst) {
		r.anchor, r.used = now, -burst
		return burst
	}
	return int64(earned) - r.used
}

func (r *reader) tokenDue(n int64) time.Time {
	d := math.Ceil(float64(r.used+n) * 1e9 / r.cfg.RatePerSecond)
	return r.anchor.Add(time.Duration(d) + 1)
}

// Available fires when Poll may emit again: at the next token when paced;
// never while a late record waits for its watermark (the task polls again
// after each periodic watermark) or without the split; at once otherwise.
func (r *reader) Available() <-chan struct{} {
	switch {
	case r.closed || r.ended:
		return r.ready
	case r.gated || !r.has:
		return r.never
	case r.waitAt.IsZero():
		return r.ready
	}
	if r.wait != nil && r.armedAt.Equal(r.waitAt) {
		return r.wait // asked again for the same token: one timer
	}
	ch := make(chan struct{})
	tm := r.clk.NewTimer(r.waitAt.Sub(r.clk.Now()))
	go func(quit <-chan struct{}) {
		select {
		case <-tm.C():
			close(ch)
		case <-quit:
			tm.Stop()
		}
	}(r.quit)
	r.wait, r.armedAt = ch, r.waitAt
	return ch
}

// SnapshotSplits returns the split's position.
func (r *reader) SnapshotSplits(context.Context, int64) ([]sluice.Split, error) {
	if !r.has {
		return nil, nil
	}
	return []sluice.Split{{ID: SplitID, State: binary.AppendUvarint(nil, uint64(r.next))}}, nil
}

// NotifyCheckpointComplete does nothing.
func (r *reader) NotifyCheckpointComplete(context.Context, int64) error { return nil }

// Close stops a pending timer.
func (r *reader) Close(context.Context) error {
	if !r.closed {
		r.closed = true
		close(r.quit)
	}
	return nil
}

var errSplitState = errors.New("windowjob: corrupt split state (want a uvarint record number)")

func decodePosition(b []byte) (int64, error) {
	if len(b) == 0 {
		return 0, nil
	}
	v, n := binary.Uvarint(b)
	if n <= 0 || n != len(b) || v > math.MaxInt64 {
		return 0, errSplitState
	}
	return int64(v), nil
}

// Position decodes the source's split position from a checkpoint's splits.
func Position(splits []sluice.Split) (int64, error) {
	for _, s := range splits {
		if s.ID == SplitID {
			return decodePosition(s.State)
		}
	}
	return 0, nil
}
