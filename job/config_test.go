package job

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice"
)

// testCmd is a cmd for a job with one key of its own (brokers) and the
// environment env.
func testCmd(env map[string]string, brokers *string) (*cmd, *bytes.Buffer) {
	var errb bytes.Buffer
	j := Job{Name: "t", Parallelism: 2, EnvPrefix: DefaultEnvPrefix,
		Flags: func(fs *flag.FlagSet) { fs.StringVar(brokers, "brokers", "default:9092", "brokers") },
		Build: func(sluice.Config) (*sluice.Environment, error) { return nil, errors.New("unused") }}
	c := &cmd{j: j, stdout: &errb, stderr: &errb, getenv: func(k string) string { return env[k] }}
	return c, &errb
}

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPrecedence: for two keys, a standard one (parallelism, an int) and
// the job's own (brokers), every combination of the four layers: the
// command line wins over the environment, the environment over the file,
// the file over the default; and the error source names the winner.
func TestPrecedence(t *testing.T) {
	file := writeFile(t, "job.yaml", "parallelism: 3\nbrokers: file:9092\n")
	for _, tc := range []struct {
		name                 string
		file, env, flag      bool
		wantPar              int
		wantBrokers, wantSrc string
	}{
		{"defaults", false, false, false, 2, "default:9092", "parallelism"},
		{"file", true, false, false, 3, "file:9092", file + ":1 (parallelism)"},
		{"env", false, true, false, 4, "env:9092", "SLUICE_PARALLELISM (parallelism)"},
		{"flag", false, false, true, 5, "flag:9092", "--parallelism"},
		{"env over file", true, true, false, 4, "env:9092", "SLUICE_PARALLELISM (parallelism)"},
		{"flag over file", true, false, true, 5, "flag:9092", "--parallelism"},
		{"flag over env", false, true, true, 5, "flag:9092", "--parallelism"},
		{"flag over env over file", true, true, true, 5, "flag:9092", "--parallelism"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{}
			var args []string
			if tc.file {
				args = append(args, "--config", file)
			}
			if tc.env {
				env["SLUICE_PARALLELISM"], env["SLUICE_BROKERS"] = "4", "env:9092"
			}
			if tc.flag {
				args = append(args, "--parallelism", "5", "--brokers", "flag:9092")
			}
			var brokers string
			c, out := testCmd(env, &brokers)
			fs, err := c.flags("run", "")
			if err != nil {
				t.Fatal(err)
			}
			if err := c.parse(fs, args); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if c.parallelism != tc.wantPar || brokers != tc.wantBrokers {
				t.Errorf("parallelism %d brokers %q, want %d %q", c.parallelism, brokers, tc.wantPar, tc.wantBrokers)
			}
			if got := c.source("parallelism"); got != tc.wantSrc {
				t.Errorf("source %q, want %q", got, tc.wantSrc)
			}
		})
	}
}

// TestConfigFileShapes: the config file itself may be named in the
// environment (SLUICE_CONFIG); nested mappings are keys with dots, lists
// are joined with commas.
func TestConfigFileShapes(t *testing.T) {
	file := writeFile(t, "job.yaml", "# comment\nbrokers: [a:1, b:2]\nkafka:\n  sink:\n    txn: /x\n")
	var brokers string
	c, out := testCmd(map[string]string{"SLUICE_CONFIG": file}, &brokers)
	fs, err := c.flags("run", "")
	if err != nil {
		t.Fatal(err)
	}
	fs.String("kafka.sink.txn", "", "a dotted key")
	if err := c.parse(fs, nil); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if brokers != "a:1,b:2" || fs.Lookup("kafka.sink.txn").Value.String() != "/x" {
		t.Fatalf("brokers %q kafka.sink.txn %q", brokers, fs.Lookup("kafka.sink.txn").Value)
	}
}

