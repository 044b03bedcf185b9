package queries

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/sluicehq/sluice"
)

// Out is where a query's rows go: in the benchmark they are counted and
// dropped; with Collect set (tests) they are also formatted and kept.
type Out struct {
	// Collect keeps every row, formatted, for Rows.
	Collect bool
	// ExactlyOnce (tests, with Collect) counts and keeps a row only once
	// the checkpoint after it completed, through a two-phase-commit sink:
	// rows then survive restarts exactly once (out_committed.go).
	ExactlyOnce bool

	count atomic.Int64
	mu    sync.Mutex
	rows  []string
	// pending holds the rows of open and pre-committed transactions
	// (ExactlyOnce), by transaction id.
	pending map[string][]string
}

// Emit ends s in a sink named name that counts its rows into out and, when
// out.Collect is set, keeps format(row).
func Emit[T any](out *Out, s sluice.Stream[T], name string, format func(T) string) {
	if out.ExactlyOnce {
		emitCommitted(out, s, name, format)
		return
	}
	sluice.Sink(s, name, sluice.SinkFunc[T](func(v T) error {
		out.count.Add(1)
		if out.Collect {
			r := format(v)
			out.mu.Lock()
			out.rows = append(out.rows, r)
			out.mu.Unlock()
		}
		return nil
	}))
}

// Count returns the number of rows emitted so far.
func (o *Out) Count() int64 { return o.count.Load() }

// Rows returns the collected rows, sorted.
func (o *Out) Rows() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	r := slices.Clone(o.rows)
	slices.Sort(r)
	return r
}
