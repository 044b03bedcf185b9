package restart

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

var (
	t0      = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	errBoom = errors.New("task failed")
)

// step is one failure and the decision expected for it.
type step struct {
	at      time.Duration // failure time, after t0
	restart bool
	delay   time.Duration
}

func run(t *testing.T, s Strategy, steps []step) {
	t.Helper()
	for i, st := range steps {
		restart, delay := s.OnFailure(t0.Add(st.at), errBoom)
		if restart != st.restart || delay != st.delay {
			t.Fatalf("%v: failure %d at +%s: got (%v, %s), want (%v, %s)",
				s, i+1, st.at, restart, delay, st.restart, st.delay)
		}
	}
}

func seeded(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed)) }

func TestNoRestart(t *testing.T) {
	t.Parallel()
	run(t, NoRestart(), []step{{0, false, 0}, {time.Hour, false, 0}})
}

// Flink fixed-delay: at most `attempts` restarts over the job's life, however
// far apart the failures are.
func TestFixedDelayAttemptCap(t *testing.T) {
	t.Parallel()
	run(t, newFixedDelay(3, 10*time.Second), []step{
		{0, true, 10 * time.Second},
		{time.Minute, true, 10 * time.Second},
		{24 * time.Hour, true, 10 * time.Second},
		{48 * time.Hour, false, 0},
		{96 * time.Hour, false, 0},
	})
	run(t, newFixedDelay(0, time.Second), []step{{0, false, 0}})
	run(t, newFixedDelay(1, -time.Second), []step{{0, true, 0}, {time.Second, false, 0}})
}

// Restart unless more than maxFailures failures, the current one included,
// lie in the window [now-interval, now].
func TestFailureRateSlidingWindow(t *testing.T) {
	t.Parallel()
	const d = 5 * time.Second
	s := func() Strategy { return newFailureRate(2, time.Minute, d) }
	t.Run("burst", func(t *testing.T) {
		run(t, s(), []step{
			{0, true, d},                 // {0}
			{10 * time.Second, true, d},  // {0, 10}
			{50 * time.Second, false, 0}, // {0, 10, 50}: 3 > 2
		})
	})
	t.Run("window slides", func(t *testing.T) {
		run(t, s(), []step{
			{0, true, d},
			{10 * time.Second, true, d},
			{61 * time.Second, true, d},  // [1s, 61s]: the failure at 0 has left
			{71 * time.Second, true, d},  // [11s, 71s]: {61, 71}
			{80 * time.Second, false, 0}, // [20s, 80s]: {61, 71, 80}
		})
	})
	t.Run("window is inclusive", func(t *testing.T) {
		run(t, s(), []step{
			{0, true, d},
			{10 * time.Second, true, d},
			{61 * time.Second, true, d},
			{70 * time.Second, false, 0}, // [10s, 70s] still holds the failure at 10s
		})
	})
	t.Run("zero tolerance", func(t *testing.T) {
		run(t, newFailureRate(0, time.Minute, d), []step{{0, false, 0}})
	})
	t.Run("history stays bounded", func(t *testing.T) {
		fr := newFailureRate(2, time.Second, d).(*failureRate)
		for i := range 1000 {
			if ok, _ := fr.OnFailure(t0.Add(time.Duration(i)*time.Hour), errBoom); !ok {
				t.Fatalf("failure %d, an hour after the previous, refused", i)
			}
		}
		if len(fr.failures) > 3 {
			t.Fatalf("kept %d failure times", len(fr.failures))
		}
	})
}

func TestExponentialGrowthAndCap(t *testing.T) {
	t.Parallel()
	s := newExponential(exponentialConfig{
		Initial: time.Second, Max: 10 * time.Second, Jitter: -1, // no jitter
	})
	run(t, s, []step{
		{0, true, 1 * time.Second},                 // back at 1s
		{2 * time.Second, true, 2 * time.Second},   // back at 4s
		{5 * time.Second, true, 4 * time.Second},   // back at 9s
		{10 * time.Second, true, 8 * time.Second},  // back at 18s
		{20 * time.Second, true, 10 * time.Second}, // capped
		{31 * time.Second, true, 10 * time.Second},
	})

	// A huge multiplier reaches the cap without overflowing.
	s = newExponential(exponentialConfig{
		Initial: time.Second, Max: math.MaxInt64, Multiplier: 1000, Jitter: -1,
	})
	var prev time.Duration
	for i := range 12 {
		ok, d := s.OnFailure(t0.Add(time.Duration(i)*time.Second), errBoom)
		if !ok || d < prev || d <= 0 {
			t.Fatalf("failure %d: (%v, %s) after %s", i, ok, d, prev)
		}
		prev = d
	}
	if prev != math.MaxInt64 {
		t.Fatalf("did not reach the cap: %s", prev)
	}
}

