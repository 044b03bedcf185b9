package restart

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// The strategy names of Config.Strategy, as in Flink's restart-strategy.type.
const (
	StrategyFixedDelay       = "fixed-delay"
	StrategyExponentialDelay = "exponential-delay"
	StrategyFailureRate      = "failure-rate"
	StrategyNone             = "none"
)

// Defaults of Config not shared with ExponentialConfig.
const (
	// DefaultStrategy is exponential-delay, Flink's default for jobs with
	// checkpointing since 1.19: it restarts quickly after a one-off failure
	// and backs off when a dependency is down.
	DefaultStrategy = StrategyExponentialDelay
	// DefaultAttempts is fixed-delay's restart budget. Flink's default is
	// 1, which turns the second failure in a job's lifetime into an
	// outage; 3 mirrors the default tolerance of 3 checkpoint failures.
	DefaultAttempts = 3
	// DefaultDelay is the delay of fixed-delay and failure-rate (Flink: 1s).
	DefaultDelay = time.Second
	// DefaultMaxFailures is failure-rate's tolerance per interval. Flink's
	// default is 1 (which, with its off-by-one, means none); 3 per minute
	// tolerates a short burst.
	DefaultMaxFailures = 3
	// DefaultFailureInterval is failure-rate's window (Flink: 1 min).
	DefaultFailureInterval = time.Minute
)

// Config configures the restart strategy of a job. The zero value of a field
// means its default; only the fields of the chosen Strategy are used and
// validated. Errors name the configuration key of the field, given in
// brackets below.
type Config struct {
	// Strategy is fixed-delay, exponential-delay, failure-rate or none
	// [restart.strategy]. Default exponential-delay.
	Strategy string

	// Attempts is how many times fixed-delay restarts a job over its
	// lifetime [restart.attempts]. Default 3. Use none for no restarts.
	Attempts int
	// Delay is the wait before a restart for fixed-delay and failure-rate
	// [restart.delay]. Default 1s; negative means no wait.
	Delay time.Duration

	// InitialBackoff is exponential-delay's first delay
	// [restart.initial-backoff]. Default 1s.
	InitialBackoff time.Duration
	// MaxBackoff caps exponential-delay's delay [restart.max-backoff].
	// Default 1m (Flink: 5m; see ExponentialConfig.Max).
	MaxBackoff time.Duration
	// BackoffMultiplier grows exponential-delay's delay
	// [restart.backoff-multiplier]. Default 2; at least 1.
	BackoffMultiplier float64
	// Jitter is exponential-delay's relative jitter [restart.jitter].
	// Default 0.1; at most 1; negative means none.
	Jitter float64
	// ResetBackoffAfter is the quiet period after which exponential-delay
	// starts over [restart.reset-backoff-after]. Default 1h; negative means
	// never.
	ResetBackoffAfter time.Duration
	// MaxAttempts caps exponential-delay's restarts between resets
	// [restart.max-attempts]. Default 0, unlimited.
	MaxAttempts int

	// MaxFailures is how many failures per interval failure-rate tolerates
	// [restart.max-failures-per-interval]. Default 3.
	MaxFailures int
	// FailureInterval is failure-rate's sliding window
	// [restart.failure-rate-interval]. Default 1m.
	FailureInterval time.Duration
}

// WithDefaults returns c with every zero field set to its default, for
// display ("effective configuration") and for Build.
func (c Config) WithDefaults() Config {
	if c.Strategy == "" {
		c.Strategy = DefaultStrategy
	}
	if c.Attempts == 0 {
		c.Attempts = DefaultAttempts
	}
	if c.Delay == 0 {
		c.Delay = DefaultDelay
	}
	if c.InitialBackoff == 0 {
		c.InitialBackoff = DefaultInitialBackoff
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.BackoffMultiplier == 0 {
		c.BackoffMultiplier = DefaultMultiplier
	}
	if c.Jitter == 0 {
		c.Jitter = DefaultJitter
	}
	if c.ResetBackoffAfter == 0 {
		c.ResetBackoffAfter = DefaultResetAfter
	}
	if c.MaxFailures == 0 {
		c.MaxFailures = DefaultMaxFailures
	}
	if c.FailureInterval == 0 {
		c.FailureInterval = DefaultFailureInterval
	}
	return c
}

// Validate checks the fields the chosen strategy uses, after defaults, and
// returns an error naming the first offending key, e.g.
// "restart.max-backoff: must be >= restart.initial-backoff (1s), got 500ms".
func (c Config) Validate() error {
	c = c.WithDefaults()
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...))
	}
	switch c.Strategy {
	case StrategyNone:
	case StrategyFixedDelay:
		if c.Attempts < 0 {
			return bad("restart.attempts", "must be >= 1 (use restart.strategy: none for no restarts), got %d", c.Attempts)
		}
	case StrategyFailureRate:
		if c.MaxFailures < 0 {
			return bad("restart.max-failures-per-interval", "must be >= 1, got %d", c.MaxFailures)
		}
		if c.FailureInterval < 0 {
			return bad("restart.failure-rate-interval", "must be > 0, got %s", c.FailureInterval)
		}
	case StrategyExponentialDelay:
		if c.InitialBackoff < 0 {
			return bad("restart.initial-backoff", "must be > 0, got %s", c.InitialBackoff)
		}
		if c.MaxBackoff < c.InitialBackoff {
			return bad("restart.max-backoff", "must be >= restart.initial-backoff (%s), got %s", c.InitialBackoff, c.MaxBackoff)
		}
		if c.BackoffMultiplier < 1 {
			return bad("restart.backoff-multiplier", "must be >= 1, got %g", c.BackoffMultiplier)
		}
		if c.Jitter > 1 {
			return bad("restart.jitter", "must be <= 1 (or negative for none), got %g", c.Jitter)
		}
		if c.MaxAttempts < 0 {
			return bad("restart.max-attempts", "must be >= 0 (0 is unlimited), got %d", c.MaxAttempts)
		}
	default:
		return bad("restart.strategy", "unknown strategy %q (want %s, %s, %s or %s)", c.Strategy,
			StrategyFixedDelay, StrategyExponentialDelay, StrategyFailureRate, StrategyNone)
	}
	return nil
}

// Build validates c and returns its strategy. seed seeds the jitter of
// exponential-delay, so that a run can be reproduced (log it); it is
// unused by the other strategies.
func (c Config) Build(seed int64) (Strategy, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	c = c.WithDefaults()
	switch c.Strategy {
	case StrategyNone:
		return NoRestart(), nil
	case StrategyFixedDelay:
		return FixedDelay(c.Attempts, c.Delay), nil
	case StrategyFailureRate:
		return FailureRate(c.MaxFailures, c.FailureInterval, c.Delay), nil
	default: // StrategyExponentialDelay, as validated
		return ExponentialBackoff(ExponentialConfig{
			Initial:     c.InitialBackoff,
			Max:         c.MaxBackoff,
			Multiplier:  c.BackoffMultiplier,
			Jitter:      c.Jitter,
			ResetAfter:  c.ResetBackoffAfter,
			MaxAttempts: c.MaxAttempts,
			Rand:        rand.New(rand.NewPCG(uint64(seed), uint64(seed)^0x9e3779b97f4a7c15)),
		}), nil
	}
}
