package heap

import (
	"errors"
	"io"
	"math"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/state"
)

// Changing a state's type (here int64 → string) is reported as an
// incompatibility naming the state and both codecs, not as corruption
// (issue 6, defect 4); the entries stay raw, so the old type still reads.
func TestRestoreWithOtherCodecIsIncompatible(t *testing.T) {
	t.Parallel()
	b := NewHeapBackend(codec.String, 128, full128, nil)
	v, _ := Value(b, "count", codec.Int64)
	l, _ := List(b, "seen", codec.String)
	m, _ := Map(b, "last", codec.String, codec.Int64)
	b.SetCurrentKey("alice")
	v.Update(3)
	l.Add("x")
	m.Put("k", 1)
	f := write(t, b)

	b2 := NewHeapBackend(codec.String, 128, full128, nil)
	if err := b2.Restore([]RestoreFile{f}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		register func() error
		want     string
	}{
		{func() error { _, err := Value(b2, "count", codec.String); return err },
			`value state "count" was written with value codec zigzag-varint@v1, the job now uses string@v1`},
		{func() error { _, err := List(b2, "seen", codec.Float64); return err },
			`list state "seen" was written with element codec string@v1, the job now uses float64-le@v1`},
		{func() error { _, err := Map(b2, "last", codec.String, codec.Bool); return err },
			`map state "last" was written with user value codec zigzag-varint@v1, the job now uses bool@v1`},
		{func() error {
			_, err := Reducing(b2, "count", codec.Int64, func(a, b int64) int64 { return a + b })
			return err
		},
			`state "count" was written as value state, the job registers it as reducing state`},
	} {
		err := tc.register()
		if !errors.Is(err, state.ErrIncompatible) || !errors.Is(err, checkpoint.ErrIncompatible) || errors.Is(err, state.ErrCorrupt) ||
			!strings.Contains(err.Error(), tc.want) {
			t.Errorf("err = %v\nwant ErrIncompatible containing %q", err, tc.want)
		}
	}
	// Nothing was lost: the original types still read the entries.
	v2, err := Value(b2, "count", codec.Int64)
	if err != nil {
		t.Fatal(err)
	}
	b2.SetCurrentKey("alice")
	if x, _ := v2.Value(); x != 3 {
		t.Fatalf("count = %d, want 3", x)
	}
	// A codec of the same encoding (a named-type codec) restores.
	if _, err := List(b2, "seen", codec.StringOf[string]()); err != nil {
		t.Fatalf("same encoding through StringOf: %v", err)
	}

	// A key codec of another encoding is refused at Restore.
	b3 := NewHeapBackend(codec.Int64, 128, full128, nil)
	err = b3.Restore([]RestoreFile{f})
	if !errors.Is(err, checkpoint.ErrIncompatible) || !strings.Contains(err.Error(), "written with key codec string@v1, the job keys it with zigzag-varint@v1") {
		t.Fatalf("key codec change: %v", err)
	}
	// A named key type of the same underlying type restores.
	type userID string
	kc, _ := codec.KeyFor[userID]()
	b4 := NewHeapBackend(kc, 128, full128, nil)
	if err := b4.Restore([]RestoreFile{f}); err != nil {
		t.Fatalf("named key type: %v", err)
	}
	v4, err := Value(b4, "count", codec.Int64)
	if err != nil {
		t.Fatal(err)
	}
	b4.SetCurrentKey("alice")
	if x, _ := v4.Value(); x != 3 {
		t.Fatalf("named key type: count = %d, want 3", x)
	}
}

// The snapshot describes its states for the checkpoint metadata, and
// unregistered restored state keeps its recorded codecs through a second
// snapshot.
func TestSnapshotStates(t *testing.T) {
	t.Parallel()
	b := NewHeapBackend(codec.String, 128, full128, nil)
	v, _ := Value(b, "count", codec.Int64)
	b.SetCurrentKey("a")
	v.Update(1)
	f := write(t, b)
	b2 := NewHeapBackend(codec.String, 128, full128, nil)
	if err := b2.Restore([]RestoreFile{f}); err != nil {
		t.Fatal(err)
	}
	f2 := write(t, b2) // "count" never registered: passed through raw
	b3 := NewHeapBackend(codec.String, 128, full128, nil)
	if err := b3.Restore([]RestoreFile{f2}); err != nil {
		t.Fatal(err)
	}
	if _, err := Value(b3, "count", codec.String); !errors.Is(err, state.ErrIncompatible) {
		t.Fatalf("codecs lost through a raw pass: %v", err)
	}
	s := b.Snapshot(9)
	defer s.Release()
	got := s.States()
	if len(got) != 1 || got[0].String() != "count (value state, zigzag-varint@v1)" || s.KeyCodec() != "string@v1" {
		t.Fatalf("States = %v, KeyCodec = %s", got, s.KeyCodec())
	}
}

// A value a format codec cannot encode fails the snapshot write with an
// error naming the state, instead of crashing the writer.
func TestSnapshotEncodeErrorNamesState(t *testing.T) {
	t.Parallel()
	b := NewHeapBackend(codec.String, 8, checkpoint.KeyGroupRange{Start: 0, End: 7}, nil)
	v, err := Value(b, "ratio", codec.JSON[float64]())
	if err != nil {
		t.Fatal(err)
	}
	b.SetCurrentKey("a")
	v.Update(math.NaN())
	s := b.Snapshot(1)
	defer s.Release()
	_, err = s.WriteKeyGroups(io.Discard)
	var ee *codec.EncodeError
	if !errors.As(err, &ee) || !strings.Contains(err.Error(), `state "ratio"`) || !strings.Contains(err.Error(), "json@v1") {
		t.Fatalf("err = %v", err)
	}
}
