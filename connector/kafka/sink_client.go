package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// sinkClientOpts returns the options of every client the sink creates: the
// seed brokers, the partitioner and the retry bounds, then the user's
// options, then extra.
func sinkClientOpts[T any](cfg *SinkConfig[T], log *slog.Logger, extra ...kgo.Opt) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.RecordPartitioner(cfg.Partitioner),
		// Bound the retries of requests (failure handling, issue item
		// 5): past it the task fails and the job restarts. Records are
		// bounded by liveTxn's watchdog.
		kgo.RetryTimeout(cfg.RetryTimeout),
		// Close would otherwise wait up to a second to push final client
		// metrics (KIP-714), and the sink closes a client per checkpoint.
		kgo.DisableClientMetrics(),
		kgo.WithLogger(sinkKgoLogger{log}),
	}
	opts = append(opts, cfg.ClientOpts...)
	return append(opts, extra...)
}

// sinkKgoLogger forwards franz-go's logs to slog one level lower (franz-go logs
// every transaction begin and end at Info, which is Debug for a sink that
// runs one per second).
type sinkKgoLogger struct{ l *slog.Logger }

func (k sinkKgoLogger) Level() kgo.LogLevel {
	ctx := context.Background()
	switch {
	case k.l.Enabled(ctx, slog.LevelDebug):
		return kgo.LogLevelInfo
	case k.l.Enabled(ctx, slog.LevelInfo):
		return kgo.LogLevelWarn
	default:
		return kgo.LogLevelError
	}
}

func (k sinkKgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	l := slog.LevelDebug
	switch level {
	case kgo.LogLevelError:
		l = slog.LevelWarn // the sink reports the errors that matter itself
	case kgo.LogLevelWarn:
		l = slog.LevelInfo
	}
	k.l.Log(context.Background(), l, "franz-go: "+msg, keyvals...)
}

// sinkBackoff is the sink's own retry loop: exponential waits from the
// configured backoff up to sinkMaxRetryBackoff, bounded by a deadline.
type sinkBackoff struct {
	next     time.Duration
	deadline time.Time
	attempts int
}

func newSinkBackoff(first, timeout time.Duration) *sinkBackoff {
	return &sinkBackoff{next: first, deadline: time.Now().Add(timeout)}
}

// wait sleeps before the next attempt and reports false when the deadline
// would pass or ctx ends.
func (b *sinkBackoff) wait(ctx context.Context) bool {
	b.attempts++
	if time.Now().Add(b.next).After(b.deadline) {
		return false
	}
	t := time.NewTimer(b.next)
	defer t.Stop()
	b.next = min(2*b.next, sinkMaxRetryBackoff)
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// sinkRetriable reports whether err is worth retrying: Kafka's retriable
// codes, CONCURRENT_TRANSACTIONS (the coordinator is still completing the
// previous transaction), UNKNOWN_SERVER_ERROR (outcome unknown; every step
// retried here is idempotent) and transport errors (broker unreachable,
// connection dropped, request timed out).
func sinkRetriable(err error) bool {
	if errors.Is(err, kgo.ErrClientClosed) || errors.Is(err, context.Canceled) {
		return false
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Retriable || ke == kerr.ConcurrentTransactions || ke == kerr.UnknownServerError
	}
	return true
}

// initProducerID loads a transactional client's producer id and epoch
// (InitProducerID, which fences earlier producers of the same transactional
// id and aborts their ongoing transaction), retrying retriable errors up
// to RetryTimeout.
func initProducerID[T any](ctx context.Context, cfg *SinkConfig[T], cl *kgo.Client, txnID string) (int64, int16, error) {
	bo := newSinkBackoff(cfg.RetryBackoff, cfg.RetryTimeout)
	for {
		dctx, cancel := context.WithDeadline(ctx, bo.deadline)
		id, epoch, err := cl.ProducerID(dctx)
		cancel()
		if err == nil {
			return id, epoch, nil
		}
		if errors.Is(err, kerr.InvalidTransactionTimeout) {
			return 0, 0, fmt.Errorf("init producer id for transactional id %s: %w: %s (%v) exceeds the broker's transaction.max.timeout.ms; raise that on the broker or lower %s",
				txnID, err, KeySinkTransactionTimeout, cfg.TransactionTimeout, KeySinkTransactionTimeout)
		}
		if !sinkRetriable(err) {
			return 0, 0, fmt.Errorf("init producer id for transactional id %s: %w", txnID, err)
		}
		if !bo.wait(ctx) {
			return 0, 0, fmt.Errorf("init producer id for transactional id %s: still failing after %d attempts within %s (%v): %w",
				txnID, bo.attempts, KeySinkRetryTimeout, cfg.RetryTimeout, err)
		}
	}
}

// transaction.version levels.
const (
	txnV1 = 1
	txnV2 = 2
)

// detectTxnVersion tells which transaction protocol a franz-go producer runs on
// this cluster, as franz-go decides it (Client.supportsKIP890p2): version 2
// when the cluster finalized the feature transaction.version >= 2 and the
// client's MaxVersions allow Produce v12, EndTxn v5 and TxnOffsetCommit v5.
func detectTxnVersion(ctx context.Context, cl *kgo.Client) (int16, error) {
	if mv, _ := cl.OptValue(kgo.MaxVersions).(*kversion.Versions); mv != nil {
		for _, kv := range []struct{ key, min int16 }{
			{int16(kmsg.Produce), 12}, {int16(kmsg.EndTxn), 5}, {int16(kmsg.TxnOffsetCommit), 5},
		} {
			if v, ok := mv.LookupMaxKeyVersion(kv.key); !ok || v < kv.min {
				return txnV1, nil
			}
		}
	}
	resp, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctx, cl)
	if err != nil {
		return 0, fmt.Errorf("api versions: %w", err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return 0, fmt.Errorf("api versions: %w", err)
	}
	for _, f := range resp.FinalizedFeatures {
		if f.Name == "transaction.version" && f.MaxVersionLevel >= txnV2 {
			return txnV2, nil
		}
	}
	return txnV1, nil
}

// endTxnV4 caps EndTxn at v4, the last version without KIP-890's epoch
// bump, for transactions written under transaction.version 1.
func endTxnV4(base *kversion.Versions) *kversion.Versions {
	v := kversion.Stable()
	if base != nil {
		v = new(kversion.Versions)
		base.EachMaxKeyVersion(v.SetMaxKeyVersion)
	}
	if max, ok := v.LookupMaxKeyVersion(int16(kmsg.EndTxn)); !ok || max > 4 {
		v.SetMaxKeyVersion(int16(kmsg.EndTxn), 4)
	}
	return v
}
