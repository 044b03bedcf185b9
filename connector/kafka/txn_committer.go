package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/sluicehq/sluice"
)

// The exactly-once committer (docs/design.md §6), Flink's KafkaSink with a pool of
// transactional ids, on the engine's two-phase-commit framework:
//
//   - BeginTransaction takes a free slot of the subtask's pool, creates a
//     client with the slot's transactional id, initialises the producer id
//     (fencing whatever an earlier attempt left under that id) and begins.
//   - Write produces asynchronously; the first error fails the next Write
//     or the pre-commit.
//   - PreCommit flushes, records {id, producer id, epoch, version, has
//     data} in the handle the framework stores in the checkpoint, and
//     closes the client: franz-go's Close does not end the transaction, so
//     it stays open on the broker, and no client outlives its transaction
//     (the framework has no close hook for committers).
//   - Commit and RecoverAndCommit send a raw EndTxn with the stored
//     producer id and epoch from a plain client, retried until it answers
//     (franz-go's EndTransaction refuses to retry a commit whose outcome is
//     unknown, which is wrong once the checkpoint is complete; committing
//     again with the same epoch answers OK), within RetryTimeout and the
//     attempt's context. A fenced or aborted transaction is a loud
//     data-loss error.
//   - CleanUp (subtask 0, on every start) fences and aborts every ongoing
//     transaction of the operator that is not among the restored ones, also
//     of subtasks that no longer exist after a rescale.
//
// Slot reuse. Initialising a producer id on a transactional id bumps its
// epoch, after which a commit with the stored epoch is fenced. So a slot
// must not be reused while a checkpoint that may be restored still names
// its transaction: not while it is pre-committed, and after its commit not
// until a checkpoint taken after the commit has completed. The committer
// sees that as the commit of a transaction pre-committed after the slot's
// commit ("cooling" below). After a restore, the slots named by the
// restored checkpoint cool the same way.

// Slot states.
const (
	slotFree    = iota
	slotOpen    // the open transaction writes under it
	slotPending // pre-committed, waiting for its checkpoint
	slotCooling // committed, possibly still named by the latest checkpoint
)

type slot struct {
	state int
	// seq is the pre-commit sequence number of the pending transaction;
	// for a cooling slot, the newest sequence number when it was
	// committed: a commit of a later one frees it.
	seq uint64
}

type txnCommitter[T any] struct {
	cfg  *SinkConfig[T]
	log  *slog.Logger
	ids  txnIDs
	sub  int
	par  int
	w    sinkWriter[T]
	pool []slot
	seq  uint64 // pre-commits so far

	version int16              // transaction.version of the cluster, 0 until known
	maxV    *kversion.Versions // the user's MaxVersions, if any

	// superseded are the complete checkpoints newer than the restored
	// one, skipped as corrupt (RestoredState.Superseded): the restored
	// transactions may have been committed under them and their ids
	// reused since.
	superseded []int64
	// gone are the transactional ids of restored transactions that could
	// not be committed (tolerated: superseded or accepted as lost): the id
	// has moved on, and CleanUp aborts whatever is open under it now.
	gone map[string]bool
	octx *sluice.OperatorContext
}

var _ sluice.TwoPhaseCommitter[int, *Txn] = (*txnCommitter[int])(nil)

