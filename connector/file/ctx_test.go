package file

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
)

// TestCancelledContext: with its context done, Commit renames nothing and
// says the transaction is committed on restore; PreCommit does not fsync;
// Abort still removes the file. A later Commit with a live context (the
// restore) commits the transaction.
func TestCancelledContext(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := newCommitter(t, dir, "sink", 0, "r1")
	done, cancel := context.WithCancel(context.Background())
	cancel()

	txn := writeTxn(t, c, 1, 2)
	if err := c.Commit(done, txn); !errors.Is(err, context.Canceled) {
		t.Fatalf("Commit with a cancelled context: %v, want context.Canceled", err)
	}
	if got := ls(t, dir); !slices.Equal(got, []string{txn.Temp}) {
		t.Fatalf("after the cancelled commit: %v, want only the pre-committed %s", got, txn.Temp)
	}
	if err := c.RecoverAndCommit(bg, txn); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(dir, txn.Final)); got != "1\n2\n" {
		t.Fatalf("committed %q", got)
	}

	open, err := c.BeginTransaction(bg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Write(open, 3); err != nil {
		t.Fatal(err)
	}
	if err := c.PreCommit(done, open); !errors.Is(err, context.Canceled) {
		t.Fatalf("PreCommit with a cancelled context: %v, want context.Canceled", err)
	}
	if err := c.Abort(done, open); err != nil {
		t.Fatalf("Abort with a cancelled context: %v", err)
	}
	if got := ls(t, dir); !slices.Equal(got, []string{txn.Final}) {
		t.Fatalf("after the abort: %v, want only %s", got, txn.Final)
	}
	if _, err := c.BeginTransaction(done); !errors.Is(err, context.Canceled) {
		t.Fatalf("BeginTransaction with a cancelled context: %v, want context.Canceled", err)
	}
	if err := c.CleanUp(done, nil); err != nil {
		t.Fatalf("CleanUp with nothing to remove: %v", err)
	}
}
