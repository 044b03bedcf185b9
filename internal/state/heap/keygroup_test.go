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
		kg := keygroup.Of(codec.String.Hash(k), 128)
		if err := b.SetCurrentKeyInGroup(k, kg); err != nil {
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
	outKG := keygroup.Of(codec.String.Hash(out), 128)
	err = b.SetCurrentKeyInGroup(out, outKG)
	if !errors.Is(err, ErrKeyGroupOutOfRange) || !strings.Contains(err.Error(), out) {
		t.Fatalf("SetCurrentKeyInGroup(%q, %d) = %v", out, outKG, err)
	}
	if b.CurrentKey() != last {
		t.Fatal("failed SetCurrentKeyInGroup changed the current key")
	}
	for _, kg := range []int{-1, 128, r.End + 1} {
		if err := b.SetCurrentKeyInGroup(in[0], kg); !errors.Is(err, ErrKeyGroupOutOfRange) {
			t.Fatalf("SetCurrentKeyInGroup(%q, %d) = %v, want ErrKeyGroupOutOfRange", in[0], kg, err)
		}
	}
}

// TestSetCurrentKeyInGroupVerified: in race-detector builds (the test
// suites) a key given with a key group that is not its own is caught
// (sampled: the first key of a backend is always checked).
func TestSetCurrentKeyInGroupVerified(t *testing.T) {
	t.Parallel()
	if !verifyKeyGroups {
		t.Skip("key groups given by the caller are verified in race-detector builds only")
	}
	b := NewHeapBackend(codec.String, 128, full128, nil)
	k := "some-key"
	kg := keygroup.Of(codec.String.Hash(k), 128)
	if err := b.SetCurrentKeyInGroup(k, (kg+1)%128); !errors.Is(err, ErrKeyGroupOutOfRange) {
		t.Fatalf("SetCurrentKeyInGroup with the wrong key group = %v, want ErrKeyGroupOutOfRange", err)
	}
}
