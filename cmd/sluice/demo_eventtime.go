package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/connector/kafka"
	"github.com/sluicehq/sluice/fault"
	"github.com/sluicehq/sluice/internal/kafkacount"
	"github.com/sluicehq/sluice/internal/windowjob"
	"github.com/sluicehq/sluice/restart"
)

// windowsWatermarkInterval is the windows pipeline's watermark interval:
// a late order waits at the source for the watermark that makes it late,
// so a short interval keeps the source from waiting long.
const windowsWatermarkInterval = 20 * time.Millisecond

// windowsSummary is the last line of the windows pipeline: the count
// pipelines' summary and the window verification.
type windowsSummary struct {
	demoSummary
	// Windows and Late are the window results (firings, updates within
	// the allowed lateness included) and late orders the input must give.
	Windows int64 `json:"windows"`
	Late    int64 `json:"late"`
	// CommittedWindows and CommittedLate are what the sink committed.
	CommittedWindows int64 `json:"committedWindows"`
	CommittedLate    int64 `json:"committedLate"`
	// Unexpected counts committed outputs that are no expected result.
	Unexpected int64 `json:"unexpected"`
	// LateCounted is the window operator's late-record counter over all
	// attempts (replays count again).
	LateCounted int64  `json:"lateCounted"`
	Sink        string `json:"sink"`
}

