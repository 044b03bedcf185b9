package sluice

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/sluicehq/sluice/checkpoint/store"
)

// TestStateConfigDefaults: the documented defaults, filled idempotently.
func TestStateConfigDefaults(t *testing.T) {
	t.Parallel()
	c := Config{JobName: "orders", CheckpointDir: "/var/lib/sluice/checkpoints"}.withDefaults()
	s := c.State
	if os.Getenv("SLUICE_TEST_STATE_BACKEND") == "" && defaultStateBackend != StateBackendHeap {
		t.Errorf("the default backend is %q, want heap", defaultStateBackend)
	}
	if s.Backend != defaultStateBackend || s.MemoryBytes != 256<<20 || s.Incremental || s.LocalRecovery {
		t.Errorf("defaults: %+v", s)
	}
	if want := "/var/lib/sluice/local/orders"; s.LocalDir != want {
		t.Errorf("LocalDir = %q, want %q (a sibling of the checkpoint directory)", s.LocalDir, want)
	}
	if again := c.withDefaults().State; again != s {
		t.Errorf("withDefaults is not idempotent: %+v then %+v", s, again)
	}
	c = Config{JobName: "orders", CheckpointStorage: nil}.withDefaults()
	if want := filepath.Join("data", "checkpoints", "local", "orders"); c.State.LocalDir != want {
		t.Errorf("default CheckpointDir: LocalDir = %q, want %q", c.State.LocalDir, want)
	}
	fs, err := store.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c = Config{JobName: "orders", CheckpointStorage: fs}.withDefaults()
	if want := filepath.Join(os.TempDir(), "sluice-local", "orders"); c.State.LocalDir != want {
		t.Errorf("CheckpointStorage set: LocalDir = %q, want %q", c.State.LocalDir, want)
	}
	c = Config{State: StateConfig{Backend: "pebble", LocalDir: "/x", MemoryBytes: 64 << 20, Incremental: true}}.withDefaults()
	if c.State != (StateConfig{Backend: "pebble", LocalDir: "/x", MemoryBytes: 64 << 20, Incremental: true}) {
		t.Errorf("set fields changed: %+v", c.State)
	}
}
