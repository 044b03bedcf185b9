package kafka

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// retryingHandler signals once the commit loop logged a failed attempt
// and is about to wait before the next one.
type retryingHandler struct{ retrying chan struct{} }

func (h *retryingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *retryingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "commit failed, retrying" {
		select {
		case h.retrying <- struct{}{}:
		default:
		}
	}
	return nil
}
func (h *retryingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *retryingHandler) WithGroup(string) slog.Handler      { return h }

// TestSinkCommitObservesContext: a commit that keeps retrying (the broker
// answers every EndTxn with UNKNOWN_SERVER_ERROR, which the sink retries
// and franz-go does not, and the retry budget is an hour) returns as soon
// as its context is cancelled, with an error that
// wraps context.Canceled and is not data loss; the transaction stays
// committable on restore. Before, a cancel during the backoff returned a
// retry-timeout error that did not say it was cancelled.
func TestSinkCommitObservesContext(t *testing.T) {
	t.Parallel()
	const topic = "out"
	b, addrs := sinkBroker(t)
	sinkCreateTopic(t, addrs, topic, 1)
	cfg := sinkStringConfig(addrs, topic, "cancel")
	cfg.RetryTimeout = time.Hour
	cfg.RetryBackoff = 30 * time.Minute // the loop waits here when cancelled
	h := &retryingHandler{retrying: make(chan struct{}, 1)}
	cfg.Logger = slog.New(h)
	c := sinkNewCommitter(t, cfg, "sink", 0, 1)
	txn := sinkWriteTxn(t, c, "k=v")
	fault := sinkCluster(b).Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.EndTxn}, Err: kerr.UnknownServerError, Count: -1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Commit(ctx, txn) }()
	bound := time.NewTimer(30 * time.Second) // declares a hang only
	defer bound.Stop()
	select {
	case <-h.retrying:
	case err := <-done:
		t.Fatalf("commit ended before retrying: %v", err)
	case <-bound.C:
		t.Fatal("the commit never retried")
	}
	cancel()
	var err error
	select {
	case err = <-done:
	case <-bound.C:
		t.Fatal("the commit did not return after its context was cancelled")
	}
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrDataLoss) || !strings.Contains(err.Error(), "committed on restore") {
		t.Fatalf("got %v, want an error wrapping context.Canceled (not data loss) saying the transaction is committed on restore", err)
	}
	fault.Remove()
	if err := c.RecoverAndCommit(context.Background(), txn); err != nil {
		t.Fatalf("the transaction is still committable: %v", err)
	}
	sinkCheckOnce(t, sinkValues(sinkReadCommitted(t, addrs, topic, 1)), []string{"v"})
}