func newTxnCommitter[T any](cfg SinkConfig[T], oc *sluice.OperatorContext) (*txnCommitter[T], error) {
	log := cfg.Logger
	if log == nil {
		log = oc.Logger
	}
	if log == nil {
		log = slog.Default()
	}
	c := &txnCommitter[T]{
		cfg:  &cfg,
		log:  log.With("sink", "kafka", "delivery", DeliveryExactlyOnce),
		ids:  newTxnIDs(cfg.TransactionalIDPrefix, oc.UID, oc.OwnerEpoch),
		sub:  oc.Subtask,
		par:  oc.Parallelism,
		pool: make([]slot, cfg.PoolSize),
		octx: oc,
		w:    sinkWriter[T]{ser: cfg.Serializer, topic: cfg.Topic, sel: cfg.TopicSelector, pool: newSinkRecordPool()},
	}
	// The user's MaxVersions caps the commits of transactions written
	// under transaction.version 1 too (restored ones are committed before
	// any transaction begins). A client connects only when used.
	probe, err := kgo.NewClient(sinkClientOpts(c.cfg, c.log)...)
	if err != nil {
		return nil, fmt.Errorf("kafka sink: client options: %w", err)
	}
	c.maxV, _ = probe.OptValue(kgo.MaxVersions).(*kversion.Versions)
	probe.Close()
	restored, err := sluice.RestoredTransactions(oc, TxnCodec)
	if err != nil {
		return nil, fmt.Errorf("kafka sink: %w", err)
	}
	if oc.Restored != nil {
		c.superseded = oc.Restored.Superseded
	}
	{
		for _, t := range restored {
			sub, s, _, ok := c.ids.parse(t.TransactionalID)
			if ok && sub == c.sub && s < len(c.pool) && t.TransactionalID == c.ids.id(sub, s) {
				// Subtask 0 commits it in its Open; the restored
				// checkpoint names it until a new one completes.
				// Only an id of this instance's own epoch (an
				// earlier attempt's) is one BeginTransaction would
				// initialise again; those of older epochs are never
				// reused.
				c.pool[s] = slot{state: slotCooling}
			}
		}
	}
	return c, nil
}

// BeginTransaction implements sluice.TwoPhaseCommitter.
func (c *txnCommitter[T]) BeginTransaction(ctx context.Context) (*Txn, error) {
	s := -1
	for i := range c.pool {
		if c.pool[i].state == slotFree {
			s = i
			break
		}
	}
	if s < 0 {
		return nil, fmt.Errorf("kafka sink: all %d transactional ids of subtask %d are busy with transactions waiting for checkpoints to complete (or named by the latest one); raise %s or find out why checkpoints do not complete",
			len(c.pool), c.sub, KeySinkPoolSize)
	}
	id := c.ids.id(c.sub, s)
	// Initialising the id fences whoever holds it: a fenced instance of
	// this job (a zombie) must not take it back from the one that took over
	// (docs/design.md §9).
	if err := c.octx.CheckFenced(ctx, "initialise transactional id "+id); err != nil {
		return nil, fmt.Errorf("kafka sink: %w", err)
	}
	cl, err := kgo.NewClient(sinkClientOpts(c.cfg, c.log, kgo.TransactionalID(id), kgo.TransactionTimeout(c.cfg.TransactionTimeout))...)
	if err != nil {
		return nil, fmt.Errorf("kafka sink: client for transactional id %s: %w", id, err)
	}
	pid, epoch, err := initProducerID(ctx, c.cfg, cl, id)
	if err == nil && c.version == 0 {
		c.version, err = detectTxnVersion(ctx, cl)
	}
	if err == nil {
		err = cl.BeginTransaction()
	}
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("kafka sink: begin transaction: %w", err)
	}
	c.pool[s] = slot{state: slotOpen}
	return &Txn{TransactionalID: id, ProducerID: pid, ProducerEpoch: epoch, TxnVersion: c.version, live: newLiveTxn(cl, s, c.w.pool, c.cfg.RetryTimeout)}, nil
}

// Write implements sluice.TwoPhaseCommitter.
func (c *txnCommitter[T]) Write(t *Txn, v T) error {
	if err := c.w.write(t.live, v); err != nil {
		return fmt.Errorf("kafka sink: transaction %s: %w", t.TransactionalID, asFenced(t.TransactionalID, err))
	}
	return nil
}

// PreCommit implements sluice.TwoPhaseCommitter: flush, then close the
// client and leave the transaction open on the broker.
func (c *txnCommitter[T]) PreCommit(ctx context.Context, t *Txn) error {
	l := t.live
	if err := flushTxn(ctx, l); err != nil {
		return fmt.Errorf("kafka sink: pre-commit transaction %s: %w", t, asFenced(t.TransactionalID, err))
	}
	// The stored id and epoch must be the ones the records were written
	// with. franz-go reloads them only after errors that also fail
	// records, so this is a guard, not an expected path.
	if pid, epoch, err := l.cl.ProducerID(ctx); err != nil || pid != t.ProducerID || epoch != t.ProducerEpoch {
		return fmt.Errorf("kafka sink: pre-commit transaction %s: the producer id or epoch changed during the transaction (now %d/%d, err %v); it cannot be committed safely",
			t, pid, epoch, err)
	}
	t.HasData = l.written.Load() > 0
	c.octx.CountBytesOut(l.bytes)
	l.bytes = 0
	l.close()
	c.seq++
	c.pool[l.slot] = slot{state: slotPending, seq: c.seq}
	return nil
}

