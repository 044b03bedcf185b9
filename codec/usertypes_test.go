package codec_test

import (
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/codec"
)

type userID string
type shard int32
type blob []byte
type level int8

// session is a user struct for the Struct and JSON codecs.
type session struct {
	User   userID
	Clicks int64
	Pages  []string
	Score  float64
}

func sessionCodec(t testing.TB) codec.Codec[session] {
	t.Helper()
	c, err := codec.Struct("session",
		codec.FieldOf("user", func(s *session) *userID { return &s.User }, codec.StringOf[userID]()),
		codec.FieldOf("clicks", func(s *session) *int64 { return &s.Clicks }, codec.Int64),
		codec.FieldOf("pages", func(s *session) *[]string { return &s.Pages }, codec.List(codec.String)),
		codec.FieldOf("score", func(s *session) *float64 { return &s.Score }, codec.Float64),
	)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func equalSession(a, b session) bool {
	if a.User != b.User || a.Clicks != b.Clicks || math.Float64bits(a.Score) != math.Float64bits(b.Score) || len(a.Pages) != len(b.Pages) {
		return false
	}
	for i := range a.Pages {
		if a.Pages[i] != b.Pages[i] {
			return false
		}
	}
	return true
}

// Named types of built-ins get the built-in's encoding, hash and ID, from
// For/KeyFor (no hand-written codec) and from the ~ constructors alike.
func TestNamedTypes(t *testing.T) {
	t.Parallel()
	kc, ok := codec.KeyFor[userID]()
	if !ok {
		t.Fatal("KeyFor[userID]: none")
	}
	if kc.Hash("alice") != codec.String.Hash("alice") || codec.StringOf[userID]().Hash("alice") != codec.String.Hash("alice") {
		t.Error("a named string hashes unlike a string: its keys would move key group")
	}
	if string(kc.Append(nil, "alice")) != string(codec.String.Append(nil, "alice")) || codec.IDOf[userID](kc) != codec.IDOf(codec.String) {
		t.Error("a named string encodes unlike a string")
	}
	v, n, err := kc.Decode(codec.String.Append(nil, "bob"))
	if err != nil || v != "bob" || n != 4 {
		t.Errorf("Decode = %q, %d, %v", v, n, err)
	}

	sc, ok := codec.KeyFor[shard]()
	if !ok || sc.Hash(-3) != codec.Int64.Hash(-3) || codec.IntOf[shard]().Hash(-3) != codec.Int64.Hash(-3) {
		t.Fatalf("shard: %v %v", sc, ok)
	}
	if x, _, err := sc.Decode(codec.Int64.Append(nil, -3)); err != nil || x != -3 {
		t.Errorf("shard decode: %d %v", x, err)
	}
	// Out-of-range values are corrupt, not truncated silently.
	if _, _, err := codec.IntOf[level]().Decode(codec.Int64.Append(nil, 300)); !errors.Is(err, codec.ErrCorrupt) {
		t.Errorf("int8 out of range: %v", err)
	}
	if _, _, err := codec.UintOf[uint8]().Decode(codec.Uint64.Append(nil, 256)); !errors.Is(err, codec.ErrCorrupt) {
		t.Errorf("uint8 out of range: %v", err)
	}
	if lc, ok := codec.KeyFor[level](); !ok || lc.Hash(-1) != math.MaxUint64 {
		t.Errorf("KeyFor[level]: %v", ok)
	}
	bc, ok := codec.For[blob]()
	if !ok {
		t.Fatal("For[blob]: none")
	}
	if x, _, err := bc.Decode(bc.Append(nil, blob("xy"))); err != nil || string(x) != "xy" {
		t.Errorf("blob: %q %v", x, err)
	}
	if _, ok := bc.(interface{ Hash(blob) uint64 }); ok {
		t.Error("a slice type has a key codec")
	}
	type point struct{ X, Y int }
	if _, ok := codec.For[point](); ok {
		t.Error("a struct has a built-in codec")
	}
}

func TestNamedTypesDoNotAllocate(t *testing.T) {
	kc, _ := codec.KeyFor[userID]()
	buf := make([]byte, 0, 64)
	enc := kc.Append(nil, "some-user-id")
	if a := testing.AllocsPerRun(100, func() {
		buf = kc.Append(buf[:0], "some-user-id")
		_ = kc.Hash("some-user-id")
	}); a != 0 {
		t.Errorf("Append+Hash allocate %.0f times", a)
	}
	sc, _ := codec.KeyFor[shard]()
	if a := testing.AllocsPerRun(100, func() {
		buf = sc.Append(buf[:0], 7)
		_, _, _ = sc.Decode(buf)
	}); a != 0 {
		t.Errorf("int Append+Decode allocate %.0f times", a)
	}
	_ = enc
}

func TestStruct(t *testing.T) {
	t.Parallel()
	c := sessionCodec(t)
	for _, s := range []session{{}, {User: "u1", Clicks: -5, Pages: []string{"/", "/a"}, Score: 2.5}} {
		enc := c.Append([]byte{9}, s)
		got, n, err := c.Decode(enc[1:])
		if err != nil || n != len(enc)-1 || !equalSession(got, s) {
			t.Fatalf("round trip %+v: %+v, %d, %v", s, got, n, err)
		}
		for i := range len(enc) - 1 {
			if _, _, err := c.Decode(enc[1 : 1+i]); err == nil {
				t.Fatalf("prefix %d decoded", i)
			}
		}
	}
	id := codec.IDOf(c)
	want := "struct session{user:string@v1,clicks:zigzag-varint@v1,pages:list(string@v1)@v1,score:float64-le@v1}@v1"
	if id.String() != want {
		t.Errorf("ID = %s\nwant %s", id, want)
	}
	// Another layout is another ID: a restore reports the change.
	c2, err := codec.Struct("session",
		codec.FieldOf("user", func(s *session) *userID { return &s.User }, codec.StringOf[userID]()),
		codec.FieldOf("clicks", func(s *session) *int64 { return &s.Clicks }, codec.Int64))
	if err != nil || codec.Compatible(id, codec.IDOf(c2)) {
		t.Errorf("a struct with fewer fields is compatible: %v", err)
	}
	// Bad definitions are errors naming the field.
	_, err = codec.Struct("s",
		codec.FieldOf("a", func(s *session) *int64 { return &s.Clicks }, codec.Int64),
		codec.FieldOf("a", func(s *session) *int64 { return &s.Clicks }, codec.Int64),
		codec.FieldOf[session, int64]("b", nil, codec.Int64))
	if err == nil || !strings.Contains(err.Error(), `field "a" given twice`) || !strings.Contains(err.Error(), `field "b" has a nil ref or codec`) {
		t.Errorf("bad struct: %v", err)
	}
	if _, err := codec.Struct[session](""); err == nil {
		t.Error("empty name accepted")
	}
}

func TestJSON(t *testing.T) {
	t.Parallel()
	c := codec.JSON[session]()
	s := session{User: "u", Clicks: 3, Pages: []string{"x"}, Score: 1}
	enc := c.Append([]byte("pre"), s)
	got, n, err := c.Decode(enc[3:])
	if err != nil || n != len(enc)-3 || !equalSession(got, s) {
		t.Fatalf("round trip: %+v, %d, %v", got, n, err)
	}
	// The framing survives long bodies (a multi-byte length prefix).
	long := session{Pages: []string{strings.Repeat("p", 1000)}}
	enc = c.Append(nil, long)
	if l, h := binary.Uvarint(enc); h != 2 || int(l) != len(enc)-2 {
		t.Fatalf("length prefix %d (%d bytes) for %d bytes", l, h, len(enc))
	}
	if got, _, err := c.Decode(enc); err != nil || got.Pages[0] != long.Pages[0] {
		t.Fatalf("long: %v", err)
	}
	if _, _, err := c.Decode(codec.String.Append(nil, "{bad")); !errors.Is(err, codec.ErrCorrupt) {
		t.Errorf("bad JSON: %v", err)
	}
	// A value JSON cannot encode panics with an EncodeError, which the
	// state snapshot writer turns into an error.
	func() {
		defer func() {
			ee, ok := recover().(*codec.EncodeError)
			if !ok || ee.Codec.Name != "json" {
				t.Errorf("recovered %v", ee)
			}
		}()
		codec.JSON[float64]().Append(nil, math.NaN())
	}()
	if _, err := codec.JSON[float64]().Marshal(nil, math.Inf(1)); err == nil {
		t.Error("Marshal of +Inf succeeded")
	}
}

// Every built-in codec declares a stable ID; these are part of the snapshot
// format.
func TestIDsPinned(t *testing.T) {
	t.Parallel()
	for c, want := range map[any]string{
		codec.String: "string@v1", codec.Bytes: "bytes@v1", codec.Int64: "zigzag-varint@v1", codec.Int: "zigzag-varint@v1",
		codec.Int32: "zigzag-varint@v1", codec.Uint64: "uvarint@v1", codec.Uint32: "uvarint@v1",
		codec.Float64: "float64-le@v1", codec.Bool: "bool@v1", codec.List(codec.Int64): "list(zigzag-varint@v1)@v1",
	} {
		if got := c.(codec.Identified).CodecID().String(); got != want {
			t.Errorf("%T: ID %s, want %s", c, got, want)
		}
	}
	type handmade struct{ codec.Codec[int64] }
	if id := codec.IDOf[int64](handmade{codec.Int64}); id.Declared() || id.Name != "go:int64" {
		t.Errorf("undeclared ID = %v", id)
	}
	if !codec.Compatible(codec.ID{Name: "go:int64"}, codec.IDOf(codec.String)) {
		t.Error("an undeclared ID is judged without decoding")
	}
}

// BenchmarkStruct compares the Struct codec with JSON and a hand-written
// codec on the same value: Struct costs about what the hand-written one
// does, without reflection.
func BenchmarkStruct(b *testing.B) {
	s := session{User: "user-000123", Clicks: 42, Pages: []string{"/", "/cart", "/checkout"}, Score: 0.75}
	run := func(b *testing.B, c codec.Codec[session]) {
		buf := c.Append(nil, s)
		b.ReportAllocs()
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			buf = c.Append(buf[:0], s)
			if _, _, err := c.Decode(buf); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("struct", func(b *testing.B) { run(b, sessionCodec(b)) })
	b.Run("handwritten", func(b *testing.B) { run(b, handSession{}) })
	b.Run("json", func(b *testing.B) { run(b, codec.JSON[session]()) })
}

type handSession struct{}

var pagesCodec = codec.List(codec.String)

func (handSession) Append(dst []byte, s session) []byte {
	dst = codec.String.Append(dst, string(s.User))
	dst = codec.Int64.Append(dst, s.Clicks)
	dst = pagesCodec.Append(dst, s.Pages)
	return codec.Float64.Append(dst, s.Score)
}

func (handSession) Decode(src []byte) (session, int, error) {
	var s session
	u, n, err := codec.String.Decode(src)
	if err != nil {
		return s, 0, err
	}
	s.User = userID(u)
	c, m, err := codec.Int64.Decode(src[n:])
	if err != nil {
		return s, 0, err
	}
	s.Clicks, n = c, n+m
	p, m, err := pagesCodec.Decode(src[n:])
	if err != nil {
		return s, 0, err
	}
	s.Pages, n = p, n+m
	f, m, err := codec.Float64.Decode(src[n:])
	if err != nil {
		return s, 0, err
	}
	s.Score = f
	return s, n + m, nil
}
