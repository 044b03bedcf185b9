package heap

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/clock"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/keygroup"
)

// TestKeysOf: the keys with an entry in one state, each once, in key-group
// order and by encoded key within a group; keys of other states and
// cleared ones are not listed; an unregistered name is an error.
func TestKeysOf(t *testing.T) {
	const maxP = 8
	b := NewHeapBackend(codec.String, maxP, checkpoint.KeyGroupRange{Start: 0, End: maxP - 1}, clock.NewFake(epoch))
	sum, err := Value(b, "sum", codec.Int64)
	if err != nil {
		t.Fatal(err)
	}
	other, err := Value(b, "other", codec.Int64)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 40 {
		k := fmt.Sprintf("k%d", i)
		if err := b.SetCurrentKey(k); err != nil {
			t.Fatal(err)
		}
		switch i % 4 {
		case 0:
			other.Update(1) // not in sum
		case 1:
			sum.Update(1)
			sum.Clear()
		default:
			sum.Update(int64(i))
			sum.Update(int64(i + 1)) // one key, written twice
			want = append(want, k)
		}
	}
	kg := func(k string) int { return keygroup.Of(codec.String.Hash(k), maxP) }
	slices.SortFunc(want, func(x, y string) int {
		if kg(x) != kg(y) {
			return kg(x) - kg(y)
		}
		return bytes.Compare(codec.String.Append(nil, x), codec.String.Append(nil, y))
	})
	for range 3 { // map order differs between calls; the result must not
		got, err := b.KeysOf("sum")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("KeysOf(sum) = %v, want %v", got, want)
		}
	}
	if _, err := b.KeysOf("missing"); err == nil || !strings.Contains(err.Error(), `"missing" is not registered`) {
		t.Fatalf("KeysOf(missing): %v", err)
	}
}
