package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/checkpoint/store"
	"github.com/sluicehq/sluice/clock"
	"github.com/sluicehq/sluice/connector/kafka"
	"github.com/sluicehq/sluice/fault"
	"github.com/sluicehq/sluice/internal/countjob"
	"github.com/sluicehq/sluice/internal/kafkacount"
	"github.com/sluicehq/sluice/internal/windowjob"
	"github.com/sluicehq/sluice/restart"
)

// chaosJobFlags configure `sluice chaos job`: the job process that
// `sluice chaos` starts, kills and restarts. It is the count job of
// `sluice run count` (or the windowed job of `sluice demo --pipeline
// windows`) with the hooks a fault scenario needs: a dial map that routes
// its Kafka connections through the chaos proxy, a kill -9 of itself at a
// chosen fault point, a checkpoint disk that can be made slow, a clock that
// a signal steps, status lines for backpressure, and the deliberately
// broken variants the checker's own test must catch.
type chaosJobFlags struct {
	job, brokers, input, output, ckDir, txnPrefix, group, dial, killAt, broken, slowFile string
	parallelism, killSkip, keys                                                          int
	interval, minPause, restartDelay, statusEvery, clockStep                             time.Duration
	acceptLost                                                                           bool
	records                                                                              int64
	rate                                                                                 float64
	seed                                                                                 uint64
}

const chaosJobUsage = `Usage: sluice chaos job [flags]

The job process of 'sluice chaos' (docs/chaos.md); not meant to be run by
hand. It runs the count job (--job count) or the windowed job (--job
windows) like 'sluice run count', with fault hooks. SIGTERM stops it with
a final checkpoint; SIGUSR1 steps its clock forward by --clock-step,
SIGUSR2 back by as much.

Flags:
`

