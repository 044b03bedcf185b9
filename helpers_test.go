package sluice_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/clock"
	"github.com/sluicehq/sluice/codec"
)

// waitTimeout bounds every wait of these tests. The tests never sleep to let
// something happen; they wait for the thing itself, and this is only the
// point at which a hang is declared a failure.
const waitTimeout = 30 * time.Second

// t0 is the start of every fake clock.
var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// quietLogger keeps expected restart warnings out of test output unless
// SLUICE_TEST_LOG is set.
func quietLogger() *slog.Logger {
	if os.Getenv("SLUICE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// logBuffer is an io.Writer for a slog handler that the job's goroutines
// write to while the test reads it.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// ctxTimeout returns a context that ends the test's job if it hangs.
func ctxTimeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// collector is a sink that keeps every record it receives, in arrival
// order, and lets a test wait for a number of them.
type collector[T any] struct {
	mu      sync.Mutex
	recs    []T
	changed chan struct{} // closed and replaced on every record
}

func newCollector[T any]() *collector[T] {
	return &collector[T]{changed: make(chan struct{})}
}

// Sink returns the collector as a SinkFunc.
func (c *collector[T]) Sink() sluice.SinkFunc[T] {
	return func(v T) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.recs = append(c.recs, v)
		close(c.changed)
		c.changed = make(chan struct{})
		return nil
	}
}

// Records returns a copy of what was received so far.
func (c *collector[T]) Records() []T {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]T(nil), c.recs...)
}

// WaitFor waits until ok holds for the records received so far.
func (c *collector[T]) WaitFor(t *testing.T, what string, ok func([]T) bool) []T {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		recs, ch := append([]T(nil), c.recs...), c.changed
		c.mu.Unlock()
		if ok(recs) {
			return recs
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s; sink has %d records: %v", what, len(recs), recs)
		}
	}
}

// WaitLen waits until at least n records were received.
func (c *collector[T]) WaitLen(t *testing.T, n int) []T {
	t.Helper()
	return c.WaitFor(t, fmt.Sprintf("%d records", n), func(r []T) bool { return len(r) >= n })
}

// logSource is a replayable source of one split whose records the test
// appends as the job runs, like a Kafka partition with one reader: the
// split's state is the position of the next record, so a restored reader
// continues there and a fresh one replays from the start. Close ends the
// input after the records appended so far. Use it at source parallelism 1.
type logSource[T any] struct {
	mu     sync.Mutex
	log    []T
	closed bool
	// avail holds a wake-up for the reader once records were appended.
	avail chan struct{}
	// idleAt is the position at which a reader last went idle (called
	// Available after a poll found nothing), -1 before that; idle is
	// closed and replaced whenever it changes.
	idleAt int
	idle   chan struct{}
	// batch is the most records one Poll emits (default 64).
	batch int
}

func newLogSource[T any]() *logSource[T] {
	return &logSource[T]{avail: make(chan struct{}, 1), idleAt: -1, idle: make(chan struct{}), batch: 64}
}

// Append adds records to the log and wakes the reader.
func (s *logSource[T]) Append(vs ...T) {
	s.mu.Lock()
	s.log = append(s.log, vs...)
	s.mu.Unlock()
	s.wake()
}

// Close ends the input after the records appended so far.
func (s *logSource[T]) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.wake()
}

func (s *logSource[T]) wake() {
	select {
	case s.avail <- struct{}{}:
	default:
	}
}

// WaitIdle waits until a reader, having emitted the first pos records, found
// nothing more and asked for Available: the source task has then finished
// the unit of work that emitted them (afterWork ran: the buffer timeout
// decided whether to flush).
func (s *logSource[T]) WaitIdle(t *testing.T, pos int) {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		at, ch := s.idleAt, s.idle
		s.mu.Unlock()
		if at >= pos {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("source did not go idle at position %d (last idle at %d)", pos, at)
		}
	}
}

