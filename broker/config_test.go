package broker

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		cfg     Config
		wantErr string // substring; "" means valid
	}{
		{"zero value", Config{}, ""},
		{"defaults", DefaultConfig(), ""},
		{"ephemeral", Config{Ephemeral: true}, ""},
		{"ipv6 loopback", Config{Host: "::1"}, ""},
		{"host name", Config{Host: "localhost"}, ""},
		{"port too big", Config{Port: 70000}, "broker.port: must be 0..65535, got 70000"},
		{"negative port", Config{Port: -1}, "broker.port: must be 0..65535, got -1"},
		{"wildcard host", Config{Host: "0.0.0.0"}, "broker.host: must be an address clients can dial"},
		{"ipv6 wildcard", Config{Host: "::"}, "broker.host: must be an address clients can dial"},
		{"host with port", Config{Host: "localhost:9092"}, "broker.host: must be a host name or IP address without port"},
		{"bracketed host", Config{Host: "[::1]"}, "broker.host:"},
		{"ephemeral with dir", Config{Ephemeral: true, DataDir: "x"}, "broker.data-dir: must be empty when broker.ephemeral is set"},
		{"negative partitions", Config{DefaultPartitions: -1}, "broker.partitions: must be 1..10000"},
		{"too many partitions", Config{DefaultPartitions: 10001}, "broker.partitions: must be 1..10000"},
		{"negative txn timeout", Config{TxnMaxTimeout: -time.Second}, "broker.txn-max-timeout:"},
		{"sub-ms txn timeout", Config{TxnMaxTimeout: time.Microsecond}, "broker.txn-max-timeout: must be at least 1ms"},
		// transaction.max.timeout.ms is an int32 of milliseconds.
		{"txn timeout over int32 ms", Config{TxnMaxTimeout: 25 * 24 * time.Hour}, "broker.txn-max-timeout:"},
		{"txn timeout at 24 days", Config{TxnMaxTimeout: 24 * 24 * time.Hour}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.cfg.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("Validate() = nil, want error containing %q", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("Validate() = %q, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	got := Config{}.withDefaults()
	if got.Port != 0 {
		t.Errorf("Port = %d, want 0 (free port) kept", got.Port)
	}
	if got.Host != DefaultHost || got.DataDir != DefaultDataDir || got.DefaultPartitions != 4 || got.TxnMaxTimeout != time.Hour || got.Logger == nil {
		t.Errorf("withDefaults() = %+v", got)
	}
	if eph := (Config{Ephemeral: true}).withDefaults(); eph.DataDir != "" {
		t.Errorf("ephemeral DataDir = %q, want empty", eph.DataDir)
	}
	if d := DefaultConfig(); d.Port != 9092 {
		t.Errorf("DefaultConfig().Port = %d, want 9092", d.Port)
	}
}

// TestConfigValidateReportsEveryField: every invalid field is reported, each
// prefixed with its key, not only the first (docs/design.md §12).
func TestConfigValidateReportsEveryField(t *testing.T) {
	t.Parallel()
	err := Config{Port: -1, Host: "0.0.0.0", Ephemeral: true, DataDir: "x", DefaultPartitions: -1, TxnMaxTimeout: -1}.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	var keys []string
	for _, line := range strings.Split(err.Error(), "\n") {
		k, _, _ := strings.Cut(line, ":")
		keys = append(keys, k)
	}
	want := "broker.port broker.host broker.data-dir broker.partitions broker.txn-max-timeout"
	if got := strings.Join(keys, " "); got != want {
		t.Fatalf("keys %q, want %q:\n%v", got, want, err)
	}
}
