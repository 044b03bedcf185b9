package kafka

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestSinkAtLeastOnceFlushesAtBarrier: at-least-once returns from the
// pre-commit only once every record is acknowledged, so a checkpoint never
// completes ahead of its records; records carry keys, headers, timestamps
// and the selected topic.
func TestSinkAtLeastOnceFlushesAtBarrier(t *testing.T) {
	t.Parallel()
	_, addrs := sinkBroker(t)
	sinkCreateTopic(t, addrs, "even", 2)
	sinkCreateTopic(t, addrs, "odd", 2)
	ts := time.UnixMilli(1_700_000_000_123)
	cfg := sinkStringConfig(addrs, "", "")
	cfg.DeliveryGuarantee = DeliveryAtLeastOnce
	cfg.TopicSelector = func(s string) string {
		if (s[len(s)-1]-'0')%2 == 0 {
			return "even"
		}
		return "odd"
	}
	cfg.Serializer = SerializerOf(func(s string) ([]byte, []byte, []kgo.RecordHeader, time.Time) {
		return []byte("key-" + s), []byte(s), []kgo.RecordHeader{{Key: "origin", Value: []byte("test")}}, ts
	})
	c := newFlushCommitter(cfg, sinkOpCtx("sink", 0, 1, cfg.Logger))
	ctx := context.Background()
	txn, err := c.BeginTransaction(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var even, odd []string
	for i := range 100 {
		v := string(rune('a'+i%26)) + string(rune('0'+i%10))
		if err := c.Write(txn, v); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			even = append(even, v)
		} else {
			odd = append(odd, v)
		}
	}
	if err := c.PreCommit(ctx, txn); err != nil {
		t.Fatal(err)
	}
	// Acknowledged before PreCommit returned: the high watermarks count
	// every record now, with nothing else to wait for.
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for topic, want := range map[string]int{"even": len(even), "odd": len(odd)} {
		var total int64
		for _, o := range sinkLSO(t, addrs, topic) {
			total += o
		}
		if total != int64(want) {
			t.Errorf("topic %s holds %d records after the pre-commit, want %d", topic, total, want)
		}
	}
	for topic, want := range map[string][]string{"even": even, "odd": odd} {
		recs := sinkReadCommitted(t, addrs, topic, 2)
		sinkCheckOnce(t, sinkValues(recs), want)
		for _, r := range recs {
			if string(r.Key) != "key-"+string(r.Value) || len(r.Headers) != 1 || r.Headers[0].Key != "origin" ||
				string(r.Headers[0].Value) != "test" || !r.Timestamp.Equal(ts) {
				t.Fatalf("record %+v", r)
			}
		}
	}
	// Commit, recovery and clean-up are no-ops; a second transaction works.
	if err := c.Commit(ctx, txn); err != nil {
		t.Fatal(err)
	}
	if err := c.RecoverAndCommit(ctx, txn); err != nil {
		t.Fatal(err)
	}
	if err := c.CleanUp(ctx, []*Txn{txn}); err != nil {
		t.Fatal(err)
	}
	txn2, err := c.BeginTransaction(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Write(txn2, "z1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Abort(ctx, txn2); err != nil {
		t.Fatal(err)
	}
}

// TestSinkAtLeastOnceErrors: a non-retriable produce error fails the
// pre-commit (or the next write), naming it.
func TestSinkAtLeastOnceErrors(t *testing.T) {
	t.Parallel()
	b, addrs := sinkBroker(t)
	sinkCreateTopic(t, addrs, "out", 1)
	cfg := sinkStringConfig(addrs, "out", "")
	cfg.DeliveryGuarantee = DeliveryAtLeastOnce
	c := newFlushCommitter(cfg, sinkOpCtx("sink", 0, 1, cfg.Logger))
	sinkCluster(b).Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "out", Err: kerr.MessageTooLarge, Count: -1})
	ctx := context.Background()
	txn, err := c.BeginTransaction(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Abort(ctx, txn) //nolint:errcheck // cleanup
	err = c.Write(txn, "k=v")
	if err == nil {
		err = c.PreCommit(ctx, txn)
	}
	if err == nil || !strings.Contains(err.Error(), "MESSAGE_TOO_LARGE") {
		t.Fatalf("got %v, want MESSAGE_TOO_LARGE", err)
	}
	if err := c.Write(txn, "k=w"); err == nil || !strings.Contains(err.Error(), "MESSAGE_TOO_LARGE") {
		t.Fatalf("next write: got %v, want the first error again", err)
	}
}

// TestSinkNoneDoesNotWait: delivery guarantee none returns from the
// pre-commit at once and delivers in the background.
func TestSinkNoneDoesNotWait(t *testing.T) {
	t.Parallel()
	_, addrs := sinkBroker(t)
	sinkCreateTopic(t, addrs, "out", 1)
	cfg := sinkStringConfig(addrs, "out", "")
	cfg.DeliveryGuarantee = DeliveryNone
	c := newFlushCommitter(cfg, sinkOpCtx("sink", 0, 1, cfg.Logger))
	ctx := context.Background()
	txn, err := c.BeginTransaction(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := sinkNumbered("n", 50)
	for _, v := range want {
		if err := c.Write(txn, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.PreCommit(ctx, txn); err != nil {
		t.Fatal(err)
	}
	// Delivered eventually: poll the high watermark with a deadline.
	deadline := time.Now().Add(20 * time.Second)
	for sinkLSO(t, addrs, "out")[0] < int64(len(want)) {
		if time.Now().After(deadline) {
			t.Fatal("records never delivered")
		}
		time.Sleep(10 * time.Millisecond) // background delivery, bounded by the deadline
	}
	sinkCheckOnce(t, sinkValues(sinkReadCommitted(t, addrs, "out", 1)), sinkValuesOf(want))
}

// TestSinkSwitchToAtLeastOnce: a job restored with at-least-once from a
// checkpoint of its exactly-once run still commits the transactions that
// checkpoint pre-committed (the sources will not replay their records),
// and an exactly-once sink restored from an at-least-once checkpoint
// ignores its non-transactional handles.
func TestSinkSwitchToAtLeastOnce(t *testing.T) {
	t.Parallel()
	_, addrs := sinkBroker(t)
	sinkCreateTopic(t, addrs, "out", 1)
	cfg := sinkStringConfig(addrs, "out", "switch")
	eo := sinkNewCommitter(t, cfg, "sink", 0, 1)
	want := sinkNumbered("s", 10)
	txn := sinkWriteTxn(t, eo, want...)
	restored, _, err := TxnCodec.Decode(TxnCodec.Append(nil, txn))
	if err != nil {
		t.Fatal(err)
	}
	cfg.DeliveryGuarantee = DeliveryAtLeastOnce
	alo := newFlushCommitter(cfg, sinkOpCtx("sink", 0, 1, cfg.Logger, restored))
	ctx := context.Background()
	if err := alo.RecoverAndCommit(ctx, restored); err != nil {
		t.Fatal(err)
	}
	sinkCheckOnce(t, sinkValues(sinkReadCommitted(t, addrs, "out", 1)), sinkValuesOf(want))

	flushed := &Txn{HasData: true} // an at-least-once handle
	cfg.DeliveryGuarantee = DeliveryExactlyOnce
	eo2 := sinkNewCommitter(t, cfg, "sink", 0, 1, flushed)
	if err := eo2.RecoverAndCommit(ctx, flushed); err != nil {
		t.Fatalf("exactly-once restoring an at-least-once handle: %v", err)
	}
}