// TestWrongKeysNamed: every bad key or value is an error naming the key
// and where it came from; all of a file's problems at once.
func TestWrongKeysNamed(t *testing.T) {
	for _, tc := range []struct {
		name string
		file string
		env  map[string]string
		args []string
		want []string
	}{
		{"unknown key in file", "paralelism: 3\nbrokers: x\nhttp-tokn: y\n", nil, nil,
			[]string{":1: unknown key \"paralelism\" (did you mean parallelism?)", ":3: unknown key \"http-tokn\" (did you mean http-token?)"}},
		{"bad value in file", "\nparallelism: many\n", nil, nil, []string{":2: key parallelism: invalid value \"many\""}},
		{"duplicate key in file", "brokers: a\nbrokers: b\n", nil, nil, []string{":2: key brokers is already set on line 1"}},
		{"config in file", "config: other.yaml\n", nil, nil, []string{"key config names the file itself"}},
		{"null in file", "brokers:\n", nil, nil, []string{":1: key brokers has no value"}},
		{"not a mapping", "- a\n- b\n", nil, nil, []string{":1: want a mapping"}},
		{"bad yaml", "brokers: [a\n", nil, nil, []string{"job.yaml: yaml:"}},
		{"bad value in env", "", map[string]string{"SLUICE_ALLOW_NON_RESTORED_STATE": "perhaps"}, nil,
			[]string{"SLUICE_ALLOW_NON_RESTORED_STATE (key allow-non-restored-state): invalid value \"perhaps\""}},
		{"missing file", "", nil, []string{"--config", "/nonexistent/job.yaml"}, []string{"config: open /nonexistent/job.yaml"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.file != "" {
				args = append([]string{"--config", writeFile(t, "job.yaml", tc.file)}, args...)
			}
			var brokers string
			c, out := testCmd(tc.env, &brokers)
			fs, err := c.flags("run", "")
			if err != nil {
				t.Fatal(err)
			}
			err = c.parse(fs, args)
			if !errors.Is(err, ErrUsage) {
				t.Fatalf("err %v, want ErrUsage", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output does not say %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestStandardKeysChecked: values that parse but are wrong name the key
// and their source; a non-loopback --http needs a token.
func TestStandardKeysChecked(t *testing.T) {
	file := writeFile(t, "job.yaml", "\n\nparallelism: 0\n")
	for _, tc := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, []string{"--config", file}, file + ":3 (parallelism): must be at least 1, got 0"},
		{map[string]string{"SLUICE_PARALLELISM": "-1"}, nil, "SLUICE_PARALLELISM (parallelism): must be at least 1, got -1"},
		{nil, []string{"--parallelism", "0"}, "--parallelism: must be at least 1, got 0"},
		{nil, []string{"--log-level", "loud"}, "--log-level: must be debug, info, warn or error"},
		{nil, []string{"--http", "0.0.0.0:8081"}, "--http: 0.0.0.0:8081 (0.0.0.0) is not a loopback address: set http-token"},
		{nil, []string{"--http", ":8081"}, "--http: :8081 (every interface) is not a loopback address"},
		{map[string]string{"SLUICE_HTTP": "localhost"}, nil, "SLUICE_HTTP (http): \"localhost\" is not host:port"},
		{nil, []string{"--state-backend", "rocks"}, `--state-backend: "rocks" is not a state backend (heap, pebble)`},
		{map[string]string{"SLUICE_STATE_MEMORY": "1MiB"}, nil, "SLUICE_STATE_MEMORY (state-memory): must be at least 8MiB, got 1MiB"},
	} {
		var brokers string
		c, out := testCmd(tc.env, &brokers)
		fs, err := c.flags("run", "")
		if err != nil {
			t.Fatal(err)
		}
		if err := c.parse(fs, tc.args); err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if _, err := c.engineConfig(true); !errors.Is(err, ErrUsage) || !strings.Contains(out.String(), tc.want) {
			t.Errorf("%v %v: err %v, output:\n%s\nwant %q", tc.env, tc.args, err, out, tc.want)
		}
	}
	// With a token, any interface.
	var brokers string
	c, out := testCmd(map[string]string{"SLUICE_HTTP_TOKEN": "t"}, &brokers)
	fs, _ := c.flags("run", "")
	if err := c.parse(fs, []string{"--http", "0.0.0.0:0"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.engineConfig(true); err != nil {
		t.Fatalf("every interface with a token: %v\n%s", err, out)
	}
}

// TestStateKeys: the state keys reach sluice.Config.State, from the
// command line, the environment and the file alike.
func TestStateKeys(t *testing.T) {
	file := writeFile(t, "job.yaml", "state-backend: pebble\nstate-memory: 64MiB\n")
	var brokers string
	c, out := testCmd(map[string]string{"SLUICE_STATE_INCREMENTAL": "true"}, &brokers)
	fs, err := c.flags("run", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.parse(fs, []string{"--config", file, "--state-local-dir", "/tmp/x", "--state-local-recovery"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := c.engineConfig(false)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want := sluice.StateConfig{Backend: "pebble", MemoryBytes: 64 << 20, LocalDir: "/tmp/x", Incremental: true, LocalRecovery: true}
	if cfg.State != want {
		t.Errorf("State = %+v, want %+v", cfg.State, want)
	}
	c, _ = testCmd(nil, &brokers)
	fs, _ = c.flags("run", "")
	if err := c.parse(fs, nil); err != nil {
		t.Fatal(err)
	}
	if cfg, err := c.engineConfig(false); err != nil || cfg.State.Backend != "heap" || cfg.State.MemoryBytes != sluice.DefaultStateMemory {
		t.Errorf("defaults: %+v, %v", cfg.State, err)
	}
}

// TestRedeclaredStandardKey: a job that declares a standard key gets an
// error, not a panic.
func TestRedeclaredStandardKey(t *testing.T) {
	c := &cmd{j: Job{Name: "t", Flags: func(fs *flag.FlagSet) { fs.Int("parallelism", 1, "") }}, stderr: &bytes.Buffer{}}
	if _, err := c.flags("run", ""); err == nil || !strings.Contains(err.Error(), "flag redefined: parallelism") {
		t.Fatalf("err %v", err)
	}
}

func TestEnvVar(t *testing.T) {
	for k, want := range map[string]string{
		"checkpoint-dir":                 "SLUICE_CHECKPOINT_DIR",
		"kafka.sink.transaction-timeout": "SLUICE_KAFKA_SINK_TRANSACTION_TIMEOUT",
	} {
		if got := EnvVar(DefaultEnvPrefix, k); got != want {
			t.Errorf("EnvVar(%q) = %q, want %q", k, got, want)
		}
	}
	// Two keys with one variable are the job author's mistake.
	var brokers string
	c, _ := testCmd(nil, &brokers)
	fs, _ := c.flags("run", "")
	fs.String("checkpoint.dir", "", "")
	if err := c.parse(fs, nil); err == nil || !strings.Contains(err.Error(), "share the environment variable SLUICE_CHECKPOINT_DIR") {
		t.Fatalf("err %v", err)
	}
}
