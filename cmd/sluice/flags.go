package main

import (
	"fmt"
	"io"
	"time"
)

// flagCheck checks numeric flags after parsing. On the command line a
// number means what it says: a flag whose zero has a meaning says so in its
// usage ("0 = never", "0 = no pause") and the command passes that meaning on
// (the library's "none" sentinel where it has one); for every other flag
// zero is refused like a negative value, because the library would read a
// zero as "use the default", which need not be the flag's default.
type flagCheck struct{ problems []string }

// atLeast refuses v below lo.
func (c *flagCheck) atLeast(name string, v, lo int64) {
	if v < lo {
		c.problems = append(c.problems, fmt.Sprintf("--%s: must be at least %d, got %d", name, lo, v))
	}
}

// positive refuses a zero or negative duration.
func (c *flagCheck) positive(name string, d time.Duration) {
	if d <= 0 {
		c.problems = append(c.problems, fmt.Sprintf("--%s: must be positive, got %v", name, d))
	}
}

// nonNegative refuses a negative duration (zero has a documented meaning).
func (c *flagCheck) nonNegative(name string, d time.Duration) {
	if d < 0 {
		c.problems = append(c.problems, fmt.Sprintf("--%s: must not be negative, got %v", name, d))
	}
}

// fail adds a problem found by the command itself.
func (c *flagCheck) fail(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

// err prints every problem to w and returns errUsage, or nil if there were
// none.
func (c *flagCheck) err(w io.Writer) error {
	if len(c.problems) == 0 {
		return nil
	}
	for _, p := range c.problems {
		fmt.Fprintln(w, p)
	}
	return errUsage
}

// noneIfZero maps a command line's 0 ("none") to the library's sentinel for
// none, a negative duration, where the library reads 0 as its default.
func noneIfZero(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