func (s *logSource[T]) Splits(context.Context) ([]sluice.Split, error) {
	return []sluice.Split{{ID: "log"}}, nil
}

func (s *logSource[T]) NewReader(context.Context, *sluice.OperatorContext) (sluice.SourceReader[T], error) {
	return &logReader[T]{s: s}, nil
}

type logReader[T any] struct {
	s     *logSource[T]
	owned bool
	pos   int
}

func (r *logReader[T]) AddSplits(_ context.Context, splits []sluice.Split) error {
	for _, sp := range splits {
		if sp.ID != "log" {
			return fmt.Errorf("unknown split %q", sp.ID)
		}
		r.owned = true
		if len(sp.State) > 0 {
			v, n := binary.Uvarint(sp.State)
			if n <= 0 {
				return errors.New("corrupt log position")
			}
			r.pos = int(v)
		}
	}
	return nil
}

func (r *logReader[T]) Poll(_ context.Context, out sluice.Emitter[T]) (sluice.PollStatus, error) {
	if !r.owned {
		return sluice.EndOfInput, nil
	}
	s := r.s
	s.mu.Lock()
	end := min(len(s.log), r.pos+s.batch)
	recs := s.log[r.pos:end]
	closed := s.closed && end == len(s.log)
	s.mu.Unlock()
	for _, v := range recs {
		if err := out.Emit(v); err != nil {
			return sluice.MoreAvailable, err
		}
		r.pos++
	}
	switch {
	case len(recs) > 0:
		return sluice.MoreAvailable, nil
	case closed:
		return sluice.EndOfInput, nil
	}
	return sluice.NothingAvailable, nil
}

func (r *logReader[T]) Available() <-chan struct{} {
	s := r.s
	s.mu.Lock()
	if s.idleAt != r.pos {
		s.idleAt = r.pos
		close(s.idle)
		s.idle = make(chan struct{})
	}
	s.mu.Unlock()
	return s.avail
}

func (r *logReader[T]) SnapshotSplits(context.Context, int64) ([]sluice.Split, error) {
	if !r.owned {
		return nil, nil
	}
	return []sluice.Split{{ID: "log", State: binary.AppendUvarint(nil, uint64(r.pos))}}, nil
}

func (r *logReader[T]) NotifyCheckpointComplete(context.Context, int64) error { return nil }
func (r *logReader[T]) Close(context.Context) error                           { return nil }

// subtaskRecord is a record as seen by one sink subtask.
type subtaskRecord[T any] struct {
	Subtask int
	V       T
}

// subtaskSink returns a sink that records which subtask received each
// record. SinkFunc does not tell the subtask, so it is built on the
// two-phase-commit framework, whose committer is made per subtask; records
// are noted on Write (delivery, not commit, is what these tests check).
func subtaskSink[T any](c *collector[subtaskRecord[T]]) sluice.SinkProvider[T] {
	add := c.Sink()
	return sluice.TwoPhaseCommitSink(sluice.TwoPhaseCommitConfig[T, int]{
		New: func(_ context.Context, oc *sluice.OperatorContext) (sluice.TwoPhaseCommitter[T, int], error) {
			return &noteCommitter[T]{sub: oc.Subtask, add: add}, nil
		},
		TxnCodec: codec.Int,
	})
}

type noteCommitter[T any] struct {
	sub int
	add sluice.SinkFunc[subtaskRecord[T]]
	n   int
}

func (c *noteCommitter[T]) BeginTransaction(context.Context) (int, error) { c.n++; return c.n, nil }
func (c *noteCommitter[T]) Write(_ int, v T) error {
	return c.add(subtaskRecord[T]{Subtask: c.sub, V: v})
}
func (c *noteCommitter[T]) PreCommit(context.Context, int) error        { return nil }
func (c *noteCommitter[T]) Commit(context.Context, int) error           { return nil }
func (c *noteCommitter[T]) Abort(context.Context, int) error            { return nil }
func (c *noteCommitter[T]) RecoverAndCommit(context.Context, int) error { return nil }
func (c *noteCommitter[T]) CleanUp(context.Context, []int) error        { return nil }

