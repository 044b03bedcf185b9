// Package protocodec is the Protobuf format of package codec: binary
// protobuf messages (no schema-registry framing) as Kafka record values and
// as state (docs/design.md §10).
package protocodec

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/sluicehq/sluice/codec"
)

// New returns the FormatCodec of message type T; newMsg makes an empty
// message to decode into:
//
//	protocodec.New(func() *orderpb.Order { return new(orderpb.Order) })
//
// Its ID is "protobuf <message full name>" version 1: protobuf's own rules
// (field numbers) keep evolved messages readable, so only a change of
// message type is an incompatibility. Unmarshal of empty input yields an
// empty message, as protobuf encodes an all-default message as nothing;
// input that does not parse, or lacks proto2 required fields, is an error.
func New[T proto.Message](newMsg func() T) codec.FormatCodec[T] {
	name := string(newMsg().ProtoReflect().Descriptor().FullName())
	return codec.Framed[T](format[T]{newMsg: newMsg, id: codec.ID{Name: "protobuf " + name, Version: 1}})
}

type format[T proto.Message] struct {
	newMsg func() T
	id     codec.ID
}

func (f format[T]) CodecID() codec.ID { return f.id }

func (f format[T]) Marshal(dst []byte, v T) ([]byte, error) {
	out, err := proto.MarshalOptions{}.MarshalAppend(dst, v)
	if err != nil {
		return dst, fmt.Errorf("protobuf %s: %w", f.id.Name[len("protobuf "):], err)
	}
	return out, nil
}

func (f format[T]) Unmarshal(src []byte) (T, error) {
	m := f.newMsg()
	if err := proto.Unmarshal(src, m); err != nil {
		var zero T
		return zero, fmt.Errorf("protobuf %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	return m, nil
}
