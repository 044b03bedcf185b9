package runtime

// Tests of the key-group writer (docs/design.md §2): the hash partitioner
// computes a record's key group once and it travels beside the record.

import (
	"fmt"
	"slices"
	"testing"

	"github.com/sluicehq/sluice/keygroup"
)

// TestKeyGroupWriter: a key-group writer sends each record to the subtask
// owning its key group, and the consumer's input channel sets Time.KG to
// the record's key group while the record is processed (with its
// timestamp beside it), and to NoKeyGroup afterwards.
func TestKeyGroupWriter(t *testing.T) {
	t.Parallel()
	const maxP, down = 16, 3
	kgOf := func(v int) int { return v % maxP }
	c := NewChannels[int](1, down, 64)
	tm := NewTime()
	w := NewKeyGroupWriter(c, 0, kgOf, maxP, 4, make(chan struct{}), &TaskStats{}, tm)
	for v := range 40 {
		tm.TS = NoTimestamp
		if v >= 20 {
			tm.TS = int64(1000 + v) // the second half carries timestamps
		}
		if err := w.Emit(v); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	for sub := range down {
		ctm := NewTime()
		var got []int
		in := NewInputs(c, sub, Hash, Emitter[int](emitFunc(func(v int) error {
			if ctm.KG != kgOf(v) {
				t.Errorf("record %d: Time.KG %d, want %d", v, ctm.KG, kgOf(v))
			}
			want := NoTimestamp
			if v >= 20 {
				want = int64(1000 + v)
			}
			if ctm.TS != want {
				t.Errorf("record %d: Time.TS %d, want %d", v, ctm.TS, want)
			}
			got = append(got, v)
			return nil
		})), &TaskStats{}, ctm)[0]
		ch := c.Chans[0][sub]
		for len(ch) > 0 {
			b := <-ch
			if len(b.kgs) != len(b.records) {
				t.Fatalf("batch of %d records with %d key groups", len(b.records), len(b.kgs))
			}
			if err := in.process(b); err != nil {
				t.Fatal(err)
			}
			if ctm.KG != NoKeyGroup {
				t.Fatalf("Time.KG %d after the batch, want NoKeyGroup", ctm.KG)
			}
		}
		var want []int
		for v := range 40 {
			if keygroup.SubtaskFor(kgOf(v), down, maxP) == sub {
				want = append(want, v)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("subtask %d got %v, want %v", sub, got, want)
		}
	}
}

// TestPlainBatchHasNoKeyGroup: records of a writer that does not route by
// key group reach the consumer with Time.KG = NoKeyGroup, even on a task
// whose other input carries key groups.
func TestPlainBatchHasNoKeyGroup(t *testing.T) {
	t.Parallel()
	c := NewChannels[int](1, 1, 8)
	w, _ := newTestWriter(c, 0, Forward, nil, 2)
	for v := range 4 {
		if err := w.Emit(v); err != nil {
			t.Fatal(err)
		}
	}
	tm := NewTime()
	tm.KG = 5 // as if left over
	n := 0
	in := NewInputs(c, 0, Forward, Emitter[int](emitFunc(func(v int) error {
		n++
		if tm.KG != NoKeyGroup {
			t.Errorf("record %d: Time.KG %d, want NoKeyGroup", v, tm.KG)
		}
		return nil
	})), &TaskStats{}, tm)[0]
	for range 2 {
		b := <-c.Chans[0][0]
		if b.kgs != nil {
			t.Fatalf("forward batch carries key groups %v", b.kgs)
		}
		tm.KG = 5
		if err := in.process(b); err != nil {
			t.Fatal(err)
		}
	}
	if n != 4 {
		t.Fatalf("%d records, want 4", n)
	}
}

// prefetchingInput records Prefetch calls and records in order.
type prefetchingInput struct{ log []string }

func (p *prefetchingInput) Prefetch(vs []int, ts []int64, kgs []uint16) {
	p.log = append(p.log, fmt.Sprintf("prefetch %v %v", vs, kgs))
}

func (p *prefetchingInput) Emit(v int) error {
	p.log = append(p.log, fmt.Sprintf("emit %d", v))
	return nil
}

// TestPrefetchBeforeRecords: an input that implements Prefetcher gets each
// key-group batch, with its key groups, before its records one by one;
// batches without key groups are not prefetched.
func TestPrefetchBeforeRecords(t *testing.T) {
	t.Parallel()
	const maxP = 4
	c := NewChannels[int](1, 1, 8)
	w := NewKeyGroupWriter(c, 0, func(v int) int { return v % maxP }, maxP, 2, make(chan struct{}), &TaskStats{}, nil)
	for v := range 3 {
		if err := w.Emit(v + 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	p := &prefetchingInput{}
	in := NewInputs(c, 0, Hash, Emitter[int](p), &TaskStats{}, nil)[0]
	for len(c.Chans[0][0]) > 0 {
		if err := in.process(<-c.Chans[0][0]); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"prefetch [1 2] [1 2]", "emit 1", "emit 2", "prefetch [3] [3]", "emit 3"}
	if !slices.Equal(p.log, want) {
		t.Fatalf("calls %q, want %q", p.log, want)
	}
	// A plain writer's batches are not prefetched.
	pw, _ := newTestWriter(c, 0, Forward, nil, 2)
	if err := pw.Emit(9); err != nil {
		t.Fatal(err)
	}
	if err := pw.Flush(); err != nil {
		t.Fatal(err)
	}
	p.log = nil
	if err := in.process(<-c.Chans[0][0]); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.log, []string{"emit 9"}) {
		t.Fatalf("calls %q for a plain batch, want only the record", p.log)
	}
}
