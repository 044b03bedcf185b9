package runtime

// Barrier alignment (docs/design.md §3 step 3, architecture.md "How a barrier
// travels"): a task with several input channels, driven through real
// writers, input reader goroutines and its mailbox, with a fake attempt
// whose coordinator events the test reads. The decisions themselves are
// the aligner's, scripted in testdata/aligner; these tests check that the
// task carries them out. The goroutine tests run in synctest bubbles: their
// waits are bounded in fake time, so a hang fails at once instead of after
// 30 s, and the machine's load cannot make them time out.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/clock"
	"github.com/sluicehq/sluice/internal/coordinator"
)

// recorder is the task's only operator: it logs every record it gets and
// every lifecycle call, in the order the task goroutine makes them.
type recorder struct {
	mu      sync.Mutex
	log     []string
	changed chan struct{}
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{})} }

func (r *recorder) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = append(r.log, s)
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *recorder) Emit(v int) error { r.add(fmt.Sprint(v)); return nil }

func (r *recorder) Open(context.Context, *OperatorContext) error { return nil }
func (r *recorder) Snapshot(_ context.Context, b Barrier) (*OperatorSnapshot, error) {
	r.add(fmt.Sprintf("snapshot %d", b.ID))
	return nil, nil
}
func (r *recorder) NotifyComplete(context.Context, int64) error { return nil }
func (r *recorder) NotifyAborted(_ context.Context, id int64) error {
	r.add(fmt.Sprintf("aborted %d", id))
	return nil
}
func (r *recorder) EndInput(context.Context) error { r.add("end input"); return nil }
func (r *recorder) Close(context.Context) error    { return nil }

func (r *recorder) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.log)
}

// waitFor waits until the log holds entry.
func (r *recorder) waitFor(t *testing.T, entry string) []string {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		log, ch := slices.Clone(r.log), r.changed
		r.mu.Unlock()
		if slices.Contains(log, entry) {
			return log
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %q; log %v", entry, log)
		}
	}
}

// before fails unless a comes before b in log.
func before(t *testing.T, log []string, a, b string) {
	t.Helper()
	ia, ib := slices.Index(log, a), slices.Index(log, b)
	if ia < 0 || ib < 0 || ia > ib {
		t.Fatalf("want %q before %q in %v", a, b, log)
	}
}

// alignHarness is one task with n input channels, one producer writer per
// channel, and the attempt around it.
type alignHarness struct {
	a   *attempt
	tk  *task
	w   []*Writer[int]
	rec *recorder
}

func newAlignHarness(t *testing.T, n int, mode checkpoint.Mode) *alignHarness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	plan := &Plan{JobName: "align", MaxParallelism: 128, BatchSize: 1, ChannelCapacity: 4}
	a := &attempt{
		plan: plan, cfg: checkpoint.Config{Mode: mode}.WithDefaults(), clock: clock.NewFake(time.Unix(0, 0)), ctx: ctx,
		byID:    map[checkpoint.TaskID]*task{},
		events:  make(chan coordinator.Event, 64),
		errs:    make(chan error, 8),
		exhaust: make(chan checkpoint.TaskID, 8),
		endedCh: make(chan checkpoint.TaskID, 8),
	}
	c := NewChannels[int](n, 1, plan.ChannelCapacity)
	rec := newRecorder()
	stats := &TaskStats{}
	h := &alignHarness{a: a, rec: rec}
	for up := range n {
		h.w = append(h.w, NewWriter(c, up, Rebalance, nil, plan.BatchSize, ctx.Done(), &TaskStats{}, nil))
	}
	h.tk = &task{
		id:          checkpoint.TaskID{Vertex: "rec", Subtask: 0},
		chain:       &Chain{Ops: []OpInstance{{UID: "rec", Name: "rec", Op: rec}}, Inputs: NewInputs(c, 0, Rebalance, Emitter[int](rec), stats, nil)},
		job:         a,
		ctl:         make(chan taskCtl, 8),
		mailbox:     make(chan mail, 2*n+4),
		stats:       stats,
		parallelism: 1,
	}
	a.tasks = []*task{h.tk}
	a.byID[h.tk.id] = h.tk
	errc := make(chan error, 1)
	go func() { errc <- h.tk.run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-errc
		a.wg.Wait()
	})
	return h
}

