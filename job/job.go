// Package job turns a user's dataflow into a program with the standard
// subcommands and flags, the way every Flink job gets `flink run` and every
// Kafka Streams application its configuration (docs/design.md §12):
//
//	myjob run [--config job.yaml] [--from-savepoint PATH] [--allow-non-restored-state]
//	          [--parallelism N] [--checkpoint-dir D] [--http ADDR] [--pprof]
//	          [--log-level L] [--log-format text|json] [job keys...]
//	myjob savepoint [--http ADDR]              # prints the savepoint's path
//	myjob stop --savepoint [--drain] [--http ADDR]
//	myjob checkpoint [--http ADDR]             # prints the checkpoint's id
//	myjob cancel [--http ADDR]                 # no final checkpoint
//	myjob check SAVEPOINT [job keys...]        # can this build restore it?
//	myjob describe [job keys...]               # graph, uids, states and codecs
//
// A job declares its own configuration keys as flags (Job.Flags) and builds
// its dataflow from a sluice.Config that carries the standard keys
// (Job.Build). Every key, the standard ones and the job's, is read from, in
// order of precedence:
//
//  1. the command line, --key value;
//  2. the environment, SLUICE_KEY (the key in upper case, '-' and '.' as
//     '_': SLUICE_CHECKPOINT_DIR; the prefix is Job.EnvPrefix);
//  3. the YAML file named by --config (or SLUICE_CONFIG): a mapping of keys
//     to values, nested mappings flattened with dots, lists of values
//     joined with commas;
//  4. the key's default.
//
// An unknown key in the file, a value that does not parse, or a value the
// job refuses is an error naming the key and where it came from, with exit
// status 2.
//
// While it runs, the job serves its control API (package
// internal/httpapi) on --http, loopback only unless --http-token is set:
// the REST API of docs/rest.md. The savepoint, stop, checkpoint and cancel
// subcommands call it. The same endpoint serves the live dashboard at /
// (package internal/dashboard).
package job

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/bytesize"
	"github.com/sluicehq/sluice/internal/httpapi"
	"github.com/sluicehq/sluice/internal/logfmt"
)

// DefaultHTTPAddr is the default of --http: the loopback interface, port
// 8081 (Flink's REST port).
const DefaultHTTPAddr = "127.0.0.1:8081"

// Job is a user's job: how it is configured and how its dataflow is built.
type Job struct {
	// Name names the job: the program in usage lines and
	// sluice.Config.JobName. Required.
	Name string
	// Doc describes the job in `run --help` (optional).
	Doc string
	// Program names the program in usage lines. Default Name.
	Program string
	// Usage, when set, replaces the text `run --help` prints before the
	// flags.
	Usage string
	// Flags declares the job's own configuration keys on fs, one flag per
	// key, named in kebab case (docs/design.md §12). The standard keys
	// (see StandardKeys) are declared already; redeclaring one is an
	// error. Optional.
	Flags func(fs *flag.FlagSet)
	// Validate checks the resolved configuration before the job is built
	// (run, check and describe), cfg holding the standard keys. Its error
	// is a usage error: printed, exit status 2. Optional.
	Validate func(cfg sluice.Config) error
	// Setup prepares what the job needs outside itself (creates topics)
	// before `run` builds it; check and describe do not call it.
	// Optional.
	Setup func(ctx context.Context, cfg sluice.Config) error
	// Build makes the job's environment with sluice.New from cfg (which
	// carries the standard keys: name, parallelism, checkpoint directory,
	// restore options, logger; the job may set more fields from its own
	// keys) and builds the dataflow on it. It must not start anything:
	// check and describe build the job without running it. Required.
	Build func(cfg sluice.Config) (*sluice.Environment, error)
	// Started, when set, is called once the job was built and its
	// control API listens, just before it runs (a line on stdout).
	Started func(env *sluice.Environment, stdout io.Writer)
	// Report, when set, is called every ReportInterval while the job runs
	// (progress lines on stdout). Default: when stdout is a terminal, one
	// status line (rates, records, checkpoints, lag, backpressure,
	// restarts) redrawn every second; otherwise an INFO log record
	// "progress" with the same figures every ReportInterval.
	Report func(env *sluice.Environment, stdout io.Writer)
	// ReportInterval is how often Report is called. Default 5s (1s for
	// the default live line).
	ReportInterval time.Duration
	// IsTerminal decides whether stdout is a terminal, which gets the
	// live status line. Default: an *os.File on a character device.
	IsTerminal func(stdout io.Writer) bool
	// Done, when set, is called after the job ended without error; savepoint
	// is the path of the stop's savepoint, "" for any other end. Its error
	// is the run's (exit status 1).
	Done func(env *sluice.Environment, savepoint string, stdout io.Writer) error
	// Parallelism is the default of the key parallelism. Default 1.
	Parallelism int
	// HTTPAddr is the default of --http in run. Default DefaultHTTPAddr;
	// "off" serves nothing unless --http is given.
	HTTPAddr string
	// EnvPrefix starts the environment variable of every key. Default
	// DefaultEnvPrefix, "SLUICE_".
	EnvPrefix string
}

