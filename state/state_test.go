package state

import (
	"testing"
	"time"
)

// TestSettings: a backend reads a registration's options with Settings; no
// option means no TTL, and a later WithTTL overrides an earlier one.
func TestSettings(t *testing.T) {
	t.Parallel()
	if got := Settings(); got != (Options{}) {
		t.Errorf("Settings() = %+v, want the zero Options", got)
	}
	if got := Settings(WithTTL(time.Minute)); got.TTL != time.Minute {
		t.Errorf("Settings(WithTTL(1m)).TTL = %v, want 1m", got.TTL)
	}
	if got := Settings(WithTTL(time.Minute), WithTTL(time.Second)); got.TTL != time.Second {
		t.Errorf("Settings(WithTTL(1m), WithTTL(1s)).TTL = %v, want 1s", got.TTL)
	}
}