// runChaosJob is `sluice chaos job`.
func runChaosJob(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	// Clock steps come by signal; installed first, since SIGUSR1's default
	// action would end the process.
	steps := make(chan os.Signal, 4)
	signal.Notify(steps, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(steps)

	var f chaosJobFlags
	fs := flag.NewFlagSet("chaos job", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.job, "job", "count", "count or windows")
	fs.StringVar(&f.brokers, "brokers", "", "Kafka bootstrap servers (required)")
	fs.StringVar(&f.input, "input", "", "input topic (count job)")
	fs.StringVar(&f.output, "output", "", "output topic (required)")
	fs.StringVar(&f.ckDir, "checkpoint-dir", "", "checkpoint directory (required)")
	fs.StringVar(&f.txnPrefix, "txn-prefix", "", "transactional id prefix (default chaos-<output>)")
	fs.StringVar(&f.group, "group", "", "consumer group for the job's offsets (default chaos-<output>)")
	fs.StringVar(&f.dial, "dial", "", "broker address rewrites for every Kafka connection, addr=via[,addr=via] (the chaos proxy)")
	fs.StringVar(&f.killAt, "kill-at", "", "kill -9 this process at a fault point: record, barrier, after-pre-commit, before-commit or snapshot-write")
	fs.IntVar(&f.killSkip, "kill-skip", 0, "hits of the --kill-at point to let pass first")
	fs.StringVar(&f.broken, "broken", "", "test only: a deliberately broken job the checker must catch: sink (no transactions: at-least-once sink) or source (commits offsets when it reads, before the checkpoint)")
	fs.StringVar(&f.slowFile, "slow-disk-file", "", "file holding a duration that every checkpoint file write waits before it commits (absent or empty: no wait)")
	fs.IntVar(&f.parallelism, "parallelism", 2, "parallelism")
	fs.DurationVar(&f.interval, "checkpoint-interval", 200*time.Millisecond, "checkpoint interval")
	fs.DurationVar(&f.minPause, "min-pause", 50*time.Millisecond, "least pause between checkpoints")
	fs.DurationVar(&f.restartDelay, "restart-delay", 200*time.Millisecond, "fixed restart delay of the in-process restart strategy")
	fs.DurationVar(&f.statusEvery, "status-every", 250*time.Millisecond, "how often a 'chaos-status' line is printed")
	fs.DurationVar(&f.clockStep, "clock-step", time.Hour, "how far SIGUSR1/SIGUSR2 step the job's clock")
	fs.BoolVar(&f.acceptLost, "accept-lost-transactions", false, "restore even if transactions of the checkpoint can no longer be committed")
	fs.Int64Var(&f.records, "records", 0, "windows job: orders in all")
	fs.Float64Var(&f.rate, "rate", 0, "windows job: orders per second")
	fs.IntVar(&f.keys, "keys", 100, "windows job: accounts")
	fs.Uint64Var(&f.seed, "seed", 1, "windows job: seed of the orders")
	fs.Usage = func() { fmt.Fprint(stderr, chaosJobUsage); fs.PrintDefaults() }
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var check flagCheck
	check.atLeast("parallelism", int64(f.parallelism), 1)
	check.positive("checkpoint-interval", f.interval)
	check.positive("status-every", f.statusEvery)
	if f.brokers == "" || f.output == "" || f.ckDir == "" || (f.job == "count" && f.input == "") {
		check.fail("--brokers, --output, --checkpoint-dir (and --input for the count job) are required")
	}
	if f.job != "count" && f.job != "windows" {
		check.fail("--job: want count or windows, got %q", f.job)
	}
	if f.broken != "" && f.broken != "sink" && f.broken != "source" {
		check.fail("--broken: want sink or source, got %q", f.broken)
	}
	if f.killAt != "" && !validPoint(f.killAt) {
		check.fail("--kill-at: want one of %v, got %q", fault.Points, f.killAt)
	}
	dial, err := parseDialMap(f.dial)
	if err != nil {
		check.fail("--dial: %v", err)
	}
	if err := check.err(stderr); err != nil {
		return err
	}
	if f.txnPrefix == "" {
		f.txnPrefix = "chaos-" + f.output
	}
	if f.group == "" {
		f.group = "chaos-" + f.output
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))

	clk := &steppedClock{}
	go func() {
		for s := range steps {
			d := f.clockStep
			if s == syscall.SIGUSR2 {
				d = -d
			}
			clk.step(d)
			logger.Info("clock stepped", "by", d, "offset", clk.offset())
		}
	}()

	var inj *fault.Injector
	if f.killAt != "" {
		inj = fault.New(1)
		inj.Arm(fault.Target{Point: fault.Point(f.killAt), Subtask: -1, Skip: f.killSkip})
		inj.OnFire(func(fault.Injected) {
			fmt.Fprintf(stdout, "chaos-kill %s\n", f.killAt)
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal is on its way
		})
	}
	var opts []kgo.Opt
	if len(dial) > 0 {
		d := &net.Dialer{Timeout: 10 * time.Second}
		opts = append(opts, kgo.Dialer(func(ctx context.Context, network, host string) (net.Conn, error) {
			if via, ok := dial[host]; ok {
				host = via
			}
			return d.DialContext(ctx, network, host)
		}))
	}
	env, err := buildChaosJob(f, opts, inj, clk, logger)
	if err != nil {
		return err
	}

	done := make(chan error, 1)
	go func() {
		_, err := env.Execute(context.Background())
		done <- err
	}()
	tick := time.NewTicker(f.statusEvery)
	defer tick.Stop()
	fmt.Fprintf(stdout, "chaos-job running %s pid %d\n", f.job, os.Getpid())
	for {
		select {
		case err := <-done:
			printChaosStatus(stdout, env.Status())
			if err != nil {
				logger.Error("job failed", "err", err)
				return fmt.Errorf("job failed: %w", err)
			}
			fmt.Fprintln(stdout, "chaos-job stopped")
			return nil
		case <-ctx.Done():
			env.Stop()
			ctx = context.Background()
		case <-tick.C:
			printChaosStatus(stdout, env.Status())
		}
	}
}

