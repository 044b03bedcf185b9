package sluice_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/connector/datagen"
	"github.com/sluicehq/sluice/state"
	"github.com/sluicehq/sluice/watermark"
	"github.com/sluicehq/sluice/window"
)

// countingKeys is the built-in string key codec, counting its Hash calls.
type countingKeys struct {
	codec.KeyCodec[string]
	n *atomic.Int64
}

func (c countingKeys) Hash(k string) uint64 {
	c.n.Add(1)
	return c.KeyCodec.Hash(k)
}

func newCountingKeys(t *testing.T) countingKeys {
	kc, ok := codec.KeyFor[string]()
	if !ok {
		t.Fatal("no built-in string key codec")
	}
	return countingKeys{KeyCodec: kc, n: new(atomic.Int64)}
}

// maxHashes is how many hashes n records may cost: one each, plus the
// sampled check of race-detector builds (one key in 16, and the first of
// each subtask).
func maxHashes(n int64) int64 { return n + n/16 + 8 }

// keySum is a key's running sum.
type keySum struct {
	Key string
	Sum int64
}

// runningSum is a keyed running sum of record values.
type runningSum struct{ sum state.ValueState[int64] }

func (s *runningSum) Open(rc *sluice.RuntimeContext[string]) error {
	var err error
	s.sum, err = sluice.NewValueState(rc, "sum", codec.Int64)
	return err
}

func (s *runningSum) ProcessElement(r datagen.Record, pc *sluice.ProcessContext[string, keySum]) error {
	v, _ := s.sum.Value()
	v += r.Value
	s.sum.Update(v)
	pc.Collect(keySum{Key: r.Key, Sum: v})
	return nil
}

// TestKeyGroupComputedOnce: a keyed operator behind a hash partition gets
// each record's key group from the partitioner, which hashed the key; the
// state backend does not hash it again (issue 10 item 6). Before, every
// record's key was hashed twice. The sums prove that each key's state
// stayed in one place.
func TestKeyGroupComputedOnce(t *testing.T) {
	t.Parallel()
	g := datagen.Config{Splits: 4, RecordsPerSplit: 2000, Keys: 97, Seed: 3, BatchSize: 64}
	kc := newCountingKeys(t)
	env := sluice.New(testConfig(t, 2))
	out := newCollector[keySum]()
	src := sluice.FromSource(env, "src", datagen.New(g))
	keyed := sluice.KeyBy(src, func(r datagen.Record) string { return r.Key }, sluice.WithKeyCodec[string](kc))
	sums := sluice.Process(keyed, "sum", func() sluice.KeyedProcessFunction[string, datagen.Record, keySum] { return &runningSum{} })
	sluice.Sink(sums, "sink", out.Sink())
	run(t, env)

	n := int64(g.Splits) * g.RecordsPerSplit
	if got := int64(len(out.Records())); got != n {
		t.Fatalf("%d sums, want %d", got, n)
	}
	want := map[string]int64{}
	for _, r := range input(g) {
		want[r.Key] += r.Value
	}
	got := map[string]int64{}
	for _, s := range out.Records() {
		got[s.Key] = max(got[s.Key], s.Sum)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("key %s: final sum %d, want %d", k, got[k], w)
		}
	}
	if hashes := kc.n.Load(); hashes > maxHashes(n) || hashes < n {
		t.Fatalf("%d key hashes for %d records, want one per record (at most %d)", hashes, n, maxHashes(n))
	}
}

// counting counts a window's records.
type counting struct{}

func (counting) CreateAccumulator() int64            { return 0 }
func (counting) Add(_ datagen.Record, n int64) int64 { return n + 1 }
func (counting) Merge(a, b int64) int64              { return a + b }
func (counting) Result(n int64) int64                { return n }

// TestWindowKeyGroupComputedOnce: the window operator's window-major path
// also takes the key group from the partitioner: one hash per record, and
// the counts of all windows add up to the input.
func TestWindowKeyGroupComputedOnce(t *testing.T) {
	t.Parallel()
	g := datagen.Config{Splits: 4, RecordsPerSplit: 2000, Keys: 97, Seed: 3, BatchSize: 64}
	kc := newCountingKeys(t)
	env := sluice.New(testConfig(t, 2))
	out := newCollector[int64]()
	src := sluice.FromSourceWithWatermarks(env, "src", datagen.New(g), watermark.ForMonotonousTimestamps(),
		[]sluice.WatermarkOption[datagen.Record]{sluice.WithTimestampAssigner(func(r datagen.Record, _ int64) int64 {
			return r.Seq * int64(time.Millisecond)
		})})
	keyed := sluice.KeyBy(src, func(r datagen.Record) string { return r.Key }, sluice.WithKeyCodec[string](kc))
	counts := sluice.WindowAggregate(sluice.Window(keyed, window.Tumbling(100*time.Millisecond, 0)), "count",
		sluice.AggregateFunction[datagen.Record, int64, int64](counting{}), codec.Int64)
	sluice.Sink(counts, "sink", out.Sink())
	run(t, env)

	n := int64(g.Splits) * g.RecordsPerSplit
	var total int64
	for _, c := range out.Records() {
		total += c
	}
	if total != n {
		t.Fatalf("window counts add up to %d, want %d", total, n)
	}
	if hashes := kc.n.Load(); hashes > maxHashes(n) || hashes < n {
		t.Fatalf("%d key hashes for %d records, want one per record (at most %d)", hashes, n, maxHashes(n))
	}
}