// send writes records (ints) and barriers (Barrier) to channel ch, in
// order.
func (h *alignHarness) send(t *testing.T, ch int, items ...any) {
	t.Helper()
	for _, it := range items {
		var err error
		switch it := it.(type) {
		case int:
			err = h.w[ch].Emit(it)
		case Barrier:
			err = h.w[ch].Broadcast(it)
		case string: // "end"
			err = h.w[ch].End()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// event returns the next coordinator event of the task.
func (h *alignHarness) event(t *testing.T) coordinator.Event {
	t.Helper()
	select {
	case ev := <-h.a.events:
		return ev
	case <-time.After(waitTimeout):
		t.Fatal("no coordinator event")
		return nil
	}
}

// expectAck fails unless the next event acks checkpoint id.
func (h *alignHarness) expectAck(t *testing.T, id int64) {
	t.Helper()
	switch ev := h.event(t).(type) {
	case coordinator.AckEvent:
		if ev.CheckpointID != id {
			t.Fatalf("ack of checkpoint %d, want %d", ev.CheckpointID, id)
		}
	default:
		t.Fatalf("event %#v, want the ack of checkpoint %d", ev, id)
	}
}

// noEvent fails if an event is pending now. Events are sent in order by the
// task goroutine (declines) and its snapshot writers (acks), so after an
// expected event has been read, an unexpected earlier one would already be
// there.
func (h *alignHarness) noEvent(t *testing.T) {
	t.Helper()
	select {
	case ev := <-h.a.events:
		t.Fatalf("unexpected event %#v", ev)
	default:
	}
}

// TestAlignmentExactlyOnce: once barrier n arrived on channel A, records
// sent on A after it are not processed until n arrived on every channel and
// the snapshot was taken; records on the other channel keep flowing
// meanwhile (docs/design.md §3 step 3).
func TestAlignmentExactlyOnce(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := newAlignHarness(t, 2, checkpoint.ExactlyOnce)
		h.send(t, 0, 1, Barrier{ID: 1}, 2, 3)
		h.send(t, 1, 10)
		// 10 was sent after 2 and is processed while A is blocked. Once
		// every goroutine of the bubble is blocked, nothing more can happen
		// until the test acts: the log is exactly what alignment allows.
		synctest.Wait()
		// (The two channels' readers race: either order.)
		if log := h.rec.snapshot(); !slices.Equal(slices.Sorted(slices.Values(log)), []string{"1", "10"}) {
			t.Fatalf("log %v, want 1 and 10: record 2, after barrier 1 on channel 0, waits for the barrier on channel 1", log)
		}
		h.send(t, 1, 11, Barrier{ID: 1}, 12)
		h.expectAck(t, 1)
		h.rec.waitFor(t, "3")
		log := h.rec.waitFor(t, "12")
		for _, r := range []string{"1", "10", "11"} {
			before(t, log, r, "snapshot 1")
		}
		for _, r := range []string{"2", "3", "12"} {
			before(t, log, "snapshot 1", r)
		}
		if n := strings.Count(strings.Join(log, ","), "snapshot"); n != 1 {
			t.Fatalf("%d snapshots: %v", n, log)
		}
		h.noEvent(t)
	})
}

// TestAlignmentAtLeastOnce: without alignment, records after barrier n on
// one channel may be processed before n arrived on the others (and so be
// replayed after a restore: duplicates, never loss).
func TestAlignmentAtLeastOnce(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := newAlignHarness(t, 2, checkpoint.AtLeastOnce)
		h.send(t, 0, 1, Barrier{ID: 1}, 2)
		// Not blocked: 2 is processed although channel 1 has no barrier yet.
		h.rec.waitFor(t, "2")
		h.send(t, 1, 10, Barrier{ID: 1})
		h.expectAck(t, 1)
		log := h.rec.waitFor(t, "snapshot 1")
		before(t, log, "2", "snapshot 1")
		before(t, log, "10", "snapshot 1")
	})
}

// TestEndedChannelCompletesAlignment: a channel that ended counts as
// aligned, so a barrier on the remaining ones completes the checkpoint; once
// every channel ended the operators' EndInput runs and the task reports its
// end.
func TestEndedChannelCompletesAlignment(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := newAlignHarness(t, 3, checkpoint.ExactlyOnce)
		h.send(t, 2, 9, "end")
		h.rec.waitFor(t, "9")
		h.send(t, 0, Barrier{ID: 1}, "end")
		h.send(t, 1, Barrier{ID: 1}, "end")
		h.expectAck(t, 1)
		log := h.rec.waitFor(t, "end input")
		before(t, log, "snapshot 1", "end input")
		select {
		case id := <-h.a.endedCh:
			if id != h.tk.id {
				t.Fatalf("ended task %v", id)
			}
		case <-time.After(waitTimeout):
			t.Fatal("task did not report its end")
		}
		h.noEvent(t)
	})
}

