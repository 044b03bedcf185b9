package sluice_test

// Watermark alignment (docs/design.md §14, Flink's FLIP-182/217): a real
// job on datagen whose split 1 runs ten times faster in event time than
// split 0. The fake clock paces the rate-limited source; the test only
// advances it and waits on conditions, never on time.

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/clock"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/connector/datagen"
	"github.com/sluicehq/sluice/fault"
	"github.com/sluicehq/sluice/restart"
	"github.com/sluicehq/sluice/watermark"
)

// commitLog is an exactly-once sink for tests: records are buffered per
// transaction and kept only when it commits (also when a restored
// attempt recovers a pre-committed one), so Committed holds what the job
// delivered exactly once.
type commitLog[T any] struct {
	mu        sync.Mutex
	next      int
	open      map[int][]T
	committed []T
}

func (l *commitLog[T]) Sink() sluice.SinkProvider[T] {
	return sluice.TwoPhaseCommitSink(sluice.TwoPhaseCommitConfig[T, int]{
		New: func(context.Context, *sluice.OperatorContext) (sluice.TwoPhaseCommitter[T, int], error) {
			return logCommitter[T]{l}, nil
		},
		TxnCodec: codec.Int,
	})
}

func (l *commitLog[T]) Committed() []T {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]T(nil), l.committed...)
}

type logCommitter[T any] struct{ l *commitLog[T] }

func (c logCommitter[T]) BeginTransaction(context.Context) (int, error) {
	c.l.mu.Lock()
	defer c.l.mu.Unlock()
	if c.l.open == nil {
		c.l.open = map[int][]T{}
	}
	c.l.next++
	c.l.open[c.l.next] = nil
	return c.l.next, nil
}

func (c logCommitter[T]) Write(txn int, v T) error {
	c.l.mu.Lock()
	defer c.l.mu.Unlock()
	c.l.open[txn] = append(c.l.open[txn], v)
	return nil
}

func (c logCommitter[T]) PreCommit(context.Context, int) error { return nil }

func (c logCommitter[T]) Commit(_ context.Context, txn int) error {
	c.l.mu.Lock()
	defer c.l.mu.Unlock()
	c.l.committed = append(c.l.committed, c.l.open[txn]...)
	delete(c.l.open, txn) // a repeated commit finds nothing left
	return nil
}

func (c logCommitter[T]) Abort(_ context.Context, txn int) error {
	c.l.mu.Lock()
	defer c.l.mu.Unlock()
	delete(c.l.open, txn)
	return nil
}

func (c logCommitter[T]) RecoverAndCommit(ctx context.Context, txn int) error {
	return c.Commit(ctx, txn)
}

func (c logCommitter[T]) CleanUp(context.Context, []int) error { return nil }

// leadMeter is the timestamp assigner of the alignment tests: split 0's
// record seq is at seq·slow, split 1's at seq·fast after t0. It runs in
// the source subtasks as they emit, so it sees the fast split's lead over
// the slow one's largest timestamp at every fast record until the slow
// split's last record (seq slowEnd-1), after which the fast split runs
// alone.
type leadMeter struct {
	slow, fast time.Duration
	slowEnd    int64

	mu       sync.Mutex
	slowMax  int64 // the slow split's latest timestamp
	slowDone bool
	maxLead  time.Duration
	atLead   string
}

func (m *leadMeter) assign(r datagen.Record, _ int64) int64 {
	step := m.slow
	if r.Split == 1 {
		step = m.fast
	}
	ts := t0.UnixNano() + r.Seq*int64(step)
	m.mu.Lock()
	defer m.mu.Unlock()
	if r.Split == 0 {
		// The latest, not the largest: after a restore the split replays
		// from its checkpointed position.
		m.slowMax = ts
		m.slowDone = m.slowDone || r.Seq == m.slowEnd-1
	} else if lead := time.Duration(ts - m.slowMax); !m.slowDone && lead > m.maxLead {
		m.maxLead, m.atLead = lead, fmt.Sprintf("fast record %d at %v, slow split at %v", r.Seq, time.Duration(ts-t0.UnixNano()), time.Duration(m.slowMax-t0.UnixNano()))
	}
	return ts
}

