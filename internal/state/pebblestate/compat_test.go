package pebblestate_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/clock"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/internal/runtime"
	"github.com/sluicehq/sluice/internal/state/heap"
	"github.com/sluicehq/sluice/internal/state/pebblestate"
	"github.com/sluicehq/sluice/keygroup"
	"github.com/sluicehq/sluice/state"
)

type sessV1 struct {
	User   string
	Clicks int64
}

type sessV2 struct {
	User   string
	Clicks int64
	Region string
}

func sessCodecs(t *testing.T) (codec.Codec[sessV1], codec.Codec[sessV2]) {
	t.Helper()
	v1, err := codec.Struct("session",
		codec.FieldOf("user", func(s *sessV1) *string { return &s.User }, codec.String),
		codec.FieldOf("clicks", func(s *sessV1) *int64 { return &s.Clicks }, codec.Int64))
	if err != nil {
		t.Fatal(err)
	}
	v2, err := codec.Struct("session",
		codec.FieldOf("user", func(s *sessV2) *string { return &s.User }, codec.String),
		codec.FieldOf("region", func(s *sessV2) *string { return &s.Region }, codec.String),
		codec.FieldOf("clicks", func(s *sessV2) *int64 { return &s.Clicks }, codec.Int64))
	if err != nil {
		t.Fatal(err)
	}
	return v1, v2
}

