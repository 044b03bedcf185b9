package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// sinkDropConns closes the connection of the next n requests of key
// without applying them.
func sinkDropConns(c *kfake.Cluster, key kmsg.Key, n int) *atomic.Int32 {
	var hits atomic.Int32
	c.ControlKey(int16(key), func(kmsg.Request) (kmsg.Response, error, bool) {
		if hits.Load() >= int32(n) {
			c.DropControl()
			return nil, nil, false
		}
		hits.Add(1)
		c.KeepControl()
		return nil, errors.New("injected: connection dropped"), true
	})
	return &hits
}

// sinkApplyThenDrop makes the broker apply the next request of key (EndTxn
// or InitProducerID) and then drop the connection before replying: the
// client cannot know that the work happened. kfake's REQUEST_TIMED_OUT
// fault does that for produce only, so the control sleeps, replays the
// same request from another client (served meanwhile on its own
// connection), then answers the original with a closed connection. The
// returned channel gets the replay's result.
func sinkApplyThenDrop(t testing.TB, c *kfake.Cluster, addrs []string, key kmsg.Key) <-chan error {
	res := make(chan error, 1)
	var fired atomic.Bool
	c.ControlKey(int16(key), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if !fired.CompareAndSwap(false, true) {
			return nil, nil, false // the replay, and everything after it
		}
		var replay kmsg.Request
		switch r := req.(type) {
		case *kmsg.EndTxnRequest:
			cp := *r
			replay = &cp
		case *kmsg.InitProducerIDRequest:
			cp := *r
			replay = &cp
		default:
			res <- fmt.Errorf("cannot replay %T", req)
			return nil, nil, false
		}
		c.SleepControl(func() {
			// Same request version as the original: an EndTxn v5 would
			// bump the epoch where the original v4 does not.
			v := kversion.Stable()
			v.SetMaxKeyVersion(req.Key(), req.GetVersion())
			cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.MaxVersions(v))
			if err != nil {
				res <- err
				return
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			resp, err := cl.Request(ctx, replay)
			if err == nil {
				switch r := resp.(type) {
				case *kmsg.EndTxnResponse:
					err = kerr.ErrorForCode(r.ErrorCode)
				case *kmsg.InitProducerIDResponse:
					err = kerr.ErrorForCode(r.ErrorCode)
				}
			}
			res <- err
		})
		return nil, errors.New("injected: reply lost after the work was applied"), true
	})
	return res
}

