package datagen

import (
	"fmt"

	"github.com/sluicehq/sluice/codec"
)

// RecordCodec encodes a Record as its split, sequence number, key and value
// with the built-in codecs, for jobs that move Records across a network
// edge with unaligned checkpoints (sluice.WithCodec).
var RecordCodec codec.Codec[Record] = recordCodec{}

type recordCodec struct{}

func (recordCodec) Append(dst []byte, r Record) []byte {
	dst = codec.Int.Append(dst, r.Split)
	dst = codec.Int64.Append(dst, r.Seq)
	dst = codec.String.Append(dst, r.Key)
	return codec.Int64.Append(dst, r.Value)
}

func (recordCodec) Decode(src []byte) (Record, int, error) {
	var r Record
	split, n, err := codec.Int.Decode(src)
	if err != nil {
		return Record{}, 0, fmt.Errorf("datagen record split: %w", err)
	}
	r.Split = split
	off := n
	if r.Seq, n, err = codec.Int64.Decode(src[off:]); err != nil {
		return Record{}, 0, fmt.Errorf("datagen record seq: %w", err)
	}
	off += n
	if r.Key, n, err = codec.String.Decode(src[off:]); err != nil {
		return Record{}, 0, fmt.Errorf("datagen record key: %w", err)
	}
	off += n
	if r.Value, n, err = codec.Int64.Decode(src[off:]); err != nil {
		return Record{}, 0, fmt.Errorf("datagen record value: %w", err)
	}
	return r, off + n, nil
}
