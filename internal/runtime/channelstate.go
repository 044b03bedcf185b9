package runtime

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/codec"
)

// Unaligned checkpoints (docs/design.md §3 "Unaligned checkpoints").
//
// The aligner decides; this file carries out its capture actions on the
// task. While a checkpoint's channel state is captured the task reads its
// mailbox ahead without processing anything: a data mail of a captured
// input is encoded into that input's channel state and held, every other
// mail is held, and only the events that end the capture (the checkpoint's
// barrier or the end of a captured input, a stale barrier, an abort) reach
// the aligner at once. Because nothing is processed, the capture takes the
// time to read what is queued, not to process it; and because the held
// mails are handled afterwards in mailbox order, the records of the
// channel state are processed exactly once in this attempt, after the
// snapshot, and replayed exactly once after a restore from it.

// unalignedState is a task's part of unaligned checkpoints.
type unalignedState struct {
	// capt is the capture in progress, nil if none.
	capt *capture
	// held are the mails read ahead during the capture; queued are mails
	// taken from the mailbox and not handled yet (the head of the mailbox:
	// held mails go back there when the capture ends).
	held, queued []mail
	// timeouts are the announced aligned timeouts not yet fired.
	timeouts []announced
	// snap is the synchronous snapshot of the checkpoint being captured.
	snap    takenSnapshot
	barrier Barrier
	// restored is the channel state of the restored checkpoint, replayed
	// before any new input.
	restored []checkpoint.ChannelState
}

// announced is an aligned checkpoint that goes unaligned at at.
type announced struct {
	b  Barrier
	at time.Time
}

// capture is the channel state of one checkpoint being captured.
type capture struct {
	id      int64
	on      []bool
	data    [][]byte
	records []int64
}

// next returns the oldest mail taken from the mailbox and not handled yet.
func (u *unalignedState) next() (mail, bool) {
	if len(u.queued) == 0 {
		return mail{}, false
	}
	m := u.queued[0]
	u.queued[0] = mail{}
	u.queued = u.queued[1:]
	return m, true
}

// nextTimeout returns the earliest announced aligned timeout.
func (u *unalignedState) nextTimeout() (time.Time, bool) {
	var at time.Time
	for _, a := range u.timeouts {
		if at.IsZero() || a.at.Before(at) {
			at = a.at
		}
	}
	return at, !at.IsZero()
}

// channelStater is implemented by input channels whose edge has a codec:
// they can encode a data mail's records as channel state and replay it.
type channelStater interface {
	appendState(dst []byte, data any) ([]byte, int64)
	replayState(data []byte, n int64) error
}

// codecInput is an input channel with its edge's codec.
type codecInput[T any] struct {
	*inputChannel[T]
	codec codec.Codec[T]
}

// WithCodec gives the input channels of an edge (from NewInputs) the
// codec of its records, which unaligned checkpoints need to store them as
// channel state.
func WithCodec[T any](ins []InputChannel, c codec.Codec[T]) []InputChannel {
	out := make([]InputChannel, len(ins))
	for i, in := range ins {
		if ic, ok := in.(*inputChannel[T]); ok && c != nil {
			out[i] = &codecInput[T]{inputChannel: ic, codec: c}
		} else {
			out[i] = in
		}
	}
	return out
}

// appendState appends the records of a data mail's batch, each as a
// zig-zag varint timestamp and the record in the codec.
func (ci *codecInput[T]) appendState(dst []byte, data any) ([]byte, int64) {
	b := data.(*batch[T])
	for i, r := range b.records {
		ts := NoTimestamp
		if b.ts != nil && i < len(b.ts) {
			ts = b.ts[i]
		}
		dst = binary.AppendVarint(dst, ts)
		dst = ci.codec.Append(dst, r)
	}
	return dst, int64(len(b.records))
}

// replayState decodes n records and emits them to the input's operator,
// with their timestamps.
func (ci *codecInput[T]) replayState(data []byte, n int64) error {
	for k := int64(0); k < n; k++ {
		ts, m := binary.Varint(data)
		if m <= 0 {
			return fmt.Errorf("record %d: timestamp: %w", k, codec.ErrCorrupt)
		}
		data = data[m:]
		v, m2, err := ci.codec.Decode(data)
		if err != nil {
			return fmt.Errorf("record %d: %w", k, err)
		}
		data = data[m2:]
		ci.time.TS = ts
		if err := ci.in.Emit(v); err != nil {
			return err
		}
	}
	if len(data) != 0 {
		return fmt.Errorf("%d bytes after %d records: %w", len(data), n, codec.ErrCorrupt)
	}
	ci.stats.RecordsIn.Add(n)
	return nil
}

