package kafka_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/connector/kafka"
	"github.com/sluicehq/sluice/restart"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// srcLogger logs errors, or everything with SLUICE_TEST_DEBUG set (the
// fault tests make franz-go warn a lot).
func srcLogger() *slog.Logger {
	level := slog.LevelError
	if os.Getenv("SLUICE_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// srcCluster starts an in-process kfake cluster with the topics seeded.
func srcCluster(t testing.TB, partitions int32, topics ...string) *kfake.Cluster {
	t.Helper()
	opts := []kfake.Opt{kfake.NumBrokers(1)}
	if len(topics) > 0 {
		opts = append(opts, kfake.SeedTopics(partitions, topics...))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// srcClientOpts are the options every test client uses: kfake answers at
// once, so metadata may be refreshed often (without it NOT_LEADER retries
// take seconds).
func srcClientOpts() []kgo.Opt {
	return []kgo.Opt{kgo.MetadataMinAge(50 * time.Millisecond), kgo.FetchMaxWait(100 * time.Millisecond)}
}

// srcConfig is a source configuration for tests against c.
func srcConfig[T any](c *kfake.Cluster, d kafka.Deserializer[T], topics ...string) kafka.SourceConfig[T] {
	return kafka.SourceConfig[T]{
		Brokers:           c.ListenAddrs(),
		Topics:            topics,
		Deserializer:      d,
		DiscoveryInterval: 100 * time.Millisecond,
		RetryBackoff:      20 * time.Millisecond,
		RetryTimeout:      10 * time.Second,
		ClientOpts:        srcClientOpts(),
	}
}

// srcProducer returns a client producing to explicit partitions.
func srcProducer(t testing.TB, c *kfake.Cluster, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	all := append([]kgo.Opt{
		kgo.SeedBrokers(c.ListenAddrs()...),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0),
	}, srcClientOpts()...)
	cl, err := kgo.NewClient(append(all, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// srcProduce writes n records "<topic>/<partition>/<i>" (i from first) to
// every partition of topic, synchronously.
func srcProduce(t testing.TB, cl *kgo.Client, topic string, partitions int32, first, n int) {
	t.Helper()
	var recs []*kgo.Record
	for p := range partitions {
		for i := first; i < first+n; i++ {
			recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: fmt.Appendf(nil, "%s/%d/%d", topic, p, i)})
		}
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// srcAdmin returns an admin client for c.
func srcAdmin(t testing.TB, c *kfake.Cluster) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, srcClientOpts()...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// srcJob is a job reading a Kafka source into a collecting sink.
type srcJob[T any] struct {
	env *sluice.Environment
	src *kafka.Source[T]

	mu   sync.Mutex
	got  []T
	want int
	stop sync.Once
	seen chan struct{} // closed once want records arrived
}

// srcNewJob builds a job reading whole records; it stops itself (with a
// final checkpoint) once want records arrived, if want > 0.
func srcNewJob(t testing.TB, cfg kafka.SourceConfig[kafka.Record], dir string, parallelism, want int, mods ...func(*sluice.Config)) *srcJob[kafka.Record] {
	t.Helper()
	return srcNewJobOf(t, cfg, dir, parallelism, want, mods...)
}

// srcNewOrderJob builds a job reading JSON orders with one subtask.
func srcNewOrderJob(t testing.TB, cfg kafka.SourceConfig[srcOrder], want int) *srcJob[srcOrder] {
	t.Helper()
	return srcNewJobOf(t, cfg, t.TempDir(), 1, want)
}

// srcNewJobOf builds the job.
func srcNewJobOf[T any](t testing.TB, cfg kafka.SourceConfig[T], dir string, parallelism, want int, mods ...func(*sluice.Config)) *srcJob[T] {
	t.Helper()
	return srcNewJobWrapped(t, cfg, dir, parallelism, want, nil, mods...)
}

// srcNewJobWrapped builds the job with the source wrapped by wrap (nil: as
// it is); j.src stays the Kafka source.
func srcNewJobWrapped[T any](t testing.TB, cfg kafka.SourceConfig[T], dir string, parallelism, want int,
	wrap func(sluice.Source[T]) sluice.Source[T], mods ...func(*sluice.Config)) *srcJob[T] {
	t.Helper()
	src, err := kafka.NewSource(cfg)
	if err != nil {
		t.Fatal(err)
	}
	j := &srcJob[T]{src: src, want: want, seen: make(chan struct{})}
	jc := sluice.Config{
		JobName:       "kafka-source-test",
		Parallelism:   parallelism,
		CheckpointDir: filepath.Join(dir, "checkpoints"),
		Checkpoint:    checkpoint.Config{Interval: 50 * time.Millisecond, MinPause: 10 * time.Millisecond},
		Restart:       restart.None{},
		BufferTimeout: sluice.FlushAlways,
		Logger:        srcLogger(),
	}
	for _, m := range mods {
		m(&jc)
	}
	j.env = sluice.New(jc)
	var source sluice.Source[T] = src
	if wrap != nil {
		source = wrap(src)
	}
	in := sluice.FromSource(j.env, "kafka", source)
	sluice.Sink(in, "collect", sluice.SinkFunc[T](func(r T) error {
		j.mu.Lock()
		j.got = append(j.got, r)
		n := len(j.got)
		j.mu.Unlock()
		if j.want > 0 && n >= j.want {
			j.stop.Do(func() {
				close(j.seen)
				j.env.Stop()
			})
		}
		return nil
	}))
	return j
}

// run executes the job with a deadline.
func (j *srcJob[T]) run(t testing.TB, timeout time.Duration) (*sluice.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return j.env.Execute(ctx)
}

func (j *srcJob[T]) values() []T {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]T(nil), j.got...)
}

func (j *srcJob[T]) records() []T { return j.values() }

// srcCheckExactlyOnce checks that got holds each value "<topic>/<p>/<i>"
// for i in [from, to) exactly once per partition, in offset order.
func srcCheckExactlyOnce(t testing.TB, got []kafka.Record, topic string, partitions int32, from, to int) {
	t.Helper()
	per := map[int32][]kafka.Record{}
	for _, r := range got {
		if r.Topic == topic {
			per[r.Partition] = append(per[r.Partition], r)
		}
	}
	for p := range partitions {
		rs := per[p]
		if len(rs) != to-from {
			t.Errorf("partition %d: got %d records, want %d", p, len(rs), to-from)
		}
		for k, r := range rs {
			want := fmt.Sprintf("%s/%d/%d", topic, p, from+k)
			if string(r.Value) != want {
				t.Errorf("partition %d record %d: got %q at offset %d, want %q", p, k, r.Value, r.Offset, want)
				break
			}
			if k > 0 && r.Offset <= rs[k-1].Offset {
				t.Errorf("partition %d: offset %d after %d", p, r.Offset, rs[k-1].Offset)
				break
			}
		}
	}
}

// srcWait polls cond until it holds or the deadline passes; tests use it
// where something happens in another goroutine and has no signal of its
// own.
func srcWait(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
