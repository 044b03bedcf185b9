package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// testTimeout bounds every wait in these tests. Generous, because the
// reference Apache Kafka run shares two cores with the JVM.
const testTimeout = 30 * time.Second

// kafkaBrokersEnv names the reference Apache Kafka cluster the
// TestKafkaReference* tests run against; scripts/kafka-reference.sh sets
// it.
const kafkaBrokersEnv = "SLUICE_KAFKA_BROKERS"

// testLogger returns a logger that writes to the test log at Warn, so
// kfake's warnings show up next to the failure they explain.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startEphemeral starts an in-memory broker on a free port, closed at the
// end of the test.
func startEphemeral(t testing.TB) *Broker {
	t.Helper()
	b, err := Start(t.Context(), Config{Ephemeral: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	closeAtEnd(t, b)
	return b
}

// startDir starts a persistent broker on dir and a free port. It is closed
// at the end of the test, if the test does not close it first (to restart
// it, say).
func startDir(t testing.TB, dir string) *Broker {
	t.Helper()
	b, err := Start(t.Context(), Config{DataDir: dir, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Start(%s): %v", dir, err)
	}
	closeAtEnd(t, b)
	return b
}

// closeAtEnd closes b when the test ends. Registered right after Start, it
// runs after the cleanups of the clients the test creates later: a kgo
// client closed after its broker is gone takes a second to give up.
func closeAtEnd(t testing.TB, b *Broker) {
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
}

// referenceBrokers returns the reference Kafka cluster's addresses, or
// skips the test when none is configured.
func referenceBrokers(t testing.TB) []string {
	t.Helper()
	v := os.Getenv(kafkaBrokersEnv)
	if v == "" {
		t.Skipf("%s not set: run scripts/kafka-reference.sh go test ./broker/ -run Kafka", kafkaBrokersEnv)
	}
	return strings.Split(v, ",")
}

// uniqueName returns prefix plus a random suffix, so tests can share a
// reference cluster and be run repeatedly against it.
func uniqueName(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// newClient returns a franz-go client for addrs, closed at the end of the
// test.
func newClient(t testing.TB, addrs []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	opts = append([]kgo.Opt{
		kgo.SeedBrokers(addrs...),
		kgo.AllowAutoTopicCreation(),
		// Without this a NOT_LEADER or UNKNOWN_TOPIC retry waits
		// seconds for the next metadata refresh.
		kgo.MetadataMinAge(50 * time.Millisecond),
		kgo.RetryTimeout(testTimeout),
		// Real Kafka answers UNKNOWN_TOPIC_OR_PARTITION for a while after
		// creating a topic on demand (docs/broker.md); on a loaded machine
		// that outlasts franz-go's default 4 retries. RetryTimeout bounds it.
		kgo.UnknownTopicRetries(-1),
	}, opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatalf("kgo.NewClient: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// ctxT returns a context bounded by testTimeout.
func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// kv is a record's key and value, the unit the round trips compare.
type kv struct{ K, V string }

func (r kv) String() string { return r.K + " " + r.V }

func kvs(prefix string, n int) []kv {
	out := make([]kv, n)
	for i := range out {
		out[i] = kv{fmt.Sprintf("%s-k%d", prefix, i), fmt.Sprintf("%s-v%d", prefix, i)}
	}
	return out
}

func sortedStrings[T fmt.Stringer](xs []T) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = x.String()
	}
	slices.Sort(out)
	return out
}

// produceSync produces records to topic with an idempotent (not
// transactional) franz-go producer.
func produceSync(t testing.TB, addrs []string, topic string, recs []kv) {
	t.Helper()
	cl := newClient(t, addrs, kgo.DefaultProduceTopic(topic))
	rs := make([]*kgo.Record, len(recs))
	for i, r := range recs {
		rs[i] = &kgo.Record{Key: []byte(r.K), Value: []byte(r.V)}
	}
	if err := cl.ProduceSync(ctxT(t), rs...).FirstErr(); err != nil {
		t.Fatalf("produce to %s: %v", topic, err)
	}
}

// consumeN reads topic from the start until it has n records, and fails
// the test if they do not arrive within testTimeout.
func consumeN(t testing.TB, addrs []string, topic string, n int, iso kgo.IsolationLevel) []kv {
	t.Helper()
	cl := newClient(t, addrs,
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(iso),
	)
	ctx := ctxT(t)
	var got []kv
	for len(got) < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consume %s: got %d of %d records before %v: %v", topic, len(got), n, testTimeout, sortedStrings(got))
		}
		fs.EachError(func(tp string, p int32, err error) {
			t.Fatalf("consume %s[%d]: %v", tp, p, err)
		})
		fs.EachRecord(func(r *kgo.Record) {
			got = append(got, kv{string(r.Key), string(r.Value)})
		})
	}
	return got
}

// txnProducer returns a transactional franz-go client whose records all go
// to partition 0 of topic, so that tests can reason about offsets.
func txnProducer(t testing.TB, addrs []string, topic, txnID string) *kgo.Client {
	t.Helper()
	return newClient(t, addrs,
		kgo.DefaultProduceTopic(topic),
		kgo.TransactionalID(txnID),
		kgo.TransactionTimeout(time.Minute),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	)
}

// produceTxn produces recs to partition 0 in one transaction and commits
// or aborts it.
func produceTxn(t testing.TB, cl *kgo.Client, recs []kv, commit bool) {
	t.Helper()
	ctx := ctxT(t)
	if err := cl.BeginTransaction(); err != nil {
		t.Fatalf("BeginTransaction: %v", err)
	}
	produceInTxn(t, cl, recs)
	end := kgo.TryAbort
	if commit {
		end = kgo.TryCommit
	}
	if err := cl.EndTransaction(ctx, end); err != nil {
		t.Fatalf("EndTransaction(commit=%v): %v", commit, err)
	}
}

// produceInTxn produces recs to partition 0 within the open transaction
// and waits until the broker has them.
func produceInTxn(t testing.TB, cl *kgo.Client, recs []kv) {
	t.Helper()
	rs := make([]*kgo.Record, len(recs))
	for i, r := range recs {
		rs[i] = &kgo.Record{Key: []byte(r.K), Value: []byte(r.V), Partition: 0}
	}
	if err := cl.ProduceSync(ctxT(t), rs...).FirstErr(); err != nil {
		t.Fatalf("produce in txn: %v", err)
	}
}

// endTxnRaw sends EndTxn for a transaction by its producer ID and epoch,
// the way a Flink-style sink resumes a pre-committed transaction after a
// restart (docs/design.md §7). cl needs no transactional ID of its own.
func endTxnRaw(ctx context.Context, cl *kgo.Client, txnID string, pid int64, epoch int16, commit bool) error {
	req := kmsg.NewPtrEndTxnRequest()
	req.TransactionalID = txnID
	req.ProducerID = pid
	req.ProducerEpoch = epoch
	req.Commit = commit
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("EndTxn request: %w", err)
	}
	return kerr.ErrorForCode(resp.ErrorCode)
}

// initProducerIDRaw sends InitProducerID for txnID with the given timeout.
func initProducerIDRaw(ctx context.Context, cl *kgo.Client, txnID string, timeout time.Duration) (int64, int16, error) {
	req := kmsg.NewPtrInitProducerIDRequest()
	req.TransactionalID = &txnID
	req.TransactionTimeoutMillis = int32(timeout.Milliseconds())
	req.ProducerID = -1
	req.ProducerEpoch = -1
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return 0, 0, fmt.Errorf("InitProducerID request: %w", err)
	}
	return resp.ProducerID, resp.ProducerEpoch, kerr.ErrorForCode(resp.ErrorCode)
}

// partitionOffsets returns partition 0's high watermark and last stable
// offset.
func partitionOffsets(t testing.TB, addrs []string, topic string) (hwm, lso int64) {
	t.Helper()
	adm := kadm.NewClient(newClient(t, addrs))
	ctx := ctxT(t)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatalf("ListEndOffsets(%s): %v", topic, err)
	}
	stables, err := adm.ListCommittedOffsets(ctx, topic)
	if err == nil {
		err = stables.Error()
	}
	if err != nil {
		t.Fatalf("ListCommittedOffsets(%s): %v", topic, err)
	}
	e, ok1 := ends.Lookup(topic, 0)
	s, ok2 := stables.Lookup(topic, 0)
	if !ok1 || !ok2 {
		t.Fatalf("offsets of %s[0] missing: ends %v, stable %v", topic, ends, stables)
	}
	return e.Offset, s.Offset
}