// onUnalignedCtl handles the job master's notice that checkpoint c.barrier
// runs unaligned: now, or once its aligned timeout at passed.
func (t *task) onUnalignedCtl(c taskCtl) error {
	if t.align == nil {
		return nil
	}
	if !c.at.IsZero() && c.at.After(t.job.clock.Now()) {
		t.unaligned.timeouts = append(t.unaligned.timeouts, announced{b: c.barrier, at: c.at})
		return nil
	}
	return t.unalignNow(c.barrier)
}

// unalignNow tells the aligner that checkpoint b goes unaligned. It may
// come while mails taken from the mailbox wait (queued) or are held by
// another capture: that capture is then abandoned (a newer checkpoint) or
// the notice changes nothing (the same or an older one), and the held mails
// go back to the head of the queue, which the new capture reads first.
func (t *task) unalignNow(b Barrier) error {
	b.Unaligned = true
	return t.applyAlign(t.align.Unaligned(b))
}

// alignedTimeouts switches the checkpoints whose aligned timeout passed.
func (t *task) alignedTimeouts(now time.Time) error {
	u := &t.unaligned
	for i := 0; i < len(u.timeouts); {
		a := u.timeouts[i]
		if a.at.After(now) {
			i++
			continue
		}
		u.timeouts = append(u.timeouts[:i], u.timeouts[i+1:]...)
		if err := t.unalignNow(a.b); err != nil {
			return err
		}
	}
	return nil
}

// emitUnaligned sends unaligned barrier b downstream right after its
// snapshot; the snapshot is written once its channel state is complete.
func (t *task) emitUnaligned(b Barrier, s takenSnapshot) error {
	for _, o := range t.chain.Outputs {
		if err := o.Broadcast(b); err != nil {
			releaseSnaps(s.snaps)
			return err
		}
	}
	t.unaligned.snap, t.unaligned.barrier = s, b
	n := len(t.chain.Inputs)
	t.unaligned.capt = &capture{id: b.ID, on: make([]bool, n), data: make([][]byte, n), records: make([]int64, n)}
	return nil
}

// applyCapture carries out the aligner's capture actions.
func (t *task) applyCapture(act alignAction) error {
	u := &t.unaligned
	c := u.capt
	if c == nil || c.id != act.ID {
		return fmt.Errorf("task %s/%d: %v without a capture of checkpoint %d in progress", t.id.Vertex, t.id.Subtask, act, act.ID)
	}
	switch act.Op {
	case alignCapture:
		if _, ok := t.chain.Inputs[act.Input].(channelStater); !ok {
			return fmt.Errorf("task %s/%d: unaligned checkpoint %d: input %d has no codec for its records (give the operator producing the edge sluice.WithCodec, or turn checkpoint.unaligned off)",
				t.id.Vertex, t.id.Subtask, act.ID, act.Input)
		}
		// Mails already taken from the mailbox are read first
		// (captureStep), so they are captured too.
		c.on[act.Input] = true
	case alignCaptured:
		c.on[act.Input] = false
	case alignComplete:
		s, b := u.snap, u.barrier
		var states []checkpoint.ChannelState
		for i, d := range c.data {
			if c.records[i] > 0 {
				states = append(states, checkpoint.ChannelState{Input: i, Inputs: len(c.data), Records: c.records[i], Data: d})
			}
		}
		if len(s.snaps) > 0 {
			s.snaps[0].snap.Channels = states
		}
		t.endCapture()
		t.job.writeSnapshot(t.id, b, s.snaps, s.align, s.sync)
	case alignDiscard:
		releaseSnaps(u.snap.snaps)
		t.endCapture()
	}
	return nil
}

// captureData adds m's records to the channel state if m is a data mail of
// a captured input.
func (t *task) captureData(m mail) {
	c := t.unaligned.capt
	if m.kind != mailData || !c.on[m.channel] {
		return
	}
	cs := t.chain.Inputs[m.channel].(channelStater)
	var n int64
	c.data[m.channel], n = cs.appendState(c.data[m.channel], m.data)
	c.records[m.channel] += n
}

// endCapture ends the capture: the mails read ahead go back to the head of
// the mailbox, in order.
func (t *task) endCapture() {
	u := &t.unaligned
	u.capt = nil
	u.snap, u.barrier = takenSnapshot{}, Barrier{}
	if len(u.held) > 0 {
		u.queued = append(u.held, u.queued...)
		u.held = nil
	}
}

