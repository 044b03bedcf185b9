package nexmark

import (
	"testing"
	"time"
)

// TestProgressLastSplit: a slice's latency starts when the last split
// reached it, and rows of slices no split reached have none.
func TestProgressLastSplit(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.Generators = 2
	p := NewProgress(cfg)
	t0 := cfg.BaseTime + 100
	if _, ok := p.Since(t0); ok {
		t.Fatal("latency of a slice no split reached")
	}
	p.epoch = time.Now().Add(-time.Minute)
	p.first[0][p.slot(t0)].Store(1) // split 0 a minute ago
	p.mark(1, t0)                   // split 1 now
	d, ok := p.Since(t0)
	if !ok || d > 30*time.Second {
		t.Fatalf("latency %v, %v: not measured from split 1", d, ok)
	}
	p.mark(1, t0) // only the first emission counts
	if d2, _ := p.Since(t0); d2 < d {
		t.Fatalf("latency went back from %v to %v", d, d2)
	}
}
