package kafka

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestSinkConfigValidate(t *testing.T) {
	t.Parallel()
	ser := ValueSerializer(func(dst []byte, v string) []byte { return append(dst, v...) })
	good := SinkConfig[string]{Brokers: []string{"b:9092"}, Topic: "out", Serializer: ser, TransactionalIDPrefix: "job"}
	if err := good.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for _, c := range []struct {
		name string
		mod  func(*SinkConfig[string])
		want []string // substrings of the error, the key first
	}{
		{"no brokers", func(c *SinkConfig[string]) { c.Brokers = nil }, []string{"kafka.sink.brokers:", "seed broker"}},
		{"empty broker", func(c *SinkConfig[string]) { c.Brokers = []string{""} }, []string{"kafka.sink.brokers:", "empty"}},
		{"no topic", func(c *SinkConfig[string]) { c.Topic = "" }, []string{"kafka.sink.topic:", "topic selector"}},
		{"selector instead of topic", func(c *SinkConfig[string]) {
			c.Topic, c.TopicSelector = "", func(string) string { return "x" }
		}, nil},
		{"no serializer", func(c *SinkConfig[string]) { c.Serializer = nil }, []string{"kafka.sink.serializer:", "required"}},
		{"bad guarantee", func(c *SinkConfig[string]) { c.DeliveryGuarantee = "twice" }, []string{"kafka.sink.delivery-guarantee:", `"twice"`}},
		{"no prefix", func(c *SinkConfig[string]) { c.TransactionalIDPrefix = "" }, []string{"kafka.sink.transactional-id-prefix:", "exactly-once"}},
		{"no prefix at-least-once", func(c *SinkConfig[string]) {
			c.TransactionalIDPrefix, c.DeliveryGuarantee = "", DeliveryAtLeastOnce
		}, nil},
		{"no prefix none", func(c *SinkConfig[string]) { c.TransactionalIDPrefix, c.DeliveryGuarantee = "", DeliveryNone }, nil},
		{"small pool", func(c *SinkConfig[string]) { c.PoolSize = 2 }, []string{"kafka.sink.pool-size:", "at least 3"}},
		{"negative timeout", func(c *SinkConfig[string]) { c.TransactionTimeout = -time.Second }, []string{"kafka.sink.transaction-timeout:"}},
		{"huge timeout", func(c *SinkConfig[string]) { c.TransactionTimeout = 1000 * time.Hour }, []string{"kafka.sink.transaction-timeout:"}},
		{"short timeout", func(c *SinkConfig[string]) { c.TransactionTimeout = time.Minute }, []string{"kafka.sink.transaction-timeout:", "does not exceed"}},
		{"negative retry", func(c *SinkConfig[string]) { c.RetryTimeout = -1 }, []string{"kafka.sink.retry-timeout:"}},
		{"negative backoff", func(c *SinkConfig[string]) { c.RetryBackoff = -1 }, []string{"kafka.sink.retry-backoff:"}},
		{"create topic", func(c *SinkConfig[string]) { c.CreateTopic = &TopicSpec{Partitions: 3} }, nil},
		{"create topic negative partitions", func(c *SinkConfig[string]) { c.CreateTopic = &TopicSpec{Partitions: -1} },
			[]string{"kafka.sink.create-topic.partitions:", "-1"}},
		{"create topic negative replication", func(c *SinkConfig[string]) { c.CreateTopic = &TopicSpec{ReplicationFactor: -2} },
			[]string{"kafka.sink.create-topic.replication-factor:", "-2"}},
		{"create topic with selector", func(c *SinkConfig[string]) {
			c.Topic, c.TopicSelector, c.CreateTopic = "", func(string) string { return "x" }, &TopicSpec{}
		}, []string{"kafka.sink.create-topic:", "kafka.sink.topic"}},
	} {
		cfg := good
		c.mod(&cfg)
		err := cfg.Validate()
		if len(c.want) == 0 {
			if err != nil {
				t.Errorf("%s: unexpected error %v", c.name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not contain %q", c.name, err, w)
			}
		}
		if !strings.HasPrefix(err.Error(), c.want[0]) {
			t.Errorf("%s: error %q does not start with the key %q", c.name, err, c.want[0])
		}
	}
	// Every problem is reported, not only the first.
	err := SinkConfig[string]{DeliveryGuarantee: DeliveryExactlyOnce}.Validate()
	for _, key := range []string{KeySinkBrokers, KeySinkTopic, KeySinkSerializer, KeySinkTransactionalIDPrefix} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("empty config: error %v does not name %s", err, key)
		}
	}
	if _, err := NewSink(SinkConfig[string]{}); err == nil {
		t.Error("NewSink accepted an empty config")
	}
	if _, err := NewSink(good); err != nil {
		t.Errorf("NewSink: %v", err)
	}
}

