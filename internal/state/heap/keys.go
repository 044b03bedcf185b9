package heap

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/sluicehq/sluice/keygroup"
)

// KeysOf returns the keys that have an entry in the registered state name
// (expired entries not yet cleaned up included), ordered by key group and,
// within one, by encoded key: the same order on every run, so that a
// function visiting them emits the same sequence (Flink's
// applyToKeyedState; docs/design.md §4). It allocates: it is meant for the
// occasional broadcast record, not for every record.
func (b *HeapBackend[K]) KeysOf(name string) ([]K, error) {
	s, ok := b.states[name]
	if !ok {
		return nil, fmt.Errorf("keyed state %q is not registered (register it in Open)", name)
	}
	type entry struct {
		kg  int
		enc []byte
		k   K
	}
	var es []entry
	s.keys(func(k K) {
		es = append(es, entry{kg: keygroup.Of(b.kc.Hash(k), b.maxP), enc: b.kc.Append(nil, k), k: k})
	})
	slices.SortFunc(es, func(x, y entry) int {
		if x.kg != y.kg {
			return x.kg - y.kg
		}
		return bytes.Compare(x.enc, y.enc)
	})
	out := make([]K, len(es))
	for i, e := range es {
		out[i] = e.k
	}
	return out, nil
}
