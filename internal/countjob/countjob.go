// Package countjob is the job behind `sluice demo` and the exactly-once
// tests: datagen → key by account → keyed running count → sink. Its
// contract: for every input record it emits one output `key,n`, where n is
// how many records of that key it has seen so far, so exactly-once holds iff
// for every key the committed outputs are exactly 1..n_k, once each.
package countjob

import (
	"strconv"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/connector/datagen"
	"github.com/sluicehq/sluice/state"
)

// Count is one output record: the key and how many records of it were seen.
type Count struct {
	Key string
	N   int64
}

// AppendLine appends "key,n\n", the file sink's line format.
func AppendLine(dst []byte, c Count) []byte {
	dst = append(dst, c.Key...)
	dst = append(dst, ',')
	dst = strconv.AppendInt(dst, c.N, 10)
	return append(dst, '\n')
}

// Operator uids of the job, stable across versions.
const (
	SourceUID = "datagen"
	CountUID  = "count"
	SinkUID   = "sink"
)

// Build adds the count job to env: src → keyBy(key) → count → sink, with
// parallelism for the counting and sink operators.
func Build(env *sluice.Environment, src sluice.Source[datagen.Record], sink sluice.SinkProvider[Count], parallelism int) {
	// The codec lets unaligned checkpoints store records in flight on the
	// shuffle (docs/design.md §3); aligned ones never use it.
	in := sluice.FromSource(env, SourceUID, src, sluice.WithCodec(datagen.RecordCodec))
	keyed := sluice.KeyBy(in, func(r datagen.Record) string { return r.Key })
	counts := sluice.Process(keyed, CountUID, NewCounter[datagen.Record], sluice.Parallelism(parallelism))
	sluice.Sink(counts, SinkUID, sink, sluice.Parallelism(parallelism))
}

// NewCounter returns a Counter for one subtask: the keyed running count of
// records of any type T, keyed by string.
func NewCounter[T any]() sluice.KeyedProcessFunction[string, T, Count] { return &Counter[T]{} }

// Counter is the keyed running count.
type Counter[T any] struct {
	n state.ValueState[int64]
}

// Open registers the count state.
func (c *Counter[T]) Open(rc *sluice.RuntimeContext[string]) error {
	var err error
	c.n, err = sluice.NewValueState(rc, "count", codec.Int64)
	return err
}

// ProcessElement counts the record and emits its key's new count.
func (c *Counter[T]) ProcessElement(_ T, pc *sluice.ProcessContext[string, Count]) error {
	n, _ := c.n.Value()
	n++
	c.n.Update(n)
	pc.Collect(Count{Key: pc.CurrentKey(), N: n})
	return nil
}
