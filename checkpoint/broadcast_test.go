package checkpoint

import (
	"errors"
	"testing"
)

// TestBroadcastHeader: a header round-trips; every truncation is an error
// wrapping ErrBroadcastHeader; another layout version is
// ErrBroadcastFormat; a count larger than the bytes left is corrupt.
func TestBroadcastHeader(t *testing.T) {
	h := BroadcastHeader{KeyCodec: CodecRef{Name: "string", Version: 1}, ValueCodec: CodecRef{Name: "go:main.Rule"}, Entries: 2}
	b := append(h.Append(nil), 1, 2, 3, 4)
	got, n, err := ParseBroadcastHeader(b)
	if err != nil || got != h || n != len(b)-4 {
		t.Fatalf("ParseBroadcastHeader = %+v, %d, %v; want %+v, %d", got, n, err, h, len(b)-4)
	}
	if s := h.String(); s != "keys string@v1, values go:main.Rule@v0, 2 entries" {
		t.Errorf("String() = %q", s)
	}
	for cut := range len(b) - 4 {
		if _, _, err := ParseBroadcastHeader(b[:cut]); !errors.Is(err, ErrBroadcastHeader) {
			t.Fatalf("header cut at %d: %v", cut, err)
		}
	}
	if _, _, err := ParseBroadcastHeader(append([]byte{2}, b[1:]...)); !errors.Is(err, ErrBroadcastFormat) {
		t.Errorf("format 2: %v, want ErrBroadcastFormat", err)
	}
	big := BroadcastHeader{KeyCodec: h.KeyCodec, ValueCodec: h.ValueCodec, Entries: 1 << 40}
	if _, _, err := ParseBroadcastHeader(big.Append(nil)); !errors.Is(err, ErrBroadcastHeader) {
		t.Errorf("huge count: %v, want ErrBroadcastHeader", err)
	}
}
