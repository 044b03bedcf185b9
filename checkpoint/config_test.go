package checkpoint

import (
	"strings"
	"testing"
	"time"
)

// TestConfigValidate checks that every invalid field is reported under its
// configuration key (STYLE: "errors that name the key").
func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
		want []string // substrings, one per expected error; nil = valid
	}{
		{name: "zero is all defaults", cfg: Config{}},
		{name: "explicit valid", cfg: Config{
			Interval: time.Minute, Timeout: time.Minute, MinPause: time.Second, MaxConcurrent: 2,
			TolerableFailures: 10, Mode: AtLeastOnce, Retained: 5,
		}},
		{name: "negative interval disables", cfg: Config{Interval: -1}},
		{name: "tolerable -1", cfg: Config{TolerableFailures: -1}},
		{name: "interval too short", cfg: Config{Interval: 5},
			want: []string{"checkpoint.interval: must be at least 10ms (or negative to disable periodic checkpoints), got 5ns"}},
		{name: "negative timeout", cfg: Config{Timeout: -time.Second},
			want: []string{"checkpoint.timeout: must not be negative, got -1s"}},
		{name: "timeout too short", cfg: Config{Timeout: time.Millisecond},
			want: []string{"checkpoint.timeout: must be at least 10ms, got 1ms"}},
		{name: "negative min pause is none", cfg: Config{MinPause: -time.Millisecond}},
		{name: "negative max concurrent", cfg: Config{MaxConcurrent: -1},
			want: []string{"checkpoint.max-concurrent: must not be negative, got -1"}},
		{name: "tolerable below -1", cfg: Config{TolerableFailures: -2},
			want: []string{"checkpoint.tolerable-failures: must be -1 (no failure tolerated) or more, got -2"}},
		{name: "unknown mode", cfg: Config{Mode: "exactly-twice"},
			want: []string{`checkpoint.mode: must be "exactly-once" or "at-least-once", got "exactly-twice"`}},
		{name: "negative retained", cfg: Config{Retained: -3},
			want: []string{"checkpoint.retained: must not be negative, got -3"}},
		{name: "every problem reported", cfg: Config{Timeout: -1, Retained: -1, Mode: "x"},
			want: []string{"checkpoint.timeout:", "checkpoint.mode:", "checkpoint.retained:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.cfg.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tt.want)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("Validate() = %q, want %d errors", err, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(lines[i], w) {
					t.Errorf("error %d = %q, want it to contain %q", i, lines[i], w)
				}
			}
		})
	}
}

// TestConfigWithDefaults checks the defaults (docs/design.md §3) and
// that WithDefaults is idempotent, keeping the -1 and negative-interval
// sentinels.
func TestConfigWithDefaults(t *testing.T) {
	t.Parallel()
	want := Config{
		Interval: 5 * time.Second, Timeout: 60 * time.Second, MinPause: 500 * time.Millisecond,
		MaxConcurrent: 1, TolerableFailures: 3, Mode: ExactlyOnce, Retained: 3,
	}
	if got := (Config{}).WithDefaults(); got != want {
		t.Errorf("Config{}.WithDefaults() = %+v, want %+v", got, want)
	}
	set := Config{
		Interval: -1, Timeout: time.Second, MinPause: time.Millisecond, MaxConcurrent: 4,
		TolerableFailures: -1, Mode: AtLeastOnce, Retained: 1,
	}
	if got := set.WithDefaults(); got != set {
		t.Errorf("WithDefaults changed set fields: %+v, want %+v", got, set)
	}
	if got := set.WithDefaults().WithDefaults(); got != set {
		t.Errorf("WithDefaults not idempotent: %+v", got)
	}
}
