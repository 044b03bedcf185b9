package runtime

// Tests of the partition writer and input channels (docs/design.md §2: batches on
// bounded edges, partitioners, in-band control events).

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
	"testing/synctest"
	"time"
)

// waitTimeout bounds the waits of the goroutine tests. They run in synctest
// bubbles, where it is fake time: a hang fails as soon as every goroutine
// is blocked, and load never makes a test time out.
const waitTimeout = 30 * time.Second

// drain returns what is queued on ch now, without blocking: data batches as
// their records, control events as "barrier <id>" / "end".
func drain(ch chan *batch[int]) []any {
	var out []any
	for {
		select {
		case b := <-ch:
			switch b.kind {
			case kindData:
				out = append(out, slices.Clone(b.records))
			case kindBarrier:
				out = append(out, "barrier "+strconv.FormatInt(b.barrier.ID, 10))
			case kindEnd:
				out = append(out, "end")
			}
		default:
			return out
		}
	}
}

func records(qs []any) []int {
	var out []int
	for _, q := range qs {
		if r, ok := q.([]int); ok {
			out = append(out, r...)
		}
	}
	return out
}

func newTestWriter(c *Channels[int], sub int, part Partitioning, target func(int) int, size int) (*Writer[int], *TaskStats) {
	st := &TaskStats{}
	return NewWriter(c, sub, part, target, size, make(chan struct{}), st, nil), st
}

// TestWriterForward: forward between equal parallelism connects subtask i
// to subtask i only.
func TestWriterForward(t *testing.T) {
	t.Parallel()
	c := NewChannels[int](2, 2, 8)
	w, st := newTestWriter(c, 1, Forward, nil, 2)
	for i := range 4 {
		if err := w.Emit(i); err != nil {
			t.Fatal(err)
		}
	}
	if got := drain(c.Chans[1][1]); len(got) != 2 || !slices.Equal(records(got), []int{0, 1, 2, 3}) {
		t.Fatalf("channel 1→1 holds %v, want two full batches [0 1] [2 3]", got)
	}
	for _, ch := range []chan *batch[int]{c.Chans[0][0], c.Chans[0][1], c.Chans[1][0]} {
		if got := drain(ch); len(got) != 0 {
			t.Fatalf("a channel other than 1→1 holds %v", got)
		}
	}
	if n := st.RecordsOut.Load(); n != 4 {
		t.Fatalf("RecordsOut %d, want 4", n)
	}
	// The consumer side agrees: forward subtask 1 reads producer 1 only.
	ins := NewInputs(c, 1, Forward, Emitter[int](nil), &TaskStats{}, nil)
	if len(ins) != 1 || ins[0].(*inputChannel[int]).ch != c.Chans[1][1] {
		t.Fatalf("forward inputs of subtask 1: %d channels, want only 1→1", len(ins))
	}
}