// TestMigrationAndPlanMatchHeap: a value and a map state whose codec gained
// a field migrate at restore, from a canonical file and from a native
// checkpoint; a changed kind and an unrelated codec are refused; and
// PlanRestore gives exactly the heap backend's verdicts.
func TestMigrationAndPlanMatchHeap(t *testing.T) {
	v1, v2 := sessCodecs(t)
	const maxP = 8
	r := checkpoint.KeyGroupRange{Start: 0, End: maxP - 1}
	fs := &fakeShared{root: t.TempDir()}
	b, err := pebblestate.New(codec.String, maxP, r, nil, pebblestate.Options{Dir: t.TempDir() + "/db", Incremental: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	val, _ := pebblestate.Value(b, "last", v1)
	mp, _ := pebblestate.Map(b, "byPage", codec.String, v1)
	cnt, _ := pebblestate.Value(b, "count", codec.Int64)
	keys := keysIn(300, maxP, r)
	for i, k := range keys {
		b.SetCurrentKey(k)
		val.Update(sessV1{User: k, Clicks: int64(i)})
		mp.Put("p", sessV1{User: k, Clicks: -int64(i)})
		cnt.Update(int64(i))
	}
	snap := b.Snapshot(1)
	data, offs := writeSnapshot(t, snap)
	hs, err := snap.WriteIncremental(context.Background(), fs)
	if err != nil {
		t.Fatal(err)
	}
	infos, kcs := snap.States(), snap.KeyCodec()
	snap.Release()
	restores := map[string]func(*pebblestate.Backend[string]) error{
		"canonical": func(nb *pebblestate.Backend[string]) error {
			return nb.Restore([]heap.RestoreFile{{Data: data, Range: r, Offsets: offs}})
		},
		"native": func(nb *pebblestate.Backend[string]) error {
			return nb.RestoreNative(context.Background(), []runtime.RestoredKeyed{fs.restored(hs, r)})
		},
	}
	for name, restore := range restores {
		t.Run(name, func(t *testing.T) {
			nb, err := pebblestate.New(codec.String, maxP, r, nil, pebblestate.Options{Dir: t.TempDir() + "/db"})
			if err != nil {
				t.Fatal(err)
			}
			defer nb.Close()
			if err := restore(nb); err != nil {
				t.Fatal(err)
			}
			val2, err := pebblestate.Value(nb, "last", v2)
			if err != nil {
				t.Fatalf("value: %v", err)
			}
			mp2, err := pebblestate.Map(nb, "byPage", codec.String, v2)
			if err != nil {
				t.Fatalf("map: %v", err)
			}
			if _, err := pebblestate.List(nb, "count", codec.Int64); !errors.Is(err, state.ErrIncompatible) || !errors.Is(err, checkpoint.ErrIncompatible) {
				t.Fatalf("count as a list: %v", err)
			}
			for i, k := range keys {
				nb.SetCurrentKey(k)
				if v, ok := val2.Value(); !ok || v != (sessV2{User: k, Clicks: int64(i)}) {
					t.Fatalf("%s: %+v %v", k, v, ok)
				}
				if v, ok := mp2.Get("p"); !ok || v != (sessV2{User: k, Clicks: -int64(i)}) {
					t.Fatalf("%s: map %+v %v", k, v, ok)
				}
			}
			s2 := nb.Snapshot(2)
			got := s2.States()
			s2.Release()
			for _, si := range got {
				if si.Name == "last" && si.Codecs[0] != codec.IDOf(v2).String() {
					t.Fatalf("migrated state recorded with %v", si.Codecs)
				}
			}
		})
	}
	// PlanRestore: the same verdicts as the heap backend.
	plan := func(reg func(kb interface{}) error, pb interface {
		PlanRestore(string, []checkpoint.StateInfo) error
		Plan() []heap.Resolution
	}) []heap.Resolution {
		if err := pb.PlanRestore(kcs, infos); err != nil {
			t.Fatal(err)
		}
		if err := reg(pb); err != nil {
			t.Fatal(err)
		}
		return pb.Plan()
	}
	hb := heap.NewHeapBackend(codec.String, maxP, r, nil)
	hp := plan(func(any) error {
		heap.Value(hb, "last", v2)
		heap.List(hb, "count", codec.Int64)
		heap.Value(hb, "fresh", codec.Int64)
		return nil
	}, hb)
	pb, err := pebblestate.New(codec.String, maxP, r, nil, pebblestate.Options{Dir: t.TempDir() + "/db"})
	if err != nil {
		t.Fatal(err)
	}
	defer pb.Close()
	pp := plan(func(any) error {
		pebblestate.Value(pb, "last", v2)
		pebblestate.List(pb, "count", codec.Int64)
		pebblestate.Value(pb, "fresh", codec.Int64)
		return nil
	}, pb)
	if !reflect.DeepEqual(hp, pp) {
		t.Fatalf("plans differ:\nheap   %+v\npebble %+v", hp, pp)
	}
	outcomes := map[string]heap.Outcome{}
	for _, res := range pp {
		outcomes[res.Name] = res.Outcome
	}
	want := map[string]heap.Outcome{"": heap.AsIs, "last": heap.Migrated, "count": heap.Refused, "fresh": heap.Fresh, "byPage": heap.Unregistered}
	if !reflect.DeepEqual(outcomes, want) {
		t.Fatalf("outcomes %v, want %v", outcomes, want)
	}
}

func writeSnapshot(t *testing.T, s *pebblestate.Snapshot) ([]byte, []int64) {
	t.Helper()
	var buf bytesBuffer
	offs, err := s.WriteKeyGroups(&buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf.b, offs
}

type bytesBuffer struct{ b []byte }

func (w *bytesBuffer) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }

// TestRegistrationErrorsMatchHeap: the same registrations fail on both
// backends, with the same error classes.
func TestRegistrationErrorsMatchHeap(t *testing.T) {
	r := checkpoint.KeyGroupRange{Start: 0, End: 7}
	pb, err := pebblestate.New(codec.String, 8, r, nil, pebblestate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pb.Close()
	hb := heap.NewHeapBackend(codec.String, 8, r, nil)
	type reg struct {
		name string
		p, h func() error
	}
	e := func(_ any, err error) error { return err }
	regs := []reg{
		{"value", func() error { return e(pebblestate.Value(pb, "a", codec.Int64)) }, func() error { return e(heap.Value(hb, "a", codec.Int64)) }},
		{"same again", func() error { return e(pebblestate.Value(pb, "a", codec.Int64)) }, func() error { return e(heap.Value(hb, "a", codec.Int64)) }},
		{"as a list", func() error { return e(pebblestate.List(pb, "a", codec.Int64)) }, func() error { return e(heap.List(hb, "a", codec.Int64)) }},
		{"other type", func() error { return e(pebblestate.Value(pb, "a", codec.String)) }, func() error { return e(heap.Value(hb, "a", codec.String)) }},
		{"with a TTL", func() error { return e(pebblestate.Value(pb, "a", codec.Int64, state.WithTTL(time.Second))) }, func() error { return e(heap.Value(hb, "a", codec.Int64, state.WithTTL(time.Second))) }},
		{"empty name", func() error { return e(pebblestate.Value(pb, "", codec.Int64)) }, func() error { return e(heap.Value(hb, "", codec.Int64)) }},
		{"negative TTL", func() error { return e(pebblestate.Map(pb, "m", codec.String, codec.Int64, state.WithTTL(-1))) }, func() error { return e(heap.Map(hb, "m", codec.String, codec.Int64, state.WithTTL(-1))) }},
		{"nil reduce", func() error { return e(pebblestate.Reducing[string, int64](pb, "r", codec.Int64, nil)) }, func() error { return e(heap.Reducing[string, int64](hb, "r", codec.Int64, nil)) }},
	}
	for _, rg := range regs {
		pe, he := rg.p(), rg.h()
		if (pe == nil) != (he == nil) || errors.Is(pe, state.ErrIncompatible) != errors.Is(he, state.ErrIncompatible) {
			t.Errorf("%s: pebble %v, heap %v", rg.name, pe, he)
		}
	}
	// SetCurrentKey and SetCurrentKeyInGroup refuse a key outside the range.
	small, err := pebblestate.New(codec.String, 8, checkpoint.KeyGroupRange{Start: 0, End: 3}, nil, pebblestate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	for i := range 100 {
		k := fmt.Sprint("k", i)
		kh := codec.String.Hash(k)
		kg := keygroup.Of(kh, 8)
		err1, err2 := small.SetCurrentKey(k), small.SetCurrentKeyInGroup(k, kh, kg)
		if kg <= 3 {
			if err1 != nil || err2 != nil || small.CurrentKey() != k || small.CurrentKeyGroup() != kg {
				t.Fatalf("%s in range: %v %v", k, err1, err2)
			}
		} else if !errors.Is(err1, heap.ErrKeyGroupOutOfRange) || !errors.Is(err2, heap.ErrKeyGroupOutOfRange) {
			t.Fatalf("%s out of range: %v %v", k, err1, err2)
		}
	}
	if _, err := pebblestate.New(codec.String, 1<<16, r, nil, pebblestate.Options{}); err == nil {
		t.Fatal("max parallelism 65536 accepted")
	}
	if _, err := pebblestate.New[string](nil, 8, r, nil, pebblestate.Options{}); err == nil {
		t.Fatal("nil key codec accepted")
	}
}

// TestTTLBackgroundSweep: entries that expired and are never read again are
// deleted by the background sweep, not only left out of snapshots.
func TestTTLBackgroundSweep(t *testing.T) {
	const maxP = 8
	r := checkpoint.KeyGroupRange{Start: 0, End: maxP - 1}
	clk := clock.NewFake(epoch)
	b, err := pebblestate.New(codec.String, maxP, r, clk, pebblestate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	v, _ := pebblestate.Value(b, "v", codec.Int64, state.WithTTL(time.Minute))
	m, _ := pebblestate.Map(b, "m", codec.String, codec.Int64, state.WithTTL(time.Minute))
	const n = 5000
	for i := range n {
		b.SetCurrentKey(fmt.Sprint("old-", i))
		v.Update(1)
		m.Put("x", 1)
	}
	if got := b.NumKeys(); got != n {
		t.Fatalf("NumKeys %d, want %d", got, n)
	}
	clk.Advance(2 * time.Minute)
	// Writes to other keys drive the sweep: every 1024 writes, 256 entries.
	for i := range 200_000 {
		b.SetCurrentKey(fmt.Sprint("new-", i%100))
		v.Update(int64(i))
	}
	if got := b.NumKeys(); got != 100 {
		t.Fatalf("NumKeys %d after the sweep, want the 100 live keys", got)
	}
	if b.SweptEntries() < 2*n {
		t.Fatalf("swept %d entries, want ≥ %d", b.SweptEntries(), 2*n)
	}
}
