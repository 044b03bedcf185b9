package sluice

import (
	"errors"
	"testing"

	"github.com/sluicehq/sluice/codec"
)

// TestCoItemCodec: both sides round-trip; an empty input is truncated, an
// unknown side byte corrupt, a truncated record reports its codec's
// error; the ID names both codecs, undeclared if either is.
func TestCoItemCodec(t *testing.T) {
	t.Parallel()
	c := coItemCodec[string, int64]{a: codec.String, b: codec.Int64}
	for _, it := range []coItem[string, int64]{{a: "left"}, {b: -7, right: true}, {a: ""}} {
		buf := c.Append([]byte("x"), it)
		got, n, err := c.Decode(buf[1:])
		if err != nil || n != len(buf)-1 || got != it {
			t.Fatalf("%+v: decoded %+v, %d of %d bytes, %v", it, got, n, len(buf)-1, err)
		}
	}
	if _, _, err := c.Decode(nil); !errors.Is(err, codec.ErrTruncated) {
		t.Fatalf("empty input: %v", err)
	}
	if _, _, err := c.Decode([]byte{2, 0}); !errors.Is(err, codec.ErrCorrupt) {
		t.Fatalf("side byte 2: %v", err)
	}
	if _, _, err := c.Decode(c.Append(nil, coItem[string, int64]{a: "abc"})[:3]); !errors.Is(err, codec.ErrTruncated) && !errors.Is(err, codec.ErrCorrupt) {
		t.Fatalf("truncated record: %v", err)
	}
	if id := codec.IDOf[coItem[string, int64]](c); id != (codec.ID{Name: "cogroup(string@v1,zigzag-varint@v1)", Version: 1}) {
		t.Fatalf("ID %v", id)
	}
	u := coItemCodec[jrec, int64]{a: codec.Codec[jrec](jrecOpaque{}), b: codec.Int64}
	if id := codec.IDOf[coItem[jrec, int64]](u); id.Declared() {
		t.Fatalf("ID %v declared with an undeclared side", id)
	}
}

// jrecOpaque is a codec without an ID.
type jrecOpaque struct{}

func (jrecOpaque) Append(dst []byte, r jrec) []byte { return codec.String.Append(dst, r.ID) }
func (jrecOpaque) Decode(src []byte) (jrec, int, error) {
	s, n, err := codec.String.Decode(src)
	return jrec{ID: s}, n, err
}
