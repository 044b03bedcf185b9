package codec

import (
	"bytes"
	"math"
	"slices"
	"testing"
)

// fuzzDecode checks the Decode contract on arbitrary input: no panic, n within
// bounds, and a successful decode re-encodes to a value that decodes equal.
func fuzzDecode[T any](t *testing.T, c Codec[T], in []byte, eq func(a, b T) bool) {
	v, n, err := c.Decode(in)
	if err != nil {
		if n != 0 {
			t.Fatalf("error %v with n = %d", err, n)
		}
		return
	}
	if n <= 0 || n > len(in) {
		t.Fatalf("n = %d for input of %d bytes", n, len(in))
	}
	enc := c.Append(nil, v)
	v2, n2, err := c.Decode(enc)
	if err != nil || n2 != len(enc) || !eq(v, v2) {
		t.Fatalf("re-decode: %v, %d, %v; want %v", v2, n2, err, v)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x80})
	f.Add([]byte{3, 'a', 'b', 'c'})
	f.Add(bytes.Repeat([]byte{0xff}, 12))
	f.Add([]byte{2, 1, 0, 1})
	f.Fuzz(func(t *testing.T, in []byte) {
		fuzzDecode(t, String, in, eq)
		fuzzDecode(t, Bytes, in, bytes.Equal)
		fuzzDecode(t, Int64, in, eq)
		fuzzDecode(t, Int, in, eq)
		fuzzDecode(t, Int32, in, eq)
		fuzzDecode(t, Uint64, in, eq)
		fuzzDecode(t, Uint32, in, eq)
		fuzzDecode(t, Bool, in, eq)
		fuzzDecode(t, Float64, in, func(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) })
		fuzzDecode(t, List(String), in, slices.Equal)
		fuzzDecode(t, List(Bool), in, slices.Equal)
	})
}

func FuzzStringRoundTrip(f *testing.F) {
	f.Add("")
	f.Add("user-42")
	f.Fuzz(func(t *testing.T, s string) {
		enc := String.Append(nil, s)
		got, n, err := String.Decode(enc)
		if err != nil || n != len(enc) || got != s {
			t.Fatalf("round trip of %q: %q, %d, %v", s, got, n, err)
		}
		if HashString(s) != HashString(string([]byte(s))) {
			t.Fatal("hash depends on the string's memory")
		}
	})
}
