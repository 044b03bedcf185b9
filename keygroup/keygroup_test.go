package keygroup

import "testing"

// Every key group belongs to exactly one subtask, and SubtaskFor agrees with
// RangeFor, for every parallelism up to maxParallelism.
func TestRangesPartitionKeyGroups(t *testing.T) {
	t.Parallel()
	for _, maxP := range []int{1, 7, 128, 1000} {
		for p := 1; p <= maxP && p <= 300; p++ {
			next := 0
			for i := 0; i < p; i++ {
				r := RangeFor(i, p, maxP)
				if r.Start != next {
					t.Fatalf("maxP=%d p=%d subtask %d starts at %d, want %d", maxP, p, i, r.Start, next)
				}
				for kg := r.Start; kg <= r.End; kg++ {
					if got := SubtaskFor(kg, p, maxP); got != i {
						t.Fatalf("maxP=%d p=%d kg=%d: SubtaskFor=%d, range says %d", maxP, p, kg, got, i)
					}
				}
				next = r.End + 1
			}
			if next != maxP {
				t.Fatalf("maxP=%d p=%d: ranges end at %d", maxP, p, next)
			}
		}
	}
}

func TestOfSpreadsSmallIntegers(t *testing.T) {
	t.Parallel()
	seen := make(map[int]int)
	for i := uint64(0); i < 128*64; i++ {
		seen[Of(i, 128)]++
	}
	for kg := 0; kg < 128; kg++ {
		if seen[kg] < 32 || seen[kg] > 96 {
			t.Fatalf("key group %d got %d of %d keys: hash does not spread", kg, seen[kg], 128*64)
		}
	}
}
