package nexmark

import (
	"testing"
)

// TestEventCodecRoundTrip: every generated event decodes to itself, the
// decoded strings do not alias the input, and every truncation of an
// encoding is an error, not a panic.
func TestEventCodecRoundTrip(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.Events, cfg.Generators = 5000, 1
	gen := NewGenerator(cfg, 0)
	var ev Event
	var buf []byte
	for gen.Next(&ev) {
		buf = EventCodec.Append(buf[:0], ev)
		got, n, err := EventCodec.Decode(buf)
		if err != nil || n != len(buf) {
			t.Fatalf("decode %s: n %d of %d, %v", fmtEvent(&ev), n, len(buf), err)
		}
		want := fmtEvent(&ev)
		for i := range buf {
			buf[i] = 0xff // decoded values must not alias src
		}
		if s := fmtEvent(&got); s != want {
			t.Fatalf("round trip:\n got %s\nwant %s", s, want)
		}
		buf = EventCodec.Append(buf[:0], ev)
		for cut := range len(buf) {
			if _, _, err := EventCodec.Decode(buf[:cut]); err == nil {
				t.Fatalf("%s cut at %d of %d bytes: no error", want, cut, len(buf))
			}
		}
	}
	if _, _, err := EventCodec.Decode([]byte{0x2a}); err == nil {
		t.Fatal("unknown format version: no error")
	}
}

// TestEventCodecSize: a bid takes about 155 bytes (padding and URL).
func TestEventCodecSize(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.Events, cfg.Generators = 100_000, 1
	gen := NewGenerator(cfg, 0)
	var ev Event
	var total, bids int
	for gen.Next(&ev) {
		if ev.Kind == KindBid {
			total += len(EventCodec.Append(nil, ev))
			bids++
		}
	}
	if avg := total / bids; avg > 160 {
		t.Fatalf("a bid takes %d bytes on average, want at most 160", avg)
	} else {
		t.Logf("a bid takes %d bytes on average", avg)
	}
}
