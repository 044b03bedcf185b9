package checkpoint

import (
	"errors"
	"fmt"
	"time"
)

// Mode is the checkpointing guarantee.
type Mode string

// The checkpointing modes.
const (
	// ExactlyOnce aligns barriers: an input that delivered barrier n is not
	// read again until n arrived on every input.
	ExactlyOnce Mode = "exactly-once"
	// AtLeastOnce does not align: records after barrier n on one input may
	// be processed before the snapshot, and so be replayed after a restore.
	// Nothing is lost, but keyed state then counts the replayed records
	// twice: a running count over-counts after a restart. That is the
	// price of not blocking inputs; use ExactlyOnce where state must be
	// exact (docs/operations.md).
	AtLeastOnce Mode = "at-least-once"
)

// Config configures checkpointing. The zero value of a field means its
// default, as docs/design.md §3 explains unless said otherwise.
type Config struct {
	// Interval between the triggers of periodic checkpoints. Default 5s.
	// Negative disables periodic checkpoints (savepoints still work).
	Interval time.Duration
	// Timeout after which a pending checkpoint is aborted. Default 60s.
	Timeout time.Duration
	// MinPause is the least time between the end of one checkpoint and the
	// trigger of the next. Default 500ms; negative means no pause.
	MinPause time.Duration
	// MaxConcurrent is how many checkpoints may be pending at once. Default 1.
	MaxConcurrent int
	// TolerableFailures is how many checkpoint failures in a row are
	// tolerated; one more fails the job. Default 3. Use -1 for zero.
	TolerableFailures int
	// Mode is exactly-once (default) or at-least-once.
	Mode Mode
	// Retained is how many completed checkpoints are kept. Default 3.
	Retained int
	// Unaligned makes periodic checkpoints unaligned (Flink 1.11+,
	// docs/design.md §3 "Unaligned checkpoints"): the first barrier of a
	// checkpoint at a task triggers its snapshot at once, and the records
	// still in flight on its inputs before the barrier are stored with the
	// snapshot (channel state) and replayed on restore. Exactly-once mode
	// only; savepoints and the final checkpoint stay aligned.
	Unaligned bool
	// AlignedTimeout, with Unaligned, starts every checkpoint aligned and
	// switches it to unaligned once it has not completed AlignedTimeout
	// after its trigger (Flink's alignedCheckpointTimeout). 0: checkpoints
	// are unaligned from the start.
	AlignedTimeout time.Duration
}

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
	KeyUnaligned         = "checkpoint.unaligned"
	KeyAlignedTimeout    = "checkpoint.aligned-timeout"
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
	if c.Unaligned && c.Mode == AtLeastOnce {
		bad(KeyUnaligned, "needs %s %q (at-least-once does not align, so there is nothing to unalign)", KeyMode, ExactlyOnce)
	}
	switch {
	case c.AlignedTimeout < 0:
		bad(KeyAlignedTimeout, "must not be negative, got %v", c.AlignedTimeout)
	case c.AlignedTimeout > 0 && !c.Unaligned:
		bad(KeyAlignedTimeout, "switches aligned checkpoints to unaligned: it needs %s true", KeyUnaligned)
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

// ErrTooManyFailures is wrapped by the error that fails a job attempt when
// more checkpoints failed in a row than Config.TolerableFailures allows; the
// error Execute returns once the restart strategy gives up wraps it too.
var ErrTooManyFailures = errors.New("too many consecutive checkpoint failures")
