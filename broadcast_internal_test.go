package sluice

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/state"
)

var testLimits = NewBroadcastStateDescriptor("limits", codec.String, codec.Int64)

// TestBroadcastLookupAllocs: what a function does per record (look up the
// state, read it, iterate it) allocates nothing.
func TestBroadcastLookupAllocs(t *testing.T) {
	bs := newBroadcastStates([]AnyBroadcastStateDescriptor{NewBroadcastStateDescriptor("other", codec.String, codec.String), testLimits})
	var bc BroadcastContext[string]
	bc.states = bs
	w, err := BroadcastStateFor(&bc, testLimits)
	if err != nil {
		t.Fatal(err)
	}
	w.Put("big", 100)
	w.Put("huge", 500)
	var ro ReadOnlyContext[string]
	ro.states = bs
	var sum int64
	allocs := testing.AllocsPerRun(1000, func() {
		s, err := ReadOnlyBroadcastStateFor(&ro, testLimits)
		if err != nil {
			t.Fatal(err)
		}
		v, _ := s.Get("big")
		sum += v
		for _, v := range s.All() {
			sum += v
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per record, want 0", allocs)
	}
}

// TestBroadcastEntryRoundTrip: an entry restores the same content, in
// insertion order after removals; damaged entries are corrupt, not
// incompatible; another value codec is incompatible, naming both.
func TestBroadcastEntryRoundTrip(t *testing.T) {
	m := testLimits.newState().(*bcastMap[string, int64])
	for i, k := range []string{"a", "b", "c", "d"} {
		m.put(k, int64(i))
	}
	m.remove("b")
	m.put("a", 10)
	m.put("e", 4)
	entry := m.encode()
	r := testLimits.newState().(*bcastMap[string, int64])
	r.put("stale", 1)
	if err := r.restore(entry); err != nil {
		t.Fatal(err)
	}
	var got []string
	for k, v := range (ReadOnlyBroadcastState[string, int64]{m: r}).All() {
		got = append(got, k+"="+strconv.FormatInt(v, 10))
	}
	if strings.Join(got, " ") != "a=10 c=2 d=3 e=4" {
		t.Fatalf("restored %v, want a=10 c=2 d=3 e=4 (in insertion order)", got)
	}
	for cut := 1; cut < len(entry); cut++ {
		err := testLimits.newState().restore(entry[:cut])
		if !errors.Is(err, state.ErrCorrupt) || errors.Is(err, checkpoint.ErrIncompatible) {
			t.Fatalf("entry cut at %d/%d: %v, want a corrupt-snapshot error", cut, len(entry), err)
		}
	}
	f := NewBroadcastStateDescriptor("limits", codec.String, codec.Float64).newState()
	err := f.restore(entry)
	if !errors.Is(err, checkpoint.ErrIncompatible) || !strings.Contains(err.Error(), "value codec zigzag-varint@v1, the job reads it with float64-le@v1") {
		t.Fatalf("restore with a float64 codec: %v", err)
	}
}

// TestBroadcastStateOutsideBroadcastOperator: a keyed process function of
// an operator without broadcast input asking for broadcast state gets an
// error saying so.
func TestBroadcastStateOutsideBroadcastOperator(t *testing.T) {
	var pc ProcessContext[string, string]
	_, err := ReadOnlyBroadcastStateFor(&pc, testLimits)
	if err == nil || !strings.Contains(err.Error(), `broadcast state "limits": the function does not run in a broadcast operator`) {
		t.Fatalf("ReadOnlyBroadcastStateFor outside a broadcast operator: %v", err)
	}
}

// TestBroadcastStateWrongTypes: a descriptor of the declared name but other
// types is refused, naming both.
func TestBroadcastStateWrongTypes(t *testing.T) {
	var ro ReadOnlyContext[string]
	ro.states = newBroadcastStates([]AnyBroadcastStateDescriptor{testLimits})
	ro.states.uid = "rules-op"
	_, err := ReadOnlyBroadcastStateFor(&ro, NewBroadcastStateDescriptor("limits", codec.String, codec.String))
	if err == nil || err.Error() != `rules-op: broadcast state "limits" is declared as map[string]int64, not map[string]string` {
		t.Fatalf("lookup with other types: %v", err)
	}
}
