package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/connector/kafka"
	"github.com/sluicehq/sluice/internal/kafkacount"
	"github.com/sluicehq/sluice/internal/verify"
	"github.com/sluicehq/sluice/job"
	"github.com/sluicehq/sluice/restart"
)

func splitBrokers(s string) []string {
	var out []string
	for _, b := range strings.Split(s, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// countHelp is what `sluice run count --help` prints before the flags.
const countHelp = `Usage: sluice run count --brokers B --input T --output U --checkpoint-dir D [flags]

Runs the count job against a Kafka cluster: Kafka source (topic T, from the
earliest offset) → key by record key → keyed running count → Kafka sink
(topic U; key = input key, value = decimal count). It resumes from the latest
checkpoint in D when restarted, so it can be killed (even with SIGKILL) and
started again, or restores --from-savepoint. Ctrl-C or SIGTERM stops it with
a final checkpoint; with --http, 'sluice stop --savepoint --http ADDR' stops
it with a savepoint and 'sluice savepoint --http ADDR' takes one.

Every flag can also be set in the environment (SLUICE_ and the flag in upper
case with '_' for '-': SLUICE_BROKERS) or in the YAML file of --config
(brokers: host:9092); the command line wins over the environment, the
environment over the file (docs/operations.md).

Flags:
`

// countJob is the count job as a job command (package job): the
// standard keys (parallelism, checkpoint-dir, from-savepoint,
// allow-non-restored-state, http, http-token, log-level, config) and the
// count job's own.
func countJob() job.Job {
	var (
		brokers, input, output, delivery, group, txnPrefix, restartFlag string
		interval, minPause, txnTimeout                                  time.Duration
		acceptLost, allowSource                                         bool
		partitions                                                      int
		ckDir                                                           string
		policy                                                          restart.Policy
	)
	bs := func() []string { return splitBrokers(brokers) }
	return job.Job{
		Name: "count", Program: "sluice", Usage: countHelp, Parallelism: 2, HTTPAddr: "off",
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&brokers, "brokers", "", "Kafka bootstrap servers, host:port[,host:port] (required)")
			fs.StringVar(&input, "input", "", "input topic (required)")
			fs.StringVar(&output, "output", "", "output topic (required)")
			fs.DurationVar(&interval, "checkpoint-interval", time.Second, "checkpoint interval (exactly-once output becomes visible at this pace)")
			fs.DurationVar(&minPause, "min-pause", 500*time.Millisecond, "least time between the end of a checkpoint and the next trigger (0 = no pause)")
			fs.StringVar(&delivery, "delivery", "exactly-once", "exactly-once or at-least-once")
			fs.StringVar(&group, "group", "sluice-count", "consumer group that receives the job's offsets after each checkpoint (monitoring only)")
			fs.StringVar(&txnPrefix, "txn-prefix", "", "transactional id prefix of the sink (default sluice-count-<output>); unique per job on the cluster")
			fs.DurationVar(&txnTimeout, "transaction-timeout", kafka.DefaultTransactionTimeout, "transaction timeout of the sink (kafka.sink.transaction-timeout); at most the broker's transaction.max.timeout.ms")
			fs.BoolVar(&acceptLost, "accept-lost-transactions", false, "restore even if transactions of the checkpoint can no longer be committed (their records are lost; see docs/operations.md)")
			fs.IntVar(&partitions, "partitions", 4, "partitions of topics that do not exist yet (created at start)")
			fs.BoolVar(&allowSource, "allow-source-change", false, "restore a checkpoint written while reading other topics: offsets of partitions still read are kept, the rest start from the earliest offset")
			fs.StringVar(&restartFlag, "restart", "exponential-delay", "restart strategy: fixed-delay, exponential-delay, failure-rate or none, with settings after a colon, e.g. fixed-delay:attempts=10,delay=5s")
		},
		Validate: func(cfg sluice.Config) error {
			var check flagCheck
			check.positive("checkpoint-interval", interval)
			check.nonNegative("min-pause", minPause)
			check.atLeast("partitions", int64(partitions), 1)
			if input != "" && input == output {
				check.fail("--output: must differ from --input (%s): the job would read its own output", input)
			}
			var err error
			if policy, err = restart.Parse(restartFlag); err != nil {
				check.fail("--restart: %v", err)
			}
			var missing []string
			for _, kv := range [][2]string{{"--brokers", brokers}, {"--input", input}, {"--output", output}, {"--checkpoint-dir", cfg.CheckpointDir}} {
				if kv[1] == "" {
					missing = append(missing, kv[0])
				}
			}
			if len(missing) > 0 {
				check.fail("missing required flags: %s", strings.Join(missing, ", "))
			}
			if len(check.problems) > 0 {
				return errors.New(strings.Join(check.problems, "\n"))
			}
			return nil
		},
		Setup: func(ctx context.Context, cfg sluice.Config) error {
			if err := kafkacount.EnsureTopics(ctx, bs(), int32(partitions), input, output); err != nil {
				return err
			}
			return nil
		},
		Build: func(cfg sluice.Config) (*sluice.Environment, error) {
			ckDir = cfg.CheckpointDir
			env, err := kafkacount.New(kafkacount.Options{
				Brokers: bs(), Input: input, Output: output, GroupID: group, TxnPrefix: txnPrefix,
				Parallelism: cfg.Parallelism, CheckpointInterval: interval, MinPause: noneIfZero(minPause), Delivery: delivery,
				CheckpointDir: cfg.CheckpointDir, SavepointDir: cfg.SavepointDir, Restart: policy, Logger: cfg.Logger,
				FromCheckpoint: cfg.FromCheckpoint, AllowNonRestoredState: cfg.AllowNonRestoredState, AllowSourceChange: allowSource,
				TransactionTimeout: txnTimeout, AcceptLostTransactions: acceptLost, State: cfg.State,
			})
			if err != nil && strings.Contains(err.Error(), kafka.KeySinkTransactionTimeout) {
				return nil, fmt.Errorf("%w (%s is --transaction-timeout here)", err, kafka.KeySinkTransactionTimeout)
			}
			return env, err
		},
		Started: func(_ *sluice.Environment, stdout io.Writer) {
			fmt.Fprintf(stdout, "running count: %s → %s on %s, checkpoints in %s (Ctrl-C stops with a final checkpoint)\n", input, output, brokers, ckDir)
		},
		Done: func(env *sluice.Environment, savepoint string, stdout io.Writer) error {
			if savepoint != "" {
				return nil // the savepoint committed the output
			}
			msg, err := stopSummary(env.Status())
			fmt.Fprintln(stdout, msg)
			return err
		},
	}
}

