package kafka

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
)

// ErrProducerFenced is wrapped by every error that reports the sink's
// producer fenced by the broker: another producer initialised the same
// transactional id (KIP-98 zombie fencing), so this one can neither write
// nor commit under it again. It is wrapped by *FencedError.
var ErrProducerFenced = errors.New("kafka sink: producer fenced")

// FencedError reports a transactional producer that the broker fenced
// while it wrote: PRODUCER_FENCED or INVALID_PRODUCER_EPOCH. Either another
// instance of the job took over the same transactional ids (then the job
// finds it is fenced from its checkpoints too and stops for good,
// docs/design.md §9), or another job uses the same
// kafka.sink.transactional-id-prefix. errors.Is(err, ErrProducerFenced)
// holds.
type FencedError struct {
	// TransactionalID is the fenced producer's transactional id.
	TransactionalID string
	// Err is the broker's answer.
	Err error
}

// Error names the id, the answer and the likely causes.
func (e *FencedError) Error() string {
	return fmt.Sprintf("kafka sink: producer fenced: transactional id %s: %v: a newer producer initialised this id; "+
		"another instance of this job took over its transactions, or %s is not unique to this job",
		e.TransactionalID, e.Err, KeySinkTransactionalIDPrefix)
}

// Unwrap returns ErrProducerFenced and the broker's error.
func (e *FencedError) Unwrap() []error { return []error{ErrProducerFenced, e.Err} }

// producerFenced reports whether err is the broker's answer to a producer
// whose epoch is no longer the newest of its transactional id.
func producerFenced(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch)
}

// asFenced returns err as a *FencedError for id when the broker fenced the
// producer, and err unchanged otherwise.
func asFenced(id string, err error) error {
	if err == nil || !producerFenced(err) {
		return err
	}
	if _, ok := errors.AsType[*FencedError](err); ok {
		return err
	}
	return &FencedError{TransactionalID: id, Err: err}
}
