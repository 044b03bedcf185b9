package runtime

import (
	"errors"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/codec"
)

// TestUnalignedRescaleRefused: a checkpoint whose subtasks stored records
// in flight (channel state) restores only at the parallelism it was taken
// at; one without channel state rescales as ever (docs/design.md §3
// "Unaligned checkpoints").
func TestUnalignedRescaleRefused(t *testing.T) {
	t.Parallel()
	meta := func(channels bool) *restorePoint {
		sub := &checkpoint.SubtaskState{Subtask: 1}
		if channels {
			sub.Channels = []checkpoint.ChannelState{{Input: 0, Inputs: 2, Records: 1, Data: []byte{0, 1}}}
		}
		return &restorePoint{meta: &checkpoint.Metadata{CheckpointID: 7, Operators: map[string]*checkpoint.OperatorState{
			"src":   {Parallelism: 2, Subtasks: []*checkpoint.SubtaskState{{Subtask: 0}, {Subtask: 1}}},
			"count": {Parallelism: 2, Subtasks: []*checkpoint.SubtaskState{{Subtask: 0}, sub}},
		}}}
	}
	plan := func(srcPar, countPar int) *Plan {
		return &Plan{Vertices: []*Vertex{{UIDs: []string{"src"}, Parallelism: srcPar}, {UIDs: []string{"count"}, Parallelism: countPar}}}
	}
	if err := checkChannelRescale(plan(2, 2), meta(true)); err != nil {
		t.Fatalf("same parallelism: %v", err)
	}
	for _, p := range []*Plan{plan(2, 3), plan(1, 2)} {
		err := checkChannelRescale(p, meta(true))
		if !errors.Is(err, ErrUnalignedRescale) || !strings.Contains(err.Error(), "checkpoint 7") || !strings.Contains(err.Error(), "count/1") {
			t.Fatalf("rescale of a checkpoint with channel state: %v, want ErrUnalignedRescale naming the checkpoint and the subtask", err)
		}
	}
	if err := checkChannelRescale(plan(1, 3), meta(false)); err != nil {
		t.Fatalf("no channel state: %v, want a rescale allowed", err)
	}
}

// TestChannelStateRoundTrip: records with and without timestamps encode
// into channel state and replay, in order, with their timestamps.
func TestChannelStateRoundTrip(t *testing.T) {
	t.Parallel()
	c := NewChannels[int64](1, 1, 4)
	var got []int64
	var gotTS []int64
	tm := NewTime()
	in := emitterFunc[int64](func(v int64) error { got = append(got, v); gotTS = append(gotTS, tm.TS); return nil })
	ins := WithCodec(NewInputs[int64](c, 0, Rebalance, in, &TaskStats{}, tm), codec.Int64)
	cs := ins[0].(channelStater)
	b1 := &batch[int64]{kind: kindData, records: []int64{1, -2, 3}}
	b2 := &batch[int64]{kind: kindData, records: []int64{4, 5}, ts: []int64{100, NoTimestamp}}
	data, n1 := cs.appendState(nil, b1)
	data, n2 := cs.appendState(data, b2)
	if err := cs.replayState(data, n1+n2); err != nil {
		t.Fatal(err)
	}
	if want := []int64{1, -2, 3, 4, 5}; !equal(got, want) {
		t.Fatalf("replayed %v, want %v", got, want)
	}
	if want := []int64{NoTimestamp, NoTimestamp, NoTimestamp, 100, NoTimestamp}; !equal(gotTS, want) {
		t.Fatalf("timestamps %v, want %v", gotTS, want)
	}
	if err := cs.replayState(data[:len(data)-1], n1+n2); err == nil {
		t.Fatal("truncated channel state replayed without an error")
	}
}

type emitterFunc[T any] func(T) error

func (f emitterFunc[T]) Emit(v T) error { return f(v) }

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
