// Package restart decides whether and when a failed job attempt is restarted
// (docs/design.md §5): the restart strategies of Flink (fixed delay,
// exponential delay with jitter, failure rate, none).
//
// A user chooses one with a Policy value, a plain struct whose zero fields
// mean their defaults:
//
//	sluice.Config{Restart: restart.FixedDelay{Attempts: 10, Delay: 5 * time.Second}}
//
// or from a string, for command lines and configuration files, with Parse:
//
//	p, err := restart.Parse("exponential-delay:max-backoff=30s,jitter=0.2")
//
// A Policy makes a Strategy for each job run: a small deterministic state
// machine. A strategy never reads the clock or sleeps: the caller passes the
// failure time in and waits out the returned delay on its own (injected)
// clock, so every schedule can be tested with explicit times.
package restart

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// Strategy decides about restarts after failures. Implementations are safe
// for concurrent use, though a job master normally calls them from one
// goroutine.
type Strategy interface {
	// OnFailure records a failure of the job at now and returns whether to
	// restart it and after what delay. Once it returns false the job has
	// failed for good; later calls keep returning false only where the
	// strategy's history says so (see each strategy).
	OnFailure(now time.Time, err error) (restart bool, delay time.Duration)
}

// unrecoverableError marks errors that no strategy restarts after.
type unrecoverableError struct{ err error }

func (u *unrecoverableError) Error() string { return "unrecoverable: " + u.err.Error() }
func (u *unrecoverableError) Unwrap() error { return u.err }

// Unrecoverable marks err so that every strategy refuses to restart after
// it, like Flink's SuppressRestartsException: for failures a restart cannot
// fix, such as a savepoint that does not match the job or an invalid
// configuration, where restarting would only loop. It returns nil for nil.
func Unrecoverable(err error) error {
	if err == nil {
		return nil
	}
	return &unrecoverableError{err: err}
}

// IsUnrecoverable reports whether err, or an error it wraps, was marked with
// Unrecoverable.
func IsUnrecoverable(err error) bool {
	var u *unrecoverableError
	return errors.As(err, &u)
}

// NoRestart returns the strategy that never restarts: the first failure
// fails the job.
func NoRestart() Strategy { return noRestart{} }

type noRestart struct{}

func (noRestart) OnFailure(time.Time, error) (bool, time.Duration) { return false, 0 }
func (noRestart) String() string                                   { return "none" }

// newFixedDelay returns Flink's fixed-delay strategy: restart after delay, at
// most attempts times over the life of the job (the count never resets).
// attempts <= 0 never restarts; a negative delay counts as zero.
func newFixedDelay(attempts int, delay time.Duration) Strategy {
	return &fixedDelay{attempts: attempts, delay: max(delay, 0)}
}

type fixedDelay struct {
	attempts int
	delay    time.Duration

	mu       sync.Mutex
	restarts int
}

