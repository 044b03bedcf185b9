package queries

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/clock"
	"github.com/sluicehq/sluice/internal/nexmark"
	"github.com/sluicehq/sluice/restart"
)

// TestQ12 runs q12 on the job's injected fake clock, in a synctest bubble:
// synctest.Wait returns once every goroutine of the job is blocked, so the
// window operator has taken every appended bid before the test moves the
// clock, and a bid's window is the one the test put it in.
func TestQ12(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.UnixMilli(t0) // a multiple of 10 s
		clk := clock.NewFake(start)
		env := sluice.New(sluice.Config{
			JobName: "q12", Parallelism: 2, CheckpointDir: t.TempDir(), Clock: clk,
			BufferTimeout: sluice.FlushAlways, Checkpoint: checkpoint.Config{Interval: -1}, Restart: restart.None{},
		})
		src := &logEvents{avail: make(chan struct{}, 1)}
		out := &Out{Collect: true}
		q, _ := Lookup("q12")
		q.Build(env, sluice.FromSource(env, "log", src), out)
		done := make(chan error, 1)
		go func() {
			_, err := env.Execute(context.Background())
			done <- err
		}()
		// Processing time decides, not the bids' event times.
		src.append(bidAt(1, 1001, 5, 999_999, "Apple", urlA, ""), bidAt(2, 1001, 6, 0, "Apple", urlA, ""), bidAt(3, 1002, 7, 0, "Apple", urlA, ""))
		synctest.Wait()
		clk.Advance(10 * time.Second) // fires [0 s, 10 s)
		synctest.Wait()
		src.append(bidAt(1, 1001, 5, 0, "Apple", urlA, ""))
		synctest.Wait()
		clk.Advance(5 * time.Second)
		src.append(bidAt(1, 1003, 5, 0, "Apple", urlA, ""), bidAt(1, 1003, 5, 0, "Apple", urlA, ""))
		synctest.Wait()
		clk.Advance(5 * time.Second) // fires [10 s, 20 s)
		synctest.Wait()
		src.append(bidAt(1, 1004, 5, 0, "Apple", urlA, "")) // [20 s, 30 s) is still open at the end: not fired
		synctest.Wait()
		src.close()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		checkRows(t, "q12", out.Rows(), []string{
			"1001,2,2026-01-01 00:00:00.000,2026-01-01 00:00:10.000",
			"1002,1,2026-01-01 00:00:00.000,2026-01-01 00:00:10.000",
			"1001,1,2026-01-01 00:00:10.000,2026-01-01 00:00:20.000",
			"1003,2,2026-01-01 00:00:10.000,2026-01-01 00:00:20.000",
		})
	})
}

// logEvents is an unbounded source of one split that emits what the test
// appends, until close.
type logEvents struct {
	mu     sync.Mutex
	log    []nexmark.Event
	closed bool
	avail  chan struct{}
}

func (s *logEvents) append(evs ...nexmark.Event) {
	s.mu.Lock()
	s.log = append(s.log, evs...)
	s.mu.Unlock()
	s.wake()
}

func (s *logEvents) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.wake()
}

func (s *logEvents) wake() {
	select {
	case s.avail <- struct{}{}:
	default:
	}
}

func (s *logEvents) Splits(context.Context) ([]sluice.Split, error) {
	return []sluice.Split{{ID: "log"}}, nil
}

func (s *logEvents) NewReader(context.Context, *sluice.OperatorContext) (sluice.SourceReader[nexmark.Event], error) {
	return &logReader{s: s}, nil
}

type logReader struct {
	s     *logEvents
	pos   int
	owned bool
}

func (r *logReader) AddSplits(_ context.Context, splits []sluice.Split) error {
	for _, sp := range splits {
		r.owned = true
		if sp.State != nil {
			n, err := strconv.Atoi(string(sp.State))
			if err != nil {
				return err
			}
			r.pos = n
		}
	}
	return nil
}

func (r *logReader) Poll(_ context.Context, out sluice.Emitter[nexmark.Event]) (sluice.PollStatus, error) {
	if !r.owned {
		return sluice.EndOfInput, nil
	}
	r.s.mu.Lock()
	evs, closed := r.s.log[r.pos:], r.s.closed
	r.s.mu.Unlock()
	for _, ev := range evs {
		if err := out.Emit(ev); err != nil {
			return 0, err
		}
		r.pos++
	}
	switch {
	case len(evs) > 0:
		return sluice.MoreAvailable, nil
	case closed:
		return sluice.EndOfInput, nil
	}
	return sluice.NothingAvailable, nil
}

func (r *logReader) Available() <-chan struct{} { return r.s.avail }

func (r *logReader) SnapshotSplits(context.Context, int64) ([]sluice.Split, error) {
	if !r.owned {
		return nil, nil
	}
	return []sluice.Split{{ID: "log", State: []byte(strconv.Itoa(r.pos))}}, nil
}

func (r *logReader) NotifyCheckpointComplete(context.Context, int64) error { return nil }
func (r *logReader) Close(context.Context) error                           { return nil }
