package kafka

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

// TestSinkTxnWriteAfterFencing: a producer whose transactional id another
// producer initialised (a zombie, KIP-98) fails its writes with a
// FencedError that names the id and wraps the broker's answer.
func TestSinkTxnWriteAfterFencing(t *testing.T) {
	t.Parallel()
	_, addrs := sinkBroker(t)
	sinkCreateTopic(t, addrs, "out", 1)
	cfg := sinkStringConfig(addrs, "out", "zombie")
	c := sinkNewCommitter(t, cfg, "sink", 0, 1)
	ctx := context.Background()
	txn, err := c.BeginTransaction(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Write(txn, "k=before"); err != nil {
		t.Fatal(err)
	}
	if err := flushTxn(ctx, txn.live); err != nil {
		t.Fatal(err)
	}
	// The new instance initialises the same id.
	if err := fenceTxnID(ctx, c.cfg, c.log, txn.TransactionalID); err != nil {
		t.Fatal(err)
	}
	err = c.Write(txn, "k=after")
	if err == nil {
		err = c.PreCommit(ctx, txn)
	}
	var fe *FencedError
	if !errors.As(err, &fe) || !errors.Is(err, ErrProducerFenced) {
		t.Fatalf("write after fencing: %v, want a FencedError", err)
	}
	if !errors.Is(err, kerr.ProducerFenced) && !errors.Is(err, kerr.InvalidProducerEpoch) {
		t.Errorf("error does not wrap the broker's answer: %v", err)
	}
	if !strings.Contains(err.Error(), txn.TransactionalID) || !strings.Contains(err.Error(), KeySinkTransactionalIDPrefix) {
		t.Errorf("error %q does not name the id and the prefix key", err)
	}
	if got := sinkReadCommitted(t, addrs, "out", 1); len(got) != 0 {
		t.Errorf("fenced transaction visible: %q", sinkValues(got))
	}
}

// TestSinkBeginRefusedWhenJobFenced: once the job lost its checkpoints to
// another instance, the sink does not initialise a transactional id (which
// would fence the new instance's transaction).
func TestSinkBeginRefusedWhenJobFenced(t *testing.T) {
	t.Parallel()
	_, addrs := sinkBroker(t)
	sinkCreateTopic(t, addrs, "out", 1)
	cfg := sinkStringConfig(addrs, "out", "refused")
	octx := sinkOpCtx("sink", 0, 1, cfg.Logger)
	errFenced := errors.New("fenced: test")
	var ops []string
	octx.Fence = func(_ context.Context, op string) error { ops = append(ops, op); return errFenced }
	c, err := newTxnCommitter(cfg, octx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.BeginTransaction(context.Background()); !errors.Is(err, errFenced) {
		t.Fatalf("begin when fenced: %v, want the fenced error", err)
	}
	if len(ops) != 1 || !strings.Contains(ops[0], "refused-sink-0-0") {
		t.Fatalf("fence checked for %q, want one check naming the transactional id", ops)
	}
	if ongoing := sinkOngoing(t, addrs); len(ongoing) != 0 {
		t.Fatalf("ongoing transactions after a refused begin: %v", ongoing)
	}
}

func TestAsFencedLeavesOtherErrors(t *testing.T) {
	other := errors.New("boom")
	if got := asFenced("id", other); got != other {
		t.Fatalf("asFenced changed %v into %v", other, got)
	}
	if asFenced("id", nil) != nil {
		t.Fatal("asFenced(nil) != nil")
	}
}