// TestSingleInputBarrier: with one input there is nothing to align; the
// barrier snapshots at once and the channel goes on.
func TestSingleInputBarrier(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := newAlignHarness(t, 1, checkpoint.ExactlyOnce)
		h.send(t, 0, 1, Barrier{ID: 1}, 2, Barrier{ID: 2}, 3)
		// Each snapshot is written (and acked) by a goroutine of its own: the
		// acks may come in either order.
		acked := map[int64]bool{}
		for range 2 {
			if ev, ok := h.event(t).(coordinator.AckEvent); ok {
				acked[ev.CheckpointID] = true
			}
		}
		if !acked[1] || !acked[2] {
			t.Fatalf("acked %v, want checkpoints 1 and 2", acked)
		}
		log := h.rec.waitFor(t, "3")
		if want := []string{"1", "snapshot 1", "2", "snapshot 2", "3"}; !slices.Equal(log, want) {
			t.Fatalf("log %v, want %v", log, want)
		}
	})
}

// scripted returns a task set up as runInputs sets it up, but with no input
// goroutines: the test hands it mail and control directly, in an order it
// chooses, on its own goroutine. A channel's gate then holds a token exactly
// when the task released the channel's reader (which, in exactly-once mode,
// waits on the gate after forwarding a barrier). Used where the order in
// which the mail of two channels reaches the task matters: with reader
// goroutines that order is not the test's to choose.
func scripted(t *testing.T, n int) *alignHarness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	plan := &Plan{JobName: "align", MaxParallelism: 128, BatchSize: 1, ChannelCapacity: 4}
	a := &attempt{
		plan: plan, cfg: checkpoint.Config{}.WithDefaults(), clock: clock.NewFake(time.Unix(0, 0)), ctx: ctx,
		byID:   map[checkpoint.TaskID]*task{},
		events: make(chan coordinator.Event, 64),
	}
	c := NewChannels[int](n, 1, plan.ChannelCapacity)
	rec := newRecorder()
	stats := &TaskStats{}
	h := &alignHarness{a: a, rec: rec}
	h.tk = &task{
		id:    checkpoint.TaskID{Vertex: "rec", Subtask: 0},
		chain: &Chain{Ops: []OpInstance{{UID: "rec", Name: "rec", Op: rec}}, Inputs: NewInputs(c, 0, Rebalance, Emitter[int](rec), stats, nil)},
		job:   a, stats: stats, parallelism: 1,
		align: newAligner(n, true), gates: make([]chan struct{}, n),
	}
	for i := range h.tk.gates {
		h.tk.gates[i] = make(chan struct{}, 1)
	}
	a.tasks = []*task{h.tk}
	a.byID[h.tk.id] = h.tk
	t.Cleanup(func() {
		cancel()
		a.wg.Wait()
	})
	return h
}

// barrier hands the task barrier id from channel ch.
func (h *alignHarness) barrier(t *testing.T, ch int, id int64) {
	t.Helper()
	if err := h.tk.handleMail(mail{kind: mailBarrier, channel: ch, barrier: Barrier{ID: id}}); err != nil {
		t.Fatal(err)
	}
}

// record hands the task a batch of one record from channel ch.
func (h *alignHarness) record(t *testing.T, ch, v int) {
	t.Helper()
	if err := h.tk.handleMail(mail{kind: mailData, channel: ch, data: &batch[int]{records: []int{v}}}); err != nil {
		t.Fatal(err)
	}
}

// released reports whether the task released channel ch's reader since the
// last call, and takes the release.
func (h *alignHarness) released(ch int) bool {
	select {
	case <-h.tk.gates[ch]:
		return true
	default:
		return false
	}
}

// TestBarrierOvertakingDeclinesOlder: a barrier newer than the one being
// aligned abandons the older checkpoint: the task declines it, releases the
// blocked channels and aligns the newer one.
func TestBarrierOvertakingDeclinesOlder(t *testing.T) {
	t.Parallel()
	h := scripted(t, 2)
	h.barrier(t, 0, 1)
	if h.released(0) {
		t.Fatal("channel 0 released while aligning checkpoint 1")
	}
	// Channel 1 never carries barrier 1 (its producer declined it).
	h.barrier(t, 1, 2)
	switch ev := h.event(t).(type) {
	case coordinator.DeclineEvent:
		if ev.CheckpointID != 1 || !strings.Contains(ev.Err.Error(), "overtook") {
			t.Fatalf("decline %d: %v; want checkpoint 1 declined as overtaken", ev.CheckpointID, ev.Err)
		}
	default:
		t.Fatalf("event %#v, want the decline of checkpoint 1", ev)
	}
	if !h.released(0) || h.released(1) {
		t.Fatal("want channel 0 released (checkpoint 1 abandoned) and channel 1 blocked (aligning 2)")
	}
	h.record(t, 0, 5)
	h.barrier(t, 0, 2)
	h.expectAck(t, 2)
	if !h.released(0) || !h.released(1) {
		t.Fatal("channels not released after checkpoint 2 aligned")
	}
	if log, want := h.rec.snapshot(), []string{"5", "snapshot 2"}; !slices.Equal(log, want) {
		t.Fatalf("log %v, want %v", log, want)
	}
	h.noEvent(t)
}

