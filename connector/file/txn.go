package file

import (
	"fmt"

	"github.com/sluicehq/sluice/codec"
)

// TxnCodec encodes a Txn into checkpoints: a format version byte (1), then
// Temp and Final as codec.String does (uvarint length, bytes). The open
// file handle is not encoded: a decoded Txn can be committed or aborted,
// not written to.
var TxnCodec codec.Codec[Txn] = txnCodec{}

// txnVersion leads every encoded Txn, so that the format can grow (say, a
// size or checksum for verification on commit) while old checkpoints still
// restore.
const txnVersion = 1

type txnCodec struct{}

func (txnCodec) Append(dst []byte, t Txn) []byte {
	dst = append(dst, txnVersion)
	dst = codec.String.Append(dst, t.Temp)
	return codec.String.Append(dst, t.Final)
}

func (txnCodec) Decode(src []byte) (Txn, int, error) {
	if len(src) == 0 {
		return Txn{}, 0, fmt.Errorf("file sink transaction: %w", codec.ErrTruncated)
	}
	if src[0] != txnVersion {
		return Txn{}, 0, fmt.Errorf("file sink transaction: %w: unknown format version %d", codec.ErrCorrupt, src[0])
	}
	n := 1
	temp, m, err := codec.String.Decode(src[n:])
	if err != nil {
		return Txn{}, 0, fmt.Errorf("file sink transaction: temp name: %w", err)
	}
	n += m
	final, m, err := codec.String.Decode(src[n:])
	if err != nil {
		return Txn{}, 0, fmt.Errorf("file sink transaction: final name: %w", err)
	}
	n += m
	return Txn{Temp: temp, Final: final}, n, nil
}
