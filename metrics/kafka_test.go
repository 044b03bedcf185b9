package metrics_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/broker"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/connector/kafka"
	"github.com/sluicehq/sluice/internal/kafkacount"
	"github.com/sluicehq/sluice/metrics"
	"github.com/sluicehq/sluice/restart"
)

// TestKafkaSourceMetrics runs a Kafka source job on the embedded broker:
// Kafka source → a map held shut by the test → discard. While the map is
// shut the source is backpressured and every partition has a lag series
// (topic, partition) with records left to read and records_lag_max the
// largest of them; once it opens, the lag drains to 0 on every partition
// and the records counters reach the input.
func TestKafkaSourceMetrics(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
	defer cancel()
	b, err := broker.Start(ctx, broker.Config{Port: 0, Ephemeral: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	brokers := b.Addrs()
	const topic, parts, perPart = "lag-in", 3, 5000
	if err := kafkacount.EnsureTopics(ctx, brokers, parts, topic); err != nil {
		t.Fatal(err)
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	for p := range int32(parts) {
		for i := range perPart {
			prod.Produce(ctx, &kgo.Record{Topic: topic, Partition: p, Value: []byte(strconv.Itoa(i))}, nil)
		}
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	prod.Close()

	cfg := sluice.Config{
		JobName: "lag", Parallelism: 1, CheckpointDir: t.TempDir(), Logger: quiet,
		Checkpoint: checkpoint.Config{Interval: 50 * time.Millisecond},
		Restart:    restart.None{}, ChannelCapacity: 4, BatchSize: 16,
	}
	env := sluice.New(cfg)
	src, err := kafka.NewSource(kafka.SourceConfig[kafka.Record]{
		Brokers: brokers, Topics: []string{topic}, GroupID: "lag", StartOffsets: kafka.StartEarliest, Deserializer: kafka.Records(),
	})
	if err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	in := sluice.FromSource(env, "orders", src)
	m := sluice.Map(in, "slow", func(r kafka.Record) int {
		<-gate
		return len(r.Value)
	}, sluice.StartNewChain())
	sluice.Sink(m, "discard", sluice.DiscardSink[int]())
	_, url := serve(t, env, metrics.Info(cfg))
	done := make(chan error, 1)
	go func() {
		_, err := env.Execute(ctx)
		done <- err
	}()

	const jl = "job_name=lag,source=orders,topic=" + topic
	lagged := waitScrape(t, url, "a lag on every partition while the map is shut", func(s scrape) bool {
		for p := range parts {
			if s.v("sluice_source_consumer_lag_records", jl+",partition="+strconv.Itoa(p)) <= 0 {
				return false
			}
		}
		return true
	})
	maxLag := 0.0
	for p := range parts {
		maxLag = max(maxLag, lagged.v("sluice_source_consumer_lag_records", jl+",partition="+strconv.Itoa(p)))
	}
	if got := lagged.v("sluice_source_records_lag_max", "job_name=lag,source=orders"); got != maxLag {
		t.Errorf("records_lag_max %v, want the largest partition lag %v", got, maxLag)
	}
	if n := len(lagged["sluice_source_consumer_lag_records"].GetMetric()); n != parts {
		t.Errorf("%d lag series, want one per partition: %s", n, lagged.series("sluice_source_consumer_lag_records"))
	}
	// The shut map holds the source back.
	waitScrape(t, url, "the source backpressured", func(s scrape) bool {
		return s.v("sluice_task_backpressured_ratio", "job_name=lag,task=orders,subtask=0") > 0.3
	})

	close(gate)
	drained := waitScrape(t, url, "the lag drained", func(s scrape) bool {
		for p := range parts {
			if s.v("sluice_source_consumer_lag_records", jl+",partition="+strconv.Itoa(p)) != 0 {
				return false
			}
		}
		return s.v("sluice_task_records_in_total", "job_name=lag,task=slow,subtask=0") == parts*perPart
	})
	if got := drained.v("sluice_source_records_lag_max", "job_name=lag,source=orders"); got != 0 {
		t.Errorf("records_lag_max %v after draining", got)
	}
	if got := drained.v("sluice_task_records_out_total", "job_name=lag,task=orders,subtask=0"); got != parts*perPart {
		t.Errorf("source records out %v, want %d", got, parts*perPart)
	}
	env.Stop()
	if err := <-done; err != nil {
		t.Fatalf("Execute: %v", err)
	}
}

// TestKafkaSinkMetrics: the exactly-once Kafka count job commits
// transactions, and the sink's counters and commit latency histogram move
// with each commit.
func TestKafkaSinkMetrics(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
	defer cancel()
	b, err := broker.Start(ctx, broker.Config{Port: 0, Ephemeral: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	brokers := b.Addrs()
	if err := kafkacount.EnsureTopics(ctx, brokers, 2, "cnt-in", "cnt-out"); err != nil {
		t.Fatal(err)
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic("cnt-in"))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	produce := func(n int) {
		for i := range n {
			prod.Produce(ctx, &kgo.Record{Key: []byte("k" + strconv.Itoa(i%17)), Value: []byte("v")}, nil)
		}
		if err := prod.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	produce(500)
	env, err := kafkacount.New(kafkacount.Options{
		Brokers: brokers, Input: "cnt-in", Output: "cnt-out", Parallelism: 1,
		CheckpointInterval: 50 * time.Millisecond, CheckpointDir: t.TempDir(), Logger: quiet,
		Restart: restart.None{},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, url := serve(t, env, metrics.JobInfo{Name: "count", CheckpointInterval: 50 * time.Millisecond, CheckpointTimeout: time.Minute})
	done := make(chan error, 1)
	go func() {
		_, err := env.Execute(ctx)
		done <- err
	}()
	const sl = "job_name=count,sink=" + kafkacount.SinkUID
	// A checkpoint with no output commits no transaction: a second batch
	// of input makes a second one.
	first := waitScrape(t, url, "a committed transaction", func(s scrape) bool {
		return s.v("sluice_sink_transactions_committed_total", sl) >= 1 && s.histCount("sluice_sink_commit_latency_seconds", sl) >= 1
	})
	n1 := first.histCount("sluice_sink_commit_latency_seconds", sl)
	if c := first.v("sluice_sink_transactions_committed_total", sl); float64(n1) > c {
		t.Errorf("commit histogram count %d exceeds the transactions committed %v", n1, c)
	}
	produce(500)
	s := waitScrape(t, url, "a transaction committed after the second batch", func(s scrape) bool {
		return s.histCount("sluice_sink_commit_latency_seconds", sl) > n1
	})
	checkSchema(t, s)
	if got := s.v("sluice_sink_last_commit_latency_seconds", sl); got <= 0 {
		t.Errorf("last commit latency %v, want > 0", got)
	}
	if got := s.v("sluice_sink_transactions_aborted_total", sl); got != 0 {
		t.Errorf("aborted %v, want 0", got)
	}
	env.Stop()
	if err := <-done; err != nil {
		t.Fatalf("Execute: %v", err)
	}
}