// TestWriterRebalance: round-robin over every downstream subtask.
func TestWriterRebalance(t *testing.T) {
	t.Parallel()
	c := NewChannels[int](1, 3, 8)
	w, _ := newTestWriter(c, 0, Rebalance, nil, 100)
	for i := range 10 {
		if err := w.Emit(i); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	want := [][]int{{0, 3, 6, 9}, {1, 4, 7}, {2, 5, 8}}
	for d := range 3 {
		if got := records(drain(c.Chans[0][d])); !slices.Equal(got, want[d]) {
			t.Fatalf("subtask %d got %v, want %v", d, got, want[d])
		}
	}
	if ins := NewInputs(c, 2, Rebalance, Emitter[int](nil), &TaskStats{}, nil); len(ins) != 1 {
		t.Fatalf("%d inputs, want one per producer", len(ins))
	}
}

// TestWriterHash: each record goes to the subtask its target names.
func TestWriterHash(t *testing.T) {
	t.Parallel()
	c := NewChannels[int](1, 3, 8)
	w, _ := newTestWriter(c, 0, Hash, func(v int) int { return v % 3 }, 100)
	for _, v := range []int{5, 3, 4, 8, 0, 7} {
		if err := w.Emit(v); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	want := [][]int{{3, 0}, {4, 7}, {5, 8}}
	for d := range 3 {
		if got := records(drain(c.Chans[0][d])); !slices.Equal(got, want[d]) {
			t.Fatalf("subtask %d got %v, want %v", d, got, want[d])
		}
	}
}

// TestWriterBroadcast: every record goes to every subtask, and every
// producer is an input of every consumer.
func TestWriterBroadcast(t *testing.T) {
	t.Parallel()
	c := NewChannels[int](2, 3, 8)
	w, st := newTestWriter(c, 1, Broadcast, nil, 2)
	for i := range 3 {
		if err := w.Emit(i); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	for d := range 3 {
		if got := records(drain(c.Chans[1][d])); !slices.Equal(got, []int{0, 1, 2}) {
			t.Fatalf("subtask %d got %v, want [0 1 2]", d, got)
		}
	}
	if n := st.RecordsOut.Load(); n != 9 {
		t.Fatalf("RecordsOut %d, want 9 (3 records × 3 subtasks)", n)
	}
	if ins := NewInputs(c, 0, Broadcast, Emitter[int](nil), &TaskStats{}, nil); len(ins) != 2 {
		t.Fatalf("%d inputs, want both producers", len(ins))
	}
}

// TestWriterBatchesUntilFlush: a partly filled batch stays with the writer
// (Buffered) until Flush; a full one is sent at once.
func TestWriterBatchesUntilFlush(t *testing.T) {
	t.Parallel()
	c := NewChannels[int](1, 1, 8)
	w, _ := newTestWriter(c, 0, Forward, nil, 3)
	for i := range 4 {
		if err := w.Emit(i); err != nil {
			t.Fatal(err)
		}
	}
	if got := drain(c.Chans[0][0]); len(got) != 1 || !slices.Equal(records(got), []int{0, 1, 2}) {
		t.Fatalf("before Flush the channel holds %v, want the full batch [0 1 2] only", got)
	}
	if !w.Buffered() {
		t.Fatal("Buffered() = false with record 3 in a batch")
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := records(drain(c.Chans[0][0])); !slices.Equal(got, []int{3}) {
		t.Fatalf("Flush sent %v, want [3]", got)
	}
	if w.Buffered() {
		t.Fatal("Buffered() = true after Flush")
	}
}

// TestWriterControlAfterRecords: a barrier or the end of output is sent on
// every channel after the records emitted before it, never ahead of them
// (docs/design.md §2: control events travel in-band, ordered with the data; §3 step
// 2: the records before barrier n belong to checkpoint n).
func TestWriterControlAfterRecords(t *testing.T) {
	t.Parallel()
	c := NewChannels[int](1, 2, 8)
	w, _ := newTestWriter(c, 0, Rebalance, nil, 100)
	for i := range 5 {
		if err := w.Emit(i); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Broadcast(Barrier{ID: 7}); err != nil {
		t.Fatal(err)
	}
	if err := w.Emit(5); err != nil {
		t.Fatal(err)
	}
	if err := w.End(); err != nil {
		t.Fatal(err)
	}
	want := [][]any{
		{[]int{0, 2, 4}, "barrier 7", "end"},
		{[]int{1, 3}, "barrier 7", []int{5}, "end"},
	}
	for d := range 2 {
		got := drain(c.Chans[0][d])
		if len(got) != len(want[d]) {
			t.Fatalf("channel %d: %v, want %v", d, got, want[d])
		}
		for i := range got {
			if !equalItem(got[i], want[d][i]) {
				t.Fatalf("channel %d: %v, want %v", d, got, want[d])
			}
		}
	}
}

func equalItem(a, b any) bool {
	ra, ok1 := a.([]int)
	rb, ok2 := b.([]int)
	if ok1 && ok2 {
		return slices.Equal(ra, rb)
	}
	return a == b
}

// TestWriterBackpressure: a sender that finds its channel full blocks until
// the consumer takes a batch, and the time it was blocked is counted as
// backpressure (docs/design.md §2). In a synctest bubble the blocked time is
// exact.
func TestWriterBackpressure(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		c := NewChannels[int](1, 1, 1)
		w, st := newTestWriter(c, 0, Forward, nil, 1)
		if err := w.Emit(1); err != nil { // fills the channel
			t.Fatal(err)
		}
		errc := make(chan error, 1)
		go func() { errc <- w.Emit(2) }()
		// The sender is blocked in its send: nothing drains.
		synctest.Wait()
		if st.BackpressuredNanos.Load() != 0 {
			t.Fatal("backpressure counted before the send completed")
		}
		time.Sleep(3 * time.Second)
		if b := <-c.Chans[0][0]; !slices.Equal(b.records, []int{1}) {
			t.Fatalf("channel held %v, want [1]", b.records)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		if bp := time.Duration(st.BackpressuredNanos.Load()); bp != 3*time.Second {
			t.Fatalf("BackpressuredNanos = %v after a send blocked for 3s", bp)
		}
		if got := records(drain(c.Chans[0][0])); !slices.Equal(got, []int{2}) {
			t.Fatalf("channel holds %v after the blocked send, want [2]", got)
		}
	})
}

// TestWriterCancelled: a sender blocked on a full channel returns once the
// attempt is cancelled, and so do control events.
func TestWriterCancelled(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		c := NewChannels[int](1, 1, 1)
		done := make(chan struct{})
		w := NewWriter(c, 0, Forward, nil, 1, done, &TaskStats{}, nil)
		if err := w.Emit(1); err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 2)
		go func() {
			errc <- w.Emit(2)
			errc <- w.Broadcast(Barrier{ID: 1})
		}()
		synctest.Wait() // blocked on the full channel
		close(done)
		for range 2 {
			if err := <-errc; !errors.Is(err, errCancelled) {
				t.Fatalf("blocked writer returned %v, want errCancelled", err)
			}
		}
	})
}

// TestInputChannelForwardsInOrder: a reader goroutine hands data, barriers
// and the end to the mailbox in channel order, and process delivers a data
// batch's records to the input's Emitter.
func TestInputChannelForwardsInOrder(t *testing.T) {
	t.Parallel()
	c := NewChannels[int](1, 1, 8)
	w, _ := newTestWriter(c, 0, Forward, nil, 2)
	for i := range 3 {
		if err := w.Emit(i); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Broadcast(Barrier{ID: 3}); err != nil {
		t.Fatal(err)
	}
	if err := w.End(); err != nil {
		t.Fatal(err)
	}
	var got []int
	stats := &TaskStats{}
	in := NewInputs(c, 0, Forward, Emitter[int](emitFunc(func(v int) error { got = append(got, v); return nil })), stats, nil)[0]
	mailbox := make(chan mail, 8)
	gate := make(chan struct{}, 1)
	gate <- struct{}{}                                   // let the reader past the barrier
	in.run(context.Background(), 4, mailbox, gate, true) // returns after the end
	close(mailbox)
	var kinds []mailKind
	for m := range mailbox {
		if m.channel != 4 {
			t.Fatalf("mail for channel %d, want 4", m.channel)
		}
		kinds = append(kinds, m.kind)
		if m.kind == mailData {
			if err := in.process(m.data); err != nil {
				t.Fatal(err)
			}
		}
		if m.kind == mailBarrier && m.barrier.ID != 3 {
			t.Fatalf("barrier %d, want 3", m.barrier.ID)
		}
	}
	if !slices.Equal(kinds, []mailKind{mailData, mailData, mailBarrier, mailEnd}) || !slices.Equal(got, []int{0, 1, 2}) {
		t.Fatalf("mail kinds %v, records %v", kinds, got)
	}
	if n := stats.RecordsIn.Load(); n != 3 {
		t.Fatalf("RecordsIn %d, want 3", n)
	}
}

type emitFunc func(int) error

func (f emitFunc) Emit(v int) error { return f(v) }
