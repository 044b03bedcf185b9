package codec

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/sluicehq/sluice/keygroup"
)

// roundTrip encodes every value after a junk prefix, decodes it back and
// checks the value, the byte count, and that every strict prefix of the
// encoding is reported as truncated rather than panicking or succeeding.
func roundTrip[T any](t *testing.T, c Codec[T], eq func(a, b T) bool, vals ...T) {
	t.Helper()
	for _, v := range vals {
		prefix := []byte{0xAA, 0xBB}
		enc := c.Append(prefix, v)
		if !bytes.Equal(enc[:2], prefix) {
			t.Fatalf("Append(%v) clobbered dst", v)
		}
		body := enc[2:]
		// A trailing byte must not be consumed.
		got, n, err := c.Decode(append(slices.Clone(body), 0x7F))
		if err != nil || n != len(body) || !eq(got, v) {
			t.Fatalf("Decode(Append(%v)) = %v, %d, %v; want %v, %d, nil", v, got, n, err, v, len(body))
		}
		for i := range len(body) {
			if _, _, err := c.Decode(body[:i]); !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Decode(prefix %d of %v) err = %v, want ErrTruncated", i, v, err)
			}
		}
	}
}

func eq[T comparable](a, b T) bool { return a == b }

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	roundTrip(t, String, eq, "", "a", "héllo, 世界", string(make([]byte, 300)), "\x00\xff")
	roundTrip(t, Int64, eq, 0, 1, -1, 63, -64, 64, math.MaxInt64, math.MinInt64)
	roundTrip(t, Int, eq, 0, 1, -1, math.MaxInt, math.MinInt)
	roundTrip(t, Int32, eq, 0, -1, math.MaxInt32, math.MinInt32)
	roundTrip(t, Uint64, eq, 0, 1, 127, 128, math.MaxUint64)
	roundTrip(t, Uint32, eq, 0, 1, math.MaxUint32)
	roundTrip(t, Float64, func(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) },
		0, math.Copysign(0, -1), 1.5, -2.25, math.Inf(1), math.Inf(-1), math.NaN(), math.SmallestNonzeroFloat64, math.MaxFloat64)
	roundTrip(t, Bool, eq, true, false)
	roundTrip(t, Bytes, bytes.Equal, nil, []byte{}, []byte{0}, bytes.Repeat([]byte{7}, 1000))
	roundTrip(t, List(Int64), slices.Equal, nil, []int64{}, []int64{1, -2, math.MaxInt64})
	roundTrip(t, List(String), slices.Equal, []string{"a", "", "bc"})
	roundTrip(t, List(List(Bool)), func(a, b [][]bool) bool {
		return slices.EqualFunc(a, b, func(x, y []bool) bool { return slices.Equal(x, y) })
	}, [][]bool{{true}, nil, {false, true}})
}

// The documented encodings are part of the snapshot format: pin a few.
func TestEncodingsPinned(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		got  []byte
		want []byte
	}{
		{"String", String.Append(nil, "ab"), []byte{2, 'a', 'b'}},
		{"Int64 -1", Int64.Append(nil, -1), []byte{1}},
		{"Int64 1", Int64.Append(nil, 1), []byte{2}},
		{"Int 300", Int.Append(nil, 300), []byte{0xd8, 0x04}},
		{"Uint64 300", Uint64.Append(nil, 300), []byte{0xac, 0x02}},
		{"Float64 1", Float64.Append(nil, 1), []byte{0, 0, 0, 0, 0, 0, 0xf0, 0x3f}},
		{"Bool", Bool.Append(nil, true), []byte{1}},
		{"List", List(Uint32).Append(nil, []uint32{1, 2}), []byte{2, 1, 2}},
	} {
		if !bytes.Equal(tc.got, tc.want) {
			t.Errorf("%s: got % x, want % x", tc.name, tc.got, tc.want)
		}
	}
}

