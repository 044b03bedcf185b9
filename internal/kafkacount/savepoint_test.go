package kafkacount

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/connector/kafka"
	"github.com/sluicehq/sluice/internal/countjob"
	"github.com/sluicehq/sluice/restart"
)

// spKafkaJob is the Kafka count job restoring from (checkpoint or
// savepoint directory), built here because Options has no FromCheckpoint
// on this branch.
func spKafkaJob(t *testing.T, brokers []string, in, out, ckpt, from string) *sluice.Environment {
	t.Helper()
	env := sluice.New(sluice.Config{
		JobName: "count", Parallelism: 2, BufferTimeout: time.Millisecond,
		Checkpoint:    checkpoint.Config{Interval: 50 * time.Millisecond, MinPause: 10 * time.Millisecond},
		CheckpointDir: ckpt, FromCheckpoint: from,
		Restart: restart.FixedDelay{Attempts: 10, Delay: 10 * time.Millisecond},
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	src, err := kafka.NewSource(kafka.SourceConfig[kafka.Record]{
		Brokers: brokers, Topics: []string{in}, GroupID: "sp-" + out,
		StartOffsets: kafka.StartEarliest, Deserializer: kafka.Records(),
	})
	if err != nil {
		t.Fatal(err)
	}
	sink, err := kafka.NewSink(kafka.SinkConfig[countjob.Count]{
		Brokers: brokers, Topic: out,
		Serializer: kafka.KeyValueSerializer(
			func(dst []byte, c countjob.Count) []byte { return append(dst, c.Key...) },
			func(dst []byte, c countjob.Count) []byte { return strconv.AppendInt(dst, c.N, 10) }),
		DeliveryGuarantee: kafka.DeliveryExactlyOnce, TransactionalIDPrefix: "sp-" + out,
		CheckpointInterval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	s := sluice.FromSource(env, SourceUID, src)
	keyed := sluice.KeyBy(s, func(r kafka.Record) string { return string(r.Key) })
	counts := sluice.Process(keyed, CountUID, countjob.NewCounter[kafka.Record])
	sluice.Sink(counts, SinkUID, sink)
	return env
}

// TestKafkaStopWithSavepoint stops the Kafka count job with a savepoint
// while input is still arriving: the savepoint's Kafka transactions are
// committed when StopWithSavepoint returns (read_committed output is a
// prefix without duplicates); a job restored from the savepoint reads the
// rest, and the output topic is exactly once, record by record.
func TestKafkaStopWithSavepoint(t *testing.T) {
	brokers := brokersForTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	seed := time.Now().UnixNano()
	in, out := fmt.Sprintf("sp-in-%d", seed), fmt.Sprintf("sp-out-%d", seed)
	if err := EnsureTopics(ctx, brokers, 4, in, out); err != nil {
		t.Fatal(err)
	}
	const n = 40_000
	produced := make(chan error, 1)
	go func() {
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(in))
		if err != nil {
			produced <- err
			return
		}
		defer cl.Close()
		tick := time.NewTicker(20 * time.Millisecond) // 5k records/s: about 8 s of input
		defer tick.Stop()
		for i := 0; i < n; i++ {
			if i%100 == 0 {
				<-tick.C
			}
			cl.Produce(ctx, &kgo.Record{Key: []byte("k" + strconv.Itoa(i*7919%300)), Value: []byte(strconv.Itoa(i))}, nil)
		}
		produced <- cl.Flush(ctx)
	}()
	ckpt := filepath.Join(t.TempDir(), "checkpoints")
	env := spKafkaJob(t, brokers, in, out, ckpt, "")
	done := make(chan error, 1)
	go func() { _, err := env.Execute(ctx); done <- err }()
	// Stop while the input is still being produced.
	for {
		rep, err := Check(ctx, brokers, in, out)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Committed >= 1000 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("job ended early: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	path, err := env.StopWithSavepoint(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Execute after stop-with-savepoint: %v", err)
	}
	stopped, err := Check(ctx, brokers, in, out)
	if err != nil {
		t.Fatal(err)
	}
	if stopped.Duplicated != 0 || stopped.Committed == 0 || stopped.Committed >= n {
		t.Fatalf("after the stop: %+v (want a committed prefix of the input, no duplicates)", stopped)
	}
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	env2 := spKafkaJob(t, brokers, in, out, ckpt, path)
	done2 := make(chan error, 1)
	go func() { _, err := env2.Execute(ctx); done2 <- err }()
	for {
		rep, err := Check(ctx, brokers, in, out)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Duplicated > 0 {
			t.Fatalf("duplicated output across stop → restore: %+v", rep)
		}
		if rep.ExactlyOnce() && rep.Produced == n {
			t.Logf("stopped with %d committed; after restore %+v", stopped.Committed, rep)
			break
		}
		select {
		case err := <-done2:
			t.Fatalf("restored job ended early: %v", err)
		case <-ctx.Done():
			t.Fatalf("output never complete: %+v", rep)
		case <-time.After(100 * time.Millisecond):
		}
	}
	env2.Stop()
	if err := <-done2; err != nil {
		t.Fatal(err)
	}
	if rep, err := Check(ctx, brokers, in, out); err != nil || !rep.ExactlyOnce() {
		t.Fatalf("final: %+v %v", rep, err)
	}
}
