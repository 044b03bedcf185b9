package protocodec_test

import (
	"errors"
	"fmt"
	"testing"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/codec/protocodec"
)

func newString() *wrapperspb.StringValue { return new(wrapperspb.StringValue) }

func TestRoundTripAndErrors(t *testing.T) {
	t.Parallel()
	c := protocodec.New(newString)
	enc := c.Append([]byte{1}, wrapperspb.String("hello"))
	got, n, err := c.Decode(enc[1:])
	if err != nil || n != len(enc)-1 || got.GetValue() != "hello" {
		t.Fatalf("round trip: %v, %d, %v", got, n, err)
	}
	if m, err := c.Unmarshal(nil); err != nil || m.GetValue() != "" {
		t.Fatalf("empty input: %v, %v", m, err)
	}
	if _, _, err := c.Decode(codec.Bytes.Append(nil, []byte{0xff})); !errors.Is(err, codec.ErrCorrupt) {
		t.Fatalf("garbage: %v", err)
	}
	if id := codec.IDOf(codec.Codec[*wrapperspb.StringValue](c)); id.String() != "protobuf google.protobuf.StringValue@v1" {
		t.Fatalf("ID = %s", id)
	}
	// Another message type is another ID.
	other := protocodec.New(func() *wrapperspb.Int64Value { return new(wrapperspb.Int64Value) })
	if other.CodecID() == c.CodecID() {
		t.Fatal("two message types share an ID")
	}
}

func Example() {
	c := protocodec.New(func() *wrapperspb.StringValue { return new(wrapperspb.StringValue) })
	enc := c.Append(nil, wrapperspb.String("hi")) // a state entry
	v, _, _ := c.Decode(enc)
	fmt.Println(v.GetValue(), c.CodecID())
	// Output: hi protobuf google.protobuf.StringValue@v1
}