func TestDecodeCorrupt(t *testing.T) {
	t.Parallel()
	overflow := bytes.Repeat([]byte{0xff}, 11)
	for _, tc := range []struct {
		name string
		dec  func([]byte) error
		in   []byte
		want error
	}{
		{"Int64 overflow", dec(Int64), overflow, ErrCorrupt},
		{"Uint64 overflow", dec(Uint64), overflow, ErrCorrupt},
		{"Int32 range", dec(Int32), Int64.Append(nil, math.MaxInt32+1), ErrCorrupt},
		{"Int32 range neg", dec(Int32), Int64.Append(nil, math.MinInt32-1), ErrCorrupt},
		{"Uint32 range", dec(Uint32), Uint64.Append(nil, math.MaxUint32+1), ErrCorrupt},
		{"Bool 2", dec(Bool), []byte{2}, ErrCorrupt},
		{"String huge length", dec(String), Uint64.Append(nil, math.MaxUint64), ErrTruncated},
		{"Bytes length past end", dec(Bytes), []byte{5, 1, 2}, ErrTruncated},
		{"List count past end", dec(List(Int64)), []byte{200, 1, 1}, ErrCorrupt},
		{"List huge count", dec(List(Int64)), Uint64.Append(nil, math.MaxUint64), ErrCorrupt},
		{"List bad element", dec(List(Bool)), []byte{2, 1, 9}, ErrCorrupt},
		{"Float64 short", dec(Float64), []byte{1, 2, 3}, ErrTruncated},
		{"empty", dec(Int64), nil, ErrTruncated},
	} {
		if err := tc.dec(tc.in); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func dec[T any](c Codec[T]) func([]byte) error {
	return func(b []byte) error { _, _, err := c.Decode(b); return err }
}

func TestDecodeDoesNotAlias(t *testing.T) {
	t.Parallel()
	enc := Bytes.Append(nil, []byte("hello"))
	got, _, err := Bytes.Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	enc[1] = 'X'
	if string(got) != "hello" {
		t.Fatalf("decoded bytes alias the input: %q", got)
	}
}

func TestFor(t *testing.T) {
	t.Parallel()
	check := func(name string, ok bool, want bool) {
		t.Helper()
		if ok != want {
			t.Errorf("%s: ok = %v, want %v", name, ok, want)
		}
	}
	if c, ok := For[string](); !ok || c != Codec[string](String) {
		t.Errorf("For[string] = %v, %v", c, ok)
	}
	if c, ok := For[[]byte](); !ok || c != Bytes {
		t.Errorf("For[[]byte] = %v, %v", c, ok)
	}
	_, ok := For[int64]()
	check("For[int64]", ok, true)
	_, ok = For[int]()
	check("For[int]", ok, true)
	_, ok = For[int32]()
	check("For[int32]", ok, true)
	_, ok = For[uint64]()
	check("For[uint64]", ok, true)
	_, ok = For[uint32]()
	check("For[uint32]", ok, true)
	_, ok = For[float64]()
	check("For[float64]", ok, true)
	_, ok = For[bool]()
	check("For[bool]", ok, true)
	type named string
	_, ok = For[named]()
	check("For[named]", ok, true)
	_, ok = For[any]()
	check("For[any]", ok, false)
	_, ok = For[struct{ A int }]()
	check("For[struct]", ok, false)

	if k, ok := KeyFor[string](); !ok || k.Hash("x") != HashString("x") {
		t.Errorf("KeyFor[string] = %v, %v", k, ok)
	}
	if k, ok := KeyFor[int](); !ok || k.Hash(-1) != math.MaxUint64 {
		t.Errorf("KeyFor[int] = %v, %v", k, ok)
	}
	for name, ok := range map[string]bool{
		"int64": second(KeyFor[int64]()), "int32": second(KeyFor[int32]()),
		"uint64": second(KeyFor[uint64]()), "uint32": second(KeyFor[uint32]()),
		"float64": second(KeyFor[float64]()), "bool": second(KeyFor[bool]()),
	} {
		check("KeyFor["+name+"]", ok, true)
	}
	_, ok = KeyFor[named]()
	check("KeyFor[named]", ok, true)
	_, ok = KeyFor[[2]int]()
	check("KeyFor[[2]int]", ok, false)
}

func second[A, B any](_ A, b B) B { return b }

// Reference: wyhash final4 self-test vectors (the seven test_vector.cpp
// messages, hashed with seed = index), as listed in SMHasher3's wyhash
// self-test, and byte-pattern vectors around every branch boundary. Passing
// them means HashString is wyhash and not a lookalike.
func TestWyhashReferenceVectors(t *testing.T) {
	t.Parallel()
	msgs := []struct {
		in   string
		want uint64
	}{
		{"", 0x93228a4de0eec5a2},
		{"a", 0xc5bac3db178713c4},
		{"abc", 0xa97f2f7b1d9b3314},
		{"message digest", 0x786d1f1df3801df4},
		{"abcdefghijklmnopqrstuvwxyz", 0xdca5a8138ad37c87},
		{"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", 0xb9e734f117cfaf70},
		{"12345678901234567890123456789012345678901234567890123456789012345678901234567890", 0x6cc5eab49a92d617},
	}
	for i, m := range msgs {
		if got := wyhash(m.in, uint64(i)); got != m.want {
			t.Errorf("wyhash(%q, %d) = %#x, want %#x", m.in, i, got, m.want)
		}
	}
	data := make([]byte, 1024)
	for i := range data {
		data[i] = byte(i)
	}
	for _, v := range []struct {
		n    int
		seed uint64
		want uint64
	}{
		{1, 0, 0x8e6d4af7d310c8c4}, {3, 0, 0x78c4aa0c972a522d}, {4, 0, 0xe08aeeb68058fb32},
		{8, 0, 0xb4d6ac74d009e1d4}, {9, 0, 0xb42922e019b409be}, {16, 0, 0x305fdea0ed4a2619},
		{17, 0, 0xd29ffdd201a46f9a}, {32, 0, 0x5b00c06ef7540f8f}, {47, 0, 0xe2cb58f6ab8e4419},
		{48, 0, 0xecbfb7ff9e3d9a97}, {49, 0, 0x0691f11bac523a91}, {96, 0, 0x948137d69794b570},
		{97, 0, 0x2501575738d109be}, {1024, 0, 0x804dd1e6f38e5361}, {48, 7, 0x2d369a1639889127},
		{1024, 7, 0x542171872b2ca1c0},
	} {
		if got := wyhash(string(data[:v.n]), v.seed); got != v.want {
			t.Errorf("wyhash(0..%d, %d) = %#x, want %#x", v.n, v.seed, got, v.want)
		}
	}
}

// The hashes and key groups of the built-in key codecs are part of the
// snapshot format: a change here silently moves every key to another key
// group and breaks restoring old checkpoints. Never update these values.
func TestHashGolden(t *testing.T) {
	t.Parallel()
	for _, g := range []struct {
		key  string
		hash uint64
		kg   int
	}{
		{"", 0x93228a4de0eec5a2, 41},
		{"user-1", 0xe1f3847c81073ddf, 31},
		{"user-2", 0xb586dd2d7eff0bb1, 24},
		{"order/2024-01-01/000042", 0x8b8ddaec6ebf0f80, 49},
	} {
		h := String.Hash(g.key)
		if h != g.hash {
			t.Errorf("String.Hash(%q) = %#x, want %#x", g.key, h, g.hash)
		}
		if kg := keygroup.Of(h, 128); kg != g.kg {
			t.Errorf("key group of %q = %d, want %d", g.key, kg, g.kg)
		}
	}
	ints := []struct {
		got, want uint64
	}{
		{Int64.Hash(-1), math.MaxUint64},
		{Int64.Hash(42), 42},
		{Int.Hash(42), 42},
		{Int32.Hash(-1), math.MaxUint64},
		{Uint64.Hash(7), 7},
		{Uint32.Hash(7), 7},
		{Bool.Hash(true), 1},
		{Bool.Hash(false), 0},
		{Float64.Hash(1), 0x3ff0000000000000},
		{Float64.Hash(math.Copysign(0, -1)), 0},
	}
	for i, c := range ints {
		if c.got != c.want {
			t.Errorf("int hash %d = %#x, want %#x", i, c.got, c.want)
		}
	}
	if kg := keygroup.Of(Int64.Hash(12345), 128); kg != keygroup.Of(12345, 128) {
		t.Errorf("Int64 key group differs from keygroup.Of(value)")
	}
}

// Key groups must be filled evenly by typical keys, or one subtask gets a
// disproportionate share of the state.
func TestHashSpread(t *testing.T) {
	t.Parallel()
	const n, groups = 1 << 20, 128
	counts := make([]int, groups)
	seen := make(map[uint64]struct{}, n)
	buf := make([]byte, 0, 32)
	for i := range n {
		buf = fmt.Appendf(buf[:0], "key-%d", i)
		h := HashString(string(buf))
		if _, dup := seen[h]; dup {
			t.Fatalf("64-bit collision at key-%d", i)
		}
		seen[h] = struct{}{}
		counts[keygroup.Of(h, groups)]++
	}
	mean := n / groups
	for g, c := range counts {
		if c < mean*95/100 || c > mean*105/100 {
			t.Errorf("key group %d has %d keys, mean %d", g, c, mean)
		}
	}
}

func TestNoAllocs(t *testing.T) {
	buf := make([]byte, 0, 64)
	s := "some-key-of-moderate-length"
	if a := testing.AllocsPerRun(100, func() {
		_ = String.Hash(s)
		buf = String.Append(buf[:0], s)
		buf = Int64.Append(buf, 12345)
		_, _, _ = Int64.Decode(buf[len(s)+1:])
		buf = Float64.Append(buf, 1.5)
	}); a != 0 {
		t.Fatalf("allocs per run = %v, want 0", a)
	}
}

func BenchmarkHashString(b *testing.B) {
	for _, n := range []int{8, 16, 36, 100} {
		s := string(bytes.Repeat([]byte{'k'}, n))
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			var sink uint64
			for b.Loop() {
				sink += HashString(s)
			}
			_ = sink
		})
	}
}
