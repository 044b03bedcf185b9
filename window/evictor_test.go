package window

import (
	"slices"
	"testing"
	"time"
)

// TestEvictors checks evictions against hand-computed indexes.
func TestEvictors(t *testing.T) {
	t.Parallel()
	ts := []int64{5, 1, 9, 7, 3}
	tests := []struct {
		name string
		e    Evictor
		ts   []int64
		want []int
	}{
		{"count keeps the last 2", CountEvictor(2), ts, []int{0, 1, 2}},
		{"count more than held", CountEvictor(10), ts, nil},
		// Cutoff 9-4 = 5: the elements at 5, 1 and 3 go.
		{"time keeps within 4 of the max", TimeEvictor(4), ts, []int{0, 1, 4}},
		{"time 1 keeps the max only", TimeEvictor(1), ts, []int{0, 1, 3, 4}},
		{"time on empty", TimeEvictor(time.Second), nil, nil},
		{"invalid evicts nothing", CountEvictor(0), ts, nil},
	}
	for _, tt := range tests {
		if got := tt.e.Evict(tt.ts, nil); !slices.Equal(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
	if CountEvictor(1).EvictsAfter() || !CountEvictor(1).After().EvictsAfter() {
		t.Error("After")
	}
	for name, e := range map[string]Evictor{"zero": {}, "count 0": CountEvictor(0), "time 0": TimeEvictor(0)} {
		if e.Validate() == nil {
			t.Errorf("%s validates", name)
		}
	}
}