// demoWindows is the event-time pipeline of `sluice demo` (issue 7):
// orders out of order by up to 2s, some later than the allowed lateness →
// key by account → revenue per account in 1-minute tumbling event-time
// windows (allowed lateness 5s, late orders to a side output) → the
// exactly-once file sink or Kafka sink. Its input is bounded (--rate ×
// --duration orders): the end of input fires every window, and the
// committed output is checked against the results computed from the
// generator alone.
func demoWindows(ctx context.Context, f demoFlags, stdout, stderr io.Writer) error {
	stdout = &lockedWriter{w: stdout}
	logger := f.logger(stderr)
	cfg := windowjob.Config{Records: int64(f.rate * f.duration.Seconds()), RatePerSecond: f.rate, Keys: f.keys, Seed: f.seed}
	if err := cfg.Validate(); err != nil {
		return err
	}
	ckDir := filepath.Join(f.dir, "checkpoints")
	outDir := filepath.Join(f.dir, "output")
	var (
		sink  sluice.SinkProvider[windowjob.Output]
		read  func(context.Context) ([]windowjob.Output, error)
		where string
	)
	delivery := kafka.DeliveryExactlyOnce
	if f.mode == string(checkpoint.AtLeastOnce) {
		delivery = kafka.DeliveryAtLeastOnce
	}
	const restartDelay = 50 * time.Millisecond
	switch f.sink {
	case "file":
		for _, d := range []string{outDir, ckDir} {
			if err := os.RemoveAll(d); err != nil {
				return fmt.Errorf("clean %s: %w", d, err)
			}
		}
		sink = windowjob.FileSink(outDir)
		read = func(context.Context) ([]windowjob.Output, error) { return windowjob.ReadDir(outDir) }
		where = "file sink → " + outDir
	case "kafka":
		brokers, closeBroker, err := demoBrokers(ctx, f, logger, stdout)
		if err != nil {
			return err
		}
		defer closeBroker()
		topic := fmt.Sprintf("sluice-demo-%d-windows", f.seed)
		if err := kafkacount.EnsureTopics(ctx, brokers, 4, topic); err != nil {
			return err
		}
		sink, err = windowjob.KafkaSink(brokers, topic, "sluice-demo-"+topic, delivery, f.interval, restartDelay)
		if err != nil {
			return err
		}
		read = func(ctx context.Context) ([]windowjob.Output, error) { return windowjob.ReadTopic(ctx, brokers, topic) }
		where = "Kafka sink (" + delivery + ") → " + topic
	default:
		fmt.Fprintf(stderr, "--sink: want file or kafka, got %q\n", f.sink)
		return errUsage
	}
	var inj *fault.Injector
	if f.failEvery > 0 {
		inj = fault.New(f.seed)
	}
	env := sluice.New(sluice.Config{
		JobName:           "windows",
		Parallelism:       f.parallelism,
		BufferTimeout:     bufferTimeout(f.bufTimeout),
		WatermarkInterval: windowsWatermarkInterval,
		Checkpoint:        checkpoint.Config{Interval: f.interval, MinPause: noneIfZero(f.minPause), Mode: checkpoint.Mode(f.mode)},
		CheckpointDir:     ckDir,
		Restart:           restart.FixedDelay{Attempts: 1 << 30, Delay: restartDelay},
		State:             f.stateConfig(),
		Seed:              int64(f.seed),
		Logger:            logger,
		Faults:            inj,
	})
	windowjob.Build(env, windowjob.NewSource(cfg), sink, f.parallelism)
	fmt.Fprintf(stdout, "sluice demo: %d orders (%d keys, %s, out of order by up to %v, ~0.5%% late within the allowed lateness, ~0.5%% beyond) → keyBy → revenue in %v tumbling event-time windows (allowed lateness %v, late orders to a side output) → %s\n",
		cfg.Records, f.keys, rateString(f.rate), windowjob.Disorder, windowjob.Size, windowjob.AllowedLateness, where)
	fmt.Fprintf(stdout, "parallelism %d, checkpoint every %v, %s, seed %d, checkpoints in %s\n", f.parallelism, f.interval, f.mode, f.seed, ckDir)

	// The input ends by itself: no stop at --duration (a Ctrl-C still
	// stops with a final checkpoint).
	loop := f
	loop.duration = 0
	res, runErr, took := demoLoop(ctx, env, loop, inj, windowjob.UIDs, windowjob.WindowUID, nil, stdout)
	if runErr != nil {
		return fmt.Errorf("job failed: %w", runErr)
	}
	if res.LastCheckpoint == nil {
		return errors.New("job ended without a completed checkpoint: nothing to verify")
	}
	splits, err := sluice.SplitsFromMetadata(res.LastCheckpoint, windowjob.SourceUID)
	if err != nil {
		return err
	}
	pos, err := windowjob.Position(splits)
	if err != nil {
		return err
	}
	vctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	outs, err := read(vctx)
	if err != nil {
		return err
	}
	rep, err := windowjob.Check(cfg, outs)
	if err != nil {
		return err
	}
	sum := windowsSummary{
		demoSummary: demoSummary{
			Produced: cfg.Records, Committed: int64(len(outs)), Lost: rep.Lost, Duplicated: rep.Duplicated,
			Restarts: res.Restarts, Checkpoints: res.Checkpoints, Keys: f.keys, Seed: f.seed, Mode: f.mode, Seconds: took.Seconds(),
		},
		Windows: rep.Windows, Late: rep.Late, CommittedWindows: rep.CommittedWindows, CommittedLate: rep.CommittedLate,
		Unexpected: rep.Unexpected, Sink: f.sink,
	}
	sum.ProcessedLastAttempt, sum.ProcessedTotal = processed(res.Status, windowjob.WindowUID)
	for _, v := range res.Status.Vertices {
		sum.LateCounted += v.LateRecords
	}
	verdict := "EXACTLY ONCE: every window result and every late order is committed once, as a failure-free run gives them"
	switch {
	case pos < cfg.Records:
		verdict = fmt.Sprintf("INCOMPLETE: stopped after %d of %d orders; the windows still open are in the final checkpoint, not in the output", pos, cfg.Records)
	case !rep.ExactlyOnce():
		verdict = fmt.Sprintf("NOT EXACTLY ONCE: %d lost, %d duplicated, %d unexpected (examples: %s)", rep.Lost, rep.Duplicated, rep.Unexpected, strings.Join(rep.Examples, "; "))
	}
	fmt.Fprintf(stdout, "verified final checkpoint %d: %d orders, %d window results and %d late orders expected; committed %d and %d; %d restarts, %d checkpoints\n",
		res.LastCheckpoint.CheckpointID, cfg.Records, rep.Windows, rep.Late, rep.CommittedWindows, rep.CommittedLate, res.Restarts, res.Checkpoints)
	fmt.Fprintf(stdout, "the window operator received %d orders in all attempts (replays after restores included), %d in the last; it counted %d late (replays included)\n%s\n",
		sum.ProcessedTotal, sum.ProcessedLastAttempt, sum.LateCounted, verdict)
	line, _ := json.Marshal(sum)
	fmt.Fprintln(stdout, string(line))
	switch {
	case pos < cfg.Records:
		return fmt.Errorf("verification incomplete: the job stopped after %d of %d orders", pos, cfg.Records)
	case rep.Lost > 0 || rep.Unexpected > 0 || (rep.Duplicated > 0 && f.mode == string(checkpoint.ExactlyOnce)):
		return fmt.Errorf("verification failed: %d lost, %d duplicated, %d unexpected", rep.Lost, rep.Duplicated, rep.Unexpected)
	}
	return nil
}
