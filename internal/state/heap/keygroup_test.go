package heap

import (
	"errors"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/keygroup"
)

// TestSetCurrentKeyInGroup: a key given with its key group reads and
// writes the same entry as one the backend hashes itself; a key group
// outside the range is ErrKeyGroupOutOfRange and leaves the current key
// as it was.
func TestSetCurrentKeyInGroup(t *testing.T) {
	t.Parallel()
	r := keygroup.RangeFor(0, 2, 128)
	b := NewHeapBackend(codec.String, 128, r, nil)
	v, err := Value(b, "v", codec.Int64)
	if err != nil {
		t.Fatal(err)
	}
	var in []string
	var out string
	for _, k := range universe(200) {
		if r.Contains(keygroup.Of(codec.String.Hash(k), 128)) {
			in = append(in, k)
		} else {
			out = k
		}
	}
	for i, k := range in {
		kh := codec.String.Hash(k)
		kg := keygroup.Of(kh, 128)
		if err := b.SetCurrentKeyInGroup(k, kh, kg); err != nil {
			t.Fatal(err)
		}
		if b.CurrentKey() != k || b.CurrentKeyGroup() != kg {
			t.Fatalf("current key %q in group %d, want %q in %d", b.CurrentKey(), b.CurrentKeyGroup(), k, kg)
		}
		v.Update(int64(i))
	}
	for i, k := range in {
		if err := b.SetCurrentKey(k); err != nil {
			t.Fatal(err)
		}
		if got, ok := v.Value(); !ok || got != int64(i) {
			t.Fatalf("key %q: value %d, %v after SetCurrentKey, want %d", k, got, ok, i)
		}
	}
	last := b.CurrentKey()
	outKH := codec.String.Hash(out)
	outKG := keygroup.Of(outKH, 128)
	err = b.SetCurrentKeyInGroup(out, outKH, outKG)
	if !errors.Is(err, ErrKeyGroupOutOfRange) || !strings.Contains(err.Error(), out) {
		t.Fatalf("SetCurrentKeyInGroup(%q, %d) = %v", out, outKG, err)
	}
	if b.CurrentKey() != last {
		t.Fatal("failed SetCurrentKeyInGroup changed the current key")
	}
	for _, kg := range []int{-1, 128, r.End + 1} {
		if err := b.SetCurrentKeyInGroup(in[0], codec.String.Hash(in[0]), kg); !errors.Is(err, ErrKeyGroupOutOfRange) {
			t.Fatalf("SetCurrentKeyInGroup(%q, %d) = %v, want ErrKeyGroupOutOfRange", in[0], kg, err)
		}
	}
}

// TestSetCurrentKeyInGroupVerified: in race-detector builds (the test
// suites) a key given with a key group or a hash that is not its own is
// caught (sampled: the first key of a backend is always checked).
func TestSetCurrentKeyInGroupVerified(t *testing.T) {
	t.Parallel()
	if !verifyKeyGroups {
		t.Skip("key groups given by the caller are verified in race-detector builds only")
	}
	b := NewHeapBackend(codec.String, 128, full128, nil)
	k := "some-key"
	kh := codec.String.Hash(k)
	kg := keygroup.Of(kh, 128)
	if err := b.SetCurrentKeyInGroup(k, kh, (kg+1)%128); !errors.Is(err, ErrKeyGroupOutOfRange) {
		t.Fatalf("SetCurrentKeyInGroup with the wrong key group = %v, want ErrKeyGroupOutOfRange", err)
	}
	b = NewHeapBackend(codec.String, 128, full128, nil)
	if err := b.SetCurrentKeyInGroup(k, kh^1, kg); !errors.Is(err, ErrKeyGroupOutOfRange) || !strings.Contains(err.Error(), "hash") {
		t.Fatalf("SetCurrentKeyInGroup with the wrong hash = %v, want ErrKeyGroupOutOfRange naming the hash", err)
	}
}

// TestPrefetchChangesNothing: warming a batch's slots, in range or not,
// with a snapshot holding the tables or not, leaves every value and
// reducing state as it was, and the states still read and write after it.
func TestPrefetchChangesNothing(t *testing.T) {
	t.Parallel()
	r := keygroup.RangeFor(1, 2, 128)
	b := NewHeapBackend(codec.String, 128, r, nil)
	v, err := Value(b, "v", codec.Int64)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := Reducing(b, "sum", codec.Int64, func(a, b int64) int64 { return a + b })
	if err != nil {
		t.Fatal(err)
	}
	var in []string
	var kgs []uint16
	var hs []uint64
	for _, k := range universe(2000) {
		kh := codec.String.Hash(k)
		kg := keygroup.Of(kh, 128)
		// Keys of other subtasks' key groups too: Prefetch skips them.
		kgs, hs = append(kgs, uint16(kg)), append(hs, kh)
		if !r.Contains(kg) {
			continue
		}
		in = append(in, k)
		if err := b.SetCurrentKeyInGroup(k, kh, kg); err != nil {
			t.Fatal(err)
		}
		v.Update(int64(len(k)))
		sum.Add(2)
		sum.Add(3)
	}
	check := func(when string, want int64) {
		t.Helper()
		for _, k := range in {
			if err := b.SetCurrentKey(k); err != nil {
				t.Fatal(err)
			}
			if got, ok := v.Value(); !ok || got != int64(len(k)) {
				t.Fatalf("%s: %q value %d, %v", when, k, got, ok)
			}
			if got, ok := sum.Get(); !ok || got != want {
				t.Fatalf("%s: %q sum %d, %v, want %d", when, k, got, ok, want)
			}
		}
		if n := b.NumKeys(); n != len(in) {
			t.Fatalf("%s: %d keys, want %d", when, n, len(in))
		}
	}
	b.Prefetch(kgs, hs)
	check("after Prefetch", 5)
	snap := b.Snapshot(1)
	b.Prefetch(kgs, hs)
	for _, k := range in {
		if err := b.SetCurrentKey(k); err != nil {
			t.Fatal(err)
		}
		sum.Add(1)
	}
	b.Prefetch(kgs[:10], hs[:10])
	check("after a snapshot and Prefetch", 6)
	snap.Release()
}