// After ResetAfter without a failure, measured from when the job came back,
// the backoff starts over from Initial, and so does the attempt count.
func TestExponentialResetAfterQuietPeriod(t *testing.T) {
	t.Parallel()
	cfg := exponentialConfig{Initial: time.Second, Max: time.Minute, Jitter: -1, ResetAfter: time.Hour}
	// Back at 1s, then at 2s+2s = 4s.
	prefix := []step{{0, true, time.Second}, {2 * time.Second, true, 2 * time.Second}}
	run(t, newExponential(cfg), append(prefix,
		step{4*time.Second + time.Hour - time.Nanosecond, true, 4 * time.Second}, // just short of the quiet period
	))
	run(t, newExponential(cfg), append(prefix,
		step{4*time.Second + time.Hour, true, time.Second}, // a full hour up: reset
		step{4*time.Second + time.Hour + 2*time.Second, true, 2 * time.Second},
	))

	never := cfg
	never.ResetAfter = -1
	run(t, newExponential(never), append(prefix,
		step{1000 * time.Hour, true, 4 * time.Second},
	))

	capped := cfg
	capped.MaxAttempts = 2
	run(t, newExponential(capped), []step{
		{0, true, time.Second},
		{2 * time.Second, true, 2 * time.Second},
		{5 * time.Second, false, 0}, // third restart without a quiet period
	})
	run(t, newExponential(capped), []step{
		{0, true, time.Second},
		{2 * time.Second, true, 2 * time.Second},
		{4*time.Second + time.Hour, true, time.Second}, // reset: attempts start over
		{4*time.Second + time.Hour + 2*time.Second, true, 2 * time.Second},
		{4*time.Second + time.Hour + 5*time.Second, false, 0},
	})
}

func TestExponentialJitterBounds(t *testing.T) {
	t.Parallel()
	// Multiplier 1 keeps the base at 10s, so every draw has the same bounds.
	s := newExponential(exponentialConfig{
		Initial: 10 * time.Second, Max: time.Hour, Multiplier: 1, Jitter: 0.5, Rand: seeded(1),
	})
	var lo, hi, sum time.Duration = time.Hour, 0, 0
	const n = 2000
	for i := range n {
		_, d := s.OnFailure(t0.Add(time.Duration(i)*time.Minute), errBoom)
		if d < 5*time.Second || d >= 15*time.Second {
			t.Fatalf("draw %d: %s outside [5s, 15s)", i, d)
		}
		lo, hi, sum = min(lo, d), max(hi, d), sum+d
	}
	// The draws spread over the range, around the base.
	if lo > 6*time.Second || hi < 14*time.Second {
		t.Fatalf("draws span only [%s, %s]", lo, hi)
	}
	if mean := sum / n; mean < 9500*time.Millisecond || mean > 10500*time.Millisecond {
		t.Fatalf("mean %s, want about 10s", mean)
	}

	// Jitter never takes a delay above Max.
	s = newExponential(exponentialConfig{
		Initial: 10 * time.Second, Max: 10 * time.Second, Jitter: 0.5, Rand: seeded(2),
	})
	for i := range 200 {
		if _, d := s.OnFailure(t0.Add(time.Duration(i)*time.Minute), errBoom); d < 5*time.Second || d > 10*time.Second {
			t.Fatalf("draw %d at the cap: %s outside [5s, 10s]", i, d)
		}
	}

	// Default jitter is ±10%.
	s = newExponential(exponentialConfig{Rand: seeded(3)})
	if _, d := s.OnFailure(t0, errBoom); d < 900*time.Millisecond || d >= 1100*time.Millisecond {
		t.Fatalf("default first delay %s outside [0.9s, 1.1s)", d)
	}
}

// The same seed gives the same schedule, so a failure seen in a test or a
// demo run can be replayed.
func TestExponentialDeterministic(t *testing.T) {
	t.Parallel()
	schedule := func(seed uint64) []time.Duration {
		s := newExponential(exponentialConfig{Rand: seeded(seed)})
		var out []time.Duration
		for i := range 8 {
			_, d := s.OnFailure(t0.Add(time.Duration(i)*time.Second), errBoom)
			out = append(out, d)
		}
		return out
	}
	a, b, c := schedule(42), schedule(42), schedule(43)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("same seed, different schedules:\n%v\n%v", a, b)
	}
	if fmt.Sprint(a) == fmt.Sprint(c) {
		t.Fatalf("different seeds, same schedule %v", a)
	}
}

func TestUnrecoverable(t *testing.T) {
	t.Parallel()
	if Unrecoverable(nil) != nil {
		t.Fatal("Unrecoverable(nil) is not nil")
	}
	cause := errors.New("savepoint has no state for operator counter")
	err := fmt.Errorf("restore: %w", Unrecoverable(cause))
	if !IsUnrecoverable(err) || !errors.Is(err, cause) || IsUnrecoverable(cause) {
		t.Fatalf("IsUnrecoverable/Is broken for %v", err)
	}
	for _, s := range []Strategy{
		newFixedDelay(5, time.Second),
		newFailureRate(5, time.Minute, time.Second),
		newExponential(exponentialConfig{Rand: seeded(1)}),
		NoRestart(),
	} {
		if ok, d := s.OnFailure(t0, err); ok || d != 0 {
			t.Errorf("%v restarts after an unrecoverable error: (%v, %s)", s, ok, d)
		}
	}
}

// Strategies are safe for concurrent use (run with -race).
func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	s := newFixedDelay(100, time.Second)
	var wg sync.WaitGroup
	var mu sync.Mutex
	restarts := 0
	for i := range 200 {
		wg.Go(func() {
			if ok, _ := s.OnFailure(t0.Add(time.Duration(i)), errBoom); ok {
				mu.Lock()
				restarts++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if restarts != 100 {
		t.Fatalf("%d restarts, want exactly 100", restarts)
	}
	e := newExponential(exponentialConfig{Rand: seeded(1)})
	for i := range 50 {
		wg.Go(func() { e.OnFailure(t0.Add(time.Duration(i)), errBoom) })
	}
	wg.Wait()
}
