package main

import (
	"context"
	"testing"
	"time"
)

// TestBuckets: every record is counted once, in the bucket of its event
// time, whatever order the records arrived in.
func TestBuckets(t *testing.T) {
	out, err := run(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	want := map[int64]int64{} // bucket start → records, over all keys
	for split := 0; split < 2; split++ {
		for seq := int64(0); seq < 3000; seq++ {
			ts := epoch + seq*int64(time.Millisecond) - (seq%5)*2*int64(time.Millisecond)
			want[ts-ts%bucket]++
		}
	}
	got := map[int64]int64{}
	seen := map[string]bool{}
	for _, c := range out {
		k := c.Key + c.Start.String()
		if seen[k] {
			t.Errorf("bucket %s of %s emitted twice", c.Start, c.Key)
		}
		seen[k] = true
		got[c.Start.UnixNano()] += c.N
	}
	if len(got) != len(want) {
		t.Fatalf("buckets %v, want %v", got, want)
	}
	for b, n := range want {
		if got[b] != n {
			t.Errorf("bucket %s: %d records, want %d", time.Unix(0, b).UTC(), got[b], n)
		}
	}
}
