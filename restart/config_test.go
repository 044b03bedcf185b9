package restart

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestPolicyDefaults(t *testing.T) {
	t.Parallel()
	if got, want := (FixedDelay{}).WithDefaults(), (FixedDelay{Attempts: 3, Delay: time.Second}); got != want {
		t.Errorf("FixedDelay defaults %+v, want %+v", got, want)
	}
	if got, want := (FailureRate{}).WithDefaults(), (FailureRate{MaxFailures: 3, Interval: time.Minute, Delay: time.Second}); got != want {
		t.Errorf("FailureRate defaults %+v, want %+v", got, want)
	}
	want := ExponentialDelay{InitialBackoff: time.Second, MaxBackoff: time.Minute, Multiplier: 2, Jitter: 0.1, ResetBackoffAfter: time.Hour}
	if got := (ExponentialDelay{}).WithDefaults(); got != want {
		t.Errorf("ExponentialDelay defaults %+v, want %+v", got, want)
	}
	if Default() != (ExponentialDelay{}) {
		t.Errorf("Default() = %#v, want ExponentialDelay{}", Default())
	}
	// "None" values survive defaulting.
	e := ExponentialDelay{Jitter: -1, ResetBackoffAfter: -1}.WithDefaults()
	if e.Jitter != -1 || e.ResetBackoffAfter != -1 {
		t.Fatalf("negative settings were replaced: %+v", e)
	}
}

func TestPolicyValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		p    Policy
		want []string // every error expected, by its prefix; none for valid
	}{
		{ExponentialDelay{}, nil},
		{None{}, nil},
		{FixedDelay{Attempts: 10, Delay: -1}, nil},
		{FailureRate{}, nil},
		{ExponentialDelay{Jitter: -1, ResetBackoffAfter: -1, Multiplier: 1}, nil},
		{FixedDelay{Attempts: -1}, []string{"restart.attempts: must be >= 1"}},
		{FailureRate{MaxFailures: -2}, []string{"restart.max-failures-per-interval: must be >= 1"}},
		{FailureRate{Interval: -time.Second}, []string{"restart.failure-rate-interval: must be > 0"}},
		{ExponentialDelay{InitialBackoff: -time.Second}, []string{"restart.initial-backoff: must be > 0"}},
		{ExponentialDelay{MaxBackoff: 500 * time.Millisecond}, []string{"restart.max-backoff: must be >= restart.initial-backoff (1s), got 500ms"}},
		{ExponentialDelay{InitialBackoff: 2 * time.Minute}, []string{"restart.max-backoff: must be >= restart.initial-backoff (2m0s), got 1m0s"}},
		{ExponentialDelay{Multiplier: 0.5}, []string{"restart.backoff-multiplier: must be >= 1"}},
		{ExponentialDelay{Jitter: 1.5}, []string{"restart.jitter: must be <= 1"}},
		{ExponentialDelay{MaxAttempts: -1}, []string{"restart.max-attempts: must be >= 0"}},
		// Every problem is reported, not only the first.
		{ExponentialDelay{Multiplier: 0.5, Jitter: 2, MaxAttempts: -1},
			[]string{"restart.backoff-multiplier", "restart.jitter", "restart.max-attempts"}},
		{FailureRate{MaxFailures: -1, Interval: -1}, []string{"restart.max-failures-per-interval", "restart.failure-rate-interval"}},
	} {
		err := tc.p.Validate()
		if len(tc.want) == 0 {
			if err != nil {
				t.Errorf("%#v: unexpected error %v", tc.p, err)
			}
		} else {
			lines := []string{}
			if err != nil {
				lines = strings.Split(err.Error(), "\n")
			}
			if len(lines) != len(tc.want) {
				t.Errorf("%#v: errors %q, want %d starting %q", tc.p, lines, len(tc.want), tc.want)
			} else {
				for i, w := range tc.want {
					if !strings.HasPrefix(lines[i], w) {
						t.Errorf("%#v: error %d %q, want prefix %q", tc.p, i, lines[i], w)
					}
				}
			}
		}
		if _, berr := Build(tc.p, 1); (berr == nil) != (err == nil) {
			t.Errorf("%#v: Build error %v, Validate error %v", tc.p, berr, err)
		}
	}
}