// captureStep reads one mail ahead during a capture (docs/design.md §3
// "Unaligned checkpoints"): it is encoded if it belongs to a captured
// input and held, unless it ends the capture of its input. With nothing to
// read, it processes the oldest held mail: the producers that the capture
// waits for may need the credit that processing gives back (credit.go).
func (t *task) captureStep(ctx context.Context) error {
	u := &t.unaligned
	m, ok := u.next()
	if !ok {
		select {
		case m = <-t.mailbox:
			ok = true
		default:
		}
	}
	if !ok && len(u.held) > 0 && processable(u.held[0].kind) {
		if err := t.wakeIfDue(); err != nil {
			return err
		}
		if t.unaligned.capt == nil || len(u.held) == 0 {
			return nil // a timer's notice ended the capture
		}
		h := u.held[0]
		u.held[0] = mail{}
		u.held = u.held[1:]
		return t.handleMail(h)
	}
	if !ok {
		wake, stop, err := t.wakeTimer()
		if err != nil {
			return err
		}
		if u.capt == nil || len(u.queued) > 0 || len(u.held) > 0 && processable(u.held[0].kind) {
			stop()
			return nil // a wake-up due changed the capture: look again
		}
		t.split.idle()
		select {
		case c := <-t.ctl:
			t.split.busy()
			stop()
			_, err := t.handleCtl(c)
			return err
		case m = <-t.mailbox:
			t.split.busy()
			stop()
		case <-wake:
			t.split.busy()
			return t.onWake()
		case <-ctx.Done():
			t.split.busy()
			stop()
			return ctx.Err()
		}
	}
	c := u.capt
	switch {
	case m.kind == mailData:
		t.captureData(m)
		u.held = append(u.held, m)
	case m.kind == mailBarrier && c.on[m.channel] && m.barrier.ID <= t.align.maxStarted:
		// The checkpoint's barrier, or a stale one: at once.
		return t.applyAlign(t.align.Barrier(m.channel, m.barrier))
	case m.kind == mailEnd && c.on[m.channel]:
		return t.applyAlign(t.align.End(m.channel))
	default:
		// A newer barrier, a watermark, a status: in order, afterwards.
		u.held = append(u.held, m)
	}
	return nil
}

// processable says whether a held mail may be handled while the capture
// goes on: records, watermarks and statuses may; a barrier or an end must
// wait until the capture ended (it belongs to the aligner, in order).
func processable(k mailKind) bool {
	return k == mailData || k == mailWatermark || k == mailStatus
}

// wakeIfDue does what a wake-up would, if one is due: a task busy with
// mails it already took from the mailbox does not pass through the wait
// that arms its timers.
func (t *task) wakeIfDue() error {
	if at, ok := t.nextWake(); ok && !at.After(t.job.clock.Now()) {
		return t.onWake()
	}
	return nil
}

func releaseSnaps(snaps []pendingSnap) {
	for _, p := range snaps {
		if p.snap.Keyed != nil {
			p.snap.Keyed.Release()
		}
	}
}

// replayChannels replays the restored channel state into the chain,
// before the task reads any input.
func (t *task) replayChannels() error {
	var n int64
	for _, cs := range t.unaligned.restored {
		if cs.Inputs != len(t.chain.Inputs) || cs.Input < 0 || cs.Input >= len(t.chain.Inputs) {
			return fmt.Errorf("task %s/%d: restored channel state of input %d of %d, but the task has %d inputs", t.id.Vertex, t.id.Subtask, cs.Input, cs.Inputs, len(t.chain.Inputs))
		}
		st, ok := t.chain.Inputs[cs.Input].(channelStater)
		if !ok {
			return fmt.Errorf("task %s/%d: restored channel state of input %d, which has no codec (give the operator producing the edge sluice.WithCodec)", t.id.Vertex, t.id.Subtask, cs.Input)
		}
		if err := st.replayState(cs.Data, cs.Records); err != nil {
			return fmt.Errorf("task %s/%d: replay channel state of input %d: %w", t.id.Vertex, t.id.Subtask, cs.Input, err)
		}
		n += cs.Records
	}
	if n > 0 {
		t.job.j.log.Info("replayed the records in flight at the restored unaligned checkpoint", "task", t.id.Vertex, "subtask", t.id.Subtask, "records", n)
	}
	t.unaligned.restored = nil
	return t.afterWork()
}
