package broker

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The TestKafkaReference* tests run the embedded broker's round trips
// against a real Apache Kafka 4.x cluster named by SLUICE_KAFKA_BROKERS, and
// skip without one. scripts/kafka-reference.sh starts such a cluster and
// runs them:
//
//	scripts/kafka-reference.sh go test -count=1 -run Kafka ./broker/
//
// The cluster is expected to be configured as that script does it:
// num.partitions=4 and transaction.max.timeout.ms=3600000, the embedded
// broker's defaults.

func TestKafkaReferenceRoundTrip(t *testing.T) {
	t.Parallel()
	addrs := referenceBrokers(t)
	t.Run("produce consume", func(t *testing.T) {
		t.Parallel()
		testProduceConsume(t, addrs)
	})
	t.Run("transactions", func(t *testing.T) {
		t.Parallel()
		testTxnRoundTrip(t, addrs)
	})
	t.Run("txn max timeout", func(t *testing.T) {
		t.Parallel()
		testTxnMaxTimeout(t, addrs, time.Hour)
	})
	t.Run("auto-created partitions", func(t *testing.T) {
		t.Parallel()
		if got := partitionCount(t, addrs, uniqueName("auto")); got != DefaultPartitions {
			t.Errorf("auto-created topic has %d partitions, want %d", got, DefaultPartitions)
		}
	})
}

func TestKafkaReferenceKcat(t *testing.T) {
	t.Parallel()
	addrs := referenceBrokers(t)
	requireKcat(t)
	runKcatInterop(t, addrs)
}

// txnBehaviour is what a broker answers in transaction corner cases a
// Flink-style sink meets when it drives EndTxn itself (docs/design.md §7).
// kfake and Apache Kafka share a txnBehaviour wherever they agree; where
// they differ, docs/broker.md says so.
type txnBehaviour struct {
	// emptyCommit is EndTxn(commit) right after InitProducerID, for a
	// transaction that produced nothing. (kgo itself never sends it: its
	// EndTransaction aborts a transaction with no partitions instead.)
	emptyCommit error
	// emptyAbort is EndTxn(abort) in the same state.
	emptyAbort error
}

// kfakeTxn is the embedded broker's behaviour.
var kfakeTxn = txnBehaviour{
	emptyCommit: kerr.InvalidTxnState,
	emptyAbort:  nil,
}

// kafkaTxn is Apache Kafka 4.1's behaviour with transaction version 2
// (KIP-890 part 2), which franz-go negotiates.
var kafkaTxn = txnBehaviour{
	emptyCommit: kerr.InvalidTxnState,
	emptyAbort:  nil,
}

func TestTxnBehaviour(t *testing.T) {
	t.Parallel()
	runTxnBehaviour(t, startEphemeral(t).Addrs(), kfakeTxn)
}

func TestKafkaReferenceTxnBehaviour(t *testing.T) {
	t.Parallel()
	runTxnBehaviour(t, referenceBrokers(t), kafkaTxn)
}

// runTxnBehaviour probes the transaction corner cases a Flink-style sink
// depends on and checks the answers against want.
func runTxnBehaviour(t *testing.T, addrs []string, want txnBehaviour) {
	for _, commit := range []bool{true, false} {
		name, wantErr := "empty abort", want.emptyAbort
		if commit {
			name, wantErr = "empty commit", want.emptyCommit
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cl := newClient(t, addrs)
			ctx := ctxT(t)
			txnID := uniqueName("empty")
			pid, epoch, err := initProducerIDRaw(ctx, cl, txnID, time.Minute)
			if err != nil {
				t.Fatalf("InitProducerID: %v", err)
			}
			got := endTxnRaw(ctx, cl, txnID, pid, epoch, commit)
			t.Logf("%s: %v", name, got)
			if !sameErr(got, wantErr) {
				t.Errorf("EndTxn(commit=%v) of an empty transaction = %v, want %v", commit, got, wantErr)
			}
		})
	}

	// The retry of a commit whose reply was lost, with the same epoch,
	// must succeed: that is how a sink commits idempotently after a
	// restart. Apache Kafka finishes a commit asynchronously (it writes
	// the markers after replying) and answers CONCURRENT_TRANSACTIONS
	// until then, so the retry loops on that error as a sink must.
	t.Run("repeat commit", func(t *testing.T) {
		t.Parallel()
		topic, txnID := uniqueName("repeat"), uniqueName("repeat")
		cl := txnProducer(t, addrs, topic, txnID)
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		recs := kvs("r", 2)
		produceInTxn(t, cl, recs)
		ctx := ctxT(t)
		pid, epoch, err := cl.ProducerID(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Commit outside kgo, as a sink resuming after a restart does.
		raw := newClient(t, addrs)
		if err := endTxnRaw(ctx, raw, txnID, pid, epoch, true); err != nil {
			t.Fatalf("first EndTxn(commit): %v", err)
		}
		start := time.Now()
		tries, err := 0, error(nil)
		for {
			tries++
			err = endTxnRaw(ctx, raw, txnID, pid, epoch, true)
			if !errors.Is(err, kerr.ConcurrentTransactions) || ctx.Err() != nil {
				break
			}
			time.Sleep(10 * time.Millisecond) // retry backoff, as a sink's
		}
		t.Logf("repeated commit: %v after %d tries in %v", err, tries, time.Since(start))
		if err != nil {
			t.Errorf("repeated EndTxn(commit) = %v, want success", err)
		}
		if got := consumeN(t, addrs, topic, len(recs), kgo.ReadCommitted()); !slices.Equal(sortedStrings(got), sortedStrings(recs)) {
			t.Errorf("read_committed after commit: %v, want %v", sortedStrings(got), sortedStrings(recs))
		}
	})

	// Lag for read_committed consumers must be measured against the last
	// stable offset: the high watermark runs ahead of it by an open
	// transaction's records and, once it ends, by its control record.
	// Apache Kafka moves the last stable offset when the markers are
	// written, shortly after EndTxn returns, so we poll for it.
	t.Run("last stable offset", func(t *testing.T) {
		t.Parallel()
		topic := uniqueName("lso")
		cl := txnProducer(t, addrs, topic, uniqueName("lso"))
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		produceInTxn(t, cl, kvs("open", 3))
		if hwm, lso := partitionOffsets(t, addrs, topic); hwm != 3 || lso != 0 {
			t.Errorf("open transaction of 3 records: high watermark %d, last stable offset %d; want 3, 0", hwm, lso)
		}
		if err := cl.EndTransaction(ctxT(t), kgo.TryCommit); err != nil {
			t.Fatal(err)
		}
		committed := time.Now()
		deadline := committed.Add(testTimeout)
		for polls := 1; ; polls++ {
			hwm, lso := partitionOffsets(t, addrs, topic)
			if hwm == 4 && lso == 4 {
				t.Logf("last stable offset reached 4 after %d polls, %v after EndTxn returned", polls, time.Since(committed))
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("committed transaction of 3 records: high watermark %d, last stable offset %d; want 4, 4 (3 records + marker)", hwm, lso)
			}
			time.Sleep(10 * time.Millisecond) // poll interval
		}
	})
}

// sameErr reports whether got is want, treating nil as no error.
func sameErr(got, want error) bool {
	if want == nil {
		return got == nil
	}
	return errors.Is(got, want)
}
