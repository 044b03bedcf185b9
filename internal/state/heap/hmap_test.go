package heap

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/sluicehq/sluice/codec"
)

// TestHmapAgainstMap drives an hmap and a Go map with the same random
// upserts, puts, removes and clones and checks they agree after every step;
// every other round the keys' hashes collide often (distinct keys, equal
// hash), which makes long probe runs for remove to shift back.
func TestHmapAgainstMap(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("test seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	for round := range 20 {
		hint := r.IntN(100)
		h := func(k int) uint64 { return slotHash(uint64(k)) }
		if round%2 == 1 {
			h = func(k int) uint64 { return slotHash(uint64(k % 5)) }
		}
		m := newHmap[int, int](hint)
		want := map[int]int{}
		var snap *hmap[int, int]
		var snapWant map[int]int
		keys := 1 + r.IntN(2000)
		for range 5000 {
			k := r.IntN(keys)
			switch r.IntN(5) {
			case 0:
				m.put(h(k), k, k*3)
				want[k] = k * 3
			case 4:
				_, had := want[k]
				if got := m.remove(h(k), k); got != had {
					t.Fatalf("round %d: remove(%d) = %v, map says %v", round, k, got, had)
				}
				delete(want, k)
			case 1:
				if r.IntN(50) == 0 {
					snap, snapWant = m.clone(), cloneMap(want)
				}
			default:
				p, had := m.upsert(h(k), k)
				if _, ok := want[k]; ok != had {
					t.Fatalf("round %d: upsert(%d) had=%v, map says %v", round, k, had, ok)
				}
				*p++
				want[k]++
			}
			v, ok := m.get(h(k), k)
			if w, wok := want[k]; ok != wok || v != w {
				t.Fatalf("round %d: get(%d) = %d, %v; want %d, %v", round, k, v, ok, w, wok)
			}
		}
		checkHmap(t, m, h, want)
		for k := range want {
			if _, ok := m.get(h(k), k); !ok {
				t.Fatalf("round %d: key %d unreachable after removes", round, k)
			}
		}
		if snap != nil {
			checkHmap(t, snap, h, snapWant)
		}
	}
}

func cloneMap(m map[int]int) map[int]int {
	c := make(map[int]int, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func checkHmap(t *testing.T, m *hmap[int, int], h func(int) uint64, want map[int]int) {
	t.Helper()
	if m.Len() != len(want) {
		t.Fatalf("Len = %d, want %d", m.Len(), len(want))
	}
	seen := 0
	for k, v := range m.all() {
		seen++
		if w, ok := want[k]; !ok || w != v {
			t.Fatalf("all yields %d=%d, want %d (present %v)", k, v, w, ok)
		}
	}
	if seen != len(want) {
		t.Fatalf("all yields %d entries, want %d", seen, len(want))
	}
	if _, ok := m.get(h(-1), -1); ok {
		t.Fatal("get finds an absent key")
	}
}

// TestHmapSizedForHint: a map sized for n entries takes n without growing.
func TestHmapSizedForHint(t *testing.T) {
	for _, n := range []int{0, 1, 6, 7, 100, 4096, 100_000} {
		m := newHmap[int, int](n)
		slots := len(m.slots)
		for i := range n {
			m.put(slotHash(uint64(i)), i, i)
		}
		if len(m.slots) != slots {
			t.Errorf("hint %d: grew from %d to %d slots", n, slots, len(m.slots))
		}
		if n > 0 && slots > 4*n+hmapMinSlots {
			t.Errorf("hint %d: %d slots, more than needed", n, slots)
		}
	}
}

func BenchmarkHmapUpsert1M(b *testing.B) {
	benchUpsert(b, func(n int) func(string) {
		m := newHmap[string, int64](n)
		return func(k string) { p, _ := m.upsert(slotHash(codec.HashString(k)), k); *p++ }
	})
}

func BenchmarkGoMapGetPut1M(b *testing.B) {
	benchUpsert(b, func(n int) func(string) {
		m := make(map[string]int64, n)
		return func(k string) { _ = codec.HashString(k); v := m[k]; m[k] = v + 1 }
	})
}

func benchUpsert(b *testing.B, mk func(n int) func(string)) {
	const n = 1 << 20
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "k" + string(rune('a'+i%26)) + time.Duration(i).String()
	}
	r := rand.New(rand.NewPCG(1, 2))
	order := make([]int32, 1<<22)
	for i := range order {
		order[i] = int32(r.IntN(n))
	}
	up := mk(n)
	b.ResetTimer()
	for i := range b.N {
		up(keys[order[i&(len(order)-1)]])
	}
}