func TestSinkCheckTimeouts(t *testing.T) {
	t.Parallel()
	cfg := SinkConfig[string]{TransactionTimeout: 10 * time.Minute, RetryTimeout: time.Minute}
	if err := cfg.CheckTimeouts(time.Second, 5*time.Minute, 3*time.Minute); err != nil {
		t.Errorf("10m > 1s+5m+1m+3m: %v", err)
	}
	err := cfg.CheckTimeouts(time.Second, 8*time.Minute, 2*time.Minute)
	if err == nil {
		t.Fatal("10m <= 1s+8m+1m+2m accepted")
	}
	// The message names the settings to change and the bound.
	for _, w := range []string{"kafka.sink.transaction-timeout: 10m0s does not exceed", "checkpoint.interval (1s)",
		"checkpoint.timeout (8m0s)", "kafka.sink.retry-timeout (1m0s)", "restart delay (2m0s)", "= 11m1s",
		"raise kafka.sink.transaction-timeout above 11m1s", "transaction.max.timeout.ms", "restart.max-backoff"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
	// Only exactly-once needs it.
	cfg.DeliveryGuarantee = DeliveryAtLeastOnce
	if err := cfg.CheckTimeouts(time.Hour, time.Hour, time.Hour); err != nil {
		t.Errorf("at-least-once: %v", err)
	}
	// The defaults pass with the job defaults.
	if err := (SinkConfig[string]{}).CheckTimeouts(5*time.Second, time.Minute, time.Minute); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

func TestSerializers(t *testing.T) {
	t.Parallel()
	rec := &kgo.Record{Value: make([]byte, 0, 8)}
	kv := KeyValueSerializer(appendKeyOf, appendValueOf)
	if err := kv.Serialize(rec, "k=v"); err != nil || string(rec.Key) != "k" || string(rec.Value) != "v" {
		t.Errorf("KeyValueSerializer: %q %q %v", rec.Key, rec.Value, err)
	}
	ts := time.UnixMilli(1234)
	of := SerializerOf(func(s string) ([]byte, []byte, []kgo.RecordHeader, time.Time) {
		return []byte("key"), nil, []kgo.RecordHeader{{Key: "h", Value: []byte(s)}}, ts
	})
	rec = &kgo.Record{Value: []byte{}}
	if err := of.Serialize(rec, "x"); err != nil || string(rec.Key) != "key" || rec.Value != nil ||
		len(rec.Headers) != 1 || !rec.Timestamp.Equal(ts) {
		t.Errorf("SerializerOf: %+v %v", rec, err)
	}
}

// TestSinkWriteAllocations pins that the steady-state write path (record
// recycled, serializer appending into recycled buffers) allocates nothing
// in the sink itself. franz-go's Produce is replaced by a stand-in that acknowledges at once.
func TestSinkWriteAllocations(t *testing.T) {
	w := sinkWriter[string]{ser: KeyValueSerializer(appendKeyOf, appendValueOf), topic: "t", pool: newSinkRecordPool()}
	l := newLiveTxn(nil, 0, w.pool, 0)
	var last *kgo.Record
	// Stand-in for the client: acknowledge at once.
	l.produce = func(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
		last = r
		promise(r, nil)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		if err := w.write(l, "key=value"); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0.01 {
		t.Errorf("write path allocates %.2f per record", allocs)
	}
	if string(last.Key) != "key" || string(last.Value) != "value" {
		t.Errorf("last record %q=%q", last.Key, last.Value)
	}
}
