package runtime

import (
	"slices"
	"testing"
)

// TestTimestampsTravelWithRecords: a writer stores the task's current
// timestamp beside each record, only once some record of the batch has
// one (a batch without any keeps a nil slice); the input channel restores
// each record's timestamp, NoTimestamp for the ones before it; control
// events (watermark, status) follow the records they were sent after.
func TestTimestampsTravelWithRecords(t *testing.T) {
	t.Parallel()
	c := NewChannels[int](1, 1, 8)
	up := NewTime()
	w := NewWriter(c, 0, Forward, nil, 4, make(chan struct{}), &TaskStats{}, up)
	emit := func(v int, ts int64) {
		up.TS = ts
		if err := w.Emit(v); err != nil {
			t.Fatal(err)
		}
	}
	emit(0, NoTimestamp)
	emit(1, NoTimestamp)
	emit(2, NoTimestamp)
	emit(3, NoTimestamp) // a full batch without timestamps
	emit(4, NoTimestamp)
	emit(5, 50)
	if err := w.Watermark(40); err != nil {
		t.Fatal(err)
	}
	emit(6, 60)
	if err := w.Status(true); err != nil {
		t.Fatal(err)
	}
	b := <-c.Chans[0][0]
	if b.kind != kindData || b.ts != nil || len(b.records) != 4 {
		t.Fatalf("first batch %+v, want 4 records and no timestamps", b)
	}
	down := NewTime()
	type seen struct {
		v  int
		ts int64
	}
	var got []seen
	in := NewInputs(c, 0, Forward, Emitter[int](emitFunc(func(v int) error { got = append(got, seen{v, down.TS}); return nil })), &TaskStats{}, down)[0]
	if err := in.process(b); err != nil {
		t.Fatal(err)
	}
	var events []string
	for range 4 {
		b := <-c.Chans[0][0]
		switch b.kind {
		case kindData:
			if err := in.process(b); err != nil {
				t.Fatal(err)
			}
			events = append(events, "data")
		case kindWatermark:
			events = append(events, "watermark")
			if b.wm != 40 {
				t.Fatalf("watermark %d, want 40", b.wm)
			}
		case kindStatus:
			events = append(events, "status")
			if !b.idle {
				t.Fatal("status active, want idle")
			}
		}
	}
	want := []seen{{0, NoTimestamp}, {1, NoTimestamp}, {2, NoTimestamp}, {3, NoTimestamp}, {4, NoTimestamp}, {5, 50}, {6, 60}}
	if !slices.Equal(got, want) {
		t.Fatalf("records with timestamps %v, want %v", got, want)
	}
	if !slices.Equal(events, []string{"data", "watermark", "data", "status"}) {
		t.Fatalf("events %v, want data, watermark, data, status", events)
	}
}
