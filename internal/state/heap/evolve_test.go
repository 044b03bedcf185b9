package heap

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/codec"
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

// A value, list and map state whose codec gained a field migrate at
// restore: every entry is decoded with the old layout, and the next
// snapshot records (and writes) the new codec. PlanRestore, given the same
// metadata, reports the same verdicts without decoding.
func TestRestoreMigratesEvolvedCodec(t *testing.T) {
	t.Parallel()
	v1, v2 := sessCodecs(t)
	b := NewHeapBackend(codec.String, 128, full128, nil)
	val, _ := Value(b, "last", v1)
	lst, _ := List(b, "all", v1)
	mp, _ := Map(b, "byPage", codec.String, v1)
	keys := universe(200)
	for i, k := range keys {
		b.SetCurrentKey(k)
		s := sessV1{User: k, Clicks: int64(i)}
		val.Update(s)
		lst.Add(s)
		lst.Add(sessV1{User: k, Clicks: -1})
		mp.Put("p", s)
	}
	snap := b.Snapshot(1)
	f := writeSnap(t, snap)
	infos := snap.States()

	b2 := NewHeapBackend(codec.String, 128, full128, nil)
	if err := b2.Restore([]RestoreFile{f}); err != nil {
		t.Fatal(err)
	}
	val2, err := Value(b2, "last", v2)
	if err != nil {
		t.Fatalf("value: %v", err)
	}
	lst2, err := List(b2, "all", v2)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	mp2, err := Map(b2, "byPage", codec.String, v2)
	if err != nil {
		t.Fatalf("map: %v", err)
	}
	for i, k := range keys {
		b2.SetCurrentKey(k)
		want := sessV2{User: k, Clicks: int64(i)}
		if got, ok := val2.Value(); !ok || got != want {
			t.Fatalf("%s: value %+v, want %+v", k, got, want)
		}
		if got := lst2.Get(); !slices.Equal(got, []sessV2{want, {User: k, Clicks: -1}}) {
			t.Fatalf("%s: list %+v", k, got)
		}
		if got, ok := mp2.Get("p"); !ok || got != want {
			t.Fatalf("%s: map %+v", k, got)
		}
	}
	// The next snapshot writes the new version, and restores with it as is.
	snap2 := b2.Snapshot(2)
	for _, si := range snap2.States() {
		if !strings.Contains(strings.Join(si.Codecs, ","), codec.IDOf(v2).String()) {
			t.Errorf("state %s recorded %v, want the new codec %s", si.Name, si.Codecs, codec.IDOf(v2))
		}
	}
	f2 := writeSnap(t, snap2)
	b3 := NewHeapBackend(codec.String, 128, full128, nil)
	if err := b3.Restore([]RestoreFile{f2}); err != nil {
		t.Fatal(err)
	}
	val3, err := Value(b3, "last", v2)
	if err != nil {
		t.Fatal(err)
	}
	b3.SetCurrentKey(keys[7])
	if got, _ := val3.Value(); got != (sessV2{User: keys[7], Clicks: 7}) {
		t.Fatalf("after the second restore: %+v", got)
	}

	// The plan says the same, from the metadata alone.
	p := NewHeapBackend(codec.String, 128, full128, nil)
	if err := p.PlanRestore(snap.KeyCodec(), infos); err != nil {
		t.Fatal(err)
	}
	_, _ = Value(p, "last", v2)
	_, _ = List(p, "all", v2)
	_, _ = Map(p, "byPage", codec.String, v2)
	_, _ = Value(p, "fresh", codec.Int64)
	got := map[string]Outcome{}
	for _, r := range p.Plan() {
		got[r.Kind+" "+r.Name] = r.Outcome
	}
	want := map[string]Outcome{"key codec ": AsIs, "value last": Migrated, "list all": Migrated, "map byPage": Migrated, "value fresh": Fresh}
	if !maps.Equal(got, want) {
		t.Fatalf("plan %v, want %v", got, want)
	}
}

// A field removed or retyped cannot be migrated by Struct: refused at
// registration (naming state and codecs) and in the plan alike.
func TestRestoreRefusesStructFieldRemoved(t *testing.T) {
	t.Parallel()
	_, v2 := sessCodecs(t)
	v1, _ := sessCodecs(t)
	b := NewHeapBackend(codec.String, 128, full128, nil)
	val, _ := Value(b, "last", v2)
	b.SetCurrentKey("a")
	val.Update(sessV2{User: "a", Region: "eu", Clicks: 3})
	snap := b.Snapshot(1)
	f := writeSnap(t, snap)

	b2 := NewHeapBackend(codec.String, 128, full128, nil)
	if err := b2.Restore([]RestoreFile{f}); err != nil {
		t.Fatal(err)
	}
	_, err := Value(b2, "last", v1) // v2 → v1 drops "region"
	want := `value state "last" was written with value codec ` + codec.IDOf(v2).String() + `, the job now uses ` + codec.IDOf(v1).String()
	if !errors.Is(err, checkpoint.ErrIncompatible) || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want one containing %q", err, want)
	}
	p := NewHeapBackend(codec.String, 128, full128, nil)
	if err := p.PlanRestore(snap.KeyCodec(), snap.States()); err != nil {
		t.Fatal(err)
	}
	_, _ = Value(p, "last", v1)
	if r := p.Plan()[1]; r.Outcome != Refused || !strings.Contains(r.Reason, want) {
		t.Fatalf("plan %+v", r)
	}
}

// migratingKey is a key codec that claims to read an older key encoding
// through a migration.
type migratingKey struct{ codec.KeyCodec[string] }

func (migratingKey) CodecID() codec.ID { return codec.ID{Name: "user-key", Version: 2} }
func (m migratingKey) ReadVersion(codec.ID) (codec.Compatibility, codec.DecodeFunc[string]) {
	return codec.CompatibleAfterMigration, m.Decode
}

// Key codecs never migrate: a migrated key could hash to another key group.
func TestRestoreRefusesKeyMigration(t *testing.T) {
	t.Parallel()
	b := NewHeapBackend(codec.String, 128, full128, nil)
	v, _ := Value(b, "n", codec.Int64)
	b.SetCurrentKey("a")
	v.Update(1)
	f := write(t, b)
	b2 := NewHeapBackend[string](migratingKey{codec.String}, 128, full128, nil)
	err := b2.Restore([]RestoreFile{f})
	if !errors.Is(err, checkpoint.ErrIncompatible) || !strings.Contains(err.Error(), "key codecs cannot migrate") {
		t.Fatalf("err = %v", err)
	}
}
