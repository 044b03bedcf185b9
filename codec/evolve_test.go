package codec_test

import (
	"fmt"
	"testing"

	"github.com/sluicehq/sluice/codec"
)

type pointV1 struct{ X, Y int64 }

type pointV2 struct {
	X, Y  int64
	Tags  []string
	Label string
}

func pointCodecs(t *testing.T) (codec.Codec[pointV1], codec.Codec[pointV2]) {
	t.Helper()
	v1, err := codec.Struct("point",
		codec.FieldOf("x", func(p *pointV1) *int64 { return &p.X }, codec.Int64),
		codec.FieldOf("y", func(p *pointV1) *int64 { return &p.Y }, codec.Int64))
	if err != nil {
		t.Fatal(err)
	}
	// Reordered, with a nested ID (list) and a field added.
	v2, err := codec.Struct("point",
		codec.FieldOf("tags", func(p *pointV2) *[]string { return &p.Tags }, codec.List(codec.String)),
		codec.FieldOf("y", func(p *pointV2) *int64 { return &p.Y }, codec.Int64),
		codec.FieldOf("label", func(p *pointV2) *string { return &p.Label }, codec.String),
		codec.FieldOf("x", func(p *pointV2) *int64 { return &p.X }, codec.Int64))
	if err != nil {
		t.Fatal(err)
	}
	return v1, v2
}

func TestStructReadsOlderLayout(t *testing.T) {
	v1, v2 := pointCodecs(t)
	comp, read := codec.Resolve(v2, codec.IDOf(v1))
	if comp != codec.CompatibleAfterMigration {
		t.Fatalf("v1 -> v2: %v", comp)
	}
	enc := v1.Append(nil, pointV1{X: -3, Y: 9})
	enc = append(enc, 0xff) // the next value's bytes: n must stop before
	got, n, err := read(enc)
	if err != nil || n != len(enc)-1 || got.X != -3 || got.Y != 9 || got.Tags != nil || got.Label != "" {
		t.Fatalf("read = %+v, %d, %v", got, n, err)
	}
	// v2 → v1 loses fields: its bytes cannot be skipped, so incompatible.
	if comp, read := codec.Resolve(v1, codec.IDOf(v2)); comp != codec.Incompatible || read != nil {
		t.Fatalf("v2 -> v1: %v", comp)
	}
	// Another struct name, a retyped field, an undeclared version:
	// incompatible, as is for an undeclared ID (only decoding can tell).
	other, _ := codec.Struct("pt", codec.FieldOf("x", func(p *pointV1) *int64 { return &p.X }, codec.Int64))
	retyped, _ := codec.Struct("point", codec.FieldOf("x", func(p *pointV1) *int64 { return &p.X }, codec.Int64),
		codec.FieldOf("y", func(p *pointV1) *int64 { return &p.Y }, codec.Codec[int64](codec.IntOf[int64]())))
	for _, tc := range []struct {
		old  codec.ID
		want codec.Compatibility
	}{
		{codec.IDOf(other), codec.Incompatible},
		{codec.ID{Name: "struct point{x:zigzag-varint@v1,y:float64-le@v1}", Version: 1}, codec.Incompatible},
		{codec.ID{Name: "struct point{x:zigzag-varint@v1}", Version: 2}, codec.Incompatible},
		{codec.ID{Name: "struct point{x:zigzag-varint@v1,x:zigzag-varint@v1}", Version: 1}, codec.Incompatible},
		{codec.ID{Name: "struct point{}", Version: 1}, codec.CompatibleAfterMigration},
		{codec.IDOf(retyped), codec.CompatibleAfterMigration}, // v1's ID: IntOf is zigzag-varint too
		{codec.ID{Name: "go:main.point"}, codec.CompatibleAsIs},
	} {
		if got, _ := codec.Resolve(v2, tc.old); got != tc.want {
			t.Errorf("v2 reading %s: %v, want %v", tc.old, got, tc.want)
		}
	}
	if comp, _ := codec.Resolve(v1, codec.IDOf(retyped)); comp != codec.CompatibleAsIs {
		t.Errorf("same encoding through IntOf: %v", comp)
	}
	// An empty old layout decodes nothing and consumes nothing.
	_, read = codec.Resolve(v2, codec.ID{Name: "struct point{}", Version: 1})
	if v, n, err := read([]byte{1, 2}); err != nil || n != 0 || v.X != 0 {
		t.Fatalf("empty layout: %+v %d %v", v, n, err)
	}
}

func TestEvolve(t *testing.T) {
	c := codec.Evolve(codec.Float64,
		codec.From(codec.Int64, func(v int64) float64 { return float64(v) / 100 }),
		codec.AsIs[float64](codec.ID{Name: "float64-le", Version: 0}))
	if codec.IDOf[float64](c) != codec.IDOf(codec.Float64) {
		t.Fatalf("ID %s", codec.IDOf[float64](c))
	}
	comp, read := codec.Resolve[float64](c, codec.IDOf(codec.Int64))
	if comp != codec.CompatibleAfterMigration {
		t.Fatal(comp)
	}
	if v, n, err := read(codec.Int64.Append(nil, 250)); err != nil || v != 2.5 || n != 2 {
		t.Fatalf("%v %d %v", v, n, err)
	}
	if comp, _ := codec.Resolve[float64](c, codec.ID{Name: "string", Version: 1}); comp != codec.Incompatible {
		t.Fatal(comp)
	}
	if comp, _ := codec.Resolve(codec.Int64, codec.ID{Name: "string", Version: 1}); comp != codec.Incompatible {
		t.Fatal("a codec that does not evolve reads only its own ID")
	}
	if _, err := codec.ParseID("list(string@v1)@v3"); err != nil {
		t.Fatal(err)
	}
	if id, _ := codec.ParseID("list(string@v1)@v3"); id != (codec.ID{Name: "list(string@v1)", Version: 3}) {
		t.Fatal(id)
	}
	if _, err := codec.ParseID("string"); err == nil {
		t.Fatal("ParseID accepted an ID without a version")
	}
}

// A state's type changed from a counter (int64) to a struct: Evolve keeps
// the new codec's encoding and ID, and declares how the old bytes become a
// value of the new type. A restore resolves the written ID with Resolve
// (once per state) and migrates every entry with the reader it returns.
func ExampleEvolve() {
	type Tally struct {
		N    int64
		Note string
	}
	tally, _ := codec.Struct("tally",
		codec.FieldOf("n", func(t *Tally) *int64 { return &t.N }, codec.Int64),
		codec.FieldOf("note", func(t *Tally) *string { return &t.Note }, codec.String))
	c := codec.Evolve(tally, codec.From(codec.Int64, func(n int64) Tally { return Tally{N: n, Note: "migrated"} }))

	old := codec.Int64.Append(nil, 41) // what the old job wrote
	comp, read := codec.Resolve[Tally](c, codec.IDOf(codec.Int64))
	v, _, _ := read(old)
	fmt.Println(comp)
	fmt.Printf("%+v\n", v)
	fmt.Println(codec.IDOf[Tally](c))
	// Output:
	// compatible after migration
	// {N:41 Note:migrated}
	// struct tally{n:zigzag-varint@v1,note:string@v1}@v1
}