// chaosStatus is the 'chaos-status' line the job prints for the harness.
type chaosStatus struct {
	// Backpressure is the largest backpressured ratio of any task.
	Backpressure float64 `json:"bp"`
	Restarts     int64   `json:"restarts"`
	Checkpoints  int64   `json:"checkpoints"`
	Failed       int64   `json:"failedCheckpoints"`
}

func printChaosStatus(w io.Writer, st sluice.JobStatus) {
	s := chaosStatus{Restarts: st.Restarts, Checkpoints: st.CheckpointsCompleted, Failed: st.CheckpointsFailed}
	for _, v := range st.Vertices {
		s.Backpressure = max(s.Backpressure, v.BackpressuredRatio)
	}
	b, _ := json.Marshal(s)
	fmt.Fprintf(w, "chaos-status %s\n", b)
}

func validPoint(p string) bool {
	for _, q := range fault.Points {
		if string(q) == p {
			return true
		}
	}
	return false
}

// parseDialMap reads "addr=via,addr=via".
func parseDialMap(s string) (map[string]string, error) {
	m := map[string]string{}
	for _, kv := range splitBrokers(s) {
		a, v, ok := strings.Cut(kv, "=")
		if !ok || a == "" || v == "" {
			return nil, fmt.Errorf("want addr=via, got %q", kv)
		}
		m[a] = v
	}
	return m, nil
}

// buildChaosJob builds the job. The count job is kafkacount.New's graph
// (same uids, same sink settings) with the client options, clock and
// storage the hooks need, which kafkacount.Options does not expose.
func buildChaosJob(f chaosJobFlags, opts []kgo.Opt, inj *fault.Injector, clk clock.Clock, logger *slog.Logger) (*sluice.Environment, error) {
	brokers := splitBrokers(f.brokers)
	delivery := kafka.DeliveryExactlyOnce
	mode := checkpoint.ExactlyOnce
	if f.broken == "sink" {
		delivery, mode = kafka.DeliveryAtLeastOnce, checkpoint.AtLeastOnce
	}
	cfg := sluice.Config{
		JobName:     "chaos-" + f.job,
		Parallelism: f.parallelism,
		Checkpoint:  checkpoint.Config{Interval: f.interval, MinPause: noneIfZero(f.minPause), Mode: mode},
		Restart:     restart.FixedDelay{Attempts: 1 << 30, Delay: f.restartDelay},
		Faults:      inj,
		Logger:      logger,
		Clock:       clk,
	}
	if f.slowFile != "" {
		fsys, err := store.NewFS(f.ckDir)
		if err != nil {
			return nil, fmt.Errorf("checkpoint-dir %s: %w", f.ckDir, err)
		}
		cfg.CheckpointStorage = &slowStorage{Storage: fsys, file: f.slowFile}
		cfg.SavepointDir = f.ckDir + "/savepoints"
	} else {
		cfg.CheckpointDir = f.ckDir
	}
	if f.job == "windows" {
		cfg.WatermarkInterval = windowsWatermarkInterval
		env := sluice.New(cfg)
		wc := windowjob.Config{Records: f.records, RatePerSecond: f.rate, Keys: f.keys, Seed: f.seed}
		if err := wc.Validate(); err != nil {
			return nil, err
		}
		sink, err := windowjob.KafkaSink(brokers, f.output, f.txnPrefix, delivery, f.interval, f.restartDelay)
		if err != nil {
			return nil, err
		}
		windowjob.Build(env, windowjob.NewSource(wc), sink, f.parallelism)
		return env, nil
	}
	env := sluice.New(cfg)
	var in sluice.Stream[kafka.Record]
	if f.broken == "source" {
		in = sluice.FromSource(env, kafkacount.SourceUID, &eagerSource{brokers: brokers, topic: f.input, group: f.group, opts: opts})
	} else {
		src, err := kafka.NewSource(kafka.SourceConfig[kafka.Record]{
			Brokers: brokers, Topics: []string{f.input}, GroupID: f.group,
			StartOffsets: kafka.StartEarliest, Deserializer: kafka.Records(), ClientOpts: opts,
		})
		if err != nil {
			return nil, err
		}
		in = sluice.FromSource(env, kafkacount.SourceUID, src)
	}
	sink, err := kafka.NewSink(kafka.SinkConfig[countjob.Count]{
		Brokers: brokers, Topic: f.output,
		Serializer: kafka.KeyValueSerializer(
			func(dst []byte, c countjob.Count) []byte { return append(dst, c.Key...) },
			func(dst []byte, c countjob.Count) []byte { return strconv.AppendInt(dst, c.N, 10) }),
		DeliveryGuarantee:     delivery,
		TransactionalIDPrefix: f.txnPrefix,
		CheckpointInterval:    f.interval,
		MaxRestartDelay:       f.restartDelay,
		ClientOpts:            opts,

		AcceptLostTransactionsOnRestore: f.acceptLost,
	})
	if err != nil {
		return nil, err
	}
	keyed := sluice.KeyBy(in, func(r kafka.Record) string { return string(r.Key) })
	counts := sluice.Process(keyed, kafkacount.CountUID, countjob.NewCounter[kafka.Record])
	sluice.Sink(counts, kafkacount.SinkUID, sink)
	return env, nil
}

