package kafka

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/broker"
)

// sinkTestSeed returns the random seed of a test: SLUICE_SEED if set,
// else the clock. It is logged so that a failure can be replayed.
func sinkTestSeed(t testing.TB) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("SLUICE_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("SLUICE_SEED: %v", err)
		}
		seed = v
	}
	t.Logf("seed %d (replay with SLUICE_SEED=%d)", seed, seed)
	return seed
}

// sinkTestLogger discards logs unless SLUICE_TEST_LOG is set.
func sinkTestLogger() *slog.Logger {
	if os.Getenv("SLUICE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// sinkBroker starts an ephemeral embedded broker for one test.
func sinkBroker(t testing.TB) (*broker.Broker, []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := broker.Start(ctx, broker.Config{Ephemeral: true, Logger: sinkTestLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b, b.Addrs()
}

// sinkTestOpts are client options for tests: quick metadata refreshes
// (the notes' pitfall: NOT_LEADER retries otherwise wait seconds).
func sinkTestOpts() []kgo.Opt { return []kgo.Opt{kgo.MetadataMinAge(50 * time.Millisecond)} }

func sinkCreateTopic(t testing.TB, addrs []string, topic string, partitions int32) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
}

// sinkReadCommitted reads topic read_committed to its end. To know where
// the end is without waiting, it first appends a sentinel record to every
// partition outside any transaction and reads until it has seen them all:
// a record of the sink committed before the sentinel precedes it. A
// transaction left open blocks the last stable offset, so the sentinels
// never show and the read fails at its deadline: that is the check that
// nothing lingers.
func sinkReadCommitted(t testing.TB, addrs []string, topic string, partitions int32) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	prod, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	for p := range partitions {
		r := &kgo.Record{Topic: topic, Partition: p, Value: []byte("sentinel"), Headers: []kgo.RecordHeader{{Key: "sentinel"}}}
		if err := prod.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("sentinel to partition %d: %v", p, err)
		}
	}
	prod.Close()
	cons, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	var out []*kgo.Record
	seen := map[int32]bool{}
	for len(seen) < int(partitions) {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			lso := sinkLSO(t, addrs, topic)
			t.Fatalf("read_committed of %s did not reach the end (%d of %d partitions; last stable offsets %v): a lingering transaction blocks readers?",
				topic, len(seen), partitions, lso)
		}
		for _, e := range fs.Errors() {
			t.Fatalf("fetch %s[%d]: %v", e.Topic, e.Partition, e.Err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if len(r.Headers) == 1 && r.Headers[0].Key == "sentinel" {
				seen[r.Partition] = true
				return
			}
			out = append(out, r)
		})
	}
	return out
}

// sinkLSO returns the last stable offset of every partition of topic.
func sinkLSO(t testing.TB, addrs []string, topic string) map[int32]int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offs, err := kadm.NewClient(cl).ListCommittedOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("list last stable offsets: %v", err)
	}
	out := map[int32]int64{}
	offs.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

// sinkOngoing returns the transactional ids with an ongoing transaction.
func sinkOngoing(t testing.TB, addrs []string) map[string]bool {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	listed, err := kadm.NewClient(cl).ListTransactions(ctx, nil, []string{"Ongoing"})
	if err != nil {
		t.Fatalf("list transactions: %v", err)
	}
	out := map[string]bool{}
	for id, lt := range listed {
		if lt.State == "Ongoing" {
			out[id] = true
		}
	}
	return out
}

// sinkOpCtx is the operator context of one sink subtask.
func sinkOpCtx(uid string, sub, par int, log *slog.Logger, restored ...*Txn) *sluice.OperatorContext {
	oc := &sluice.OperatorContext{UID: uid, Name: uid, Subtask: sub, Parallelism: par, Logger: log}
	if len(restored) > 0 {
		// As the framework stores them: varint checkpoint id, then the
		// transaction.
		var entries [][]byte
		for i, t := range restored {
			e := []byte{byte(2 * (i + 7))} // zig-zag varint of i+7
			entries = append(entries, TxnCodec.Append(e, t))
		}
		oc.Restored = &sluice.RestoredState{CheckpointID: 7, Operator: map[string][][]byte{"pending-transactions": entries}}
	}
	return oc
}

// sinkStringConfig is an exactly-once sink of strings "key=value" with
// the part before '=' as the key.
func sinkStringConfig(addrs []string, topic, prefix string) SinkConfig[string] {
	return SinkConfig[string]{
		Brokers:               addrs,
		Topic:                 topic,
		Serializer:            KeyValueSerializer(appendKeyOf, appendValueOf),
		TransactionalIDPrefix: prefix,
		RetryTimeout:          20 * time.Second,
		RetryBackoff:          10 * time.Millisecond,
		ClientOpts:            sinkTestOpts(),
		Logger:                sinkTestLogger(),
	}.withDefaults()
}

func appendKeyOf(dst []byte, s string) []byte {
	for i := range len(s) {
		if s[i] == '=' {
			return append(dst, s[:i]...)
		}
	}
	return dst
}

func appendValueOf(dst []byte, s string) []byte {
	for i := range len(s) {
		if s[i] == '=' {
			return append(dst, s[i+1:]...)
		}
	}
	return append(dst, s...)
}

// sinkValues returns the values of records, in order.
func sinkValues(rs []*kgo.Record) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r.Value)
	}
	return out
}

// sinkCheckOnce checks that the values are exactly want, each once, in any
// order.
func sinkCheckOnce(t testing.TB, got []string, want []string) {
	t.Helper()
	count := map[string]int{}
	for _, v := range got {
		count[v]++
	}
	var lost, dup int
	for _, v := range want {
		switch count[v] {
		case 0:
			lost++
		case 1:
		default:
			dup++
		}
		delete(count, v)
	}
	if lost > 0 || dup > 0 || len(count) > 0 {
		t.Fatalf("not exactly once: %d lost, %d duplicated, %d unexpected (got %d records, want %d)", lost, dup, len(count), len(got), len(want))
	}
}

// sinkRecordingHandler keeps the log records at Error and above.
type sinkRecordingHandler struct {
	mu   sync.Mutex
	errs []string
}

func (h *sinkRecordingHandler) Enabled(_ context.Context, l slog.Level) bool { return true }
func (h *sinkRecordingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level < slog.LevelError {
		return nil
	}
	s := r.Message
	r.Attrs(func(a slog.Attr) bool { s += fmt.Sprintf(" %s=%v", a.Key, a.Value); return true })
	h.mu.Lock()
	h.errs = append(h.errs, s)
	h.mu.Unlock()
	return nil
}
func (h *sinkRecordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *sinkRecordingHandler) WithGroup(string) slog.Handler      { return h }

func (h *sinkRecordingHandler) errors() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.errs...)
}

// sinkCluster is the kfake cluster behind b, for faults.
func sinkCluster(b *broker.Broker) *kfake.Cluster { return b.Cluster() }
