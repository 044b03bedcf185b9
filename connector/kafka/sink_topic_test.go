package kafka

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/connector/datagen"
	"github.com/sluicehq/sluice/restart"
)

// runTopicJob runs datagen → Kafka sink into topic under a strategy that
// would restart a thousand times, and returns the job's error and how long
// it took.
func runTopicJob(t *testing.T, addrs []string, topic, delivery string, create *TopicSpec) (error, time.Duration) {
	t.Helper()
	cfg := sinkStringConfig(addrs, topic, "topic-job")
	cfg.DeliveryGuarantee = delivery
	cfg.CreateTopic = create
	sink, err := NewSink(cfg)
	if err != nil {
		t.Fatal(err)
	}
	env := sluice.New(sluice.Config{
		JobName:       "sink-topic",
		Parallelism:   2,
		Checkpoint:    checkpoint.Config{Interval: 20 * time.Millisecond},
		CheckpointDir: filepath.Join(t.TempDir(), "checkpoints"),
		Restart:       restart.FixedDelay{Attempts: 1000, Delay: time.Millisecond},
		Logger:        sinkTestLogger(),
	})
	src := sluice.FromSource(env, "source", datagen.New(datagen.Config{Splits: 2, RecordsPerSplit: 50}))
	vals := sluice.Map(src, "map", func(r datagen.Record) string { return r.Key + "=" + string(appendSplitSeq(nil, r)) })
	sluice.Sink(vals, "sink", sink)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	_, err = env.Execute(ctx)
	return err, time.Since(start)
}

// TestSinkMissingTopicFailsAtStart: a sink whose topic does not exist fails
// the job at start, terminally (no restart loop), naming the topic and how
// to create it, for every delivery guarantee.
func TestSinkMissingTopicFailsAtStart(t *testing.T) {
	t.Parallel()
	_, addrs := sinkBroker(t)
	for _, d := range []string{DeliveryExactlyOnce, DeliveryAtLeastOnce, DeliveryNone} {
		err, took := runTopicJob(t, addrs, "missing-"+d, d, nil)
		if err == nil {
			t.Fatalf("%s: job on a missing topic succeeded", d)
		}
		if !restart.IsUnrecoverable(err) || !errors.Is(err, ErrUnknownTopic) {
			t.Errorf("%s: error is not a terminal unknown-topic error: %v", d, err)
		}
		for _, w := range []string{`"missing-` + d + `"`, KeySinkTopic, "kafka-topics.sh", "--create --topic missing-" + d, "CreateTopic"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not contain %q", d, err, w)
			}
		}
		if took > 20*time.Second {
			t.Errorf("%s: took %v to fail: restarted instead of failing at once?", d, took)
		}
	}
}

// TestSinkCreateTopic: with CreateTopic the sink creates its missing topic
// with the partitions asked for, and the job's output lands in it.
func TestSinkCreateTopic(t *testing.T) {
	t.Parallel()
	_, addrs := sinkBroker(t)
	if err, _ := runTopicJob(t, addrs, "created", DeliveryExactlyOnce, &TopicSpec{Partitions: 3, ReplicationFactor: 1}); err != nil {
		t.Fatalf("job: %v", err)
	}
	if lso := sinkLSO(t, addrs, "created"); len(lso) != 3 {
		t.Fatalf("created topic has %d partitions, want 3", len(lso))
	}
	var want []string
	for s := range 2 {
		for q := range 50 {
			want = append(want, fmt.Sprintf("%d:%d", s, q))
		}
	}
	sinkCheckOnce(t, sinkValues(sinkReadCommitted(t, addrs, "created", 3)), want)
}