func (f *fixedDelay) OnFailure(_ time.Time, err error) (bool, time.Duration) {
	if IsUnrecoverable(err) {
		return false, 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.restarts >= f.attempts {
		return false, 0
	}
	f.restarts++
	return true, f.delay
}

func (f *fixedDelay) String() string {
	return fmt.Sprintf("fixed-delay(attempts=%d, delay=%s)", f.attempts, f.delay)
}

// newFailureRate returns Flink's failure-rate strategy: restart after delay
// unless more than maxFailures failures, this one included, fall within the
// sliding window of the last interval (both ends inclusive). So the job
// tolerates maxFailures failures per interval and fails on the next one.
//
// Flink's FailureRateRestartBackoffTimeStrategy counts the current failure
// against max-failures-per-interval with ">=", so it tolerates one failure
// fewer than its name says; here maxFailures means what it says.
// maxFailures <= 0 never restarts; a negative delay counts as zero.
func newFailureRate(maxFailures int, interval, delay time.Duration) Strategy {
	return &failureRate{maxFailures: maxFailures, interval: interval, delay: max(delay, 0)}
}

type failureRate struct {
	maxFailures int
	interval    time.Duration
	delay       time.Duration

	mu       sync.Mutex
	failures []time.Time // the most recent failures, oldest first, at most maxFailures+1
}

func (f *failureRate) OnFailure(now time.Time, err error) (bool, time.Duration) {
	if IsUnrecoverable(err) {
		return false, 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures = append(f.failures, now)
	// Only the last maxFailures+1 failures can decide; keep no more, so a
	// long-running job's history stays bounded.
	if extra := len(f.failures) - (max(f.maxFailures, 0) + 1); extra > 0 {
		f.failures = append(f.failures[:0], f.failures[extra:]...)
	}
	inWindow := 0
	for _, t := range f.failures {
		if now.Sub(t) <= f.interval {
			inWindow++
		}
	}
	if inWindow > f.maxFailures {
		return false, 0
	}
	return true, f.delay
}

func (f *failureRate) String() string {
	return fmt.Sprintf("failure-rate(max-failures=%d, interval=%s, delay=%s)", f.maxFailures, f.interval, f.delay)
}

// exponentialConfig configures newExponential. The zero value of a
// field means its default.
type exponentialConfig struct {
	// Initial is the delay before the first restart, and again after a
	// reset. Default 1s (as Flink).
	Initial time.Duration
	// Max caps the delay, jitter included. Default 1m; Flink's is 5m, but a
	// stream job that is down for 5 minutes builds up lag that takes much
	// longer to work off, and a restart costs little, so Sluice retries
	// more often.
	Max time.Duration
	// Multiplier grows the delay after each restart. Default 2. Must be
	// at least 1.
	Multiplier float64
	// Jitter spreads each delay uniformly over ±Jitter of itself, so that
	// many jobs failing together (a broker outage) do not all come back
	// at the same instant. Default 0.1; at most 1; negative means none.
	Jitter float64
	// ResetAfter is the quiet period after which the delay starts again
	// from Initial (and the attempt count from zero): a job that ran this
	// long since it was last restarted is considered healthy. It is
	// measured from the end of the last delay, when the job came back,
	// not from the failure. Default 1h (as Flink); negative means never.
	ResetAfter time.Duration
	// MaxAttempts caps the restarts between resets; 0 (default) means
	// unlimited, as Flink's attempts-before-reset-backoff.
	MaxAttempts int
	// Rand draws the jitter. Default: a generator seeded at random. Pass
	// rand.New(rand.NewPCG(seed, seed)) for a reproducible schedule.
	Rand *rand.Rand
}

// Defaults of exponentialConfig.
const (
	DefaultInitialBackoff = time.Second
	DefaultMaxBackoff     = time.Minute
	DefaultMultiplier     = 2.0
	DefaultJitter         = 0.1
	DefaultResetAfter     = time.Hour
)

// withDefaults returns c with zero fields set to their defaults and
// "none" values (negative) set to zero.
func (c exponentialConfig) withDefaults() exponentialConfig {
	if c.Initial == 0 {
		c.Initial = DefaultInitialBackoff
	}
	if c.Max == 0 {
		c.Max = DefaultMaxBackoff
	}
	if c.Multiplier == 0 {
		c.Multiplier = DefaultMultiplier
	}
	switch {
	case c.Jitter == 0:
		c.Jitter = DefaultJitter
	case c.Jitter < 0:
		c.Jitter = 0
	}
	switch {
	case c.ResetAfter == 0:
		c.ResetAfter = DefaultResetAfter
	case c.ResetAfter < 0:
		c.ResetAfter = 0 // never
	}
	if c.Rand == nil {
		c.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	return c
}

// newExponential returns Flink's exponential-delay strategy: the first
// restart waits Initial, each further one Multiplier times longer, up to
// Max, each with ±Jitter; after ResetAfter without a failure it starts over
// from Initial. Out-of-range settings are clamped (Multiplier below 1 to 1,
// Jitter above 1 to 1, Max below Initial to Initial); ExponentialDelay.Validate reports
// them instead.
func newExponential(cfg exponentialConfig) Strategy {
	cfg = cfg.withDefaults()
	cfg.Initial = max(cfg.Initial, 0)
	cfg.Max = max(cfg.Max, cfg.Initial)
	cfg.Multiplier = max(cfg.Multiplier, 1)
	cfg.Jitter = min(cfg.Jitter, 1)
	return &exponential{cfg: cfg, next: cfg.Initial}
}

type exponential struct {
	cfg exponentialConfig

	mu       sync.Mutex
	next     time.Duration // the delay before jitter for the next restart
	attempts int           // restarts since the last reset
	back     time.Time     // when the job came back from the last restart
	started  bool          // a restart has happened
}

func (e *exponential) OnFailure(now time.Time, err error) (bool, time.Duration) {
	if IsUnrecoverable(err) {
		return false, 0
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.started && e.cfg.ResetAfter > 0 && now.Sub(e.back) >= e.cfg.ResetAfter {
		e.next, e.attempts = e.cfg.Initial, 0
	}
	if e.cfg.MaxAttempts > 0 && e.attempts >= e.cfg.MaxAttempts {
		return false, 0
	}
	base := e.next
	delay := base
	if j := e.cfg.Jitter; j > 0 {
		// Uniform over [base·(1-j), base·(1+j)), then capped: Max is a
		// hard bound users can plan with.
		delay = capped(float64(base)*(1+j*(2*e.cfg.Rand.Float64()-1)), e.cfg.Max)
	}
	e.next = capped(float64(base)*e.cfg.Multiplier, e.cfg.Max)
	e.attempts++
	e.back = now.Add(delay)
	e.started = true
	return true, delay
}

// capped converts d to a Duration in [0, limit]. The arithmetic is done in
// float64 so that a large multiplier cannot overflow time.Duration before
// the cap applies; the comparison is too, because float64(limit) may round
// above the largest Duration.
func capped(d float64, limit time.Duration) time.Duration {
	switch {
	case d <= 0:
		return 0
	case d >= float64(limit):
		return limit
	}
	return time.Duration(d)
}

func (e *exponential) String() string {
	c := e.cfg
	return fmt.Sprintf("exponential-delay(initial=%s, max=%s, multiplier=%g, jitter=%g, reset-after=%s, max-attempts=%d)",
		c.Initial, c.Max, c.Multiplier, c.Jitter, c.ResetAfter, c.MaxAttempts)
}
