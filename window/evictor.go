package window

import (
	"fmt"
	"time"
)

type ekind uint8

const (
	countEvictor ekind = iota + 1
	timeEvictor
)

// Evictor removes elements from a window's contents before (or after) the
// window function runs, as Flink's evictors. A window with an evictor keeps
// its elements as a list (no incremental aggregation), and the engine asks
// Evict which to drop. Evictors are values, safe for concurrent use.
type Evictor struct {
	kind  ekind
	n     int64
	d     int64
	after bool
	err   error
}

// CountEvictor keeps the last n elements of a window (in arrival order).
// n must be positive.
func CountEvictor(n int64) Evictor {
	e := Evictor{kind: countEvictor, n: n}
	if n <= 0 {
		e.err = fmt.Errorf("window: count evictor count %d must be positive", n)
	}
	return e
}

// TimeEvictor keeps the elements whose timestamp is less than d below the
// largest timestamp in the window: it drops those at or below max - d, as
// Flink's. d must be positive.
func TimeEvictor(d time.Duration) Evictor {
	e := Evictor{kind: timeEvictor, d: int64(d)}
	if d <= 0 {
		e.err = fmt.Errorf("window: time evictor keep %v must be positive", d)
	}
	return e
}

// After returns e evicting after the window function instead of before it.
func (e Evictor) After() Evictor {
	e.after = true
	return e
}

// EvictsAfter reports whether e runs after the window function.
func (e Evictor) EvictsAfter() bool { return e.after }

// Validate reports invalid parameters; the zero Evictor is invalid.
func (e Evictor) Validate() error {
	if e.kind == 0 {
		return fmt.Errorf("window: zero Evictor; use CountEvictor or TimeEvictor")
	}
	return e.err
}

// Evict appends to dst the indexes, ascending, of the elements to remove
// from a window whose elements have the timestamps ts (in arrival order),
// and returns it.
func (e Evictor) Evict(ts []int64, dst []int) []int {
	if e.err != nil {
		return dst
	}
	switch e.kind {
	case countEvictor:
		for i := range int64(len(ts)) - e.n {
			dst = append(dst, int(i))
		}
	case timeEvictor:
		if len(ts) == 0 {
			return dst
		}
		maxTS := ts[0]
		for _, t := range ts[1:] {
			maxTS = max(maxTS, t)
		}
		cutoff := satSub(maxTS, e.d)
		for i, t := range ts {
			if t <= cutoff {
				dst = append(dst, i)
			}
		}
	}
	return dst
}