// as returns the assigner of a source whose records are all of split
// split, whatever their Split says.
func (m *leadMeter) as(split int) sluice.TimestampAssigner[datagen.Record] {
	return func(r datagen.Record, ts int64) int64 {
		r.Split = split
		return m.assign(r, ts)
	}
}

func (m *leadMeter) lead() (time.Duration, string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.maxLead, m.atLead
}

// TestWatermarkAlignmentPausesFastSplit is the table test
// "watermark alignment pausing a fast split". Both splits emit 100
// records per second of the fake clock; split 0 advances 10ms of event
// time per record, split 1 100ms. With a drift of 500ms and an update
// interval of 100ms, split 1 pauses whenever its watermark is more than
// 500ms ahead of split 0's as last reported, so at any of its records it
// leads split 0's newest record by at most the drift, plus what it emits
// until the next update (10 records at its rate, 1s, and up to its rate
// limiter's burst of 10 more), plus the age of split 0's report: 3.5s at
// most, where it runs away to 27s without alignment (the control case,
// which shows that the bound can fail). Every record arrives exactly
// once through a two-phase-commit sink: nothing of a paused split is lost
// or repeated, and split 1 runs alone once split 0 ends and leaves the
// group. The splits are read by one reader, by two subtasks, or by two
// sources of the same group. In the case with failures each source
// subtask fails once; every
// restart restores the latest checkpoint (taken while a split was paused,
// as likely as not) and aligns afresh; the fast split may then run one
// more update's worth (1s) ahead before its first report in the new
// attempt, so the bound there is 4.5s.
func TestWatermarkAlignmentPausesFastSplit(t *testing.T) {
	t.Parallel()
	const (
		perSplit = 300
		rate     = 100 // records per second and split
		drift    = 500 * time.Millisecond
		interval = 100 * time.Millisecond
		fast     = 100 * time.Millisecond
	)
	bound := drift + 3*rate*interval/time.Second*fast
	for _, tc := range []struct {
		name    string
		par     int
		aligned bool
		fail    bool
		sources int // 2: the slow and the fast split are two sources of one group
	}{
		{"one reader", 1, true, false, 1},
		{"two subtasks", 2, true, false, 1},
		{"two sources", 1, true, false, 2},
		{"two subtasks with failures", 2, true, true, 1},
		{"unaligned", 2, false, false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t, tc.par)
			clk := clock.NewFake(t0)
			cfg.Clock = clk
			cfg.BufferTimeout = sluice.FlushAlways
			cfg.WatermarkInterval = interval
			cfg.Checkpoint = checkpoint.Config{Interval: 500 * time.Millisecond}
			var inj *fault.Injector
			if tc.fail {
				// Each source subtask fails once, in the middle of its
				// input; each restart restores the latest checkpoint and
				// starts a fresh alignment group.
				inj = fault.New(1)
				inj.Schedule([]fault.Target{
					{Point: fault.OnRecord, UID: "gen", Subtask: 1, Skip: 15},
					{Point: fault.OnRecord, UID: "gen", Subtask: 0, Skip: 30},
				})
				cfg.Faults = inj
				cfg.Restart = restart.FixedDelay{Attempts: 5, Delay: -1}
			}
			env := sluice.New(cfg)
			m := &leadMeter{slow: 10 * time.Millisecond, fast: fast, slowEnd: perSplit, slowMax: t0.UnixNano()}
			strategy := watermark.ForMonotonousTimestamps()
			if tc.aligned {
				strategy = strategy.WithAlignment("g", drift, interval)
			}
			var (
				s    sluice.Stream[datagen.Record]
				want []datagen.Record
			)
			if tc.sources == 1 {
				gen := datagen.New(datagen.Config{Splits: 2, RecordsPerSplit: perSplit, RatePerSecond: 2 * rate, BatchSize: 5})
				s = sluice.FromSourceWithWatermarks(env, "gen", gen, strategy,
					[]sluice.WatermarkOption[datagen.Record]{sluice.WithTimestampAssigner(m.assign)})
				want = input(gen.Config())
			} else {
				slow := datagen.New(datagen.Config{Splits: 1, RecordsPerSplit: perSplit, RatePerSecond: rate, BatchSize: 5})
				fastGen := datagen.New(datagen.Config{Splits: 1, RecordsPerSplit: perSplit, RatePerSecond: rate, BatchSize: 5, Seed: 7})
				a := sluice.FromSourceWithWatermarks(env, "slow", slow, strategy,
					[]sluice.WatermarkOption[datagen.Record]{sluice.WithTimestampAssigner(m.as(0))})
				b := sluice.FromSourceWithWatermarks(env, "fast", fastGen, strategy,
					[]sluice.WatermarkOption[datagen.Record]{sluice.WithTimestampAssigner(m.as(1))})
				tag := func(r datagen.Record) datagen.Record { r.Split = 1; return r }
				s = sluice.Union("both", a, []sluice.Stream[datagen.Record]{sluice.Map(b, "tag", tag)})
				want = input(slow.Config())
				for _, r := range input(fastGen.Config()) {
					want = append(want, tag(r))
				}
			}
			out := &commitLog[datagen.Record]{}
			sluice.Sink(s, "sink", out.Sink(), sluice.Parallelism(1))
			x := start(t, env)
			advanceUntil(t, clk, 10*time.Millisecond, "the job to end", func() bool {
				select {
				case <-x.done:
					return true
				default:
					return false
				}
			})
			res, err := x.wait(t)
			if err != nil {
				t.Fatalf("Execute: %v", err)
			}
			if tc.fail && (inj.Fired() != 2 || res.Restarts != 2) {
				t.Fatalf("%d failures injected, %d restarts: want 2 of each", inj.Fired(), res.Restarts)
			}
			sameMultiset(t, "committed records", out.Committed(), want, func(r datagen.Record) string {
				return fmt.Sprint(r.Split, "/", r.Seq)
			})
			lead, at := m.lead()
			bound := bound
			if tc.fail {
				bound += rate * interval / time.Second * fast
			}
			t.Logf("largest lead of the fast split: %v (%s); bound %v", lead, at, bound)
			if tc.aligned && lead > bound {
				t.Fatalf("the fast split led by %v (%s), more than %v", lead, at, bound)
			}
			if !tc.aligned && lead <= bound {
				t.Fatalf("control: without alignment the fast split led by only %v, within %v: the test cannot tell", lead, bound)
			}
		})
	}
}

