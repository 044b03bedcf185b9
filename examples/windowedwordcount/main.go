// Command windowedwordcount counts words in tumbling event-time windows on
// Kafka, exactly once: lines from an input topic → words → count per word
// in windows of --window of event time (the Kafka record timestamps, out
// of order by up to --out-of-order) → the counts to an output topic in
// Kafka transactions tied to checkpoints, so a consumer reading
// read_committed sees every window's count once, whatever failed.
//
// A window fires when the watermark passes its end: the watermark trails
// the largest timestamp seen per partition by --out-of-order, and a
// partition silent for a second (idle) stops holding it back. Records
// later than that are dropped by the window operator (and counted in its
// LateRecords); SideOutputLateData would keep them.
//
// Run it with `go run ./examples/windowedwordcount`: without --brokers it
// starts an embedded Kafka-compatible broker, writes a few lines a second
// to the input topic, runs for --duration, stops with a final checkpoint
// and prints the committed counts. With --brokers it reads and writes the
// given cluster's topics until Ctrl-C.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/broker"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/connector/kafka"
	"github.com/sluicehq/sluice/restart"
	"github.com/sluicehq/sluice/watermark"
	"github.com/sluicehq/sluice/window"
)

// WordCount is one result: how often Word occurred in the window that
// starts at Start.
type WordCount struct {
	Word  string
	Start time.Time
	Count int64
}

// options configure the job.
type options struct {
	Brokers            []string
	Input, Output      string
	Window             time.Duration
	OutOfOrder         time.Duration
	CheckpointDir      string
	CheckpointInterval time.Duration
}

// count is the incremental aggregation: one int64 per word and window.
type count struct{}

func (count) CreateAccumulator() int64                                  { return 0 }
func (count) Add(_ string, n int64) int64                               { return n + 1 }
func (count) Merge(a, b int64) int64                                    { return a + b }
func (count) Result(n int64) int64                                      { return n }
func newResult() sluice.ProcessWindowFunction[string, int64, WordCount] { return result{} }

// result adds the word and the window's start to the count.
type result struct{}

func (result) Process(word string, counts []int64, wc *sluice.WindowContext[WordCount]) error {
	for _, n := range counts {
		wc.Collect(WordCount{Word: word, Start: time.Unix(0, wc.Window().Start).UTC(), Count: n})
	}
	return nil
}

// words splits a line into lower-case words.
func words(line string, out *sluice.Collector[string]) error {
	for _, w := range strings.FieldsFunc(line, func(r rune) bool { return !unicode.IsLetter(r) && r != '\'' }) {
		out.Collect(strings.ToLower(w))
	}
	return nil
}

// appendValue encodes a count as "<window start, RFC 3339>,<count>".
func appendValue(dst []byte, c WordCount) []byte {
	dst = c.Start.AppendFormat(dst, time.RFC3339)
	dst = append(dst, ',')
	return strconv.AppendInt(dst, c.Count, 10)
}

