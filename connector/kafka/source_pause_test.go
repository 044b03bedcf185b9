package kafka

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// recEmitter collects what a reader emits.
type recEmitter struct{ got []Record }

func (e *recEmitter) Emit(r Record) error { e.got = append(e.got, r); return nil }

// TestReaderPauseHoldsFetchedRecords: a reader has fetched records of two
// partitions, emitted a few, and partition 1 is paused. Its batches
// already taken wait in the reader, franz-go stops fetching it (records
// produced after the pause are not fetched), nothing of it is emitted
// while paused, and a snapshot keeps its position at the
// first record not emitted. After the resume it goes on from exactly
// there: every record once, in offset order.
func TestReaderPauseHoldsFetchedRecords(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "t"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const n = 50
	produce := func(from int) {
		var recs []*kgo.Record
		for p := range int32(2) {
			for i := from; i < from+n; i++ {
				recs = append(recs, &kgo.Record{Topic: "t", Partition: p, Value: fmt.Appendf(nil, "%d/%d", p, i)})
			}
		}
		if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	produce(0)
	src, err := NewSource(SourceConfig[Record]{
		Brokers: c.ListenAddrs(), Topics: []string{"t"}, Deserializer: Records(), MaxPollRecords: 30,
		DiscoveryInterval: -1, RetryBackoff: 20 * time.Millisecond, RetryTimeout: 10 * time.Second,
		ClientOpts: []kgo.Opt{kgo.FetchMaxWait(50 * time.Millisecond)},
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := newReader(src, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(context.Background())
	ctx := context.Background()
	if err := r.AddSplits(ctx, []sluice.Split{{ID: SplitID("t", 0)}, {ID: SplitID("t", 1)}}); err != nil {
		t.Fatal(err)
	}
	out := &recEmitter{}
	count := func(p int32) (k int) {
		for _, rec := range out.got {
			if rec.Partition == p {
				k++
			}
		}
		return k
	}
	// pollUntil polls, waiting on Available, until cond holds.
	pollUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			st, err := r.Poll(ctx, out)
			if err != nil {
				t.Fatal(err)
			}
			if st == sluice.NothingAvailable {
				select {
				case <-r.Available():
				case <-time.After(100 * time.Millisecond): // re-check the condition
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s: %d and %d records", what, count(0), count(1))
			}
		}
	}
	// Wait until the fetch goroutine handed over records of partition 1
	// (the handoff holds up to 4·MaxPollRecords, more than both), then poll
	// once: it takes every handed-over batch and emits 30 records.
	handed := func() bool {
		r.hand.mu.Lock()
		defer r.hand.mu.Unlock()
		for _, c := range r.hand.chunks {
			for _, b := range c {
				if b.part == 1 {
					return true
				}
			}
		}
		return false
	}
	deadline := time.Now().Add(20 * time.Second)
	for !handed() {
		if time.Now().After(deadline) {
			t.Fatal("no records of partition 1 fetched")
		}
		select {
		case <-r.Available():
		case <-time.After(10 * time.Millisecond):
		}
	}
	if _, err := r.Poll(ctx, out); err != nil {
		t.Fatal(err)
	}
	pending1 := 0
	for _, b := range r.pending {
		if b.part == 1 {
			pending1 += len(b.recs)
		}
	}
	if pending1 == 0 {
		t.Fatalf("no record of partition 1 waiting in the reader after one poll (emitted %d and %d)", count(0), count(1))
	}
	r.PauseSplits([]string{SplitID("t", 1)})
	emitted1 := count(1)
	held := 0
	for _, b := range r.parts[partitionID{"t", 1}].held {
		held += len(b.recs)
	}
	if held != pending1 {
		t.Fatalf("paused partition 1 holds %d records, want the %d taken but not emitted", held, pending1)
	}
	produce(n)
	pollUntil("partition 0 to the end", func() bool { return count(0) == 2*n })
	if k := count(1); k != emitted1 {
		t.Fatalf("partition 1 emitted %d records while paused (from %d)", k-emitted1, emitted1)
	}
	// franz-go fetched nothing of partition 1 while it was paused (its
	// second 50 records were produced after the pause, and partition 0's
	// were fetched since): the reader holds only what it had taken.
	for _, b := range r.parts[partitionID{"t", 1}].held {
		for _, rec := range b.recs {
			var p, i int
			if _, err := fmt.Sscanf(string(rec.Value), "%d/%d", &p, &i); err != nil || i >= n {
				t.Fatalf("paused partition 1 fetched %q", rec.Value)
			}
		}
	}
	splits, err := r.SnapshotSplits(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range splits {
		pos, err := decodeState(s.State)
		if err != nil {
			t.Fatal(err)
		}
		// Nothing read yet is "at earliest"; else the offset after the
		// last record emitted.
		if s.ID == SplitID("t", 1) && (pos.earliest != (emitted1 == 0) || !pos.earliest && pos.next != int64(emitted1)) {
			t.Fatalf("snapshot of paused partition 1 at %+v, want offset %d", pos, emitted1)
		}
	}
	if st := r.status(); !st[1].Paused || st[0].Paused {
		t.Fatalf("status %+v: want partition 1 paused, 0 not", st)
	}
	r.ResumeSplits([]string{SplitID("t", 1)})
	pollUntil("partition 1 to the end", func() bool { return count(1) >= 2*n })
	next := map[int32]int{}
	for _, rec := range out.got {
		if want := fmt.Sprintf("%d/%d", rec.Partition, next[rec.Partition]); string(rec.Value) != want {
			t.Fatalf("got %q, want %q", rec.Value, want)
		}
		next[rec.Partition]++
	}
	if next[0] != 2*n || next[1] != 2*n {
		t.Fatalf("emitted %v records per partition, want %d each", next, 2*n)
	}
}
