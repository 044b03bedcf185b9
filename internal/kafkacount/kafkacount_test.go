package kafkacount

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/broker"
	"github.com/sluicehq/sluice/fault"
	"github.com/sluicehq/sluice/restart"
)

// brokersForTest returns SLUICE_KAFKA_BROKERS (a real Kafka cluster, see
// scripts/kafka-reference.sh) or an in-process embedded broker.
func brokersForTest(t *testing.T) []string {
	t.Helper()
	if s := os.Getenv("SLUICE_KAFKA_BROKERS"); s != "" {
		t.Logf("using Kafka at %s", s)
		return strings.Split(s, ",")
	}
	b, err := broker.Start(context.Background(), broker.Config{Port: 0, Ephemeral: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b.Addrs()
}

// TestKafkaCountExactlyOnceUnderFailures runs the Kafka count job in
// process with engine failures injected at random operators and points
// (including between pre-commit and commit of the Kafka transaction) and
// checks the output topic, read_committed, record by record.
func TestKafkaCountExactlyOnceUnderFailures(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("SLUICE_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (replay with SLUICE_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 5))
	brokers := brokersForTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	in, out := fmt.Sprintf("count-in-%d", seed), fmt.Sprintf("count-out-%d", seed)
	if err := EnsureTopics(ctx, brokers, 4, in, out); err != nil {
		t.Fatal(err)
	}
	// The input arrives while the job runs (about 10k records/s), so that
	// failures strike mid-stream, across many checkpoints.
	const n = 20_000
	produced := make(chan error, 1)
	go func() {
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(in))
		if err != nil {
			produced <- err
			return
		}
		defer cl.Close()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < n; i++ {
			if i%100 == 0 {
				<-tick.C
			}
			cl.Produce(ctx, &kgo.Record{Key: []byte("k" + strconv.Itoa(i*7919%300)), Value: []byte(strconv.Itoa(i))}, nil)
		}
		produced <- cl.Flush(ctx)
	}()
	done := make(chan error, 1)
	inj := fault.New(seed)
	inj.Schedule(inj.RandomTargets([]string{SourceUID, CountUID, SinkUID}, 3, 200))
	env, err := New(Options{
		Brokers: brokers, Input: in, Output: out, TxnPrefix: "test-" + out, Parallelism: 1 + rng.IntN(3),
		CheckpointInterval: 50 * time.Millisecond, MinPause: 10 * time.Millisecond,
		CheckpointDir: filepath.Join(t.TempDir(), "checkpoints"),
		Restart:       restart.FixedDelay{Attempts: 100, Delay: 10 * time.Millisecond},
		Faults:        inj, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Seed: int64(seed),
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_, err := env.Execute(ctx)
		done <- err
	}()
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	for {
		rep, err := Check(ctx, brokers, in, out)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Duplicated > 0 {
			t.Fatalf("duplicated output (seed %d): %+v", seed, rep)
		}
		if rep.ExactlyOnce() {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("job ended early: %v", err)
		case <-ctx.Done():
			t.Fatalf("output never complete (seed %d): %+v", seed, rep)
		case <-time.After(100 * time.Millisecond):
		}
	}
	env.Stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rep, err := Check(ctx, brokers, in, out)
	if err != nil {
		t.Fatal(err)
	}
	st := env.Status()
	t.Logf("restarts %d, checkpoints %d, failures fired %d: %+v", st.Restarts, st.CheckpointsCompleted, inj.Fired(), rep)
	if !rep.ExactlyOnce() || rep.Produced != n {
		t.Fatalf("seed %d: %+v", seed, rep)
	}
	if inj.Fired() == 0 {
		t.Fatal("no failure was injected: the run proved nothing about recovery")
	}
}