// runRun is `sluice run <job>`: a built-in job against any Kafka cluster.
func runRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		_ = job.Run(ctx, countJob(), []string{"run", "--help"}, stderr, stderr)
		return errUsage
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		return jobErr(job.Run(ctx, countJob(), []string{"run", "--help"}, stdout, stderr))
	}
	if args[0] != "count" {
		fmt.Fprintf(stderr, "sluice run: unknown job %q (the built-in job is count)\n", args[0])
		return errUsage
	}
	return jobErr(job.Run(ctx, countJob(), append([]string{"run"}, args[1:]...), stdout, stderr))
}

// runJobCommand runs a subcommand of package job on the count job:
// `sluice savepoint`, `sluice stop`, `sluice check count`, `sluice describe
// count`.
func runJobCommand(sub string, needsJob bool) func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		if needsJob {
			if len(args) == 0 || args[0] != "count" {
				if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
					return jobErr(job.Run(ctx, countJob(), []string{sub, "--help"}, stdout, stderr))
				}
				fmt.Fprintf(stderr, "Usage: sluice %s count [flags] (the built-in job is count)\n", sub)
				return errUsage
			}
			args = args[1:]
		}
		return jobErr(job.Run(ctx, countJob(), append([]string{sub}, args...), stdout, stderr))
	}
}

// jobErr maps the errors of job.Run to the command's: a usage error was
// printed already.
func jobErr(err error) error {
	if errors.Is(err, job.ErrUsage) {
		return errUsage
	}
	return err
}

