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
	sluice.Sink(s, name, sluice.SubtaskSinkFunc[T](func(oc *sluice.OperatorContext) (sluice.SinkFunc[T], error) {
		n := out.count.shard(oc.Subtask)
		return func(v T) error {
			n.Add(1)
			if out.Collect {
				out.keep(format(v))
			}
			return nil
		}, nil
	}))
}

// latencyEvery is the sampling period of EmitTimed's latencies, in rows
// of one sink subtask.
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
	sluice.Sink(s, name, sluice.SubtaskSinkFunc[T](func(oc *sluice.OperatorContext) (sluice.SinkFunc[T], error) {
		c := out.count.shard(oc.Subtask)
		return func(v T) error {
			if c.Add(1)%latencyEvery == 0 {
				if d, ok := p.Since(eventTime(v)); ok {
					out.lmu.Lock()
					out.latencies = append(out.latencies, d)
					out.lmu.Unlock()
				}
			}
			if out.Collect {
				out.keep(format(v))
			}
			return nil
		}, nil
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
			out.keep(r)
		}
		return r
	})
	sluice.Sink(rows, name, out.Sink(name))
}

// keep adds a formatted row to the collected ones (Collect).
func (o *Out) keep(r string) {
	o.mu.Lock()
	o.rows = append(o.rows, r)
	o.mu.Unlock()
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

// counterShards is the number of counter's slots: subtasks beyond it
// share slots (still exact: the slots are atomic).
const counterShards = 16

// counter is a query's row count: one atomic per sink subtask, each on its
// own cache line, summed when read. (One atomic shared by the subtasks
// cost 10–40 ns a row on the 2-core machine, about 4% of q0's CPU, the
// cache line moving between the cores at every row.)
type counter struct {
	slots [counterShards]struct {
		n atomic.Int64
		_ [56]byte
	}
}

// shard returns the slot of sink subtask sub.
func (c *counter) shard(sub int) *atomic.Int64 { return &c.slots[sub%counterShards].n }

// add counts one row in slot 0, for a caller that does not know its
// subtask (emitFormatted's Map, ahead of a Kafka sink's own costs).
func (c *counter) add() int64 { return c.slots[0].n.Add(1) }

func (c *counter) load() int64 {
	var n int64
	for i := range c.slots {
		n += c.slots[i].n.Load()
	}
	return n
}