// plainSource is a source that cannot pause splits.
type plainSource struct{ *logSource[int] }

// TestWatermarkAlignmentRefused: alignment on a source whose readers
// cannot pause splits, and two sources of a group with different drifts,
// fail at plan time naming the source.
func TestWatermarkAlignmentRefused(t *testing.T) {
	t.Parallel()
	env := sluice.New(testConfig(t, 1))
	s := sluice.FromSourceWithWatermarks(env, "plain", sluice.Source[int](plainSource{newLogSource[int]()}),
		watermark.ForMonotonousTimestamps().WithAlignment("g", time.Second, 0), nil)
	sluice.Sink(s, "sink", newCollector[int]().Sink())
	_, err := env.Execute(context.Background())
	if err == nil || !strings.Contains(err.Error(), `source "plain"`) || !strings.Contains(err.Error(), "pause") {
		t.Fatalf("got %v, want a refusal naming source \"plain\"", err)
	}

	env = sluice.New(testConfig(t, 1))
	a := sluice.FromSourceWithWatermarks(env, "a", datagen.New(datagen.Config{RecordsPerSplit: 1}),
		watermark.ForMonotonousTimestamps().WithAlignment("g", time.Second, 0), nil)
	b := sluice.FromSourceWithWatermarks(env, "b", datagen.New(datagen.Config{RecordsPerSplit: 1}),
		watermark.ForMonotonousTimestamps().WithAlignment("g", 2*time.Second, 0), nil, sluice.UID("b"))
	sluice.Sink(a, "sa", newCollector[datagen.Record]().Sink())
	sluice.Sink(b, "sb", newCollector[datagen.Record]().Sink())
	_, err = env.Execute(context.Background())
	if err == nil || !strings.Contains(err.Error(), `source "b"`) || !strings.Contains(err.Error(), `"a"`) || !strings.Contains(err.Error(), "drift") {
		t.Fatalf("got %v, want a refusal naming sources \"b\" and \"a\" and the drift", err)
	}
}
