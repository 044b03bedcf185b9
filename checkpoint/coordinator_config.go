package checkpoint

import (
	"errors"
	"fmt"
	"time"
)

// The defaults of Config, (docs/design.md §3).
const (
	DefaultInterval          = 5 * time.Second
	DefaultTimeout           = 60 * time.Second
	DefaultMinPause          = 500 * time.Millisecond
	DefaultMaxConcurrent     = 1
	DefaultTolerableFailures = 3
	DefaultMode              = ExactlyOnce
	DefaultRetained          = 3
)

// MinInterval is the shortest Interval and Timeout that Validate accepts.
// Like Flink's minimal checkpoint time (10 ms) it exists to catch unit
// mistakes (a bare 5 read as 5ns): a shorter interval would make the runtime
// trigger checkpoints back to back and do little else.
const MinInterval = 10 * time.Millisecond

// The configuration keys of Config's fields. Validate names them in its
// errors, so that a user can find the setting whatever way (flag, file,
// code) it was given.
const (
	KeyInterval          = "checkpoint.interval"
	KeyTimeout           = "checkpoint.timeout"
	KeyMinPause          = "checkpoint.min-pause"
	KeyMaxConcurrent     = "checkpoint.max-concurrent"
	KeyTolerableFailures = "checkpoint.tolerable-failures"
	KeyMode              = "checkpoint.mode"
	KeyRetained          = "checkpoint.retained"
)

// Validate checks c as given by the user, before defaults are filled in: a
// zero field is valid (it means the default). Every problem is reported, each
// prefixed with its configuration key, e.g.
//
//	checkpoint.timeout: must not be negative, got -1s
//
// The errors are joined with errors.Join.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
	}
	// A negative interval is meaningful (no periodic checkpoints), so only a
	// positive one that is implausibly short is refused.
	if c.Interval > 0 && c.Interval < MinInterval {
		bad(KeyInterval, "must be at least %v (or negative to disable periodic checkpoints), got %v", MinInterval, c.Interval)
	}
	switch {
	case c.Timeout < 0:
		bad(KeyTimeout, "must not be negative, got %v", c.Timeout)
	case c.Timeout > 0 && c.Timeout < MinInterval:
		bad(KeyTimeout, "must be at least %v, got %v", MinInterval, c.Timeout)
	}
	if c.MaxConcurrent < 0 {
		bad(KeyMaxConcurrent, "must not be negative, got %d", c.MaxConcurrent)
	}
	if c.TolerableFailures < -1 {
		bad(KeyTolerableFailures, "must be -1 (no failure tolerated) or more, got %d", c.TolerableFailures)
	}
	switch c.Mode {
	case "", ExactlyOnce, AtLeastOnce:
	default:
		bad(KeyMode, "must be %q or %q, got %q", ExactlyOnce, AtLeastOnce, c.Mode)
	}
	if c.Retained < 0 {
		bad(KeyRetained, "must not be negative, got %d", c.Retained)
	}
	return errors.Join(errs...)
}

// WithDefaults returns c with every zero field set to its default (see the
// Default* constants). Non-zero fields are kept as they are, including the
// sentinels -1 for TolerableFailures and a negative Interval: keeping them
// makes WithDefaults idempotent, where turning -1 into 0 would let a second
// call turn that 0 into the default 3.
func (c Config) WithDefaults() Config {
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MinPause == 0 {
		c.MinPause = DefaultMinPause
	}
	if c.MaxConcurrent == 0 {
		c.MaxConcurrent = DefaultMaxConcurrent
	}
	if c.TolerableFailures == 0 {
		c.TolerableFailures = DefaultTolerableFailures
	}
	if c.Mode == "" {
		c.Mode = DefaultMode
	}
	if c.Retained == 0 {
		c.Retained = DefaultRetained
	}
	return c
}

// tolerable is the number of consecutive checkpoint failures tolerated, with
// the -1 sentinel resolved to zero.
func (c Config) tolerable() int {
	if c.TolerableFailures < 0 {
		return 0
	}
	return c.TolerableFailures
}