// flushTxn waits for every record of l. It is bounded by l's watchdog
// (no acknowledgement for RetryTimeout) and by ctx, not by a fixed time: a
// large transaction may take long to flush while it makes progress.
func flushTxn(ctx context.Context, l *liveTxn) error {
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(l.ctx, cancel)
	defer stop()
	if err := l.cl.Flush(fctx); err != nil {
		if ferr := l.firstErr(); ferr != nil {
			return fmt.Errorf("flush: %w", ferr)
		}
		return fmt.Errorf("flush: %w", err)
	}
	if err := l.firstErr(); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	return nil
}

// Commit implements sluice.TwoPhaseCommitter.
func (c *txnCommitter[T]) Commit(ctx context.Context, t *Txn) error {
	_, s, _, ok := c.ids.parse(t.TransactionalID)
	ok = ok && t.TransactionalID == c.ids.id(c.sub, s)
	if !t.HasData {
		// Never started on the broker: nothing to commit, and nothing a
		// restore would commit either.
		if ok && s < len(c.pool) {
			c.pool[s] = slot{state: slotFree}
		}
		return nil
	}
	err := c.endTxn(ctx, t)
	if errors.Is(err, ErrDataLoss) {
		c.log.Error("DATA LOSS: pre-committed transaction could not be committed", "txn", t.String(), "err", err)
	}
	var seq uint64
	if ok && s < len(c.pool) {
		seq = c.pool[s].seq
		c.pool[s] = slot{state: slotCooling, seq: c.seq}
	}
	if err != nil {
		return err
	}
	// Every checkpoint from the one that holds t on was taken after the
	// commits of the slots cooling since before t's pre-commit.
	for i := range c.pool {
		if c.pool[i].state == slotCooling && c.pool[i].seq < seq {
			c.pool[i] = slot{state: slotFree}
		}
	}
	return nil
}

// RecoverAndCommit implements sluice.TwoPhaseCommitter.
//
// A restored transaction that can no longer be committed is data loss and
// fails the job terminally, with two exceptions (ADR 0003). When the
// restore fell back past newer complete checkpoints, the transaction was
// committed under one of them, and its id reused, unless it timed out: the
// job cannot tell, so it logs that and goes on. With
// AcceptLostTransactionsOnRestore the user has accepted the loss. Either
// way CleanUp then aborts whatever is open under the id now.
func (c *txnCommitter[T]) RecoverAndCommit(ctx context.Context, t *Txn) error {
	if !t.HasData || t.TransactionalID == "" {
		// Empty, or the flush of an earlier at-least-once run.
		return nil
	}
	err := c.endTxn(ctx, t)
	var dl *DataLossError
	if errors.As(err, &dl) {
		switch {
		case len(c.superseded) > 0:
			c.log.Warn("restoring an older checkpoint because newer ones are corrupt: a transaction it names can no longer be committed; "+
				"it was committed under a newer checkpoint and its id reused (or, if the job was down longer than the transaction timeout, aborted); going on",
				"txn", t.String(), "newer_checkpoints", c.superseded, "err", dl.Err)
			c.forget(t.TransactionalID)
			return nil
		case c.cfg.AcceptLostTransactionsOnRestore:
			c.log.Error("DATA LOSS accepted: going on after the loss of a restored transaction because AcceptLostTransactionsOnRestore is set",
				"txn", t.String(), "err", dl.Err)
			c.forget(t.TransactionalID)
			return nil
		}
	}
	if dl != nil {
		c.log.Error("DATA LOSS: restored pre-committed transaction could not be committed", "txn", t.String(), "err", err)
	}
	if err == nil {
		c.log.Debug("committed restored transaction", "txn", t.String())
	}
	return err
}

// forget marks a restored transaction's id as moved on: CleanUp aborts
// what is open under it.
func (c *txnCommitter[T]) forget(id string) {
	if c.gone == nil {
		c.gone = make(map[string]bool)
	}
	c.gone[id] = true
}

