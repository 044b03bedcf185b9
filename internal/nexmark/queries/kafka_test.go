package queries

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/connector/kafka"
	"github.com/sluicehq/sluice/internal/nexmark"
)

// TestKafkaToKafka writes generated events to a topic of the embedded
// broker, runs q1 from it into an exactly-once Kafka sink, and reads the
// committed output back: exactly the rows q1 gives on the generator in
// process, each once.
func TestKafkaToKafka(t *testing.T) {
	t.Parallel()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "q1-out"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	fast := []kgo.Opt{kgo.MetadataMinAge(50 * time.Millisecond), kgo.FetchMaxWait(100 * time.Millisecond)}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	gen := nexmark.DefaultConfig()
	gen.Events, gen.Generators = 20_000, 2
	if err := nexmark.WriteEvents(ctx, c.ListenAddrs(), "nexmark", gen, fast...); err != nil {
		t.Fatal(err)
	}

	// The expected rows: q1 on the generator, in process.
	q, _ := Lookup("q1")
	env := sluice.New(sluice.Config{JobName: "q1-local", Parallelism: 2, CheckpointDir: t.TempDir()})
	want := &Out{Collect: true}
	q.Build(env, nexmark.Events(env, gen), want)
	if _, err := env.Execute(ctx); err != nil {
		t.Fatal(err)
	}

	env = sluice.New(sluice.Config{JobName: "q1-kafka", Parallelism: 2, CheckpointDir: t.TempDir(),
		Checkpoint: checkpoint.Config{Interval: 50 * time.Millisecond}})
	events, err := nexmark.KafkaEvents(env, kafka.SourceConfig[nexmark.Event]{Brokers: c.ListenAddrs(), Topics: []string{"nexmark"},
		DiscoveryInterval: 100 * time.Millisecond, RetryBackoff: 20 * time.Millisecond, ClientOpts: fast})
	if err != nil {
		t.Fatal(err)
	}
	got := &Out{Sink: func(name string) sluice.SinkProvider[string] {
		s, err := kafka.NewSink(kafka.SinkConfig[string]{Brokers: c.ListenAddrs(), Topic: "q1-out",
			Serializer:            kafka.ValueSerializer(func(dst []byte, r string) []byte { return append(dst, r...) }),
			TransactionalIDPrefix: "nexmark-q1", CheckpointInterval: 50 * time.Millisecond, RetryBackoff: 10 * time.Millisecond, ClientOpts: fast})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}}
	q.Build(env, events, got)
	done := make(chan error, 1)
	go func() {
		_, err := env.Execute(ctx)
		done <- err
	}()
	// The Kafka source is unbounded: once every row went through the
	// query, stop with a drained savepoint, which commits the last
	// transaction.
	for got.Count() < want.Count() {
		select {
		case err := <-done:
			t.Fatalf("job ended early: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if _, err := env.StopWithSavepoint(ctx, true); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	cl, err := kgo.NewClient(append(fast, kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("q1-out"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var rows []string
	for len(rows) < int(want.Count()) {
		f := cl.PollFetches(ctx)
		if err := f.Err(); err != nil {
			t.Fatal(err)
		}
		f.EachRecord(func(r *kgo.Record) { rows = append(rows, string(r.Value)) })
	}
	slices.Sort(rows)
	if w := want.Rows(); !slices.Equal(rows, w) {
		t.Fatalf("Kafka → Kafka q1: %d rows, not the %d rows of the in-process run", len(rows), len(w))
	}
	if want.Count() != 18_400 {
		t.Fatalf("want %d rows, expected 18400 bids", want.Count())
	}
}
