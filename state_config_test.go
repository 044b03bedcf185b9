package sluice_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice"
)

// TestStateConfigValidate: every bad state setting is reported with its
// key, together; the zero StateConfig is valid.
func TestStateConfigValidate(t *testing.T) {
	t.Parallel()
	if err := (sluice.Config{}).Validate(); err != nil {
		t.Fatalf("zero Config: %v", err)
	}
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err := sluice.Config{State: sluice.StateConfig{Backend: "rocks", MemoryBytes: 1 << 20, LocalDir: file}}.Validate()
	if err == nil {
		t.Fatal("Validate accepted a bad state configuration")
	}
	for _, want := range []string{
		`state.backend: "rocks" is not a state backend (heap, pebble)`,
		"state.memory: must be at least 8 MiB, got 1048576 bytes",
		"state.local-dir: " + file + " is not a directory",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if err := (sluice.Config{State: sluice.StateConfig{MemoryBytes: -1}}).Validate(); err == nil || !strings.Contains(err.Error(), "state.memory") {
		t.Errorf("negative state.memory: %v", err)
	}
	for _, b := range []string{"heap", "pebble"} {
		if err := (sluice.Config{State: sluice.StateConfig{Backend: b, MemoryBytes: 64 << 20}}).Validate(); err != nil {
			t.Errorf("backend %s: %v", b, err)
		}
	}
}

// TestStateConfigExecuteRefuses: Execute refuses a bad backend before
// anything runs, naming the key.
func TestStateConfigExecuteRefuses(t *testing.T) {
	t.Parallel()
	_, err := boundedJob(sluice.Config{CheckpointDir: t.TempDir(), State: sluice.StateConfig{Backend: "rocksdb"}, Logger: quietLogger()}).Execute(ctxTimeout(t))
	if err == nil || !strings.Contains(err.Error(), "state.backend") {
		t.Fatalf("Execute with state.backend rocksdb: %v", err)
	}
}