func TestPolicyNewStrategy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		p    Policy
		want string
	}{
		{nil, "exponential-delay(initial=1s, max=1m0s, multiplier=2, jitter=0.1, reset-after=1h0m0s, max-attempts=0)"},
		{None{}, "none"},
		{FixedDelay{}, "fixed-delay(attempts=3, delay=1s)"},
		{FailureRate{MaxFailures: 5, Interval: 10 * time.Minute, Delay: 2 * time.Second},
			"failure-rate(max-failures=5, interval=10m0s, delay=2s)"},
		{ExponentialDelay{}, "exponential-delay(initial=1s, max=1m0s, multiplier=2, jitter=0.1, reset-after=1h0m0s, max-attempts=0)"},
		{ExponentialDelay{Jitter: -1, ResetBackoffAfter: -1}, "exponential-delay(initial=1s, max=1m0s, multiplier=2, jitter=0, reset-after=0s, max-attempts=0)"},
	} {
		s, err := Build(tc.p, 7)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(s); got != tc.want {
			t.Errorf("Build(%#v) = %s, want %s", tc.p, got, tc.want)
		}
	}

	// The seed fixes the jitter.
	delays := func(seed int64) string {
		s, _ := Build(ExponentialDelay{}, seed)
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
	// Each NewStrategy starts from scratch: a policy value holds no state.
	p := FixedDelay{Attempts: 1}
	for range 2 {
		if ok, _ := p.NewStrategy(0).OnFailure(t0, errBoom); !ok {
			t.Fatal("a fresh strategy of FixedDelay{Attempts: 1} refused its first restart")
		}
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want Policy
		err  string // error substring; "" for valid
	}{
		{"none", None{}, ""},
		{"fixed-delay", FixedDelay{}, ""},
		{"fixed-delay:attempts=10,delay=5s", FixedDelay{Attempts: 10, Delay: 5 * time.Second}, ""},
		{" exponential-delay : max-backoff=30s, jitter=0.2 ", ExponentialDelay{MaxBackoff: 30 * time.Second, Jitter: 0.2}, ""},
		{"exponential-delay:initial-backoff=2s,max-backoff=1m,backoff-multiplier=3,reset-backoff-after=-1s,max-attempts=4",
			ExponentialDelay{InitialBackoff: 2 * time.Second, MaxBackoff: time.Minute, Multiplier: 3, ResetBackoffAfter: -time.Second, MaxAttempts: 4}, ""},
		{"failure-rate:max-failures-per-interval=5,failure-rate-interval=10m,delay=2s",
			FailureRate{MaxFailures: 5, Interval: 10 * time.Minute, Delay: 2 * time.Second}, ""},
		{"fixeddelay", nil, `restart.strategy: unknown strategy "fixeddelay"`},
		{"", nil, `restart.strategy: unknown strategy ""`},
		{"fixed-delay:attempts=x", nil, `restart.attempts: "x" is not an integer`},
		{"fixed-delay:delay=5", nil, `restart.delay: "5" is not a duration`},
		{"fixed-delay:attempts=-1", nil, "restart.attempts: must be >= 1"},
		{"fixed-delay:jitter=0.1", nil, "restart.jitter: not a setting of fixed-delay"},
		{"fixed-delay:attempts", nil, `setting "attempts" is not key=value`},
		{"fixed-delay:attempts=1,attempts=2", nil, "restart.attempts: given twice"},
		{"exponential-delay:jitter=2,backoff-multiplier=0.5", nil, "restart.jitter"},
		{"exponential-delay:jitter=2,backoff-multiplier=0.5", nil, "restart.backoff-multiplier"},
	} {
		got, err := Parse(tc.in)
		if tc.err == "" {
			if err != nil || got != tc.want {
				t.Errorf("Parse(%q) = %#v, %v; want %#v", tc.in, got, err, tc.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("Parse(%q) error %v, want it to contain %q", tc.in, err, tc.err)
		}
	}
}
