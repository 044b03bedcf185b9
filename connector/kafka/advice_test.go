package kafka_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/advise"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/connector/datagen"
	"github.com/sluicehq/sluice/connector/kafka"
	"github.com/sluicehq/sluice/restart"
)

type adviceLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *adviceLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *adviceLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func kinds(ws []advise.Warning) []string {
	var k []string
	for _, w := range ws {
		k = append(k, w.Kind)
	}
	return k
}

// TestAdvisePartitions: the Kafka source tells the advisor its partition
// count. Of a 4-partition topic, parallelism 2 and 4 are fine, 3 reads
// unevenly, 6 also idles two subtasks; and a running job logs the warning
// once, at WARN, when its source subtasks open.
func TestAdvisePartitions(t *testing.T) {
	c := srcCluster(t, 4, "in")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for par, want := range map[int]string{2: "", 4: "", 3: advise.KindUneven, 6: advise.KindUneven + "," + advise.KindIdle} {
		j := srcNewJob(t, srcConfig(c, kafka.Records(), "in"), t.TempDir(), par, 0)
		ws, err := j.env.Advise(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(kinds(ws), ","); got != want {
			t.Errorf("parallelism %d: warnings %v, want %s", par, ws, want)
		}
	}

	var log adviceLog
	j := srcNewJob(t, srcConfig(c, kafka.Records(), "in"), t.TempDir(), 3, 40, func(cfg *sluice.Config) {
		cfg.Logger = slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelWarn}))
	})
	srcProduce(t, srcProducer(t, c), "in", 4, 0, 10)
	if _, err := j.run(t, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	want := `level=WARN msg="source \"kafka\": parallelism 3 is neither a multiple nor a divisor of its 4 partitions: subtasks read 1 or 2 each`
	if n := strings.Count(log.String(), want); n != 1 {
		t.Fatalf("the warning is logged %d times, want once:\n%s", n, log.String())
	}
	if !strings.Contains(log.String(), "advice=uneven-partitions") {
		t.Errorf("the warning does not name its kind:\n%s", log.String())
	}
}

// TestAdviseTransactionTimeout: the Kafka sink's own check passes with its
// default assumptions (checkpoint timeout 1m), but this job's checkpoint
// timeout is 5m: the advisor warns when the job is described and when it
// starts, naming the sums.
func TestAdviseTransactionTimeout(t *testing.T) {
	sinkCfg := kafka.SinkConfig[datagen.Record]{
		Brokers: []string{"127.0.0.1:1"}, Topic: "out",
		Serializer:            kafka.ValueSerializer(func(dst []byte, r datagen.Record) []byte { return append(dst, r.Key...) }),
		TransactionalIDPrefix: "adv", TransactionTimeout: 4 * time.Minute,
	}
	sink, err := kafka.NewSink(sinkCfg)
	if err != nil {
		t.Fatal(err)
	}
	var log adviceLog
	env := sluice.New(sluice.Config{
		JobName: "adv", CheckpointDir: t.TempDir(), Restart: restart.None{},
		Checkpoint: checkpoint.Config{Interval: 5 * time.Second, Timeout: 5 * time.Minute},
		Logger:     slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	in := sluice.FromSource(env, "in", datagen.New(datagen.Config{Keys: 1, RatePerSecond: 10}))
	sluice.Sink(in, "kafka-out", sink)
	ws, err := env.Advise(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := `sink "kafka-out": transaction timeout 4m0s does not exceed checkpoint.interval 5s + checkpoint.timeout 5m0s + commit retries 1m0s + the longest restart delay 0s = 6m5s`
	if len(ws) != 1 || ws[0].Kind != advise.KindTransactionTimeout || !strings.Contains(ws[0].Message, want) {
		t.Fatalf("warnings %v, want one containing %q", ws, want)
	}
	// At-least-once has no transactions to time out.
	sinkCfg.DeliveryGuarantee = kafka.DeliveryAtLeastOnce
	alo, err := kafka.NewSink(sinkCfg)
	if err != nil {
		t.Fatal(err)
	}
	env2 := sluice.New(sluice.Config{JobName: "adv2", CheckpointDir: t.TempDir(), Checkpoint: checkpoint.Config{Timeout: 5 * time.Minute}})
	sluice.Sink(sluice.FromSource(env2, "in", datagen.New(datagen.Config{Keys: 1, RatePerSecond: 10})), "kafka-out", alo)
	if ws, err := env2.Advise(context.Background()); err != nil || len(ws) != 0 {
		t.Fatalf("at-least-once: %v %v", ws, err)
	}
	// Execute logs it before anything runs (the sink then waits for the
	// broker at 127.0.0.1:1, which is not there: the test cancels it).
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = env.Execute(ctx)
	}()
	line := "level=WARN msg=\"" + strings.ReplaceAll(want, `"`, `\"`)
	srcWait(t, "the warning in the log", 30*time.Second, func() bool { return strings.Contains(log.String(), line) })
	cancel()
	<-done
	if n := strings.Count(log.String(), line); n != 1 {
		t.Fatalf("logged %d times:\n%s", n, log.String())
	}
}