// endTxn commits t with a raw EndTxn from a plain client (see commitTxn).
func (c *txnCommitter[T]) endTxn(ctx context.Context, t *Txn) error {
	return commitStored(ctx, c.cfg, c.log, c.maxV, t)
}

// commitStored commits a stored transaction from a new plain client,
// speaking the transaction protocol t was written with. maxV is the
// user's MaxVersions, if any.
func commitStored[T any](ctx context.Context, cfg *SinkConfig[T], log *slog.Logger, maxV *kversion.Versions, t *Txn) error {
	return endStored(ctx, cfg, log, maxV, t, true)
}

// endStored commits (or aborts) a stored transaction from a new plain
// client, speaking the transaction protocol t was written with.
func endStored[T any](ctx context.Context, cfg *SinkConfig[T], log *slog.Logger, maxV *kversion.Versions, t *Txn, commit bool) error {
	var extra []kgo.Opt
	if t.TxnVersion < txnV2 {
		extra = append(extra, kgo.MaxVersions(endTxnV4(maxV)))
	}
	cl, err := kgo.NewClient(sinkClientOpts(cfg, log, extra...)...)
	if err != nil {
		return fmt.Errorf("kafka sink: end transaction %s: client: %w", t, err)
	}
	defer cl.Close()
	if commit {
		return commitTxn(ctx, cfg, log, cl, t)
	}
	return abortTxn(ctx, cfg, log, cl, t)
}

// Abort implements sluice.TwoPhaseCommitter: abort the open transaction
// (the framework calls it when a task closes with a transaction open), or
// a pre-committed one by its stored producer id and epoch (a fenced
// instance's that no checkpoint names).
func (c *txnCommitter[T]) Abort(ctx context.Context, t *Txn) error {
	l := t.live
	if l == nil || l.closed {
		// Pre-committed (or restored): only its stored producer id and
		// epoch can end it.
		if !t.HasData || t.TransactionalID == "" {
			return nil
		}
		actx, cancel := context.WithTimeout(ctx, c.cfg.RetryTimeout)
		defer cancel()
		if err := endStored(actx, c.cfg, c.log, c.maxV, t, false); err != nil {
			c.log.Warn("abort of pre-committed transaction failed; it is aborted by the transaction timeout", "txn", t.String(), "err", err)
			return err
		}
		return nil
	}
	defer l.close()
	c.octx.CountBytesOut(l.bytes) // written, if aborted
	l.bytes = 0
	if l.slot >= 0 && l.slot < len(c.pool) {
		c.pool[l.slot] = slot{state: slotFree}
	}
	actx, cancel := context.WithTimeout(ctx, c.cfg.RetryTimeout)
	defer cancel()
	err := l.cl.AbortBufferedRecords(actx)
	if err == nil {
		err = l.cl.EndTransaction(actx, kgo.TryAbort)
	}
	if err != nil {
		// Not fatal: the next start's clean-up (or the transaction
		// timeout) aborts it.
		c.log.Warn("abort of open transaction failed; it is aborted on the next start or by the transaction timeout", "txn", t.String(), "err", err)
		return fmt.Errorf("kafka sink: abort transaction %s: %w", t, err)
	}
	return nil
}

