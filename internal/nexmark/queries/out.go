package queries

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/nexmark"
)

// Out is where a query's rows go: in the benchmark they are counted and
// dropped; with Collect set (tests) they are also formatted and kept.
type Out struct {
	// Collect keeps every row, formatted, for Rows.
	Collect bool
	// Progress, when set, is the source's record of when it emitted each
	// slice of event time: EmitTimed then samples the latency of one row
	// in latencyEvery (see Latencies).
	Progress *nexmark.Progress

	// Sink, when set, makes the sink each result stream ends in: its rows
	// go to it formatted, besides being counted (and collected). A Kafka
	// sink of strings makes the query run Kafka → Kafka.
	Sink func(name string) sluice.SinkProvider[string]

	// FilesDir is where queries that write files (q10) put them. Empty
	// makes a new temporary directory at every Build, which nothing
	// removes: the benchmark and the tests set it, and remove it.
	FilesDir string

	lmu       sync.Mutex
	latencies []time.Duration

	count counter
	mu    sync.Mutex
	rows  []string
}

// Emit ends s in a sink named name that counts its rows into out and, when
// out.Collect is set, keeps format(row).
func Emit[T any](out *Out, s sluice.Stream[T], name string, format func(T) string) {
	if out.Sink != nil {
		emitFormatted(out, s, name, format)
		return
	}
	sluice.Sink(s, name, sluice.SinkFunc[T](func(v T) error {
		out.count.add()
		if out.Collect {
			r := format(v)
			out.mu.Lock()
			out.rows = append(out.rows, r)
			out.mu.Unlock()
		}
		return nil
	}))
}

// latencyEvery is the sampling period of EmitTimed's latencies, in rows
// of one sink (all its subtasks).
const latencyEvery = 64

// EmitTimed is Emit for rows with an event time: eventTime(row) in ms
// since the epoch (a bid's DateTime, a window's end). When out.Progress is
// set, one row in latencyEvery records its latency: the wall time since
// the source first emitted an event of the row's event time. A window's
// row therefore counts the time the watermark needed to pass the window.
func EmitTimed[T any](out *Out, s sluice.Stream[T], name string, format func(T) string, eventTime func(T) int64) {
	if out.Progress == nil || out.Sink != nil {
		Emit(out, s, name, format)
		return
	}
	p := out.Progress
	sluice.Sink(s, name, sluice.SinkFunc[T](func(v T) error {
		n := out.count.add()
		if n%latencyEvery == 0 {
			if d, ok := p.Since(eventTime(v)); ok {
				out.lmu.Lock()
				out.latencies = append(out.latencies, d)
				out.lmu.Unlock()
			}
		}
		if out.Collect {
			r := format(v)
			out.mu.Lock()
			out.rows = append(out.rows, r)
			out.mu.Unlock()
		}
		return nil
	}))
}

// Latencies returns the sampled latencies of EmitTimed, sorted.
func (o *Out) Latencies() []time.Duration {
	o.lmu.Lock()
	defer o.lmu.Unlock()
	l := slices.Clone(o.latencies)
	slices.Sort(l)
	return l
}

// emitFormatted formats the rows of s into out.Sink(name), counting them.
func emitFormatted[T any](out *Out, s sluice.Stream[T], name string, format func(T) string) {
	rows := sluice.Map(s, name+"-format", func(v T) string {
		out.count.add()
		r := format(v)
		if out.Collect {
			out.mu.Lock()
			out.rows = append(out.rows, r)
			out.mu.Unlock()
		}
		return r
	})
	sluice.Sink(rows, name, out.Sink(name))
}

// Count returns the number of rows emitted so far.
func (o *Out) Count() int64 { return o.count.load() }

// Rows returns the collected rows, sorted.
func (o *Out) Rows() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	r := slices.Clone(o.rows)
	slices.Sort(r)
	return r
}

// counter is a query's row count, one atomic shared by its sink subtasks.
// (It was sharded by the address of the calling goroutine's stack, which
// moves when the stack grows; a shared atomic measured 10–40 ns a row on
// the 2-core machine, a few percent of a q0 event.)
type counter struct{ n atomic.Int64 }

// add counts one row and returns the count so far.
func (c *counter) add() int64 { return c.n.Add(1) }

func (c *counter) load() int64 { return c.n.Load() }
