package watermark

import (
	"strconv"
	"testing"
	"time"
)

// go test -run '^$' -bench . -benchmem ./watermark/

// BenchmarkSplitOnEvent is the per-record cost of watermarking.
func BenchmarkSplitOnEvent(b *testing.B) {
	r := NewReader(ForBoundedOutOfOrderness(time.Second).WithIdleness(time.Minute))
	s, _ := r.AddSplit("p", time.Unix(0, 0))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s.OnEvent(int64(i) * 1000)
	}
}

// BenchmarkReaderOnPeriodicEmit is one periodic emission of a reader of
// 64 splits.
func BenchmarkReaderOnPeriodicEmit(b *testing.B) {
	r := NewReader(ForBoundedOutOfOrderness(time.Second).WithIdleness(time.Minute))
	var splits []*Split
	for i := range 64 {
		s, _ := r.AddSplit(strconv.Itoa(i), time.Unix(0, 0))
		splits = append(splits, s)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		splits[i%64].OnEvent(int64(i) * 1000)
		r.OnPeriodicEmit(time.Unix(0, int64(i)))
	}
}

// BenchmarkInputsOnWatermark is one in-band watermark at a task of 8
// input channels.
func BenchmarkInputsOnWatermark(b *testing.B) {
	v, _ := NewInputs(8)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		v.OnWatermark(i%8, int64(i))
	}
}
