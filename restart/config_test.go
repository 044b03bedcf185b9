package restart

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	got := Config{}.WithDefaults()
	want := Config{
		Strategy:          StrategyExponentialDelay,
		Attempts:          3,
		Delay:             time.Second,
		InitialBackoff:    time.Second,
		MaxBackoff:        time.Minute,
		BackoffMultiplier: 2,
		Jitter:            0.1,
		ResetBackoffAfter: time.Hour,
		MaxFailures:       3,
		FailureInterval:   time.Minute,
	}
	if got != want {
		t.Fatalf("defaults:\n got %+v\nwant %+v", got, want)
	}
	// "None" values survive defaulting.
	c := Config{Jitter: -1, ResetBackoffAfter: -1, Delay: -1}.WithDefaults()
	if c.Jitter != -1 || c.ResetBackoffAfter != -1 || c.Delay != -1 {
		t.Fatalf("negative settings were replaced: %+v", c)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg  Config
		want string // error prefix; "" for valid
	}{
		{Config{}, ""},
		{Config{Strategy: StrategyNone}, ""},
		{Config{Strategy: StrategyFixedDelay, Attempts: 10, Delay: -1}, ""},
		{Config{Strategy: StrategyFailureRate}, ""},
		{Config{Jitter: -1, ResetBackoffAfter: -1, BackoffMultiplier: 1}, ""},
		{Config{Strategy: "fixeddelay"}, `restart.strategy: unknown strategy "fixeddelay"`},
		{Config{Strategy: StrategyFixedDelay, Attempts: -1}, "restart.attempts: must be >= 1"},
		{Config{Strategy: StrategyFailureRate, MaxFailures: -2}, "restart.max-failures-per-interval: must be >= 1"},
		{Config{Strategy: StrategyFailureRate, FailureInterval: -time.Second}, "restart.failure-rate-interval: must be > 0"},
		{Config{InitialBackoff: -time.Second}, "restart.initial-backoff: must be > 0"},
		{Config{MaxBackoff: 500 * time.Millisecond}, "restart.max-backoff: must be >= restart.initial-backoff (1s), got 500ms"},
		{Config{InitialBackoff: 2 * time.Minute}, "restart.max-backoff: must be >= restart.initial-backoff (2m0s), got 1m0s"},
		{Config{BackoffMultiplier: 0.5}, "restart.backoff-multiplier: must be >= 1"},
		{Config{Jitter: 1.5}, "restart.jitter: must be <= 1"},
		{Config{MaxAttempts: -1}, "restart.max-attempts: must be >= 0"},
		// Only the chosen strategy's fields are checked.
		{Config{Strategy: StrategyFixedDelay, MaxBackoff: time.Millisecond}, ""},
	} {
		err := tc.cfg.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: unexpected error %v", tc.cfg, err)
		case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)):
			t.Errorf("%+v: error %v, want %q", tc.cfg, err, tc.want)
		}
		if _, berr := tc.cfg.Build(1); (berr == nil) != (err == nil) {
			t.Errorf("%+v: Build error %v, Validate error %v", tc.cfg, berr, err)
		}
	}
}

func TestConfigBuild(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Strategy: StrategyNone}, "none"},
		{Config{Strategy: StrategyFixedDelay}, "fixed-delay(attempts=3, delay=1s)"},
		{Config{Strategy: StrategyFailureRate, MaxFailures: 5, FailureInterval: 10 * time.Minute, Delay: 2 * time.Second},
			"failure-rate(max-failures=5, interval=10m0s, delay=2s)"},
		{Config{}, "exponential-delay(initial=1s, max=1m0s, multiplier=2, jitter=0.1, reset-after=1h0m0s, max-attempts=0)"},
		{Config{Jitter: -1, ResetBackoffAfter: -1}, "exponential-delay(initial=1s, max=1m0s, multiplier=2, jitter=0, reset-after=0s, max-attempts=0)"},
	} {
		s, err := tc.cfg.Build(7)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(s); got != tc.want {
			t.Errorf("Build(%+v) = %s, want %s", tc.cfg, got, tc.want)
		}
	}

	// Build's seed fixes the jitter.
	delays := func(seed int64) string {
		s, _ := Config{}.Build(seed)
		var out []time.Duration
		for i := range 5 {
			_, d := s.OnFailure(t0.Add(time.Duration(i)*time.Second), errBoom)
			out = append(out, d)
		}
		return fmt.Sprint(out)
	}
	if delays(99) != delays(99) || delays(99) == delays(100) {
		t.Fatalf("Build(seed) is not deterministic per seed: %s %s", delays(99), delays(100))
	}
}