// TestSinkTxnBrokerFaults runs a transaction through begin, writes,
// pre-commit and commit (or a crash after the pre-commit and a commit on
// restore) while the broker fails requests: retriable errors, errors
// answered after the work was applied, dropped connections. The output
// must stay exactly once.
func TestSinkTxnBrokerFaults(t *testing.T) {
	t.Parallel()
	type setup func(t *testing.T, c *kfake.Cluster, addrs []string) (check func(t *testing.T))
	fault := func(f kfake.Fault) setup {
		return func(t *testing.T, c *kfake.Cluster, _ []string) func(*testing.T) {
			h := c.Fault(f)
			return func(t *testing.T) {
				if h.Hits() == 0 {
					t.Error("the fault never struck")
				}
			}
		}
	}
	drop := func(key kmsg.Key, n int) setup {
		return func(t *testing.T, c *kfake.Cluster, _ []string) func(*testing.T) {
			hits := sinkDropConns(c, key, n)
			return func(t *testing.T) {
				if hits.Load() == 0 {
					t.Error("no connection was dropped")
				}
			}
		}
	}
	applyThenDrop := func(key kmsg.Key) setup {
		return func(t *testing.T, c *kfake.Cluster, addrs []string) func(*testing.T) {
			res := sinkApplyThenDrop(t, c, addrs, key)
			return func(t *testing.T) {
				select {
				case err := <-res:
					if err != nil {
						t.Errorf("the replayed %v failed: %v", key, err)
					}
				default:
					t.Errorf("no %v request was applied and dropped", key)
				}
			}
		}
	}
	const topic = "out"
	for _, c := range []struct {
		name  string
		tv1   bool // cap the client below KIP-890 part 2
		setup setup
	}{
		{"EndTxn COORDINATOR_NOT_AVAILABLE", false, fault(kfake.Fault{Keys: []kmsg.Key{kmsg.EndTxn}, Err: kerr.CoordinatorNotAvailable, Count: 3})},
		{"EndTxn NOT_COORDINATOR", false, fault(kfake.Fault{Keys: []kmsg.Key{kmsg.EndTxn}, Err: kerr.NotCoordinator, Count: 2})},
		{"EndTxn CONCURRENT_TRANSACTIONS", false, fault(kfake.Fault{Keys: []kmsg.Key{kmsg.EndTxn}, Err: kerr.ConcurrentTransactions, Count: 3})},
		{"EndTxn UNKNOWN_SERVER_ERROR", false, fault(kfake.Fault{Keys: []kmsg.Key{kmsg.EndTxn}, Err: kerr.UnknownServerError, Count: 2})},
		{"EndTxn REQUEST_TIMED_OUT", false, fault(kfake.Fault{Keys: []kmsg.Key{kmsg.EndTxn}, Err: kerr.RequestTimedOut, Count: 2})},
		{"EndTxn connection dropped", false, drop(kmsg.EndTxn, 2)},
		{"EndTxn applied, reply lost", false, applyThenDrop(kmsg.EndTxn)},
		{"EndTxn applied, reply lost, transaction.version 1", true, applyThenDrop(kmsg.EndTxn)},
		{"Produce NOT_LEADER_FOR_PARTITION", false, fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: topic, Err: kerr.NotLeaderForPartition, Count: 3})},
		{"Produce REQUEST_TIMED_OUT after append", false, fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: topic, Err: kerr.RequestTimedOut, Count: 2})},
		{"Produce NOT_ENOUGH_REPLICAS_AFTER_APPEND", false, fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: topic, Err: kerr.NotEnoughReplicasAfterAppend, Count: 2})},
		{"Produce connection dropped", false, drop(kmsg.Produce, 2)},
		{"InitProducerID COORDINATOR_LOAD_IN_PROGRESS", false, fault(kfake.Fault{Keys: []kmsg.Key{kmsg.InitProducerID}, Err: kerr.CoordinatorLoadInProgress, Count: 3})},
		{"InitProducerID CONCURRENT_TRANSACTIONS", false, fault(kfake.Fault{Keys: []kmsg.Key{kmsg.InitProducerID}, Err: kerr.ConcurrentTransactions, Count: 2})},
		{"InitProducerID connection dropped", false, drop(kmsg.InitProducerID, 2)},
		{"InitProducerID applied, reply lost", false, applyThenDrop(kmsg.InitProducerID)},
		{"FindCoordinator COORDINATOR_NOT_AVAILABLE", false, fault(kfake.Fault{Keys: []kmsg.Key{kmsg.FindCoordinator}, Err: kerr.CoordinatorNotAvailable, Count: 2})},
		{"AddPartitionsToTxn CONCURRENT_TRANSACTIONS", true, fault(kfake.Fault{Keys: []kmsg.Key{kmsg.AddPartitionsToTxn}, Err: kerr.ConcurrentTransactions, Count: 2})},
		{"AddPartitionsToTxn COORDINATOR_NOT_AVAILABLE", true, fault(kfake.Fault{Keys: []kmsg.Key{kmsg.AddPartitionsToTxn}, Err: kerr.CoordinatorNotAvailable, Count: 2})},
		{"AddPartitionsToTxn connection dropped", true, drop(kmsg.AddPartitionsToTxn, 1)},
		{"ListTransactions COORDINATOR_LOAD_IN_PROGRESS", false, fault(kfake.Fault{Keys: []kmsg.Key{kmsg.ListTransactions}, Err: kerr.CoordinatorLoadInProgress, Count: 2})},
	} {
		for _, crash := range []bool{false, true} {
			name := c.name
			if crash {
				name += ", crash before commit"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				b, addrs := sinkBroker(t)
				sinkCreateTopic(t, addrs, topic, 4)
				cfg := sinkStringConfig(addrs, topic, "faults")
				if c.tv1 {
					cfg.ClientOpts = append(cfg.ClientOpts, kgo.MaxVersions(sinkPreKIP890()))
				}
				ctx := context.Background()
				committer := sinkNewCommitter(t, cfg, "sink", 0, 1)
				// A clean first transaction, so that faults strike a warm
				// client path as well as a cold one.
				warm := sinkNumbered("warm", 20)
				if err := committer.Commit(ctx, sinkWriteTxn(t, committer, warm...)); err != nil {
					t.Fatal(err)
				}
				check := c.setup(t, sinkCluster(b), addrs)
				values := sinkNumbered("v", 500)
				txn := sinkWriteTxn(t, committer, values...)
				if crash {
					restored, _, err := TxnCodec.Decode(TxnCodec.Append(nil, txn))
					if err != nil {
						t.Fatal(err)
					}
					again := sinkNewCommitter(t, cfg, "sink", 0, 1, restored)
					if err := again.RecoverAndCommit(ctx, restored); err != nil {
						t.Fatalf("recover: %v", err)
					}
					if err := again.CleanUp(ctx, []*Txn{restored}); err != nil {
						t.Fatalf("clean-up: %v", err)
					}
					// The restored committer goes on writing.
					more := sinkNumbered("more", 20)
					if err := again.Commit(ctx, sinkWriteTxn(t, again, more...)); err != nil {
						t.Fatal(err)
					}
					values = append(values, more...)
				} else if err := committer.Commit(ctx, txn); err != nil {
					t.Fatalf("commit: %v", err)
				}
				if !strings.HasPrefix(c.name, "ListTransactions") || crash {
					check(t)
				}
				sinkCheckOnce(t, sinkValues(sinkReadCommitted(t, addrs, topic, 4)), append(sinkValuesOf(warm), sinkValuesOf(values)...))
			})
		}
	}
}