// CleanUp implements sluice.TwoPhaseCommitter: fence and abort every
// ongoing transaction of this operator that is not among recovered.
func (c *txnCommitter[T]) CleanUp(ctx context.Context, recovered []*Txn) error {
	keep := make(map[string]bool, len(recovered))
	for _, t := range recovered {
		keep[t.TransactionalID] = !c.gone[t.TransactionalID]
	}
	cl, err := kgo.NewClient(sinkClientOpts(c.cfg, c.log)...)
	if err != nil {
		return fmt.Errorf("kafka sink: clean-up: client: %w", err)
	}
	defer cl.Close()
	var ids, newer []string
	listed, err := listOngoing(ctx, c.cfg, kadm.NewClient(cl))
	switch {
	case err == nil:
		for _, lt := range listed {
			if lt.State != "Ongoing" { // brokers before 3.0 ignore the filter
				continue
			}
			_, _, epoch, ok := c.ids.parse(lt.TxnID)
			switch {
			case !ok || keep[lt.TxnID]:
			case epoch > c.ids.epoch:
				// An instance that took over from this one: never
				// touch its transactions (this one is a zombie that
				// has not noticed yet, docs/design.md §9).
				newer = append(newer, lt.TxnID)
			default:
				ids = append(ids, lt.TxnID)
			}
		}
	case !sinkRetriable(err) && !errors.Is(err, context.Canceled):
		// Cannot discover (a broker before Kafka 3.0, or no DESCRIBE
		// permission on the cluster): fence the pool of the current
		// parallelism in the epochs that can hold lingering
		// transactions; ids of removed subtasks stay until their timeout.
		epochs := c.cleanUpEpochs(recovered)
		c.log.Warn("cannot list transactions; aborting the current pool's transactional ids only, in the ownership epochs since the restored checkpoint's "+
			"(those of subtasks removed by a rescale, and of older epochs, stay open until the transaction timeout)", "epochs", epochs, "err", err)
		for _, e := range epochs {
			for sub := range c.par {
				for s := range c.cfg.PoolSize {
					if id := c.ids.idAt(sub, s, e); !keep[id] {
						ids = append(ids, id)
					}
				}
			}
		}
	default:
		return fmt.Errorf("kafka sink: clean-up: list ongoing transactions: %w", err)
	}
	if len(newer) > 0 {
		c.log.Warn("left alone ongoing transactions of a newer ownership epoch: another instance of this job has taken over its checkpoints",
			"epoch", c.ids.epoch, "ids", strings.Join(newer, ","))
	}
	if len(ids) == 0 {
		return nil
	}
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = fenceTxnID(ctx, c.cfg, c.log, id)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("kafka sink: clean-up: %w", err)
	}
	c.log.Info("aborted lingering transactions", "count", len(ids), "ids", strings.Join(ids, ","))
	return nil
}

// maxCleanUpEpochs bounds how many ownership epochs the clean-up fences
// when it cannot list transactions: each costs parallelism × pool size
// InitProducerID requests.
const maxCleanUpEpochs = 16

// cleanUpEpochs returns the ownership epochs whose ids may hold lingering
// transactions, for a clean-up that cannot list them: from the oldest
// epoch the restored checkpoint names (the instance that wrote it aborted
// what was older when it started) up to this instance's, at most
// maxCleanUpEpochs of them, newest first; from the previous epoch when
// nothing was restored. Epoch 0 stands for the ids without an epoch. Never
// an epoch above this instance's: those belong to an instance that took
// over from it.
func (c *txnCommitter[T]) cleanUpEpochs(recovered []*Txn) []int64 {
	own := c.ids.epoch
	lo := own - 1
	for _, t := range recovered {
		if _, _, e, ok := c.ids.parse(t.TransactionalID); ok && e < lo {
			lo = e
		}
	}
	lo = max(lo, own-maxCleanUpEpochs+1, 0)
	var epochs []int64
	for e := own; e >= lo; e-- {
		epochs = append(epochs, e)
	}
	return epochs
}

// listOngoing lists ongoing transactions, retrying retriable errors.
func listOngoing[T any](ctx context.Context, cfg *SinkConfig[T], adm *kadm.Client) (kadm.ListedTransactions, error) {
	bo := newSinkBackoff(cfg.RetryBackoff, cfg.RetryTimeout)
	for {
		listed, err := adm.ListTransactions(ctx, nil, []string{"Ongoing"})
		if err == nil {
			return listed, nil
		}
		if !sinkRetriable(err) || !bo.wait(ctx) {
			return nil, err
		}
	}
}

// fence aborts whatever transaction id has open by initialising a producer
// id for it (InitProducerID aborts the ongoing transaction and bumps the
// epoch), then closes the client.
func fenceTxnID[T any](ctx context.Context, cfg *SinkConfig[T], log *slog.Logger, id string) error {
	cl, err := kgo.NewClient(sinkClientOpts(cfg, log, kgo.TransactionalID(id), kgo.TransactionTimeout(cfg.TransactionTimeout))...)
	if err != nil {
		return fmt.Errorf("fence %s: %w", id, err)
	}
	defer cl.Close()
	if _, _, err := initProducerID(ctx, cfg, cl, id); err != nil {
		return fmt.Errorf("fence %s: %w", id, err)
	}
	log.Debug("fenced and aborted lingering transaction", "txn", id)
	return nil
}
