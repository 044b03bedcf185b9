package runtime

// Tests of the key-group writer (docs/design.md §2): the hash partitioner
// computes a record's key group once and it travels beside the record.

import (
	"errors"
	"slices"
	"testing"

	"github.com/sluicehq/sluice/keygroup"
)

// TestKeyGroupWriter: a key-group writer sends each record to the subtask
// owning its key group, and the consumer's input channel sets Time.KG and
// Time.Hash to the record's key group and key hash while the record is
// processed (with its timestamp beside it), and Time.KG to NoKeyGroup
// afterwards.
func TestKeyGroupWriter(t *testing.T) {
	t.Parallel()
	const maxP, down = 16, 3
	hashOf := func(v int) uint64 { return uint64(v)*0x9e3779b97f4a7c15 + 7 }
	kgOf := func(v int) int { return keygroup.Of(hashOf(v), maxP) }
	c := NewChannels[int](1, down, 64)
	tm := NewTime()
	w := NewKeyGroupWriter(c, 0, hashOf, maxP, 4, make(chan struct{}), &TaskStats{}, tm)
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
			if ctm.Hash != hashOf(v) {
				t.Errorf("record %d: Time.Hash %#x, want %#x", v, ctm.Hash, hashOf(v))
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
			if len(b.kgs) != len(b.records) || len(b.hs) != len(b.records) {
				t.Fatalf("batch of %d records with %d key groups and %d hashes", len(b.records), len(b.kgs), len(b.hs))
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

// prefetchEmitter records the batches a KeyPrefetcher is handed, and the
// records that follow.
type prefetchEmitter struct {
	tm      *Time
	calls   int
	kgs     []uint16
	hs      []uint64
	ts      []int64
	pending int // records prefetched and not yet emitted
	err     error
}

func (p *prefetchEmitter) PrefetchKeys(kgs []uint16, hs []uint64, ts []int64) {
	p.calls++
	p.kgs = append(p.kgs[:0], kgs...)
	p.hs = append(p.hs[:0], hs...)
	p.ts = append(p.ts[:0], ts...)
	p.pending = len(kgs)
}

func (p *prefetchEmitter) Emit(int) error {
	i := len(p.kgs) - p.pending
	if p.pending == 0 || int(p.kgs[i]) != p.tm.KG || p.hs[i] != p.tm.Hash || (p.ts != nil && p.ts[i] != p.tm.TS) {
		p.err = errors.New("a record does not match the prefetched batch")
	}
	p.pending--
	return nil
}

// TestKeyPrefetcher: a consumer that is a KeyPrefetcher sees each batch's
// key groups, hashes and timestamps before its records, one entry per
// record in record order; a batch without timestamps gives ts nil.
func TestKeyPrefetcher(t *testing.T) {
	t.Parallel()
	const maxP = 16
	hashOf := func(v int) uint64 { return uint64(v)*0x9e3779b97f4a7c15 + 3 }
	c := NewChannels[int](1, 1, 64)
	tm := NewTime()
	w := NewKeyGroupWriter(c, 0, hashOf, maxP, 5, make(chan struct{}), &TaskStats{}, tm)
	for v := range 20 {
		tm.TS = NoTimestamp
		if v >= 10 {
			tm.TS = int64(100 + v)
		}
		if err := w.Emit(v); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	ctm := NewTime()
	pe := &prefetchEmitter{tm: ctm}
	in := NewInputs(c, 0, Hash, Emitter[int](pe), &TaskStats{}, ctm)[0]
	batches := 0
	for ch := c.Chans[0][0]; len(ch) > 0; batches++ {
		b := <-ch
		if err := in.process(b); err != nil {
			t.Fatal(err)
		}
		if pe.calls != batches+1 || pe.pending != 0 || pe.err != nil {
			t.Fatalf("batch %d: %d prefetch calls, %d records not emitted, %v", batches, pe.calls, pe.pending, pe.err)
		}
		if withTS := batches >= 2; (pe.ts != nil) != withTS {
			t.Fatalf("batch %d: prefetch timestamps %v", batches, pe.ts)
		}
	}
	if batches != 4 {
		t.Fatalf("%d batches, want 4", batches)
	}
}
