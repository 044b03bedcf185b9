package restart

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The strategy names, as in Flink's restart-strategy.type; Parse accepts
// them and each Policy's Name returns one.
const (
	StrategyFixedDelay       = "fixed-delay"
	StrategyExponentialDelay = "exponential-delay"
	StrategyFailureRate      = "failure-rate"
	StrategyNone             = "none"
)

// Defaults of the Policy fields not listed with the exponential ones.
const (
	// DefaultAttempts is FixedDelay's restart budget. Flink's default is
	// 1, which turns the second failure in a job's lifetime into an
	// outage; 3 mirrors the default tolerance of 3 checkpoint failures.
	DefaultAttempts = 3
	// DefaultDelay is the delay of FixedDelay and FailureRate (Flink: 1s).
	DefaultDelay = time.Second
	// DefaultMaxFailures is FailureRate's tolerance per interval. Flink's
	// default is 1 (which, with its off-by-one, means none); 3 per minute
	// tolerates a short burst.
	DefaultMaxFailures = 3
	// DefaultFailureInterval is FailureRate's window (Flink: 1 min).
	DefaultFailureInterval = time.Minute
)

// Policy is a restart strategy as a user configures it: one of FixedDelay,
// ExponentialDelay, FailureRate and None. It is a plain value; NewStrategy
// makes the stateful Strategy that one job run consults.
type Policy interface {
	// Name is the strategy's name, e.g. "fixed-delay".
	Name() string
	// Validate reports every field out of range, after defaults, each
	// prefixed with its configuration key (restart.attempts, ...), joined
	// with errors.Join. The zero value of every field is valid.
	Validate() error
	// NewStrategy returns a fresh strategy for one job run. seed seeds the
	// jitter of ExponentialDelay, so that a run can be reproduced; the other
	// policies ignore it. NewStrategy does not validate (Build does); out of
	// range settings are clamped.
	NewStrategy(seed int64) Strategy
}

// Default returns the policy of a job that sets none: ExponentialDelay with
// its defaults, Flink's default for jobs with checkpointing since 1.19. It
// restarts quickly after a one-off failure and backs off when a dependency
// is down.
func Default() Policy { return ExponentialDelay{} }