// StandardKeys are the keys every job has, in the root section
// (docs/design.md §12); Job.Flags must not redeclare them.
var StandardKeys = []string{
	"config", "parallelism", "checkpoint-dir", "savepoint-dir", "from-savepoint", "allow-non-restored-state",
	"http", "http-token", "log-level", "log-format", "pprof",
	"state-backend", "state-memory", "state-local-dir", "state-incremental", "state-local-recovery",
}

// ErrUsage is wrapped by the errors of Run that are the caller's mistake
// (a bad key, a missing argument); the message was printed already, and the
// exit status is 2.
var ErrUsage = errors.New("usage error")

// Main runs the program for j with the process's arguments and exits: 0 on
// success, 1 when the job failed, 2 for a usage error. The first SIGINT or
// SIGTERM stops the job cleanly (a final checkpoint); a second exits at
// once.
func Main(j Job) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		fmt.Fprintln(os.Stderr, "stopping (press Ctrl-C again to exit at once)")
		cancel()
		<-sigs
		os.Exit(130)
	}()
	err := Run(ctx, j, os.Args[1:], os.Stdout, os.Stderr)
	cancel()
	code := ExitCode(err)
	if code == 1 {
		fmt.Fprintf(os.Stderr, "%s: %v\n", cmp.Or(j.Program, j.Name), err)
	}
	os.Exit(code)
}

// ExitCode is the exit status for an error of Run: 0 for nil or a help
// request, 2 for ErrUsage, 1 otherwise.
func ExitCode(err error) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, ErrUsage):
		return 2
	}
	return 1
}

// Run runs the subcommand in args (run, savepoint, stop, checkpoint,
// cancel, check, describe) for j. Cancelling ctx stops a running job cleanly, with a final
// checkpoint. Errors that are not ErrUsage are printed by the caller (Main
// prints them to stderr).
func Run(ctx context.Context, j Job, args []string, stdout, stderr io.Writer) error {
	if j.Name == "" || j.Build == nil {
		return errors.New("job: Job.Name and Job.Build are required")
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		w := stdout
		if len(args) == 0 {
			w = stderr
		}
		fmt.Fprintf(w, `Usage: %[1]s <command> [flags]

Commands:
  run                     run the job
  savepoint               take a savepoint of the running job; prints its path
  stop --savepoint        stop the running job with a savepoint; prints its path
  checkpoint              take a checkpoint of the running job; prints its id
  cancel                  cancel the running job at once (no final checkpoint)
  check SAVEPOINT         report whether this build can restore SAVEPOINT
  describe                print the job's graph, uids, states and codecs

Run '%[1]s <command> --help' for the flags of a command.
`, cmp.Or(j.Program, j.Name))
		if len(args) == 0 {
			return ErrUsage
		}
		return nil
	}
	c := &cmd{j: j, stdout: stdout, stderr: stderr}
	if c.j.EnvPrefix == "" {
		c.j.EnvPrefix = DefaultEnvPrefix
	}
	switch args[0] {
	case "run":
		return c.run(ctx, args[1:])
	case "savepoint":
		return c.savepoint(ctx, args[1:])
	case "stop":
		return c.stop(ctx, args[1:])
	case "checkpoint":
		return c.checkpoint(ctx, args[1:])
	case "cancel":
		return c.cancel(ctx, args[1:])
	case "check":
		return c.check(args[1:])
	case "describe":
		return c.describe(ctx, args[1:])
	}
	fmt.Fprintf(stderr, "%s: unknown command %q (run, savepoint, stop, checkpoint, cancel, check or describe)\n", j.Name, args[0])
	return ErrUsage
}

