package main

import (
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/bytesize"
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

// stateFlags are the keyed-state backend's flags (sluice.StateConfig) of the
// commands that run a job in this process (demo, bench).
type stateFlags struct {
	stateBackend       string
	stateMemory        int64
	stateLocalDir      string
	stateIncremental   bool
	stateLocalRecovery bool
}

// register declares --state-backend, --state-memory, --state-local-dir,
// --state-incremental and --state-local-recovery on fs.
func (s *stateFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&s.stateBackend, "state-backend", sluice.StateBackendHeap, "keyed-state backend (state.backend): heap (Go maps; state must fit in memory) or pebble (on local disk, for state larger than memory)")
	s.stateMemory = sluice.DefaultStateMemory
	fs.Var(bytesize.Value{N: &s.stateMemory}, "state-memory", "pebble backend: memory for block cache and memtables of every keyed operator in the process (state.memory), e.g. 64MiB")
	fs.StringVar(&s.stateLocalDir, "state-local-dir", "", "directory of the state backends' working files and local state copies (state.local-dir; default next to the checkpoint directory)")
	fs.BoolVar(&s.stateIncremental, "state-incremental", false, "write checkpoints incrementally (state.incremental)")
	fs.BoolVar(&s.stateLocalRecovery, "state-local-recovery", false, "restore from a local copy of the checkpoint's keyed state after a restart (state.local-recovery)")
}

// check refuses an unknown backend and a memory budget below the least.
func (s *stateFlags) check(c *flagCheck) {
	if s.stateBackend != sluice.StateBackendHeap && s.stateBackend != sluice.StateBackendPebble {
		c.fail("--state-backend: %q is not a state backend (heap, pebble)", s.stateBackend)
	}
	if s.stateMemory < sluice.MinStateMemory {
		c.fail("--state-memory: must be at least %s, got %s", bytesize.Format(sluice.MinStateMemory), bytesize.Format(s.stateMemory))
	}
}

// stateConfig is the sluice.StateConfig the flags describe.
func (s *stateFlags) stateConfig() sluice.StateConfig {
	return sluice.StateConfig{Backend: s.stateBackend, MemoryBytes: s.stateMemory, LocalDir: s.stateLocalDir,
		Incremental: s.stateIncremental, LocalRecovery: s.stateLocalRecovery}
}