// build makes the job.
func build(o options) (*sluice.Environment, error) {
	env := sluice.New(sluice.Config{
		JobName:       "windowed-word-count",
		Parallelism:   2,
		Checkpoint:    checkpoint.Config{Interval: o.CheckpointInterval}, // exactly-once by default
		CheckpointDir: o.CheckpointDir,
		Restart:       restart.ExponentialDelay{MaxBackoff: 10 * time.Second},
		Logger:        slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	src, err := kafka.NewSource(kafka.SourceConfig[string]{
		Brokers: o.Brokers, Topics: []string{o.Input}, GroupID: "windowed-word-count", Deserializer: kafka.String(),
	})
	if err != nil {
		return nil, err
	}
	sink, err := kafka.NewSink(kafka.SinkConfig[WordCount]{
		Brokers: o.Brokers, Topic: o.Output,
		Serializer: kafka.KeyValueSerializer(
			func(dst []byte, c WordCount) []byte { return append(dst, c.Word...) },
			appendValue),
		DeliveryGuarantee:     kafka.DeliveryExactlyOnce,
		TransactionalIDPrefix: "windowed-word-count-" + o.Output,
		CheckpointInterval:    o.CheckpointInterval,
		MaxRestartDelay:       10 * time.Second,
	})
	if err != nil {
		return nil, err
	}
	// The Kafka record timestamp is each line's event time; watermarks are
	// generated per partition.
	strategy := watermark.ForBoundedOutOfOrderness(o.OutOfOrder).WithIdleness(time.Second)
	lines := sluice.FromSourceWithWatermarks(env, "lines", sluice.Source[string](src), strategy, nil)
	ws := sluice.FlatMap(lines, "words", words)
	windows := sluice.Window(sluice.KeyBy(ws, func(w string) string { return w }), window.Tumbling(o.Window, 0))
	counts := sluice.WindowAggregateProcess(windows, "count", sluice.AggregateFunction[string, int64, int64](count{}), codec.Int64, newResult)
	sluice.Sink(counts, "counts", sink)
	return env, nil
}

// run runs the job until ctx ends, then stops it with a final checkpoint,
// which commits the counts of the windows that fired. Windows still open
// stay in the checkpoint.
func run(ctx context.Context, o options) error {
	env, err := build(o)
	if err != nil {
		return err
	}
	return execute(ctx, env)
}

// execute runs env until ctx ends, then stops it with a final checkpoint.
func execute(ctx context.Context, env *sluice.Environment) error {
	go func() {
		<-ctx.Done()
		env.Stop()
	}()
	_, err := env.Execute(context.Background())
	return err
}

var text = []string{
	"the quick brown fox jumps over the lazy dog",
	"a stream is a table in motion",
	"the watermark says how far event time has come",
	"exactly once means once, even after a failure",
}

// feed writes a line every 100ms to topic, stamped one second of event
// time apart (so a 10s window closes every second), with every fifth line
// two seconds back in time: out of order.
func feed(ctx context.Context, brokers []string, topic string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		return err
	}
	defer cl.Close()
	start := time.Now().Truncate(time.Minute)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return cl.Flush(context.Background())
		case <-t.C:
		}
		ts := start.Add(time.Duration(i) * time.Second)
		if i%5 == 4 {
			ts = ts.Add(-2 * time.Second)
		}
		cl.Produce(ctx, &kgo.Record{Value: []byte(text[i%len(text)]), Timestamp: ts}, nil)
	}
}

// readCommitted prints the committed records of topic (read_committed),
// stopping once a poll finds nothing for a second.
func readCommitted(brokers []string, topic string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return err
	}
	defer cl.Close()
	n := 0
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		if fs.NumRecords() == 0 {
			fmt.Printf("%d counts committed\n", n)
			return nil
		}
		fs.EachRecord(func(r *kgo.Record) {
			n++
			fmt.Printf("%-12s %s\n", r.Key, r.Value)
		})
	}
}

func main() {
	brokers := flag.String("brokers", "", "Kafka cluster (host:port,...); empty: start an embedded broker and feed it sample lines")
	input := flag.String("input", "lines", "input topic: one line of text per record, its timestamp the event time")
	output := flag.String("output", "word-counts", "output topic: key the word, value <window start>,<count>")
	size := flag.Duration("window", 10*time.Second, "tumbling window size (event time)")
	outOfOrder := flag.Duration("out-of-order", 3*time.Second, "how far a line's timestamp may be behind the largest before it")
	duration := flag.Duration("duration", 8*time.Second, "with the embedded broker: how long to run")
	flag.Parse()
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	dir, err := os.MkdirTemp("", "sluice-windowedwordcount-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	o := options{Input: *input, Output: *output, Window: *size, OutOfOrder: *outOfOrder, CheckpointDir: dir, CheckpointInterval: time.Second}
	if *brokers != "" {
		o.Brokers = strings.Split(*brokers, ",")
		if err := run(ctx, o); err != nil {
			log.Fatal(err)
		}
		return
	}
	b, err := broker.Start(ctx, broker.Config{Port: 0, Ephemeral: true})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	o.Brokers = b.Addrs()
	cl, err := kgo.NewClient(kgo.SeedBrokers(o.Brokers...))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := kadm.NewClient(cl).CreateTopics(ctx, 2, 1, nil, o.Input, o.Output); err != nil {
		log.Fatal(err)
	}
	cl.Close()
	ctx, stop := context.WithTimeout(ctx, *duration)
	defer stop()
	go func() {
		if err := feed(ctx, o.Brokers, o.Input); err != nil {
			log.Print(err)
		}
	}()
	if err := run(ctx, o); err != nil {
		log.Fatal(err)
	}
	if err := readCommitted(o.Brokers, o.Output); err != nil {
		log.Fatal(err)
	}
}
