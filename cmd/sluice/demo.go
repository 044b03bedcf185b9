package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/connector/datagen"
	"github.com/sluicehq/sluice/connector/file"
	"github.com/sluicehq/sluice/fault"
	"github.com/sluicehq/sluice/internal/countjob"
	"github.com/sluicehq/sluice/internal/dashboard"
	"github.com/sluicehq/sluice/internal/httpapi"
	"github.com/sluicehq/sluice/internal/progress"
	"github.com/sluicehq/sluice/internal/verify"
	"github.com/sluicehq/sluice/metrics"
	"github.com/sluicehq/sluice/restart"
)

type demoFlags struct {
	dir          string
	duration     time.Duration
	rate         float64
	keys         int
	splits       int
	parallelism  int
	interval     time.Duration
	minPause     time.Duration
	failEvery    time.Duration
	seed         uint64
	mode         string
	distribution string
	bufTimeout   time.Duration
	verbose      bool
	pipeline     string
	sink         string
	brokers      string
	from         string
	resume       bool
	// allowNonRestored and allowSource relax the restore checks
	// (docs/design.md §10).
	allowNonRestored bool
	allowSource      bool
	// http and httpToken serve the job's control API (package
	// internal/httpapi) and the dashboard (internal/dashboard) while it
	// runs; http "off" serves nothing.
	http, httpToken string
	// The keyed-state backend (stateFlags, flags.go).
	stateFlags
	// Operations (cmd/sluice/ops.go).
	opsFlags
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f demoFlags
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: sluice demo [flags]

Runs a built-in job with checkpoints, on the embedded default:

  --pipeline kafka (default): starts the embedded Kafka-compatible broker
    (or uses --brokers), a producer feeding an input topic at --rate, and
    Kafka source → key by record key → keyed running count → exactly-once
    Kafka sink (transactions tied to checkpoints).
  --pipeline file: datagen → key by account → keyed running count →
    exactly-once file sink (part files under <dir>/output).
  --pipeline windows: event time. --rate × --duration orders, out of order
    by up to 2s, about 0.5%% late within the allowed lateness, 0.5%% later →
    key by account → revenue per account in 1-minute tumbling event-time
    windows (allowed lateness 5s; late orders to a side output) → the
    exactly-once file sink, or with --sink kafka the Kafka sink (embedded
    broker or --brokers). The input is bounded: its end fires every
    window. The committed window results and late orders are verified
    against those computed from the generator alone (a failure-free run):
    each exactly once. The JSON summary adds windows, late, committedWindows,
    committedLate, unexpected and lateCounted (the operator's late counter,
    replays included).

For the count pipelines: for every input record the job emits one output (key, n), n being how many
records of that key it has seen so far. When the demo ends (--duration, or
Ctrl-C) the job is stopped with a final checkpoint and the committed output
(read_committed for Kafka) is verified against the input: for every key the
outputs must be exactly 1..n, once each. The last line printed is a JSON
summary; the exit status is 1 if anything was lost (or, in exactly-once
mode, duplicated).

The demo starts from scratch: it deletes what an earlier run left under
<dir>, unless --resume or --from-checkpoint resumes it (file pipeline).

Flags:
`)
		fs.PrintDefaults()
	}
	fs.StringVar(&f.pipeline, "pipeline", "kafka", "kafka (Kafka in → Kafka out, exactly-once by transactions), file (datagen → file sink) or windows (event-time windows)")
	fs.StringVar(&f.sink, "sink", "file", "windows pipeline: commit the results with the file sink (file) or the Kafka sink (kafka)")
	fs.StringVar(&f.brokers, "brokers", "", "kafka pipeline and windows with --sink kafka: use this Kafka cluster (host:port,...) instead of the embedded broker")
	fs.StringVar(&f.dir, "dir", "data/demo", "working directory: checkpoints in <dir>/checkpoints, the embedded broker's data in <dir>/broker, part files in <dir>/output")
	fs.DurationVar(&f.duration, "duration", 10*time.Second, "how long to run before stopping with a final checkpoint (0 = until Ctrl-C)")
	fs.Float64Var(&f.rate, "rate", 50_000, "input records per second (file pipeline: 0 = as fast as possible; the kafka pipeline needs a rate)")
	fs.IntVar(&f.keys, "keys", 10_000, "number of distinct account keys (--pipeline windows: default 100)")
	fs.IntVar(&f.splits, "splits", 4, "number of datagen splits (sequences)")
	fs.IntVar(&f.parallelism, "parallelism", 2, "parallelism of every operator")
	fs.DurationVar(&f.interval, "checkpoint-interval", time.Second, "checkpoint interval")
	fs.DurationVar(&f.minPause, "min-pause", 500*time.Millisecond, "least time between the end of a checkpoint and the next trigger (0 = no pause)")
	fs.DurationVar(&f.failEvery, "fail-every", 0, "inject a failure (a panic at a random operator and point) about this often, e.g. 3s (0 = never)")
	fs.Uint64Var(&f.seed, "seed", 0, "seed for data and failures (0 = from the clock; printed)")
	fs.StringVar(&f.mode, "mode", "exactly-once", "checkpointing mode: exactly-once or at-least-once")
	fs.StringVar(&f.distribution, "distribution", "uniform", "key distribution: uniform, zipf or sequential")
	fs.DurationVar(&f.bufTimeout, "buffer-timeout", 100*time.Millisecond, "longest time a record waits in a partly filled batch (0 = send every batch at once)")
	fs.BoolVar(&f.verbose, "v", false, "log every restart and checkpoint failure")
	fs.BoolVar(&f.resume, "resume", false, "resume an earlier run from the latest checkpoint in <dir>/checkpoints, keeping its output; pass that run's --seed")
	fs.BoolVar(&f.allowNonRestored, "allow-non-restored-state", false, "with --resume/--from-checkpoint: drop state of operators the job does not have instead of refusing (logged per state)")
	fs.BoolVar(&f.allowSource, "allow-source-change", false, "with --resume/--from-checkpoint: restore a checkpoint whose source read something else (other --keys, --splits, --distribution or --seed)")
	fs.StringVar(&f.http, "http", "127.0.0.1:0", "serve the job's control API and the live dashboard on this address (port 0, the default, picks a free one; both URLs are printed; \"off\": none): 'sluice savepoint' and 'sluice stop --savepoint' (which ends the demo and verifies it); loopback only unless --http-token")
	fs.StringVar(&f.httpToken, "http-token", os.Getenv("SLUICE_HTTP_TOKEN"), "bearer token of the control API's savepoint and stop calls (default $SLUICE_HTTP_TOKEN)")
	fs.Func("from-savepoint", "like --from-checkpoint, for a savepoint directory (file pipeline)", func(v string) error { f.from = v; return nil })
	f.opsFlags.register(fs)
	f.stateFlags.register(fs)
	fs.StringVar(&f.from, "from-checkpoint", "", "resume from this checkpoint directory (e.g. data/demo/checkpoints/chk-12) of an earlier run, keeping its output; pass that run's --seed")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	keysSet := false
	fs.Visit(func(fl *flag.Flag) { keysSet = keysSet || fl.Name == "keys" })
	if f.pipeline == "windows" && !keysSet {
		// 1-minute windows hold about 1200 orders: with 100 accounts each
		// window of an account sums about a dozen.
		f.keys = 100
	}
	var check flagCheck
	check.nonNegative("duration", f.duration)
	if f.rate < 0 || (f.rate == 0 && f.pipeline != "file") {
		check.fail("--rate: must be positive (0, as fast as possible, is for --pipeline file), got %v", f.rate)
	}
	if f.pipeline == "windows" && f.duration == 0 {
		check.fail("--duration: the windows pipeline's input is --rate × --duration orders: give a positive duration")
	}
	check.atLeast("keys", int64(f.keys), 1)
	check.atLeast("splits", int64(f.splits), 1)
	check.atLeast("parallelism", int64(f.parallelism), 1)
	check.positive("checkpoint-interval", f.interval)
	check.nonNegative("min-pause", f.minPause)
	check.nonNegative("fail-every", f.failEvery)
	check.nonNegative("buffer-timeout", f.bufTimeout)
	f.stateFlags.check(&check)
	if f.http != "" && f.http != "off" {
		if err := httpapi.CheckAddr(f.http, f.httpToken != ""); err != nil {
			check.fail("--%v", err)
		}
	}
	stdout = f.opsFlags.check(&check, f.http != "" && f.http != "off", stdout)
	if err := check.err(stderr); err != nil {
		return err
	}
	if f.seed == 0 {
		if f.from != "" || f.resume {
			fmt.Fprintln(stderr, "--resume and --from-checkpoint need the --seed of the run that wrote the checkpoint (it is in that run's summary)")
			return errUsage
		}
		f.seed = uint64(time.Now().UnixNano())
	}
	switch f.pipeline {
	case "file":
		return demo(ctx, f, stdout, stderr)
	case "kafka":
		if f.from != "" || f.resume {
			fmt.Fprintln(stderr, "--resume and --from-checkpoint apply to --pipeline file; for Kafka use 'sluice run count', which resumes by itself")
			return errUsage
		}
		return demoKafka(ctx, f, stdout, stderr)
	case "windows":
		if f.from != "" || f.resume {
			fmt.Fprintln(stderr, "--resume and --from-checkpoint apply to --pipeline file")
			return errUsage
		}
		return demoWindows(ctx, f, stdout, stderr)
	}
	fmt.Fprintf(stderr, "--pipeline: want kafka, file or windows, got %q\n", f.pipeline)
	return errUsage
}

// demoSummary is the last line of the demo: the verification result.
type demoSummary struct {
	Produced    int64 `json:"produced"`
	Committed   int64 `json:"committed"`
	Lost        int64 `json:"lost"`
	Duplicated  int64 `json:"duplicated"`
	Restarts    int64 `json:"restarts"`
	Checkpoints int64 `json:"checkpoints"`
	Keys        int   `json:"keys"`
	// ProcessedTotal is the records the count operator received over
	// every attempt: after a restore the replayed ones count again, so it
	// exceeds Produced when the job restarted.
	ProcessedTotal int64 `json:"processedTotal"`
	// ProcessedLastAttempt is the records the count operator received in
	// the last attempt, since the checkpoint it restored.
	ProcessedLastAttempt int64   `json:"processedLastAttempt"`
	Seed                 uint64  `json:"seed"`
	Mode                 string  `json:"mode"`
	Seconds              float64 `json:"seconds"`
}

func demo(ctx context.Context, f demoFlags, stdout, stderr io.Writer) error {
	outDir := filepath.Join(f.dir, "output")
	ckDir := filepath.Join(f.dir, "checkpoints")
	if f.from == "" && !f.resume {
		for _, d := range []string{outDir, ckDir} {
			if err := os.RemoveAll(d); err != nil {
				return fmt.Errorf("clean %s: %w", d, err)
			}
		}
	}
	gen := datagen.Config{Splits: f.splits, RatePerSecond: f.rate, Keys: f.keys, Distribution: f.distribution, Seed: f.seed}
	if err := gen.Validate(); err != nil {
		return err
	}
	logger := f.logger(stderr)
	var inj *fault.Injector
	if f.failEvery > 0 {
		inj = fault.New(f.seed)
	}
	env := sluice.New(sluice.Config{
		JobName:               "count",
		Parallelism:           f.parallelism,
		BufferTimeout:         bufferTimeout(f.bufTimeout),
		Checkpoint:            checkpoint.Config{Interval: f.interval, MinPause: noneIfZero(f.minPause), Mode: checkpoint.Mode(f.mode)},
		CheckpointDir:         ckDir,
		FromCheckpoint:        f.from,
		AllowNonRestoredState: f.allowNonRestored,
		AllowSourceChange:     f.allowSource,
		Restart:               restart.FixedDelay{Attempts: 1 << 30, Delay: 50 * time.Millisecond},
		State:                 f.stateConfig(),
		Seed:                  int64(f.seed),
		Logger:                logger,
		Faults:                inj,
	})
	countjob.Build(env, datagen.New(gen), file.NewSink(file.Config[countjob.Count]{Dir: outDir, Encode: countjob.AppendLine}), f.parallelism)

	fmt.Fprintf(stdout, "sluice demo: datagen(%d splits, %d keys, %s) → keyBy → count → file sink, parallelism %d, checkpoint every %v, %s, seed %d\n",
		f.splits, f.keys, rateString(f.rate), f.parallelism, f.interval, f.mode, f.seed)
	fmt.Fprintf(stdout, "output: %s   checkpoints: %s\n", outDir, ckDir)

	res, runErr, took := demoLoop(ctx, env, f, inj, []string{countjob.SourceUID, countjob.CountUID, countjob.SinkUID}, countjob.CountUID, nil, stdout)
	return demoFinish(res, runErr, f, gen, outDir, took, stdout)
}

// demoLoop runs env until the duration passes or ctx is cancelled, printing
// progress and arming failures, then stops it with a final checkpoint.
// beforeStop, if set, runs first (off the loop) and must return before the
// job is stopped. The unnamed string, the count operator's uid, is unused
// since the status line counts what the sources read.
func demoLoop(ctx context.Context, env *sluice.Environment, f demoFlags, inj *fault.Injector, uids []string, _ string,
	beforeStop func(), stdout io.Writer) (*sluice.Result, error, time.Duration) {
	type result struct {
		res *sluice.Result
		err error
	}
	done := make(chan result, 1)
	runCtx, hardCancel := context.WithCancel(context.Background())
	defer hardCancel()
	start := time.Now()
	var srv *httpapi.Server
	var col *metrics.Collector
	if f.http != "" && f.http != "off" {
		var err error
		srv, err = httpapi.New(httpapi.Config{Addr: f.http, Token: f.httpToken})
		if err == nil && f.pprof {
			httpapi.MountPprof(srv)
		}
		if err == nil {
			dashboard.Mount(srv)
			// Mounted before the server starts, registered before Execute.
			col, err = demoMetrics(srv, env)
		}
		if err == nil {
			err = srv.Start()
		}
		if err != nil {
			return nil, fmt.Errorf("--%w", err), 0
		}
		srv.Add(env, "demo")
		fmt.Fprintf(stdout, "control API on http://%s/api/v1/ (job %s)\n", srv.Addr(), env.JobID())
		fmt.Fprintf(stdout, "dashboard on http://%s/\n", srv.Addr())
		fmt.Fprintf(stdout, "metrics on http://%s/metrics\n", srv.Addr())
		if f.pprof {
			fmt.Fprintf(stdout, "profiler on http://%s%s\n", srv.Addr(), httpapi.PprofPrefix)
		}
	}
	// One status line, redrawn in place on a terminal (docs/design.md §8).
	pr := f.printer
	if pr == nil {
		pr = progress.New(stdout, nil)
	}
	stdout = pr.Wrap(stdout)
	defer pr.Done()
	var meter progress.Meter
	go func() {
		res, err := env.Execute(runCtx)
		done <- result{res, err}
	}()
	var stopAt <-chan time.Time
	if f.duration > 0 {
		stopAt = time.After(f.duration)
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var failTick <-chan time.Time
	if inj != nil {
		t := time.NewTicker(f.failEvery)
		defer t.Stop()
		failTick = t.C
	}
	stopping := false
	stop := func(why string) {
		if stopping {
			return
		}
		stopping = true
		fmt.Fprintf(stdout, "%s: stopping with a final checkpoint...\n", why)
		if inj != nil {
			inj.Disarm()
		}
		failTick = nil
		go func() {
			if beforeStop != nil {
				beforeStop()
			}
			env.Stop()
		}()
	}
	for {
		select {
		case r := <-done:
			took := time.Since(start)
			if col != nil {
				col.SetRunning(env.JobID(), false)
			}
			if srv != nil {
				// The answer of a stop is written before the demo verifies.
				status := httpapi.StatusFinished
				if r.err != nil {
					status = httpapi.StatusFailed
				}
				srv.SetStatus(env.JobID(), status)
				sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_ = srv.Shutdown(sctx)
				cancel()
				if p := srv.StoppedWith(env.JobID()); p != "" {
					fmt.Fprintf(stdout, "stopped with savepoint %s\n", p)
				}
			}
			return r.res, r.err, took
		case <-stopAt:
			stop("duration reached")
		case <-ctx.Done():
			stop("interrupted")
			ctx = context.Background()
		case <-failTick:
			t := inj.ArmRandom(uids, 1000)
			if f.verbose {
				where := t.UID
				if where == "" {
					where = "any two-phase-commit sink"
				}
				fmt.Fprintf(stdout, "armed failure: %s at %s\n", where, t.Point)
			}
		case now := <-tick.C:
			st := env.Status()
			pr.Update(progress.Line(st, meter.Rates(st, now), now.Sub(start)))
		}
	}
}

// bufferTimeout maps the command line's 0 (send at once) to FlushAlways.
func bufferTimeout(d time.Duration) time.Duration {
	if d == 0 {
		return sluice.FlushAlways
	}
	return d
}

// processed returns the records vertex name received in the current
// attempt and over every attempt (replays included).
func processed(st sluice.JobStatus, name string) (attempt, total int64) {
	for _, v := range st.Vertices {
		if v.Name == name {
			return v.RecordsInAttempt, v.RecordsInTotal
		}
	}
	return 0, 0
}

func rateString(r float64) string {
	if r <= 0 {
		return "unbounded rate"
	}
	return fmt.Sprintf("%.0f records/s", r)
}

func demoFinish(res *sluice.Result, runErr error, f demoFlags, gen datagen.Config, outDir string, took time.Duration, stdout io.Writer) error {
	if runErr != nil {
		return fmt.Errorf("job failed: %w", runErr)
	}
	if res.LastCheckpoint == nil {
		return errors.New("job ended without a completed checkpoint: nothing to verify")
	}
	positions, err := datagenPositions(res.LastCheckpoint)
	if err != nil {
		return err
	}
	outputs, err := verify.ReadDir(outDir)
	if err != nil {
		return err
	}
	rep := verify.Counts(datagen.Expected(gen, positions), outputs)
	sum := demoSummary{
		Produced: rep.Produced, Committed: rep.Committed, Lost: rep.Lost, Duplicated: rep.Duplicated,
		Restarts: res.Restarts, Checkpoints: res.Checkpoints, Keys: rep.Keys, Seed: f.seed, Mode: f.mode,
		Seconds: took.Seconds(),
	}
	sum.ProcessedLastAttempt, sum.ProcessedTotal = processed(res.Status, countjob.CountUID)
	verdict := "EXACTLY ONCE: every input record is reflected in the committed output once"
	if rep.Lost > 0 || rep.Duplicated > 0 {
		verdict = fmt.Sprintf("NOT EXACTLY ONCE: %d lost, %d duplicated (examples: %s)", rep.Lost, rep.Duplicated, strings.Join(rep.Examples, "; "))
	}
	fmt.Fprintf(stdout, "verified final checkpoint %d: produced %d, committed %d, %d keys, %d restarts, %d checkpoints\n",
		res.LastCheckpoint.CheckpointID, rep.Produced, rep.Committed, rep.Keys, res.Restarts, res.Checkpoints)
	fmt.Fprintf(stdout, "count processed %d records in all attempts (replays after restores included), %d in the last attempt\n%s\n",
		sum.ProcessedTotal, sum.ProcessedLastAttempt, verdict)
	line, _ := json.Marshal(sum)
	fmt.Fprintln(stdout, string(line))
	if rep.Lost > 0 || (rep.Duplicated > 0 && f.mode == string(checkpoint.ExactlyOnce)) {
		return fmt.Errorf("verification failed: %d lost, %d duplicated", rep.Lost, rep.Duplicated)
	}
	return nil
}

// datagenPositions reads the datagen split positions from a checkpoint.
func datagenPositions(m *checkpoint.Metadata) (map[int]int64, error) {
	splits, err := sluice.SplitsFromMetadata(m, countjob.SourceUID)
	if err != nil {
		return nil, err
	}
	return datagen.Positions(splits)
}

// demoMetrics serves the demo job's Prometheus metrics on GET /metrics of
// srv (docs/metrics.md), under job_name "demo" as the control API lists it.
func demoMetrics(srv *httpapi.Server, env *sluice.Environment) (*metrics.Collector, error) {
	col := metrics.NewCollector()
	info := metrics.Info(env.Config())
	info.Name = "demo"
	if err := col.Add(env, info); err != nil {
		return nil, err
	}
	reg, err := metrics.NewRegistry(col)
	if err != nil {
		return nil, err
	}
	srv.Handle("GET /metrics", metrics.Handler(reg, nil))
	return col, nil
}
