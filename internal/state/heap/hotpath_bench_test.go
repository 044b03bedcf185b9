package heap

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/keygroup"
)

// BenchmarkKeyedRecord is the keyed sum's per-record state work on 1M
// string keys (as the benchmark pipeline's), one op per record, in
// batches of 1024 random keys: "hash" sets the key as an operator without
// a partitioner does (the backend hashes), "kg" with the key group the
// partitioner computed, "kg+touch" also touches the batch's keys first
// (the keyed operator's Prefetch). Run:
// go test -run '^$' -bench KeyedRecord -count 5 ./internal/state/heap/
func BenchmarkKeyedRecord(b *testing.B) {
	const keys, batch, maxP = 1_000_000, 1024, 128
	all := make([]string, keys)
	for i := range all {
		all[i] = fmt.Sprintf("k%06d", i)
	}
	kgs := make([]int, keys)
	for i, k := range all {
		kgs[i] = keygroup.Of(codec.String.Hash(k), maxP)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	order := make([]int, 1<<20)
	for i := range order {
		order[i] = rng.IntN(keys)
	}
	for _, mode := range []string{"hash", "kg", "kg+touch"} {
		b.Run(mode, func(b *testing.B) {
			be := NewHeapBackend(codec.String, maxP, full128, nil)
			v, err := Value(be, "sum", codec.Int64)
			if err != nil {
				b.Fatal(err)
			}
			for i, k := range all {
				if err := be.SetCurrentKey(k); err != nil {
					b.Fatal(err)
				}
				v.Update(int64(i))
			}
			b.ResetTimer()
			for n := 0; n < b.N; n += batch {
				idx := order[n%len(order):][:batch]
				if mode == "kg+touch" {
					for _, i := range idx {
						be.Touch(all[i], kgs[i])
					}
				}
				for _, i := range idx {
					if mode == "hash" {
						err = be.SetCurrentKey(all[i])
					} else {
						err = be.SetCurrentKeyInGroup(all[i], kgs[i])
					}
					if err != nil {
						b.Fatal(err)
					}
					s, _ := v.Value()
					v.Update(s + 1)
				}
			}
		})
	}
}
