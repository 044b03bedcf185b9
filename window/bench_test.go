package window

import (
	"testing"
	"time"
)

// The assignment benchmarks give records timestamps 1 ms apart, slightly
// out of order, and reuse one destination slice, as the window operator
// does: go test -run '^$' -bench . -benchmem ./window/

func BenchmarkAssignTumbling(b *testing.B) {
	a := Tumbling(10*time.Second, 0)
	buf := make([]Window, 0, 1)
	b.ReportAllocs()
	var n int
	for i := 0; b.Loop(); i++ {
		buf = a.Assign(int64(i)*ms-int64(i%7)*ms, buf[:0])
		n += len(buf)
	}
	if n == 0 {
		b.Fatal("no windows")
	}
}

func BenchmarkAssignSliding10s1s(b *testing.B) {
	a := Sliding(10*time.Second, time.Second, 0)
	buf := make([]Window, 0, 10)
	b.ReportAllocs()
	var n int
	for i := 0; b.Loop(); i++ {
		buf = a.Assign(int64(i)*ms-int64(i%7)*ms, buf[:0])
		n += len(buf)
	}
	if n != 10*b.N {
		b.Fatalf("%d windows for %d records", n, b.N)
	}
}

// BenchmarkMergingSetAdd adds session windows (gap 1 s) of records 100 ms
// apart with a pause every 50 records, to a set that holds a few sessions
// and retires the oldest, as a key with a long history would.
func BenchmarkMergingSetAdd(b *testing.B) {
	a := Session(time.Second)
	set := &MergingSet{}
	buf := make([]Window, 0, 1)
	ws := make([]Window, 0, 16)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		ts := int64(i)*100*ms + int64(i/50)*10*int64(time.Second)
		buf = a.Assign(ts, buf[:0])
		set.Add(buf[0])
		if set.Len() > 8 {
			ws = set.Windows(ws[:0])
			if _, err := set.Remove(ws[0]); err != nil {
				b.Fatal(err)
			}
		}
	}
}