// Build validates p (nil means Default()) and returns a fresh strategy
// seeded with seed.
func Build(p Policy, seed int64) (Strategy, error) {
	if p == nil {
		p = Default()
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p.NewStrategy(seed), nil
}

// FixedDelay restarts the job after Delay, at most Attempts times over its
// life (the count never resets), as Flink's fixed-delay strategy.
type FixedDelay struct {
	// Attempts is how many times the job is restarted [restart.attempts].
	// Default 3. Use None for no restarts.
	Attempts int
	// Delay is the wait before each restart [restart.delay]. Default 1s;
	// negative means no wait.
	Delay time.Duration
}

// Name returns "fixed-delay".
func (FixedDelay) Name() string { return StrategyFixedDelay }

// WithDefaults returns p with its zero fields set to their defaults.
func (p FixedDelay) WithDefaults() FixedDelay {
	if p.Attempts == 0 {
		p.Attempts = DefaultAttempts
	}
	if p.Delay == 0 {
		p.Delay = DefaultDelay
	}
	return p
}

// Validate implements Policy.
func (p FixedDelay) Validate() error {
	if p.Attempts < 0 {
		return fmt.Errorf("restart.attempts: must be >= 1 (use the none strategy for no restarts), got %d", p.Attempts)
	}
	return nil
}

// NewStrategy implements Policy.
func (p FixedDelay) NewStrategy(int64) Strategy {
	p = p.WithDefaults()
	return newFixedDelay(p.Attempts, p.Delay)
}

// ExponentialDelay is Flink's exponential-delay strategy: the first restart
// waits InitialBackoff, each further one Multiplier times longer up to
// MaxBackoff, each with ±Jitter; after ResetBackoffAfter without a failure
// it starts over. It is the default policy.
type ExponentialDelay struct {
	// InitialBackoff is the first delay [restart.initial-backoff].
	// Default 1s.
	InitialBackoff time.Duration
	// MaxBackoff caps the delay, jitter included [restart.max-backoff].
	// Default 1m. Flink's is 5m, but a stream job that is down for 5
	// minutes builds up lag that takes much longer to work off, and a
	// restart costs little, so Sluice retries more often.
	MaxBackoff time.Duration
	// Multiplier grows the delay after each restart
	// [restart.backoff-multiplier]. Default 2; at least 1.
	Multiplier float64
	// Jitter spreads each delay uniformly over ±Jitter of itself, so that
	// many jobs failing together do not all come back at the same instant
	// [restart.jitter]. Default 0.1; at most 1; negative means none.
	Jitter float64
	// ResetBackoffAfter is the quiet period, measured from when the job
	// came back, after which the delay and the attempt count start over
	// [restart.reset-backoff-after]. Default 1h; negative means never.
	ResetBackoffAfter time.Duration
	// MaxAttempts caps the restarts between resets [restart.max-attempts].
	// Default 0, unlimited.
	MaxAttempts int
}

// Name returns "exponential-delay".
func (ExponentialDelay) Name() string { return StrategyExponentialDelay }

// WithDefaults returns p with its zero fields set to their defaults
// (negative "none" values are kept).
func (p ExponentialDelay) WithDefaults() ExponentialDelay {
	if p.InitialBackoff == 0 {
		p.InitialBackoff = DefaultInitialBackoff
	}
	if p.MaxBackoff == 0 {
		p.MaxBackoff = DefaultMaxBackoff
	}
	if p.Multiplier == 0 {
		p.Multiplier = DefaultMultiplier
	}
	if p.Jitter == 0 {
		p.Jitter = DefaultJitter
	}
	if p.ResetBackoffAfter == 0 {
		p.ResetBackoffAfter = DefaultResetAfter
	}
	return p
}

// Validate implements Policy.
func (p ExponentialDelay) Validate() error {
	p = p.WithDefaults()
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if p.InitialBackoff < 0 {
		bad("restart.initial-backoff", "must be > 0, got %s", p.InitialBackoff)
	}
	if p.MaxBackoff < p.InitialBackoff {
		bad("restart.max-backoff", "must be >= restart.initial-backoff (%s), got %s", p.InitialBackoff, p.MaxBackoff)
	}
	if p.Multiplier < 1 {
		bad("restart.backoff-multiplier", "must be >= 1, got %g", p.Multiplier)
	}
	if p.Jitter > 1 {
		bad("restart.jitter", "must be <= 1 (or negative for none), got %g", p.Jitter)
	}
	if p.MaxAttempts < 0 {
		bad("restart.max-attempts", "must be >= 0 (0 is unlimited), got %d", p.MaxAttempts)
	}
	return errors.Join(errs...)
}

// NewStrategy implements Policy.
func (p ExponentialDelay) NewStrategy(seed int64) Strategy {
	return newExponential(exponentialConfig{
		Initial:     p.InitialBackoff,
		Max:         p.MaxBackoff,
		Multiplier:  p.Multiplier,
		Jitter:      p.Jitter,
		ResetAfter:  p.ResetBackoffAfter,
		MaxAttempts: p.MaxAttempts,
		Rand:        rand.New(rand.NewPCG(uint64(seed), uint64(seed)^0x9e3779b97f4a7c15)),
	})
}

// FailureRate is Flink's failure-rate strategy: restart after Delay unless
// more than MaxFailures failures, this one included, fall within the last
// Interval. Unlike Flink's, MaxFailures means what it says: the job
// tolerates MaxFailures failures per interval and fails on the next one.
type FailureRate struct {
	// MaxFailures is how many failures per interval are tolerated
	// [restart.max-failures-per-interval]. Default 3.
	MaxFailures int
	// Interval is the sliding window [restart.failure-rate-interval].
	// Default 1m.
	Interval time.Duration
	// Delay is the wait before each restart [restart.delay]. Default 1s;
	// negative means no wait.
	Delay time.Duration
}

// Name returns "failure-rate".
func (FailureRate) Name() string { return StrategyFailureRate }

// WithDefaults returns p with its zero fields set to their defaults.
func (p FailureRate) WithDefaults() FailureRate {
	if p.MaxFailures == 0 {
		p.MaxFailures = DefaultMaxFailures
	}
	if p.Interval == 0 {
		p.Interval = DefaultFailureInterval
	}
	if p.Delay == 0 {
		p.Delay = DefaultDelay
	}
	return p
}

// Validate implements Policy.
func (p FailureRate) Validate() error {
	var errs []error
	if p.MaxFailures < 0 {
		errs = append(errs, fmt.Errorf("restart.max-failures-per-interval: must be >= 1, got %d", p.MaxFailures))
	}
	if p.Interval < 0 {
		errs = append(errs, fmt.Errorf("restart.failure-rate-interval: must be > 0, got %s", p.Interval))
	}
	return errors.Join(errs...)
}

// NewStrategy implements Policy.
func (p FailureRate) NewStrategy(int64) Strategy {
	p = p.WithDefaults()
	return newFailureRate(p.MaxFailures, p.Interval, p.Delay)
}

// None never restarts: the first failure fails the job.
type None struct{}

// Name returns "none".
func (None) Name() string { return StrategyNone }

// Validate implements Policy; None has nothing to check.
func (None) Validate() error { return nil }

// NewStrategy implements Policy.
func (None) NewStrategy(int64) Strategy { return NoRestart() }

// Parse reads a policy from a string, for command lines and configuration
// files: a strategy name, optionally followed by a colon and comma-separated
// key=value settings named as the configuration keys without "restart.":
//
//	fixed-delay:attempts=10,delay=5s
//	exponential-delay:initial-backoff=1s,max-backoff=30s,backoff-multiplier=2,jitter=0.1,reset-backoff-after=1h,max-attempts=0
//	failure-rate:max-failures-per-interval=3,failure-rate-interval=1m,delay=1s
//	none
//
// Unset keys take their defaults. Errors name the key; the policy is
// validated.
func Parse(s string) (Policy, error) {
	name, settings, _ := strings.Cut(s, ":")
	name = strings.TrimSpace(name)
	kv := map[string]string{}
	if settings = strings.TrimSpace(settings); settings != "" {
		for _, item := range strings.Split(settings, ",") {
			k, v, ok := strings.Cut(item, "=")
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			if !ok || k == "" {
				return nil, fmt.Errorf("restart: setting %q is not key=value", item)
			}
			if _, dup := kv[k]; dup {
				return nil, fmt.Errorf("restart.%s: given twice", k)
			}
			kv[k] = v
		}
	}
	var errs []error
	used := map[string]bool{}
	dur := func(key string, dst *time.Duration) {
		if v, ok := kv[key]; ok {
			used[key] = true
			d, err := time.ParseDuration(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("restart.%s: %q is not a duration (e.g. 1s, 500ms)", key, v))
			}
			*dst = d
		}
	}
	integer := func(key string, dst *int) {
		if v, ok := kv[key]; ok {
			used[key] = true
			n, err := strconv.Atoi(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("restart.%s: %q is not an integer", key, v))
			}
			*dst = n
		}
	}
	float := func(key string, dst *float64) {
		if v, ok := kv[key]; ok {
			used[key] = true
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				errs = append(errs, fmt.Errorf("restart.%s: %q is not a number", key, v))
			}
			*dst = f
		}
	}
	var p Policy
	switch name {
	case StrategyFixedDelay:
		var f FixedDelay
		integer("attempts", &f.Attempts)
		dur("delay", &f.Delay)
		p = f
	case StrategyExponentialDelay:
		var e ExponentialDelay
		dur("initial-backoff", &e.InitialBackoff)
		dur("max-backoff", &e.MaxBackoff)
		float("backoff-multiplier", &e.Multiplier)
		float("jitter", &e.Jitter)
		dur("reset-backoff-after", &e.ResetBackoffAfter)
		integer("max-attempts", &e.MaxAttempts)
		p = e
	case StrategyFailureRate:
		var f FailureRate
		integer("max-failures-per-interval", &f.MaxFailures)
		dur("failure-rate-interval", &f.Interval)
		dur("delay", &f.Delay)
		p = f
	case StrategyNone:
		p = None{}
	default:
		return nil, fmt.Errorf("restart.strategy: unknown strategy %q (want %s, %s, %s or %s)", name,
			StrategyFixedDelay, StrategyExponentialDelay, StrategyFailureRate, StrategyNone)
	}
	var unknown []string
	for k := range kv {
		if !used[k] {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	for _, k := range unknown {
		errs = append(errs, fmt.Errorf("restart.%s: not a setting of %s", k, name))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}