// TestSinkRetryBounds: retriable failures are retried up to RetryTimeout,
// then the step fails naming the bound; non-retriable ones fail at once,
// naming the error; neither is mistaken for data loss, and a commit that
// gave up stays committable.
func TestSinkRetryBounds(t *testing.T) {
	t.Parallel()
	const topic = "out"
	quick := func(addrs []string) SinkConfig[string] {
		cfg := sinkStringConfig(addrs, topic, "bounds")
		cfg.RetryTimeout = time.Second
		return cfg
	}
	t.Run("produce non-retriable", func(t *testing.T) {
		t.Parallel()
		b, addrs := sinkBroker(t)
		sinkCreateTopic(t, addrs, topic, 1)
		cfg := quick(addrs)
		cfg.RetryTimeout = time.Minute // must not matter
		c := sinkNewCommitter(t, cfg, "sink", 0, 1)
		sinkCluster(b).Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: topic, Err: kerr.TopicAuthorizationFailed, Count: -1})
		start := time.Now()
		err := sinkWriteTxnErr(c, "k=v")
		if err == nil || !strings.Contains(err.Error(), "TOPIC_AUTHORIZATION_FAILED") || !strings.Contains(err.Error(), topic) {
			t.Fatalf("got %v, want TOPIC_AUTHORIZATION_FAILED naming the topic", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("non-retriable error took %v", d)
		}
	})
	t.Run("produce retriable forever", func(t *testing.T) {
		t.Parallel()
		b, addrs := sinkBroker(t)
		sinkCreateTopic(t, addrs, topic, 1)
		c := sinkNewCommitter(t, quick(addrs), "sink", 0, 1)
		sinkCluster(b).Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: topic, Err: kerr.NotEnoughReplicas, Count: -1})
		err := sinkWriteTxnErr(c, "k=v")
		if err == nil || !strings.Contains(err.Error(), "kafka.sink.retry-timeout") {
			t.Fatalf("got %v, want an error naming kafka.sink.retry-timeout", err)
		}
	})
	t.Run("commit retriable forever", func(t *testing.T) {
		t.Parallel()
		b, addrs := sinkBroker(t)
		sinkCreateTopic(t, addrs, topic, 1)
		c := sinkNewCommitter(t, quick(addrs), "sink", 0, 1)
		txn := sinkWriteTxn(t, c, "k=v")
		h := sinkCluster(b).Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.EndTxn}, Err: kerr.CoordinatorLoadInProgress, Count: -1})
		err := c.Commit(context.Background(), txn)
		if err == nil || errors.Is(err, ErrDataLoss) || !strings.Contains(err.Error(), "kafka.sink.retry-timeout") ||
			!strings.Contains(err.Error(), "committed on restore") {
			t.Fatalf("got %v, want a retry-timeout error (not data loss)", err)
		}
		h.Remove()
		if err := c.RecoverAndCommit(context.Background(), txn); err != nil {
			t.Fatalf("the transaction is still committable: %v", err)
		}
		sinkCheckOnce(t, sinkValues(sinkReadCommitted(t, addrs, topic, 1)), []string{"v"})
	})
	t.Run("commit non-retriable", func(t *testing.T) {
		t.Parallel()
		b, addrs := sinkBroker(t)
		sinkCreateTopic(t, addrs, topic, 1)
		c := sinkNewCommitter(t, quick(addrs), "sink", 0, 1)
		txn := sinkWriteTxn(t, c, "k=v")
		sinkCluster(b).Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.EndTxn}, Err: kerr.TransactionalIDAuthorizationFailed, Count: 1})
		err := c.Commit(context.Background(), txn)
		if err == nil || errors.Is(err, ErrDataLoss) || !strings.Contains(err.Error(), "TRANSACTIONAL_ID_AUTHORIZATION_FAILED") ||
			!strings.Contains(err.Error(), "non-retriable") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("broker unreachable", func(t *testing.T) {
		t.Parallel()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close() // nothing listens there now
		c := sinkNewCommitter(t, quick([]string{addr}), "sink", 0, 1)
		start := time.Now()
		_, err = c.BeginTransaction(context.Background())
		if err == nil || !strings.Contains(err.Error(), "kafka.sink.retry-timeout") {
			t.Fatalf("got %v, want an error naming kafka.sink.retry-timeout", err)
		}
		if d := time.Since(start); d < time.Second/2 || d > 20*time.Second {
			t.Errorf("gave up after %v, want about the 1s retry timeout", d)
		}
	})
	t.Run("transaction timeout above the broker's maximum", func(t *testing.T) {
		t.Parallel()
		_, addrs := sinkBroker(t)
		cfg := quick(addrs)
		cfg.TransactionTimeout = 2 * time.Hour // the embedded broker allows 1h
		c := sinkNewCommitter(t, cfg, "sink", 0, 1)
		_, err := c.BeginTransaction(context.Background())
		if err == nil || !strings.Contains(err.Error(), "transaction.max.timeout.ms") {
			t.Fatalf("got %v, want an error naming transaction.max.timeout.ms", err)
		}
	})
}

// sinkWriteTxnErr begins, writes and pre-commits, returning the first error.
func sinkWriteTxnErr(c *txnCommitter[string], values ...string) error {
	ctx := context.Background()
	txn, err := c.BeginTransaction(ctx)
	if err != nil {
		return err
	}
	defer c.Abort(ctx, txn) //nolint:errcheck // best effort
	for _, v := range values {
		if err := c.Write(txn, v); err != nil {
			return err
		}
	}
	return c.PreCommit(ctx, txn)
}
