package sluice_test

// End-to-end tests of every operator of the dataflow API (docs/design.md §1): each
// runs a bounded job to its final checkpoint and compares the sink's records
// with what the input, recomputed from datagen's pure record function, says
// they must be.

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/clock"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/connector/datagen"
	"github.com/sluicehq/sluice/restart"
	"github.com/sluicehq/sluice/state"
)

// testConfig is the environment of the operator tests: a fake clock that
// nobody advances, so the only checkpoint is the final one, and partly
// filled batches are flushed by that barrier or the end of input, never by
// a timer.
func testConfig(t *testing.T, parallelism int) sluice.Config {
	return sluice.Config{
		JobName:       strings.ReplaceAll(t.Name(), "/", "_"),
		Parallelism:   parallelism,
		CheckpointDir: t.TempDir(),
		Clock:         clock.NewFake(t0),
		Logger:        quietLogger(),
		Restart:       restart.None{},
	}
}

// input returns every record a bounded datagen config produces.
func input(cfg datagen.Config) []datagen.Record {
	var out []datagen.Record
	for s := range cfg.Splits {
		for i := range cfg.RecordsPerSplit {
			out = append(out, datagen.Record{Split: s, Seq: i, Key: cfg.KeyOf(s, i), Value: cfg.ValueOf(s, i)})
		}
	}
	return out
}

// id names a record uniquely.
func id(r datagen.Record) string { return fmt.Sprintf("%d/%d", r.Split, r.Seq) }

func run(t *testing.T, env *sluice.Environment) *sluice.Result {
	t.Helper()
	res, err := env.Execute(ctxTimeout(t))
	if err != nil {
		t.Fatalf("Execute: %v", err)
	}
	return res
}

