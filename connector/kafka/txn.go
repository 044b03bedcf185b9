package kafka

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice/codec"
)

// Txn is the sink's transaction handle, the TXN of the engine's
// two-phase-commit framework. For exactly-once it names a Kafka
// transaction: what a checkpoint must remember to commit the transaction
// after a crash, without the producer that wrote it (docs/design.md §6, Flink's
// resumable KafkaCommittable). For the other guarantees only the live part
// is used and TransactionalID is empty.
//
// The exported fields are what TxnCodec stores in checkpoints; they are
// final once the transaction is pre-committed.
type Txn struct {
	// TransactionalID is "<prefix>-<operator uid>-<subtask>-<slot>-e<epoch>",
	// the epoch being the job's ownership epoch (docs/design.md §9); checkpoints
	// written before ids carried an epoch, and jobs that own no checkpoints,
	// have "<prefix>-<operator uid>-<subtask>-<slot>".
	TransactionalID string
	// ProducerID and ProducerEpoch identify the producer session that
	// wrote the transaction; EndTxn must carry them.
	ProducerID    int64
	ProducerEpoch int16
	// TxnVersion is the transaction protocol the producer ran: 2 with
	// KIP-890 part 2 (Kafka 4.0+, transaction.version=2: EndTxn v5 and an
	// epoch bump per transaction), else 1. The commit uses the same
	// protocol.
	TxnVersion int16
	// HasData says whether any record was written. An empty transaction is
	// not committed: Kafka with transaction.version 2 answers
	// INVALID_TXN_STATE to the commit of a transaction that never started.
	HasData bool

	// live is the producer writing the transaction; nil in a decoded Txn,
	// which can be committed but not written to.
	live *liveTxn
}

// String names the transaction for logs and errors.
func (t *Txn) String() string {
	if t == nil {
		return "<nil>"
	}
	if t.TransactionalID == "" {
		return "non-transactional producer"
	}
	return fmt.Sprintf("%s (producer id %d, epoch %d)", t.TransactionalID, t.ProducerID, t.ProducerEpoch)
}

// TxnCodec encodes a *Txn into checkpoints: a format version byte (1), the
// transactional id as codec.String (uvarint length, bytes), the producer
// id as a zig-zag varint, the epoch and the transaction version as zig-zag
// varints, and has-data as one byte 0 or 1.
var TxnCodec codec.Codec[*Txn] = txnCodec{}

// txnFormat leads every encoded Txn, so that the format can grow while old
// checkpoints still restore.
const txnFormat = 1

type txnCodec struct{}

func (txnCodec) Append(dst []byte, t *Txn) []byte {
	dst = append(dst, txnFormat)
	dst = codec.String.Append(dst, t.TransactionalID)
	dst = codec.Int64.Append(dst, t.ProducerID)
	dst = codec.Int64.Append(dst, int64(t.ProducerEpoch))
	dst = codec.Int64.Append(dst, int64(t.TxnVersion))
	return codec.Bool.Append(dst, t.HasData)
}

func (txnCodec) Decode(src []byte) (*Txn, int, error) {
	if len(src) == 0 {
		return nil, 0, fmt.Errorf("kafka sink transaction: %w", codec.ErrTruncated)
	}
	if src[0] != txnFormat {
		return nil, 0, fmt.Errorf("kafka sink transaction: %w: unknown format version %d", codec.ErrCorrupt, src[0])
	}
	n := 1
	t := &Txn{}
	var err error
	var m int
	if t.TransactionalID, m, err = codec.String.Decode(src[n:]); err != nil {
		return nil, 0, fmt.Errorf("kafka sink transaction: transactional id: %w", err)
	}
	n += m
	if t.ProducerID, m, err = codec.Int64.Decode(src[n:]); err != nil {
		return nil, 0, fmt.Errorf("kafka sink transaction %s: producer id: %w", t.TransactionalID, err)
	}
	n += m
	for _, f := range []struct {
		name string
		dst  *int16
	}{{"producer epoch", &t.ProducerEpoch}, {"transaction version", &t.TxnVersion}} {
		v, m, err := codec.Int64.Decode(src[n:])
		if err != nil {
			return nil, 0, fmt.Errorf("kafka sink transaction %s: %s: %w", t.TransactionalID, f.name, err)
		}
		if v < math.MinInt16 || v > math.MaxInt16 {
			return nil, 0, fmt.Errorf("kafka sink transaction %s: %s: %w: %d out of int16 range", t.TransactionalID, f.name, codec.ErrCorrupt, v)
		}
		*f.dst = int16(v)
		n += m
	}
	if t.HasData, m, err = codec.Bool.Decode(src[n:]); err != nil {
		return nil, 0, fmt.Errorf("kafka sink transaction %s: has-data: %w", t.TransactionalID, err)
	}
	n += m
	return t, n, nil
}

// txnIDs names the transactional ids of one sink operator in one ownership
// epoch (docs/design.md §9): "<prefix>-<uid>-<subtask>-<slot>-e<epoch>",
// or "<prefix>-<uid>-<subtask>-<slot>" when the job owns no checkpoints
// (epoch 0; also the form of checkpoints written before ids carried an
// epoch). An instance initialises only ids of its own epoch, so a zombie of
// an older epoch can never fence or abort a transaction of the instance
// that replaced it. The epoch goes last, behind a letter, so that the ids
// of an operator whose uid extends ours ("sink" and "sink-2") are never
// taken for ours in either form.
type txnIDs struct {
	prefix string // "<prefix>-<uid>-"
	epoch  int64  // the ownership epoch; 0 for the form without one
}

func newTxnIDs(prefix, uid string, epoch int64) txnIDs {
	return txnIDs{prefix: prefix + "-" + uid + "-", epoch: epoch}
}

// id returns the id of a subtask's slot in n's epoch.
func (n txnIDs) id(subtask, slot int) string { return n.idAt(subtask, slot, n.epoch) }

// idAt returns the id of a subtask's slot in the given epoch (0: the form
// without one).
func (n txnIDs) idAt(subtask, slot int, epoch int64) string {
	id := n.prefix + strconv.Itoa(subtask) + "-" + strconv.Itoa(slot)
	if epoch > 0 {
		id += "-e" + strconv.FormatInt(epoch, 10)
	}
	return id
}

// parse returns the subtask, slot and epoch (0 for the form without one) of
// id, if id is one of this operator's ids in any epoch. It is strict, so
// that the ids of an operator whose uid extends ours ("sink" and "sink-2")
// are not taken for ours.
func (n txnIDs) parse(id string) (subtask, slot int, epoch int64, ok bool) {
	rest, found := strings.CutPrefix(id, n.prefix)
	if !found {
		return 0, 0, 0, false
	}
	parts := strings.Split(rest, "-")
	switch len(parts) {
	case 2:
	case 3:
		e, found := strings.CutPrefix(parts[2], "e")
		v, err := strconv.ParseInt(e, 10, 64)
		if !found || err != nil || v <= 0 || strconv.FormatInt(v, 10) != e {
			return 0, 0, 0, false
		}
		epoch = v
	default:
		return 0, 0, 0, false
	}
	a, b := parts[0], parts[1]
	subtask, err1 := strconv.Atoi(a)
	slot, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || subtask < 0 || slot < 0 || strconv.Itoa(subtask) != a || strconv.Itoa(slot) != b {
		return 0, 0, 0, false
	}
	return subtask, slot, epoch, true
}
