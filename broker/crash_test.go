package broker

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

// TestCrashForgetsCommittedTxn: after a crash (kill -9) and a restart,
// kfake refuses to commit again, with the same producer id and epoch, a
// transaction it had committed before the crash (INVALID_TXN_STATE), where
// Kafka, and kfake after a clean close, answer OK. So a job that restores a
// checkpoint whose transactions were committed before a crash of the
// embedded broker sees the same refusal as for a lost transaction
// (docs/broker.md, "Commits repeated after a crash").
func TestCrashForgetsCommittedTxn(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a subprocess")
	}
	dir := t.TempDir()
	ctx := ctxT(t)
	kill, addr := startCrashHelper(t, ctx, dir)
	topic, txnID := uniqueName("txn"), uniqueName("txn-id")
	cl := txnProducer(t, []string{addr}, topic, txnID)
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	produceInTxn(t, cl, kvs("committed", 2))
	pid, epoch, err := cl.ProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cl.Close()
	admin := newClient(t, []string{addr})
	for range 2 { // a repeated commit is OK before the crash
		if err := endTxnRaw(ctx, admin, txnID, pid, epoch, true); err != nil {
			t.Fatalf("commit before the crash: %v", err)
		}
	}
	admin.Close()
	kill()

	b := startDir(t, dir)
	err = endTxnRaw(ctx, newClient(t, b.Addrs()), txnID, pid, epoch, true)
	if !errors.Is(err, kerr.InvalidTxnState) {
		t.Errorf("repeated commit after the crash = %v; docs/broker.md says INVALID_TXN_STATE (did kfake change?)", err)
	}
}
