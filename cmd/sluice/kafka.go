package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/connector/kafka"
	"github.com/sluicehq/sluice/internal/kafkacount"
	"github.com/sluicehq/sluice/internal/verify"
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

// runRun is `sluice run <job>`: a built-in job against any Kafka cluster.
func runRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	help := func(w io.Writer) {
		fmt.Fprintf(w, `Usage: sluice run count --brokers B --input T --output U --checkpoint-dir D [flags]

Runs the count job against a Kafka cluster: Kafka source (topic T, from the
earliest offset) → key by record key → keyed running count → Kafka sink
(topic U; key = input key, value = decimal count). It resumes from the latest
checkpoint in D when restarted, so it can be killed (even with SIGKILL) and
started again. Ctrl-C or SIGTERM stops it with a final checkpoint.

Flags:
`)
	}
	fs := flag.NewFlagSet("run count", flag.ContinueOnError)
	fs.SetOutput(stderr)
	brokers := fs.String("brokers", "", "Kafka bootstrap servers, host:port[,host:port] (required)")
	input := fs.String("input", "", "input topic (required)")
	output := fs.String("output", "", "output topic (required)")
	ckDir := fs.String("checkpoint-dir", "", "checkpoint directory; the job resumes from its latest checkpoint (required)")
	par := fs.Int("parallelism", 2, "parallelism of every operator")
	interval := fs.Duration("checkpoint-interval", time.Second, "checkpoint interval (exactly-once output becomes visible at this pace)")
	minPause := fs.Duration("min-pause", 500*time.Millisecond, "least time between the end of a checkpoint and the next trigger (0 = no pause)")
	delivery := fs.String("delivery", "exactly-once", "exactly-once or at-least-once")
	group := fs.String("group", "sluice-count", "consumer group that receives the job's offsets after each checkpoint (monitoring only)")
	txnPrefix := fs.String("txn-prefix", "", "transactional id prefix of the sink (default sluice-count-<output>); unique per job on the cluster")
	txnTimeout := fs.Duration("transaction-timeout", kafka.DefaultTransactionTimeout, "transaction timeout of the sink (kafka.sink.transaction-timeout); at most the broker's transaction.max.timeout.ms")
	acceptLost := fs.Bool("accept-lost-transactions", false, "restore even if transactions of the checkpoint can no longer be committed (their records are lost; see docs/operations.md)")
	partitions := fs.Int("partitions", 4, "partitions of topics that do not exist yet (created at start)")
	allowNonRestored := fs.Bool("allow-non-restored-state", false, "restore a checkpoint holding state of operators the job does not have, dropping that state (logged per state)")
	allowSource := fs.Bool("allow-source-change", false, "restore a checkpoint written while reading other topics: offsets of partitions still read are kept, the rest start from the earliest offset")
	logLevel := fs.String("log-level", "info", "log level on stderr: debug, info (restores, recoveries), warn or error")
	restartFlag := fs.String("restart", "exponential-delay", "restart strategy: fixed-delay, exponential-delay, failure-rate or none, with settings after a colon, e.g. fixed-delay:attempts=10,delay=5s")
	fs.Usage = func() { help(fs.Output()); fs.PrintDefaults() }
	if len(args) == 0 || (args[0] != "count" && args[0] != "-h" && args[0] != "--help") {
		fs.Usage()
		return errUsage
	}
	if args[0] != "count" {
		fs.SetOutput(stdout)
		fs.Usage()
		return nil
	}
	for _, a := range args[1:] {
		if a == "-h" || a == "-help" || a == "--help" {
			fs.SetOutput(stdout) // asked for: not an error
		}
	}
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	var check flagCheck
	check.atLeast("parallelism", int64(*par), 1)
	check.positive("checkpoint-interval", *interval)
	check.nonNegative("min-pause", *minPause)
	check.atLeast("partitions", int64(*partitions), 1)
	if *input != "" && *input == *output {
		check.fail("--output: must differ from --input (%s): the job would read its own output", *input)
	}
	policy, err := restart.Parse(*restartFlag)
	if err != nil {
		check.fail("--restart: %v", err)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		check.fail("--log-level: must be debug, info, warn or error, got %q", *logLevel)
	}
	if err := check.err(stderr); err != nil {
		return err
	}
	var missing []string
	for name, v := range map[string]string{"--brokers": *brokers, "--input": *input, "--output": *output, "--checkpoint-dir": *ckDir} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		fmt.Fprintf(stderr, "missing required flags: %s\n", strings.Join(missing, ", "))
		return errUsage
	}
	bs := splitBrokers(*brokers)
	if err := kafkacount.EnsureTopics(ctx, bs, int32(*partitions), *input, *output); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	env, err := kafkacount.New(kafkacount.Options{
		Brokers: bs, Input: *input, Output: *output, GroupID: *group, TxnPrefix: *txnPrefix,
		Parallelism: *par, CheckpointInterval: *interval, MinPause: noneIfZero(*minPause), Delivery: *delivery,
		CheckpointDir: *ckDir, Restart: policy, Logger: logger,
		AllowNonRestoredState: *allowNonRestored, AllowSourceChange: *allowSource,
		TransactionTimeout: *txnTimeout, AcceptLostTransactions: *acceptLost,
	})
	if err != nil && strings.Contains(err.Error(), kafka.KeySinkTransactionTimeout) {
		return fmt.Errorf("%w (%s is --transaction-timeout here)", err, kafka.KeySinkTransactionTimeout)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "running count: %s → %s on %s, checkpoints in %s (Ctrl-C stops with a final checkpoint)\n", *input, *output, *brokers, *ckDir)
	done := make(chan error, 1)
	runCtx, hardCancel := context.WithCancel(context.Background())
	defer hardCancel()
	go func() {
		_, err := env.Execute(runCtx)
		done <- err
	}()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("job failed: %w", err)
			}
			msg, err := stopSummary(env.Status())
			fmt.Fprintln(stdout, msg)
			return err
		case <-ctx.Done():
			fmt.Fprintln(stdout, "stopping with a final checkpoint...")
			env.Stop()
			ctx = context.Background()
		case <-tick.C:
			st := env.Status()
			var attempt, total int64
			for _, v := range st.Vertices {
				if v.Name == kafkacount.SourceUID {
					attempt, total = v.RecordsOutAttempt, v.RecordsOutTotal
				}
			}
			fmt.Fprintf(stdout, "records read %d this attempt, %d in all attempts (replays included), checkpoints %d (failed %d), restarts %d\n",
				attempt, total, st.CheckpointsCompleted, st.CheckpointsFailed, st.Restarts)
		}
	}
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
