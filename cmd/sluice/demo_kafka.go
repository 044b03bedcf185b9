package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/broker"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/connector/datagen"
	"github.com/sluicehq/sluice/fault"
	"github.com/sluicehq/sluice/internal/kafkacount"
	"github.com/sluicehq/sluice/restart"
)

// demoKafka is the Kafka pipeline of `sluice demo` (issue: Kafka end to
// end): embedded broker (or --brokers), a producer feeding the input topic,
// the count job Kafka → Kafka with transactions, and verification by
// reading the output read_committed.
func demoKafka(ctx context.Context, f demoFlags, stdout, stderr io.Writer) error {
	// The progress lines and the stop goroutine both print.
	stdout = &lockedWriter{w: stdout}
	logger := f.logger(stderr)
	ckDir := filepath.Join(f.dir, "checkpoints")
	brokers, closeBroker, err := demoBrokers(ctx, f, logger, stdout)
	if err != nil {
		return err
	}
	defer closeBroker()
	// Topics unique per run, so that an external cluster's older runs do
	// not mix into the verification.
	input := fmt.Sprintf("sluice-demo-%d-input", f.seed)
	output := fmt.Sprintf("sluice-demo-%d-output", f.seed)
	if err := kafkacount.EnsureTopics(ctx, brokers, 4, input, output); err != nil {
		return err
	}
	var inj *fault.Injector
	if f.failEvery > 0 {
		inj = fault.New(f.seed)
	}
	delivery := "exactly-once"
	if f.mode == string(checkpoint.AtLeastOnce) {
		delivery = "at-least-once"
	}
	env, err := kafkacount.New(kafkacount.Options{
		Brokers: brokers, Input: input, Output: output, GroupID: "sluice-demo-" + strconv.FormatUint(f.seed, 10),
		Parallelism: f.parallelism, CheckpointInterval: f.interval, MinPause: noneIfZero(f.minPause), BufferTimeout: bufferTimeout(f.bufTimeout), Delivery: delivery,
		CheckpointDir: ckDir, Restart: restart.FixedDelay{Attempts: 1 << 30, Delay: 50 * time.Millisecond},
		Faults: inj, Logger: logger, Seed: int64(f.seed),
		AllowNonRestoredState: f.allowNonRestored, AllowSourceChange: f.allowSource, State: f.stateConfig(),
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "sluice demo: producer(%d keys, %s) → %s → Kafka source → keyBy → count → exactly-once Kafka sink → %s\n",
		f.keys, rateString(f.rate), input, output)
	fmt.Fprintf(stdout, "parallelism %d, checkpoint every %v, %s, seed %d, checkpoints in %s\n", f.parallelism, f.interval, delivery, f.seed, ckDir)

	prod, err := startProducer(brokers, input, f, logger)
	if err != nil {
		return err
	}
	beforeStop := func() {
		n := prod.stop()
		fmt.Fprintf(stdout, "producer stopped after %d records; waiting for the job to catch up...\n", n)
		if err := waitCaughtUp(brokers, input, "sluice-demo-"+strconv.FormatUint(f.seed, 10), time.Minute); err != nil {
			fmt.Fprintf(stdout, "not caught up: %v (verifying anyway)\n", err)
		}
	}
	res, runErr, took := demoLoop(ctx, env, f, inj, []string{kafkacount.SourceUID, kafkacount.CountUID, kafkacount.SinkUID}, kafkacount.CountUID, beforeStop, stdout)
	prod.stop()
	if runErr != nil {
		return fmt.Errorf("job failed: %w", runErr)
	}
	if prod.err() != nil {
		return fmt.Errorf("producer: %w", prod.err())
	}
	vctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := kafkacount.Check(vctx, brokers, input, output)
	if err != nil {
		return err
	}
	sum := demoSummary{
		Produced: rep.Produced, Committed: rep.Committed, Lost: rep.Lost, Duplicated: rep.Duplicated,
		Restarts: res.Restarts, Checkpoints: res.Checkpoints, Keys: rep.Keys, Seed: f.seed, Mode: f.mode, Seconds: took.Seconds(),
	}
	sum.ProcessedLastAttempt, sum.ProcessedTotal = processed(res.Status, kafkacount.CountUID)
	verdict := "EXACTLY ONCE: every input record is reflected in the committed output once"
	if !rep.ExactlyOnce() {
		verdict = fmt.Sprintf("NOT EXACTLY ONCE: %d lost, %d duplicated (examples: %s)", rep.Lost, rep.Duplicated, strings.Join(rep.Examples, "; "))
	}
	fmt.Fprintf(stdout, "verified %s against %s (read_committed): input %d, output %d, %d keys, %d restarts, %d checkpoints\n",
		output, input, rep.Produced, rep.Committed, rep.Keys, res.Restarts, res.Checkpoints)
	fmt.Fprintf(stdout, "count processed %d records in all attempts (replays after restores included), %d in the last attempt\n%s\n",
		sum.ProcessedTotal, sum.ProcessedLastAttempt, verdict)
	line, _ := json.Marshal(sum)
	fmt.Fprintln(stdout, string(line))
	if rep.Lost > 0 || (rep.Duplicated > 0 && f.mode == string(checkpoint.ExactlyOnce)) {
		return fmt.Errorf("verification failed: %d lost, %d duplicated", rep.Lost, rep.Duplicated)
	}
	return nil
}

// demoBrokers returns --brokers, or starts the embedded broker (its data
// in <dir>/broker), after removing what an earlier run left in <dir>
// (broker data, checkpoints). The returned func closes the broker.
func demoBrokers(ctx context.Context, f demoFlags, logger *slog.Logger, stdout io.Writer) ([]string, func(), error) {
	ckDir := filepath.Join(f.dir, "checkpoints")
	if brokers := splitBrokers(f.brokers); len(brokers) > 0 {
		if err := os.RemoveAll(ckDir); err != nil {
			return nil, nil, fmt.Errorf("clean %s: %w", ckDir, err)
		}
		return brokers, func() {}, nil
	}
	dataDir := filepath.Join(f.dir, "broker")
	for _, d := range []string{dataDir, ckDir} {
		if err := os.RemoveAll(d); err != nil {
			return nil, nil, fmt.Errorf("clean %s: %w", d, err)
		}
	}
	b, err := broker.Start(ctx, broker.Config{Port: 0, DataDir: dataDir, Logger: logger})
	if err != nil {
		return nil, nil, fmt.Errorf("start embedded broker: %w", err)
	}
	fmt.Fprintf(stdout, "embedded Kafka-compatible broker on %s (data in %s)\n", strings.Join(b.Addrs(), ","), dataDir)
	return b.Addrs(), func() { _ = b.Close() }, nil
}

// producer feeds the input topic at a steady rate: keys drawn like
// datagen's, values the sequence number.
type producer struct {
	cl       *kgo.Client
	quit     chan struct{}
	done     chan struct{}
	once     sync.Once
	produced atomic.Int64
	mu       sync.Mutex
	failure  error
}

func startProducer(brokers []string, topic string, f demoFlags, logger *slog.Logger) (*producer, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return nil, err
	}
	p := &producer{cl: cl, quit: make(chan struct{}), done: make(chan struct{})}
	gen := datagen.Config{Splits: 1, Keys: f.keys, Distribution: f.distribution, Seed: f.seed}
	rate := f.rate // > 0: runDemo refuses 0 for this pipeline
	go func() {
		defer close(p.done)
		const tick = 10 * time.Millisecond
		t := time.NewTicker(tick)
		defer t.Stop()
		start := time.Now()
		var seq int64
		for {
			select {
			case <-p.quit:
				return
			case now := <-t.C:
				due := int64(rate * now.Sub(start).Seconds())
				for ; seq < due; seq++ {
					// A producer behind its rate (Produce blocks while the
					// client's buffer is full, as on a loaded machine)
					// must still stop when asked, not after its backlog:
					// the demo's stop waits for it.
					select {
					case <-p.quit:
						return
					default:
					}
					r := &kgo.Record{Key: []byte(gen.KeyOf(0, seq)), Value: strconv.AppendInt(nil, seq, 10)}
					cl.Produce(context.Background(), r, func(_ *kgo.Record, err error) {
						if err != nil {
							p.mu.Lock()
							if p.failure == nil {
								p.failure = err
								logger.Error("demo producer", "err", err)
							}
							p.mu.Unlock()
							return
						}
						p.produced.Add(1)
					})
				}
			}
		}
	}()
	return p, nil
}

// stop stops producing, waits for every record to be acknowledged and
// returns how many were.
func (p *producer) stop() int64 {
	p.once.Do(func() {
		close(p.quit)
		<-p.done
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := p.cl.Flush(ctx); err != nil {
			p.mu.Lock()
			if p.failure == nil {
				p.failure = fmt.Errorf("flush: %w", err)
			}
			p.mu.Unlock()
		}
		p.cl.Close()
	})
	return p.produced.Load()
}

func (p *producer) err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.failure
}

// waitCaughtUp waits until the job's consumer group (committed after each
// completed checkpoint) has reached the end of every input partition.
func waitCaughtUp(brokers []string, topic, group string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return err
	}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		committed, err := adm.FetchOffsets(ctx, group)
		if err == nil {
			behind := int64(0)
			ends.Each(func(o kadm.ListedOffset) {
				c, ok := committed.Lookup(topic, o.Partition)
				if !ok || c.At < o.Offset {
					at := int64(0)
					if ok {
						at = c.At
					}
					behind += o.Offset - at
				}
			})
			if behind == 0 {
				return nil
			}
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return fmt.Errorf("the job's group %s is still behind the end of %s after %v", group, topic, timeout)
		}
	}
}

// lockedWriter serializes the writes of several goroutines to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
