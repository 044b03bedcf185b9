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

	"github.com/sluicehq/sluice/restart"
)

// ErrDataLoss is wrapped by every error that reports records lost by the
// sink: a pre-committed transaction that can no longer be committed.
var ErrDataLoss = errors.New("kafka sink: DATA LOSS")

// DataLossError reports a pre-committed transaction whose commit the broker
// refused because the transaction no longer exists in that form: it was
// aborted by the transaction timeout, fenced by another producer with the
// same transactional id, or lost by the broker. Its records are lost, and
// no retry or restart can commit it, so it is returned marked
// restart.Unrecoverable: the job fails at once. errors.Is(err, ErrDataLoss)
// holds.
type DataLossError struct {
	// Txn is the transaction that could not be committed.
	Txn Txn
	// Err is the broker's answer (PRODUCER_FENCED, INVALID_PRODUCER_EPOCH,
	// INVALID_TXN_STATE, INVALID_PRODUCER_ID_MAPPING, ...).
	Err error
}

// Error says what was lost, the possible causes and what to do.
func (e *DataLossError) Error() string {
	return fmt.Sprintf("kafka sink: DATA LOSS: transaction %s could not be committed: %v; "+
		"the records it held are lost and no restart can commit it. Possible causes: "+
		"the transaction timeout passed before the commit (%s); "+
		"another producer with the same transactional id fenced it (is %s unique to this job?); "+
		"the broker lost an open transaction (the embedded broker does when it crashes; Apache Kafka does not) "+
		"or, after an embedded broker crashed, the transaction had been committed before the crash (kfake forgets that and refuses the repeated commit). "+
		"To go on from this checkpoint, accept the loss with AcceptLostTransactionsOnRestore "+
		"(sluice run count --accept-lost-transactions), or start over from an empty checkpoint directory and output topic; "+
		"see docs/operations.md",
		&e.Txn, e.Err, KeySinkTransactionTimeout, KeySinkTransactionalIDPrefix)
}

// Unwrap returns ErrDataLoss and the broker's error.
func (e *DataLossError) Unwrap() []error { return []error{ErrDataLoss, e.Err} }

// lostTxn reports whether a definitive EndTxn answer means the transaction
// is gone.
func lostTxn(err error) bool {
	for _, e := range []*kerr.Error{
		kerr.ProducerFenced, kerr.InvalidProducerEpoch, kerr.InvalidTxnState,
		kerr.InvalidProducerIDMapping, kerr.UnknownProducerID, kerr.TransactionAbortable,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// commitAttemptTimeout bounds one EndTxn attempt, so that a reply lost
// with a connection that stays open does not use up the whole budget.
const commitAttemptTimeout = 15 * time.Second

// commitTxn commits t with a raw EndTxn request (Commit: true) carrying its
// stored producer id and epoch, sent through cl to the transaction
// coordinator. It retries network errors, retriable codes and
// CONCURRENT_TRANSACTIONS with backoff for up to RetryTimeout: the
// checkpoint is complete, so the commit must happen, and a commit repeated
// with the same epoch is answered OK. A definitive refusal is a
// DataLossError marked restart.Unrecoverable. Every attempt and every wait
// observes ctx: once it is done (the attempt was cancelled) the commit
// returns an error wrapping ctx.Err(), and the transaction stays pending for
// the restore to commit.
func commitTxn[T any](ctx context.Context, cfg *SinkConfig[T], log *slog.Logger, cl *kgo.Client, t *Txn) error {
	return endTxnRaw(ctx, cfg, log, cl, t, true)
}

// abortTxn aborts the pre-committed t like commitTxn commits it. A
// definitive refusal means the transaction already ended (its producer
// was fenced, or it timed out): nothing is left to abort.
func abortTxn[T any](ctx context.Context, cfg *SinkConfig[T], log *slog.Logger, cl *kgo.Client, t *Txn) error {
	return endTxnRaw(ctx, cfg, log, cl, t, false)
}

func endTxnRaw[T any](ctx context.Context, cfg *SinkConfig[T], log *slog.Logger, cl *kgo.Client, t *Txn, commit bool) error {
	verb, done, after := "commit", "committed", "it stays pending and is committed on restore"
	if !commit {
		verb, done, after = "abort", "aborted", "it stays open until the transaction timeout"
	}
	bo := newSinkBackoff(cfg.RetryBackoff, cfg.RetryTimeout)
	for {
		req := kmsg.NewPtrEndTxnRequest()
		req.TransactionalID = t.TransactionalID
		req.ProducerID = t.ProducerID
		req.ProducerEpoch = t.ProducerEpoch
		req.Commit = commit
		actx, cancel := context.WithTimeout(ctx, min(commitAttemptTimeout, cfg.RetryTimeout))
		resp, err := req.RequestWith(actx, cl)
		cancel()
		if err == nil {
			err = kerr.ErrorForCode(resp.ErrorCode)
		}
		switch {
		case err == nil:
			if bo.attempts > 0 {
				log.Info(done+" transaction after retries", "txn", t.String(), "attempts", bo.attempts+1)
			}
			return nil
		case lostTxn(err) && !commit:
			log.Debug("transaction to abort had already ended", "txn", t.String(), "err", err)
			return nil
		case lostTxn(err):
			dl := &DataLossError{Txn: *t, Err: err}
			dl.Txn.live = nil
			// Logged at ERROR by the caller, unless it is tolerated
			// (RecoverAndCommit after a fallback).
			return restart.Unrecoverable(dl)
		case ctx.Err() != nil:
			return fmt.Errorf("kafka sink: %s transaction %s: %w (%s)", verb, t, ctx.Err(), after)
		case !sinkRetriable(err):
			if commit {
				after += " if that is fixed before the transaction timeout"
			}
			return fmt.Errorf("kafka sink: %s transaction %s: %w (non-retriable; %s)", verb, t, err, after)
		}
		log.Debug(verb+" failed, retrying", "txn", t.String(), "err", err)
		if !bo.wait(ctx) {
			if ctx.Err() != nil {
				return fmt.Errorf("kafka sink: %s transaction %s: %w after %d attempts (last: %v; %s)", verb, t, ctx.Err(), bo.attempts, err, after)
			}
			return fmt.Errorf("kafka sink: %s transaction %s: still failing after %d attempts within %s (%v): %w (%s)",
				verb, t, bo.attempts, KeySinkRetryTimeout, cfg.RetryTimeout, err, after)
		}
	}
}