// steppedClock is the wall clock plus an offset that clock steps move. A
// step moves Now, and every comparison of a time read before it with one
// read after it, as a stepped wall clock does to anything that compares
// wall times (processing-time timers at absolute times, deadlines kept as
// Unix nanoseconds, times read back from a checkpoint). Go's own
// time.Now() carries a monotonic reading that an NTP step does not move,
// so clock.Real is spared the in-process part; this clock is not: it is
// the harsher model, the one of a clock.Clock that can step. Timers run
// for real durations.
type steppedClock struct{ off atomic.Int64 }

func (c *steppedClock) offset() time.Duration { return time.Duration(c.off.Load()) }
func (c *steppedClock) step(d time.Duration)  { c.off.Add(int64(d)) }

// Now returns the wall clock plus the offset.
func (c *steppedClock) Now() time.Time { return time.Now().Add(c.offset()) }

// NewTimer returns a timer that runs for d of real time and delivers the
// stepped clock's time.
func (c *steppedClock) NewTimer(d time.Duration) clock.Timer {
	t := &steppedTimer{ch: make(chan time.Time, 1)}
	t.t = time.AfterFunc(d, func() { t.ch <- c.Now() })
	return t
}

type steppedTimer struct {
	t  *time.Timer
	ch chan time.Time
}

func (t *steppedTimer) C() <-chan time.Time { return t.ch }
func (t *steppedTimer) Stop() bool          { return t.t.Stop() }

// slowStorage delays every committed checkpoint file by the duration read
// from a control file, a slow disk without a device mapper. It loses the
// FS storage's flock (docs/design.md §9): the slow-disk scenario runs one
// instance, and the ownership epoch still fences.
type slowStorage struct {
	store.Storage
	file string
}

// Create opens a writer whose Commit waits first.
func (s *slowStorage) Create(ctx context.Context, name string) (store.Writer, error) {
	w, err := s.Storage.Create(ctx, name)
	if err != nil {
		return nil, err
	}
	return &slowWriter{Writer: w, delay: s.delay()}, nil
}

func (s *slowStorage) delay() time.Duration {
	b, err := os.ReadFile(s.file)
	if err != nil {
		return 0
	}
	d, _ := time.ParseDuration(strings.TrimSpace(string(b)))
	return d
}

type slowWriter struct {
	store.Writer
	delay time.Duration
}