// execution is a job running in the background; wait returns its outcome.
type execution struct {
	done chan struct{}
	res  *sluice.Result
	err  error
}

// start runs env.Execute in the background.
func start(t *testing.T, env *sluice.Environment) *execution {
	t.Helper()
	ctx := ctxTimeout(t)
	x := &execution{done: make(chan struct{})}
	go func() {
		defer close(x.done)
		x.res, x.err = env.Execute(ctx)
	}()
	t.Cleanup(func() {
		// A test that failed half-way must not leave its job running.
		env.Stop()
		<-x.done
	})
	return x
}

func (x *execution) wait(t *testing.T) (*sluice.Result, error) {
	t.Helper()
	select {
	case <-x.done:
		return x.res, x.err
	case <-time.After(2 * waitTimeout):
		t.Fatal("job did not end")
		return nil, nil
	}
}

// until polls cond until it holds, failing the test after waitTimeout. It
// is for state that has no event to wait on (job counters); it yields
// between polls and never decides anything by elapsed time.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for i := 0; !cond(); i++ {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		if i < 100 {
			runtime.Gosched()
		} else {
			time.Sleep(100 * time.Microsecond)
		}
	}
}

// advanceUntil advances the fake clock by step until cond holds, for waits
// whose outcome does not depend on how far the clock went (a restart delay
// that must have passed). Where it does, use waitTimers or checkpointOnce.
func advanceUntil(t *testing.T, clk *clock.Fake, step time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out advancing the clock until %s", what)
		}
		clk.Advance(step)
		for i := 0; i < 100 && !cond(); i++ {
			runtime.Gosched()
		}
	}
}

// lastTriggered returns the id of the newest checkpoint the current
// attempt's coordinator triggered, 0 if none.
func lastTriggered(env *sluice.Environment) int64 {
	st := env.Status().Checkpoints
	if st == nil || len(st.History) == 0 {
		return 0
	}
	return st.History[len(st.History)-1].ID
}

// checkpointOnce advances the fake clock by one checkpoint interval, which
// triggers one periodic checkpoint when none is pending, and waits until
// that checkpoint completed or failed; it reports whether it completed. The
// clock does not move while the checkpoint runs, so it cannot expire.
//
// The job master arms its timer with a delay computed from a reading of the
// clock (NewTimer(deadline.Sub(Now()))): if the test advances the clock
// between the two, the deadline slips by the advance. So while no new
// checkpoint shows up, the clock is nudged forward a millisecond at a time
// (harmless: nothing is pending).
func checkpointOnce(t *testing.T, env *sluice.Environment, clk *clock.Fake, interval time.Duration) bool {
	t.Helper()
	st := env.Status()
	done, failed := st.CheckpointsCompleted, st.CheckpointsFailed
	before := lastTriggered(env)
	clk.Advance(interval)
	until(t, "a checkpoint to be triggered", func() bool {
		if lastTriggered(env) > before {
			return true
		}
		st := env.Status()
		if st.CheckpointsCompleted+st.CheckpointsFailed > done+failed {
			return true // triggered, ended, and a restart reset the history
		}
		clk.Advance(time.Millisecond)
		return false
	})
	until(t, "the checkpoint to end", func() bool {
		st := env.Status()
		return st.CheckpointsCompleted+st.CheckpointsFailed > done+failed
	})
	return env.Status().CheckpointsCompleted > done
}

// waitTimers waits until n timers of the fake clock are pending: the tasks
// (and the job master) that the test expects to be waiting on the clock
// have armed their timers, with deadlines computed from the current time,
// so that an Advance now fires exactly those that are due. (A timer armed
// while the clock moves can slip by the move; see checkpointOnce.)
func waitTimers(t *testing.T, clk *clock.Fake, n int) {
	t.Helper()
	until(t, fmt.Sprintf("%d pending clock timers", n), func() bool { return clk.Pending() == n })
}