// stopSummary is what `run count` says when the job stopped without error.
// A stop always takes a final checkpoint, but a run whose checkpoints all
// failed committed nothing: that is not a clean stop, and the exit status
// says so (1).
func stopSummary(st sluice.JobStatus) (string, error) {
	switch {
	case st.CheckpointsCompleted == 0:
		return fmt.Sprintf("stopped, but no checkpoint completed (%d failed, %d restarts): nothing this run read was committed; "+
				"the next start resumes from the checkpoint this run started from", st.CheckpointsFailed, st.Restarts),
			errors.New("no checkpoint completed")
	case st.CheckpointsFailed > 0:
		return fmt.Sprintf("stopped after a final checkpoint: %d checkpoints completed, %d failed (see the log), %d restarts",
			st.CheckpointsCompleted, st.CheckpointsFailed, st.Restarts), nil
	}
	return fmt.Sprintf("stopped cleanly after %d checkpoints, %d restarts", st.CheckpointsCompleted, st.Restarts), nil
}

// verifyCheckTimeout bounds a check of `sluice verify` without --wait.
const verifyCheckTimeout = 30 * time.Second

// runVerify is `sluice verify`: checks an output topic of the count job
// against its input topic.
func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	brokers := fs.String("brokers", "", "Kafka bootstrap servers (required)")
	input := fs.String("input", "", "input topic (required)")
	output := fs.String("output", "", "output topic (required)")
	wait := fs.Duration("wait", 0, "keep re-checking until nothing is lost or duplicated, at most this long (for a job still catching up; 0 = check once); every read ends by then (a check without --wait ends after 30s)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: sluice verify --brokers B --input T --output U [--wait 30s]

Checks the output topic of the count job (key = input key, value = the
decimal count n of that key's records so far) against its input topic,
both read to their last stable offset with read_committed: for every key
the outputs must be exactly 1..n_k, once each, n_k being how many input
records have that key. Prints what is lost and duplicated, and a JSON
summary as the last line. Exits 1 when anything is lost or duplicated, or
when a topic could not be read to its end by the deadline (--wait, or 30s
without it); that error names each such partition and the offset reached.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *brokers == "" || *input == "" || *output == "" {
		fmt.Fprintln(stderr, "--brokers, --input and --output are required")
		return errUsage
	}
	var check flagCheck
	check.nonNegative("wait", *wait)
	if err := check.err(stderr); err != nil {
		return err
	}
	deadline := time.Now().Add(*wait)
	for {
		// Every check ends by the deadline (or after verifyCheckTimeout
		// without --wait): a partition whose last stable offset a
		// read_committed reader never reaches would hold it for ever.
		end := deadline
		if *wait <= 0 {
			end = time.Now().Add(verifyCheckTimeout)
		}
		cctx, cancel := context.WithDeadline(ctx, end)
		rep, err := kafkacount.Check(cctx, splitBrokers(*brokers), *input, *output)
		cancel()
		if _, ok := errors.AsType[*kafkacount.IncompleteReadError](err); ok && ctx.Err() == nil {
			bound := *wait
			if bound <= 0 {
				bound = verifyCheckTimeout
			}
			return fmt.Errorf("could not read the topics to their end within %v: %w", bound, err)
		}
		if err != nil {
			return err
		}
		if rep.ExactlyOnce() || time.Now().After(deadline) {
			printReport(stdout, rep)
			if !rep.ExactlyOnce() {
				return fmt.Errorf("%d lost, %d duplicated", rep.Lost, rep.Duplicated)
			}
			return nil
		}
		select {
		case <-time.After(500 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func printReport(w io.Writer, rep verify.Report) {
	fmt.Fprintf(w, "input %d records, output %d records, %d keys: %d lost, %d duplicated\n", rep.Produced, rep.Committed, rep.Keys, rep.Lost, rep.Duplicated)
	for _, e := range rep.Examples {
		fmt.Fprintf(w, "  %s\n", e)
	}
	line, _ := json.Marshal(rep)
	fmt.Fprintln(w, string(line))
}