type cmd struct {
	j              Job
	stdout, stderr io.Writer
	// getenv replaces os.LookupEnv in tests.
	getenv func(string) string

	// The standard keys.
	configFile       string
	parallelism      int
	checkpointDir    string
	savepointDir     string
	fromSavepoint    string
	allowNonRestored bool
	httpAddr         string
	httpToken        string
	logLevel         string
	logFormat        string
	pprof            bool
	// The state backend's keys (sluice.StateConfig).
	stateBackend       string
	stateMemory        int64
	stateLocalDir      string
	stateIncremental   bool
	stateLocalRecovery bool

	res *resolver
}

// program is how usage lines name the program.
func (c *cmd) program() string {
	if c.j.Program != "" {
		return c.j.Program
	}
	return c.j.Name
}

// flags makes the flag set of a subcommand with every key, the standard
// ones and the job's: one config file serves every subcommand.
func (c *cmd) flags(name, usage string) (fs *flag.FlagSet, err error) {
	fs = flag.NewFlagSet(c.program()+" "+name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	par := c.j.Parallelism
	if par == 0 {
		par = 1
	}
	httpDef := c.j.HTTPAddr
	if httpDef == "" {
		httpDef = DefaultHTTPAddr
	}
	fs.StringVar(&c.configFile, "config", "", "YAML file of configuration keys (key: value; the command line and the environment win over it)")
	fs.IntVar(&c.parallelism, "parallelism", par, "default parallelism of the job's operators")
	fs.StringVar(&c.checkpointDir, "checkpoint-dir", "", "checkpoint directory; the job resumes from its latest checkpoint (default data/checkpoints/<job>)")
	fs.StringVar(&c.savepointDir, "savepoint-dir", "", "directory of the savepoints the job takes (default <checkpoint-dir>/savepoints); never cleaned by checkpoint retention")
	fs.StringVar(&c.fromSavepoint, "from-savepoint", "", "restore this savepoint (or checkpoint) directory instead of the latest checkpoint")
	fs.BoolVar(&c.allowNonRestored, "allow-non-restored-state", false, "restore a savepoint holding state of operators the job no longer has, dropping that state (logged per state)")
	fs.StringVar(&c.httpAddr, "http", httpDef, `address of the job's control API, host:port (port 0: a free one, printed); "off": none. Loopback only unless http-token is set`)
	fs.StringVar(&c.httpToken, "http-token", "", "bearer token of the control API's mutating calls (checkpoint, savepoint, stop, cancel); better set as "+EnvVar(c.j.EnvPrefix, "http-token")+" than on the command line")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level on stderr: debug, info, warn or error")
	fs.StringVar(&c.logFormat, "log-format", logfmt.Text, logfmt.Usage)
	fs.BoolVar(&c.pprof, "pprof", false, "serve Go's profiler under /debug/pprof/ on the control API (needs http; behind http-token when one is set)")
	fs.StringVar(&c.stateBackend, "state-backend", sluice.StateBackendHeap, "keyed-state backend (state.backend): heap (Go maps; state must fit in memory) or pebble (on local disk, for state larger than memory)")
	c.stateMemory = sluice.DefaultStateMemory
	fs.Var(bytesize.Value{N: &c.stateMemory}, "state-memory", "pebble backend's memory for block cache and memtables of all keyed operators in the process (state.memory), e.g. 512MiB")
	fs.StringVar(&c.stateLocalDir, "state-local-dir", "", "directory of the state backends' working files and local state copies (state.local-dir; default <checkpoint-dir>/../local/<job>)")
	fs.BoolVar(&c.stateIncremental, "state-incremental", false, "write checkpoints incrementally: only what changed since a retained checkpoint (state.incremental; savepoints stay complete)")
	fs.BoolVar(&c.stateLocalRecovery, "state-local-recovery", false, "keep a local copy of each checkpoint's keyed state and restore from it on a restart on this machine (state.local-recovery)")
	if c.j.Flags != nil {
		defer func() {
			// The flag package panics on a redeclared flag.
			if r := recover(); r != nil {
				err = fmt.Errorf("job %s: Job.Flags: %v (the standard keys are %s)", c.j.Name, r, strings.Join(StandardKeys, ", "))
			}
		}()
		c.j.Flags(fs)
	}
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	return fs, nil
}

// parse resolves the keys of fs from args, the environment and the file.
func (c *cmd) parse(fs *flag.FlagSet, args []string) error {
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			fs.SetOutput(c.stdout) // asked for: not an error
		}
	}
	c.res = &resolver{fs: fs, prefix: c.j.EnvPrefix, getenv: c.getenv}
	if err := c.res.resolve(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		if _, printed := errors.AsType[printedError](err); !printed {
			fmt.Fprintln(c.stderr, err)
		}
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	return nil
}