// Commit waits out the delay, then commits.
func (w *slowWriter) Commit() (int64, uint32, error) {
	time.Sleep(w.delay)
	return w.Writer.Commit()
}

// eagerSource is the broken source of the checker's own test: it commits
// its read positions to a consumer group as it reads, before any checkpoint
// covers them, and starts from the group's offsets, ignoring the
// checkpoint. A kill between its commit and the checkpoint loses every
// record in between. Never use it for anything else.
type eagerSource struct {
	brokers []string
	topic   string
	group   string
	opts    []kgo.Opt
}

// Splits is one split for all partitions: the group decides the positions.
func (s *eagerSource) Splits(context.Context) ([]sluice.Split, error) {
	return []sluice.Split{{ID: "group"}}, nil
}

// NewReader consumes the topic with group membership and auto-commit.
func (s *eagerSource) NewReader(_ context.Context, oc *sluice.OperatorContext) (sluice.SourceReader[kafka.Record], error) {
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(s.brokers...), kgo.ConsumerGroup(s.group), kgo.ConsumeTopics(s.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.SessionTimeout(6 * time.Second),
		kgo.InstanceID(s.group + "-" + strconv.Itoa(oc.Subtask)),
	}, s.opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	r := &eagerReader{cl: cl, avail: make(chan struct{}, 1)}
	return r, nil
}

type eagerReader struct {
	cl      *kgo.Client
	avail   chan struct{}
	mu      sync.Mutex
	pending []*kgo.Record
	started bool
	stop    context.CancelFunc
}

func (r *eagerReader) AddSplits(context.Context, []sluice.Split) error {
	if r.started {
		return nil
	}
	r.started = true
	fctx, cancel := context.WithCancel(context.Background())
	r.stop = cancel
	go func() {
		for fctx.Err() == nil {
			fetches := r.cl.PollRecords(fctx, 500)
			var recs []*kgo.Record
			fetches.EachRecord(func(rec *kgo.Record) { recs = append(recs, rec) })
			if len(recs) == 0 {
				continue
			}
			// Commit what was fetched before the job sees it: the group's
			// offsets are always ahead of the output, so a kill loses what
			// no checkpoint covered yet (an auto-commit that lagged behind
			// would duplicate instead, or do nothing).
			// A failed commit leaves the group behind: the records still go
			// to the job (dropping them would be a loss of this reader's
			// own making, not the one the test must catch).
			_ = r.cl.CommitRecords(fctx, recs...)
			r.mu.Lock()
			r.pending = append(r.pending, recs...)
			r.mu.Unlock()
			select {
			case r.avail <- struct{}{}:
			default:
			}
			for fctx.Err() == nil {
				r.mu.Lock()
				n := len(r.pending)
				r.mu.Unlock()
				if n < 5000 {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
	}()
	return nil
}

func (r *eagerReader) Poll(_ context.Context, out sluice.Emitter[kafka.Record]) (sluice.PollStatus, error) {
	r.mu.Lock()
	recs := r.pending
	r.pending = nil
	r.mu.Unlock()
	if len(recs) == 0 {
		return sluice.NothingAvailable, nil
	}
	for _, rec := range recs {
		if err := out.Emit(kafka.Record{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset, Key: rec.Key, Value: rec.Value, Timestamp: rec.Timestamp}); err != nil {
			return sluice.NothingAvailable, err
		}
	}
	return sluice.MoreAvailable, nil
}

func (r *eagerReader) Available() <-chan struct{} { return r.avail }

func (r *eagerReader) SnapshotSplits(context.Context, int64) ([]sluice.Split, error) {
	return []sluice.Split{{ID: "group"}}, nil
}

func (r *eagerReader) NotifyCheckpointComplete(context.Context, int64) error { return nil }

func (r *eagerReader) Close(context.Context) error {
	if r.stop != nil {
		r.stop()
	}
	r.cl.Close()
	return nil
}