// sameMultiset fails unless got and want hold the same elements, ignoring
// order.
func sameMultiset[T any](t *testing.T, what string, got, want []T, key func(T) string) {
	t.Helper()
	g := map[string]int{}
	for _, v := range got {
		g[key(v)]++
	}
	w := map[string]int{}
	for _, v := range want {
		w[key(v)]++
	}
	if maps.Equal(g, w) {
		return
	}
	var diff []string
	for _, k := range slices.Sorted(maps.Keys(w)) {
		if g[k] != w[k] {
			diff = append(diff, fmt.Sprintf("%s: got %d want %d", k, g[k], w[k]))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(g)) {
		if _, ok := w[k]; !ok {
			diff = append(diff, fmt.Sprintf("%s: got %d want 0", k, g[k]))
		}
	}
	if len(diff) > 10 {
		diff = append(diff[:10], "...")
	}
	t.Fatalf("%s: %d records, want %d; differences: %s", what, len(got), len(want), strings.Join(diff, "; "))
}

var gen = datagen.Config{Splits: 4, RecordsPerSplit: 150, Keys: 17, Seed: 7, BatchSize: 16}

// TestMapFilter: Map transforms and Filter drops records, chained into the
// source's task at parallelism 2.
func TestMapFilter(t *testing.T) {
	t.Parallel()
	env := sluice.New(testConfig(t, 2))
	out := newCollector[string]()
	src := sluice.FromSource(env, "src", datagen.New(gen))
	doubled := sluice.Map(src, "double", func(r datagen.Record) datagen.Record { r.Value *= 2; return r })
	odd := sluice.Filter(doubled, "odd-seq", func(r datagen.Record) bool { return r.Seq%2 == 1 })
	sluice.Sink(sluice.Map(odd, "fmt", func(r datagen.Record) string { return fmt.Sprintf("%s=%d", id(r), r.Value) }), "sink", out.Sink())
	run(t, env)

	var want []string
	for _, r := range input(gen) {
		if r.Seq%2 == 1 {
			want = append(want, fmt.Sprintf("%s=%d", id(r), 2*r.Value))
		}
	}
	sameMultiset(t, "map+filter", out.Records(), want, func(s string) string { return s })
}

// TestFlatMap: FlatMap emits any number of records per input, including
// none.
func TestFlatMap(t *testing.T) {
	t.Parallel()
	env := sluice.New(testConfig(t, 2))
	out := newCollector[string]()
	src := sluice.FromSource(env, "src", datagen.New(gen))
	fm := sluice.FlatMap(src, "copies", func(r datagen.Record, c *sluice.Collector[string]) error {
		for i := range r.Value % 3 {
			c.Collect(fmt.Sprintf("%s#%d", id(r), i))
		}
		return nil
	})
	sluice.Sink(fm, "sink", out.Sink())
	run(t, env)

	var want []string
	for _, r := range input(gen) {
		for i := range r.Value % 3 {
			want = append(want, fmt.Sprintf("%s#%d", id(r), i))
		}
	}
	sameMultiset(t, "flatmap", out.Records(), want, func(s string) string { return s })
}

var errBoom = errors.New("boom")

// TestFlatMapErrorFailsJob: an error returned by a user function fails the
// job (docs/design.md §5) with restart "none", and the error names the operator and
// wraps the function's error.
func TestFlatMapErrorFailsJob(t *testing.T) {
	t.Parallel()
	for _, chained := range []bool{true, false} {
		t.Run(fmt.Sprintf("chained=%v", chained), func(t *testing.T) {
			t.Parallel()
			env := sluice.New(testConfig(t, 2))
			src := sluice.FromSource(env, "src", datagen.New(gen))
			var opts []sluice.OpOption
			if !chained {
				opts = append(opts, sluice.StartNewChain())
			}
			fm := sluice.FlatMap(src, "explode", func(r datagen.Record, c *sluice.Collector[datagen.Record]) error {
				if r.Seq == 100 {
					return fmt.Errorf("record %s: %w", id(r), errBoom)
				}
				c.Collect(r)
				return nil
			}, opts...)
			sluice.Sink(fm, "sink", sluice.DiscardSink[datagen.Record]())
			_, err := env.Execute(ctxTimeout(t))
			if !errors.Is(err, errBoom) {
				t.Fatalf("Execute: %v, want an error wrapping %v", err, errBoom)
			}
			if !strings.Contains(err.Error(), "explode") {
				t.Fatalf("error %q does not name the operator", err)
			}
		})
	}
}

// summary is what the state-kinds function emits per record.
type summary struct {
	Key     string
	Count   int64 // ValueState
	List    int   // ListState length
	Buckets int   // MapState size: distinct Value%4
	Sum     int64 // ReducingState
}

type allStates struct {
	count   state.ValueState[int64]
	list    state.ListState[int64]
	buckets state.MapState[int64, int64]
	sum     state.ReducingState[int64]
}

func (f *allStates) Open(rc *sluice.RuntimeContext[string]) error {
	var err error
	if f.count, err = sluice.NewValueState(rc, "count", codec.Int64); err != nil {
		return err
	}
	if f.list, err = sluice.NewListState(rc, "values", codec.Int64); err != nil {
		return err
	}
	if f.buckets, err = sluice.NewMapState(rc, "buckets", codec.Int64, codec.Int64); err != nil {
		return err
	}
	f.sum, err = sluice.NewReducingState(rc, "sum", codec.Int64, func(a, b int64) int64 { return a + b })
	return err
}

func (f *allStates) ProcessElement(r datagen.Record, pc *sluice.ProcessContext[string, summary]) error {
	if k := pc.CurrentKey(); k != r.Key {
		return fmt.Errorf("current key %q, record key %q", k, r.Key)
	}
	n, _ := f.count.Value()
	f.count.Update(n + 1)
	f.list.Add(r.Value)
	b, _ := f.buckets.Get(r.Value % 4)
	f.buckets.Put(r.Value%4, b+1)
	f.sum.Add(r.Value)
	s, _ := f.sum.Get()
	pc.Collect(summary{Key: r.Key, Count: n + 1, List: len(f.list.Get()), Buckets: f.buckets.Len(), Sum: s})
	return nil
}

// TestKeyByProcessStateKinds: KeyBy routes every key to one subtask (hash
// edge, parallelism 2 → 3) and a KeyedProcessFunction keeps ValueState,
// ListState, MapState and ReducingState per key (docs/design.md §4). The summaries
// of a key arrive in order, and the last one reflects all its records.
func TestKeyByProcessStateKinds(t *testing.T) {
	t.Parallel()
	env := sluice.New(testConfig(t, 2))
	out := newCollector[summary]()
	src := sluice.FromSource(env, "src", datagen.New(gen))
	keyed := sluice.KeyBy(src, func(r datagen.Record) string { return r.Key })
	sums := sluice.Process(keyed, "states", func() sluice.KeyedProcessFunction[string, datagen.Record, summary] { return &allStates{} },
		sluice.Parallelism(3))
	sluice.Sink(sums, "sink", out.Sink())
	run(t, env)

	type agg struct {
		n, sum  int64
		buckets map[int64]bool
	}
	want := map[string]*agg{}
	for _, r := range input(gen) {
		a := want[r.Key]
		if a == nil {
			a = &agg{buckets: map[int64]bool{}}
			want[r.Key] = a
		}
		a.n++
		a.sum += r.Value
		a.buckets[r.Value%4] = true
	}
	last := map[string]summary{}
	for _, s := range out.Records() {
		if prev := last[s.Key]; s.Count != prev.Count+1 {
			t.Fatalf("key %s: summary with count %d after %d: out of order or lost", s.Key, s.Count, prev.Count)
		}
		last[s.Key] = s
	}
	if len(last) != len(want) {
		t.Fatalf("%d keys in output, want %d", len(last), len(want))
	}
	for k, a := range want {
		got := last[k]
		exp := summary{Key: k, Count: a.n, List: int(a.n), Buckets: len(a.buckets), Sum: a.sum}
		if got != exp {
			t.Errorf("key %s: final summary %+v, want %+v", k, got, exp)
		}
	}
}

// TestReduce: Reduce emits the running reduction per key; the last value of
// each key is the sum of its records.
func TestReduce(t *testing.T) {
	t.Parallel()
	env := sluice.New(testConfig(t, 2))
	out := newCollector[int64]()
	src := sluice.FromSource(env, "src", datagen.New(gen))
	// Encode key and value in one int64 so that Reduce's type has a codec:
	// key*1e9 + value; the key survives summing because values are < 1024
	// and there are few records.
	enc := sluice.Map(src, "encode", func(r datagen.Record) int64 {
		k := int64(0)
		fmt.Sscanf(r.Key, "k%d", &k)
		return k*1_000_000_000 + r.Value
	})
	keyed := sluice.KeyBy(enc, func(v int64) int64 { return v / 1_000_000_000 })
	sums := sluice.Reduce(keyed, "sum", func(acc, v int64) int64 { return acc + v%1_000_000_000 }, codec.Int64)
	sluice.Sink(sums, "sink", out.Sink())
	run(t, env)

	want := map[int64]int64{}
	for _, r := range input(gen) {
		k := int64(0)
		fmt.Sscanf(r.Key, "k%d", &k)
		want[k] += r.Value
	}
	got := map[int64]int64{}
	for _, v := range out.Records() {
		k, s := v/1_000_000_000, v%1_000_000_000
		if s < got[k] {
			t.Fatalf("key %d: running sum went down from %d to %d", k, got[k], s)
		}
		got[k] = s
	}
	if !maps.Equal(got, want) {
		t.Fatalf("final sums %v, want %v", got, want)
	}
}

// TestUnion: Union merges three streams, one of them at another parallelism
// (a rebalance edge into the union), and every record arrives once.
func TestUnion(t *testing.T) {
	t.Parallel()
	env := sluice.New(testConfig(t, 2))
	out := newCollector[string]()
	var streams []sluice.Stream[string]
	var want []string
	for i, name := range []string{"a", "b", "c"} {
		g := gen
		g.Seed = uint64(i + 1)
		g.RecordsPerSplit = 40
		var opts []sluice.OpOption
		if name == "c" {
			opts = append(opts, sluice.Parallelism(1))
		}
		src := sluice.FromSource(env, "src-"+name, datagen.New(g), opts...)
		streams = append(streams, sluice.Map(src, "tag-"+name, func(r datagen.Record) string { return name + ":" + id(r) }, opts...))
		for _, r := range input(g) {
			want = append(want, name+":"+id(r))
		}
	}
	u := sluice.Union("union", streams[0], streams[1:])
	sluice.Sink(u, "sink", out.Sink())
	run(t, env)
	sameMultiset(t, "union", out.Records(), want, func(s string) string { return s })
}

// coTotal is what the co-process function emits.
type coTotal struct {
	Key          string
	Total, Count int64
}

// coSum keeps one ValueState shared by both inputs: input 1 adds the value,
// input 2 adds 1000 times it.
type coSum struct {
	total, count state.ValueState[int64]
}

func (f *coSum) Open(rc *sluice.RuntimeContext[string]) error {
	var err error
	if f.total, err = sluice.NewValueState(rc, "total", codec.Int64); err != nil {
		return err
	}
	f.count, err = sluice.NewValueState(rc, "count", codec.Int64)
	return err
}

func (f *coSum) add(key string, v int64, pc *sluice.ProcessContext[string, coTotal]) error {
	if k := pc.CurrentKey(); k != key {
		return fmt.Errorf("current key %q, record key %q", k, key)
	}
	t, _ := f.total.Value()
	n, _ := f.count.Value()
	f.total.Update(t + v)
	f.count.Update(n + 1)
	pc.Collect(coTotal{Key: key, Total: t + v, Count: n + 1})
	return nil
}

func (f *coSum) ProcessElement1(r datagen.Record, pc *sluice.ProcessContext[string, coTotal]) error {
	return f.add(r.Key, r.Value, pc)
}

func (f *coSum) ProcessElement2(r datagen.Record, pc *sluice.ProcessContext[string, coTotal]) error {
	return f.add(r.Key, 1000*r.Value, pc)
}

// TestConnectCoProcess: Connect + CoProcess sees both inputs, with keyed
// state shared between them: the final total of a key combines the records
// of both streams.
func TestConnectCoProcess(t *testing.T) {
	t.Parallel()
	env := sluice.New(testConfig(t, 2))
	out := newCollector[coTotal]()
	ga, gb := gen, gen
	ga.Seed, gb.Seed = 11, 12
	gb.RecordsPerSplit = 60
	a := sluice.KeyBy(sluice.FromSource(env, "src-a", datagen.New(ga)), func(r datagen.Record) string { return r.Key })
	b := sluice.KeyBy(sluice.FromSource(env, "src-b", datagen.New(gb), sluice.Parallelism(1)), func(r datagen.Record) string { return r.Key })
	co := sluice.CoProcess(sluice.Connect(a, b), "co", func() sluice.KeyedCoProcessFunction[string, datagen.Record, datagen.Record, coTotal] {
		return &coSum{}
	}, sluice.Parallelism(3))
	sluice.Sink(co, "sink", out.Sink())
	run(t, env)

	want := map[string]coTotal{}
	for _, r := range input(ga) {
		w := want[r.Key]
		want[r.Key] = coTotal{Key: r.Key, Total: w.Total + r.Value, Count: w.Count + 1}
	}
	for _, r := range input(gb) {
		w := want[r.Key]
		want[r.Key] = coTotal{Key: r.Key, Total: w.Total + 1000*r.Value, Count: w.Count + 1}
	}
	got := map[string]coTotal{}
	for _, c := range out.Records() {
		if c.Count != got[c.Key].Count+1 {
			t.Fatalf("key %s: count %d after %d", c.Key, c.Count, got[c.Key].Count)
		}
		got[c.Key] = c
	}
	if !maps.Equal(got, want) {
		t.Fatalf("final totals %v, want %v", got, want)
	}
}

// TestRebalance: Rebalance spreads the records of one source subtask
// round-robin over three subtasks: each gets exactly a third.
func TestRebalance(t *testing.T) {
	t.Parallel()
	env := sluice.New(testConfig(t, 1))
	out := newCollector[subtaskRecord[string]]()
	g := gen
	g.RecordsPerSplit = 75 // 300 records
	src := sluice.FromSource(env, "src", datagen.New(g))
	ids := sluice.Map(src, "id", id)
	rb := sluice.Rebalance(ids, "rebalance", sluice.Parallelism(3))
	sluice.Sink(rb, "sink", subtaskSink(out))
	res := run(t, env)

	per := map[int]int{}
	var all []string
	for _, r := range out.Records() {
		per[r.Subtask]++
		all = append(all, r.V)
	}
	if !maps.Equal(per, map[int]int{0: 100, 1: 100, 2: 100}) {
		t.Fatalf("records per subtask %v, want 100 each", per)
	}
	var want []string
	for _, r := range input(g) {
		want = append(want, id(r))
	}
	sameMultiset(t, "rebalance", all, want, func(s string) string { return s })
	if v := vertex(t, res.Status, "rebalance"); v.Parallelism != 3 || v.RecordsInTotal != 300 || v.RecordsInAttempt != 300 {
		t.Fatalf("rebalance vertex %+v, want parallelism 3 and 300 records in", v)
	}
}

// TestBroadcast: every downstream subtask sees every record exactly once.
func TestBroadcast(t *testing.T) {
	t.Parallel()
	env := sluice.New(testConfig(t, 2))
	out := newCollector[subtaskRecord[string]]()
	g := gen
	g.RecordsPerSplit = 30
	src := sluice.FromSource(env, "src", datagen.New(g))
	bc := sluice.Broadcast(sluice.Map(src, "id", id), "broadcast", sluice.Parallelism(3))
	sluice.Sink(bc, "sink", subtaskSink(out))
	run(t, env)

	var want []string
	for _, r := range input(g) {
		want = append(want, id(r))
	}
	per := map[int][]string{}
	for _, r := range out.Records() {
		per[r.Subtask] = append(per[r.Subtask], r.V)
	}
	if len(per) != 3 {
		t.Fatalf("records reached subtasks %v, want 0, 1 and 2", slices.Sorted(maps.Keys(per)))
	}
	for sub, got := range per {
		sameMultiset(t, fmt.Sprintf("subtask %d", sub), got, want, func(s string) string { return s })
	}
}

// TestSinkParallelism: a sink whose parallelism differs from its input's is
// fed by a rebalance edge, and gets every record once over its subtasks.
func TestSinkParallelism(t *testing.T) {
	t.Parallel()
	env := sluice.New(testConfig(t, 2))
	out := newCollector[subtaskRecord[string]]()
	src := sluice.FromSource(env, "src", datagen.New(gen))
	sluice.Sink(sluice.Map(src, "id", id), "sink", subtaskSink(out), sluice.Parallelism(3))
	d, err := env.Describe()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(d, `edge src -> sink (rebalance)`) {
		t.Fatalf("Describe:\n%s\nwant a rebalance edge from src to sink", d)
	}
	res := run(t, env)

	var all []string
	per := map[int]int{}
	for _, r := range out.Records() {
		all = append(all, r.V)
		per[r.Subtask]++
	}
	var want []string
	for _, r := range input(gen) {
		want = append(want, id(r))
	}
	sameMultiset(t, "sink", all, want, func(s string) string { return s })
	// Two producers, each round-robin from its own start: 600 records over
	// three subtasks can be uneven by at most one record per producer.
	for sub := range 3 {
		if per[sub] < 198 || per[sub] > 202 {
			t.Fatalf("records per sink subtask %v, want about 200 each", per)
		}
	}
	if v := vertex(t, res.Status, "sink"); v.Parallelism != 3 || v.RecordsInTotal != int64(len(want)) {
		t.Fatalf("sink vertex %+v, want parallelism 3 and %d records in", v, len(want))
	}
}

// TestOperatorParallelism: each operator runs at its own parallelism; a
// change of parallelism breaks the chain and the vertex counters add up.
func TestOperatorParallelism(t *testing.T) {
	t.Parallel()
	env := sluice.New(testConfig(t, 1))
	out := newCollector[string]()
	src := sluice.FromSource(env, "src", datagen.New(gen))
	m := sluice.Map(src, "wide", id, sluice.Parallelism(4))
	f := sluice.Filter(m, "narrow", func(string) bool { return true }, sluice.Parallelism(2))
	sluice.Sink(f, "sink", out.Sink())
	res := run(t, env)

	n := int64(gen.Splits) * gen.RecordsPerSplit
	if got := len(out.Records()); int64(got) != n {
		t.Fatalf("%d records, want %d", got, n)
	}
	for name, par := range map[string]int{"src": 1, "wide": 4, "narrow": 2} {
		v := vertex(t, res.Status, name)
		if v.Parallelism != par {
			t.Errorf("vertex %s: parallelism %d, want %d", name, v.Parallelism, par)
		}
		if name != "src" && v.RecordsInTotal != n {
			t.Errorf("vertex %s: %d records in, want %d", name, v.RecordsInTotal, n)
		}
	}
}

// vertex returns the status of the vertex (task) named name.
func vertex(t *testing.T, st sluice.JobStatus, name string) sluice.VertexStatus {
	t.Helper()
	for _, v := range st.Vertices {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no vertex %q in %+v", name, st.Vertices)
	return sluice.VertexStatus{}
}

// TestDiamond: a stream read by two chained operators whose outputs are
// united again: the union task has two edges from the same task, and every
// record arrives once through each branch.
func TestDiamond(t *testing.T) {
	t.Parallel()
	env := sluice.New(testConfig(t, 2))
	out := newCollector[string]()
	src := sluice.FromSource(env, "src", datagen.New(gen))
	a := sluice.Map(src, "a", func(r datagen.Record) string { return "a:" + id(r) })
	b := sluice.Map(src, "b", func(r datagen.Record) string { return "b:" + id(r) })
	sluice.Sink(sluice.Union("union", a, []sluice.Stream[string]{b}), "sink", out.Sink())
	d, err := env.Describe()
	if err != nil {
		t.Fatal(err)
	}
	if want := "task \"src\" parallelism 2: [src a b]\ntask \"union\" parallelism 2: [union sink]\nedge src -> union (forward)\nedge src -> union (forward)\n"; d != want {
		t.Fatalf("Describe:\n%s\nwant:\n%s", d, want)
	}
	run(t, env)
	var want []string
	for _, r := range input(gen) {
		want = append(want, "a:"+id(r), "b:"+id(r))
	}
	sameMultiset(t, "diamond", out.Records(), want, func(s string) string { return s })
}

// otherHash is the string key codec with another (still stable) hash.
type otherHash struct{ codec.KeyCodec[string] }

func (otherHash) Hash(k string) uint64 { return ^codec.String.Hash(k) * 0x9e3779b97f4a7c15 }

// TestConnectKeyCodecs: the two sides of Connect may be keyed with
// different key codecs; the operator's keyed state is partitioned by the
// first one, so both inputs must be routed by it too, or records of the
// second land on subtasks that do not own their key group.
func TestConnectKeyCodecs(t *testing.T) {
	t.Parallel()
	env := sluice.New(testConfig(t, 2))
	out := newCollector[coTotal]()
	ga, gb := gen, gen
	ga.Seed, gb.Seed = 21, 22
	a := sluice.KeyBy(sluice.FromSource(env, "src-a", datagen.New(ga)), func(r datagen.Record) string { return r.Key })
	b := sluice.KeyBy(sluice.FromSource(env, "src-b", datagen.New(gb)), func(r datagen.Record) string { return r.Key },
		sluice.WithKeyCodec[string](otherHash{codec.String}))
	co := sluice.CoProcess(sluice.Connect(a, b), "co", func() sluice.KeyedCoProcessFunction[string, datagen.Record, datagen.Record, coTotal] {
		return &coSum{}
	}, sluice.Parallelism(4))
	sluice.Sink(co, "sink", out.Sink())
	run(t, env)
	if got, want := len(out.Records()), len(input(ga))+len(input(gb)); got != want {
		t.Fatalf("%d records, want %d", got, want)
	}
}

// TestSubtaskSinkFunc: each sink subtask makes its own function when it
// opens, and sees only its own records; a maker's error fails the job,
// naming the sink.
func TestSubtaskSinkFunc(t *testing.T) {
	t.Parallel()
	env := sluice.New(testConfig(t, 2))
	src := sluice.FromSource(env, "src", datagen.New(gen))
	var counts [2]int // each written by its subtask only
	opened := make(chan int, 2)
	sluice.Sink(src, "count", sluice.SubtaskSinkFunc[datagen.Record](func(oc *sluice.OperatorContext) (sluice.SinkFunc[datagen.Record], error) {
		opened <- oc.Subtask
		n := &counts[oc.Subtask]
		return func(datagen.Record) error { *n++; return nil }, nil
	}))
	run(t, env)
	if len(opened) != 2 {
		t.Fatalf("%d subtasks opened, want 2", len(opened))
	}
	if total := counts[0] + counts[1]; total != len(input(gen)) || counts[0] == 0 || counts[1] == 0 {
		t.Fatalf("per-subtask counts %v, want both non-zero summing to %d", counts, len(input(gen)))
	}

	env = sluice.New(testConfig(t, 2))
	src = sluice.FromSource(env, "src", datagen.New(gen))
	sluice.Sink(src, "refuses", sluice.SubtaskSinkFunc[datagen.Record](func(*sluice.OperatorContext) (sluice.SinkFunc[datagen.Record], error) {
		return nil, errBoom
	}))
	_, err := env.Execute(ctxTimeout(t))
	if !errors.Is(err, errBoom) || !strings.Contains(err.Error(), "refuses") {
		t.Fatalf("Execute: %v, want an error wrapping %v that names the sink", err, errBoom)
	}
}