// source names where key's value came from: "--key", "SLUICE_KEY",
// "file:line", or "key" for a default.
func (c *cmd) source(key string) string {
	if c.res != nil {
		if s, ok := c.res.from[key]; ok {
			if strings.HasPrefix(s, "--") {
				return s
			}
			return s + " (" + key + ")"
		}
	}
	return key
}

// engineConfig checks the standard keys and makes the sluice.Config they
// describe; the problems are printed, each naming its key.
func (c *cmd) engineConfig(serving bool) (sluice.Config, error) {
	var problems []string
	if c.parallelism < 1 {
		problems = append(problems, fmt.Sprintf("%s: must be at least 1, got %d", c.source("parallelism"), c.parallelism))
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		problems = append(problems, fmt.Sprintf("%s: must be debug, info, warn or error, got %q", c.source("log-level"), c.logLevel))
	}
	if err := logfmt.Check(c.logFormat); err != nil {
		problems = append(problems, fmt.Sprintf("%s: %v", c.source("log-format"), err))
	}
	if serving && c.pprof && c.httpAddr == "off" {
		problems = append(problems, fmt.Sprintf("%s: the profiler is served on the control API: set http too", c.source("pprof")))
	}
	if serving && c.httpAddr != "off" {
		if err := httpapi.CheckAddr(c.httpAddr, c.httpToken != ""); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", c.source("http"), strings.TrimPrefix(err.Error(), "http: ")))
		}
	}
	if c.stateBackend != sluice.StateBackendHeap && c.stateBackend != sluice.StateBackendPebble {
		problems = append(problems, fmt.Sprintf("%s: %q is not a state backend (heap, pebble)", c.source("state-backend"), c.stateBackend))
	}
	if c.stateMemory < sluice.MinStateMemory {
		problems = append(problems, fmt.Sprintf("%s: must be at least %s, got %s", c.source("state-memory"), bytesize.Format(sluice.MinStateMemory), bytesize.Format(c.stateMemory)))
	}
	cfg := sluice.Config{
		JobName: c.j.Name, Parallelism: c.parallelism, CheckpointDir: c.checkpointDir, SavepointDir: c.savepointDir,
		FromCheckpoint: c.fromSavepoint, AllowNonRestoredState: c.allowNonRestored,
		Logger: logfmt.New(c.stderr, c.logFormat, level),
		State: sluice.StateConfig{Backend: c.stateBackend, MemoryBytes: c.stateMemory, LocalDir: c.stateLocalDir,
			Incremental: c.stateIncremental, LocalRecovery: c.stateLocalRecovery},
	}
	if len(problems) == 0 && c.j.Validate != nil {
		if err := c.j.Validate(cfg); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(c.stderr, p)
		}
		return cfg, fmt.Errorf("%w: %s", ErrUsage, strings.Join(problems, "; "))
	}
	return cfg, nil
}
