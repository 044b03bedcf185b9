package queries

import (
	"context"
	"strconv"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/codec"
)

// emitCommitted is Emit for Out.ExactlyOnce: a two-phase-commit sink whose
// transactions are the rows a subtask wrote between two barriers, kept in
// out (in memory: the tests restart attempts within one process) and
// moved to its rows when their checkpoint completes.
func emitCommitted[T any](out *Out, s sluice.Stream[T], name string, format func(T) string) {
	sluice.Sink(s, name, sluice.TwoPhaseCommitSink(sluice.TwoPhaseCommitConfig[T, string]{
		New: func(_ context.Context, oc *sluice.OperatorContext) (sluice.TwoPhaseCommitter[T, string], error) {
			return &committer[T]{out: out, format: format, prefix: oc.RunID + "/" + strconv.Itoa(oc.Subtask) + "/", run: oc.RunID}, nil
		},
		TxnCodec: codec.String,
	}))
}

// committer is one sink subtask's side of emitCommitted.
type committer[T any] struct {
	out         *Out
	format      func(T) string
	prefix, run string
	n           int
}

// txnRun returns the attempt (RunID) part of a transaction id.
func txnRun(txn string) string {
	for i := range len(txn) {
		if txn[i] == '/' {
			return txn[:i]
		}
	}
	return txn
}

func (c *committer[T]) BeginTransaction(context.Context) (string, error) {
	c.n++
	return c.prefix + strconv.Itoa(c.n), nil
}

func (c *committer[T]) Write(txn string, v T) error {
	r := c.format(v)
	c.out.mu.Lock()
	if c.out.pending == nil {
		c.out.pending = map[string][]string{}
	}
	c.out.pending[txn] = append(c.out.pending[txn], r)
	c.out.mu.Unlock()
	return nil
}

func (c *committer[T]) PreCommit(context.Context, string) error { return nil }

// Commit moves the transaction's rows to the output; a second commit finds
// none left.
func (c *committer[T]) Commit(_ context.Context, txn string) error {
	o := c.out
	o.mu.Lock()
	defer o.mu.Unlock()
	rows := o.pending[txn]
	delete(o.pending, txn)
	o.rows = append(o.rows, rows...)
	o.count.Add(int64(len(rows)))
	return nil
}

func (c *committer[T]) Abort(_ context.Context, txn string) error {
	c.out.mu.Lock()
	delete(c.out.pending, txn)
	c.out.mu.Unlock()
	return nil
}

func (c *committer[T]) RecoverAndCommit(ctx context.Context, txn string) error {
	return c.Commit(ctx, txn)
}

// CleanUp drops the transactions of earlier attempts that no checkpoint
// recorded: their rows are replayed.
func (c *committer[T]) CleanUp(_ context.Context, recovered []string) error {
	o := c.out
	o.mu.Lock()
	defer o.mu.Unlock()
	for txn := range o.pending {
		if txnRun(txn) != c.run {
			delete(o.pending, txn)
		}
	}
	return nil
}