// partitionCount returns how many partitions topic has, creating it on
// demand through a metadata request as producers do.
func partitionCount(t testing.TB, addrs []string, topic string) int {
	t.Helper()
	cl := newClient(t, addrs)
	ctx := ctxT(t)
	start := time.Now()
	for tries := 1; ; tries++ {
		req := kmsg.NewPtrMetadataRequest()
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(topic)
		req.Topics = append(req.Topics, rt)
		req.AllowAutoTopicCreation = true
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatalf("metadata %s: %v", topic, err)
		}
		if len(resp.Topics) != 1 {
			t.Fatalf("metadata %s: %d topics in the reply", topic, len(resp.Topics))
		}
		err = kerr.ErrorForCode(resp.Topics[0].ErrorCode)
		// Real Kafka answers the request that creates the topic with
		// LEADER_NOT_AVAILABLE (or UNKNOWN_TOPIC while it propagates);
		// retry until the partitions are there.
		if err == nil && len(resp.Topics[0].Partitions) > 0 {
			if tries > 1 {
				t.Logf("auto-created topic %s ready after %d metadata requests, %v", topic, tries, time.Since(start))
			}
			return len(resp.Topics[0].Partitions)
		}
		if tries == 1 {
			t.Logf("metadata request that auto-creates %s answered %v", topic, err)
		}
		if err != nil && !errors.Is(err, kerr.LeaderNotAvailable) && !errors.Is(err, kerr.UnknownTopicOrPartition) {
			t.Fatalf("metadata %s: %v", topic, err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("metadata %s: topic not ready within %v: last error %v", topic, testTimeout, err)
		case <-time.After(50 * time.Millisecond): // poll interval, not a wait for an event
		}
	}
}