// TestStaleBarrierIgnored: a barrier older than the one being aligned only
// releases its channel: no snapshot, no decline, and the alignment of the
// newer one goes on.
func TestStaleBarrierIgnored(t *testing.T) {
	t.Parallel()
	h := scripted(t, 2)
	h.barrier(t, 1, 2)
	h.barrier(t, 0, 1)
	if !h.released(0) || h.released(1) {
		t.Fatal("want channel 0 released past the stale barrier 1 and channel 1 still blocked")
	}
	h.record(t, 0, 5)
	h.barrier(t, 0, 2)
	h.expectAck(t, 2)
	if log, want := h.rec.snapshot(), []string{"5", "snapshot 2"}; !slices.Equal(log, want) {
		t.Fatalf("log %v, want %v", log, want)
	}
	// A barrier of checkpoint 2 again (say, from a channel that the task
	// counted as ended) is stale too.
	h.released(0)
	h.released(1)
	h.barrier(t, 1, 2)
	if !h.released(1) {
		t.Fatal("stale barrier 2 blocked its channel")
	}
	h.noEvent(t)
}

// TestAbortedCheckpointReleasesAlignment: "checkpoint n aborted" from the
// job master ends the alignment of n (nothing stays blocked for a
// checkpoint that cannot complete), and n's late barriers are then stale.
func TestAbortedCheckpointReleasesAlignment(t *testing.T) {
	t.Parallel()
	h := scripted(t, 2)
	h.barrier(t, 0, 3)
	if _, err := h.tk.handleCtl(taskCtl{kind: ctlAborted, id: 3}); err != nil {
		t.Fatal(err)
	}
	if !h.released(0) {
		t.Fatal("channel 0 still blocked for aborted checkpoint 3")
	}
	h.barrier(t, 1, 3)
	if !h.released(1) {
		t.Fatal("late barrier of aborted checkpoint 3 blocked its channel")
	}
	// The next checkpoint aligns normally.
	h.barrier(t, 0, 4)
	h.barrier(t, 1, 4)
	h.expectAck(t, 4)
	if log, want := h.rec.snapshot(), []string{"aborted 3", "snapshot 4"}; !slices.Equal(log, want) {
		t.Fatalf("log %v, want %v", log, want)
	}
	h.noEvent(t)
}

// TestAbortOfNewerCheckpointKeepsAlignment: "checkpoint m aborted" for an
// m newer than the checkpoint n being aligned must not abandon n: n's
// barriers are already in flight on every channel and n can complete. (With
// MaxConcurrent > 1, m can be declined by another task while this one still
// aligns n.)
func TestAbortOfNewerCheckpointKeepsAlignment(t *testing.T) {
	t.Parallel()
	h := scripted(t, 2)
	h.barrier(t, 0, 5)
	if _, err := h.tk.handleCtl(taskCtl{kind: ctlAborted, id: 6}); err != nil {
		t.Fatal(err)
	}
	if h.released(0) {
		t.Fatal("abort of checkpoint 6 released the alignment of 5")
	}
	h.barrier(t, 1, 5)
	h.expectAck(t, 5)
}

// TestBarrierOfAbortedCheckpointNotAligned: a barrier of a checkpoint that
// the job master already reported aborted must not start an alignment that
// blocks channels for a checkpoint known to be dead (Flink remembers aborted
// ids for this). The abort notice can overtake the barrier: control mail and
// data travel separately.
func TestBarrierOfAbortedCheckpointNotAligned(t *testing.T) {
	t.Parallel()
	h := scripted(t, 2)
	if _, err := h.tk.handleCtl(taskCtl{kind: ctlAborted, id: 3}); err != nil {
		t.Fatal(err)
	}
	h.barrier(t, 0, 3)
	if !h.released(0) {
		t.Fatal("barrier of aborted checkpoint 3 blocked its channel")
	}
}
