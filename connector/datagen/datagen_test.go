package datagen

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/clock"
)

// collect is an Emitter that keeps every record.
type collect struct{ recs []Record }

func (c *collect) Emit(r Record) error {
	c.recs = append(c.recs, r)
	return nil
}

// newReader makes a reader of src owning splits (all of them when nil).
func newReader(t testing.TB, src *Source, clk clock.Clock, splits []sluice.Split) *reader {
	t.Helper()
	if splits == nil {
		var err error
		splits, err = src.Splits(context.Background())
		if err != nil {
			t.Fatal(err)
		}
	}
	sr, err := src.NewReader(context.Background(), &sluice.OperatorContext{UID: "datagen", Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	if err := sr.AddSplits(context.Background(), splits); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sr.Close(context.Background()) })
	return sr.(*reader)
}

// pollN polls until at least n records were emitted in total or the input
// ended.
func pollN(t testing.TB, r *reader, out *collect, n int) sluice.PollStatus {
	t.Helper()
	for len(out.recs) < n {
		st, err := r.Poll(context.Background(), out)
		if err != nil {
			t.Fatal(err)
		}
		if st != sluice.MoreAvailable {
			return st
		}
	}
	return sluice.MoreAvailable
}

// bySplit groups records per split, checking that every split's sequence
// numbers are consecutive from start.
func bySplit(t *testing.T, recs []Record, start map[int]int64) map[int][]Record {
	t.Helper()
	out := map[int][]Record{}
	for _, r := range recs {
		want := start[r.Split] + int64(len(out[r.Split]))
		if r.Seq != want {
			t.Fatalf("split %d: got seq %d, want %d", r.Split, r.Seq, want)
		}
		out[r.Split] = append(out[r.Split], r)
	}
	return out
}

// TestGolden pins the record function. Verifiers regenerate the input of
// jobs from (config, positions); if this test fails, records of existing
// checkpoints changed meaning. Do not update the hashes unless that is
// intended and announced.
func TestGolden(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		dist string
		head string // the first keys of split 1
		hash uint64 // FNV-1a over "key,value;" of 10000 records of each of 3 splits
	}{
		{Uniform, "k000400 k000891 k000867 k000559 k000253", 0xe09fed9f98cd2907},
		{Zipf, "k000400 k000023 k000019 k000002 k000000", 0x2534c5d15968924a},
		{Sequential, "k000001 k000004 k000007 k000010 k000013", 0x489db47ae2fa5bb2},
	} {
		cfg := Config{Splits: 3, Keys: 1000, Distribution: tc.dist, Seed: 42}
		var head []string
		for i := range int64(5) {
			head = append(head, cfg.KeyOf(1, i))
		}
		h := fnv.New64a()
		for s := range 3 {
			for i := range int64(10000) {
				fmt.Fprintf(h, "%s,%d;", cfg.KeyOf(s, i), cfg.ValueOf(s, i))
			}
		}
		if got := strings.Join(head, " "); got != tc.head || h.Sum64() != tc.hash {
			t.Errorf("%s: head %q hash %#x, pinned %q %#x", tc.dist, got, h.Sum64(), tc.head, tc.hash)
		}
	}
}

// TestDeterministicAcrossBatchings: a record is a function of (seed,
// split, seq), not of how polls cut the stream, with a key table that
// stays in cache and with one that does not (emit draws keys ahead).
func TestDeterministicAcrossBatchings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		dist string
		keys int
	}{{Uniform, 50}, {Zipf, 50}, {Sequential, 50}, {Uniform, 200_000}, {Zipf, 200_000}} {
		dist := tc.dist
		t.Run(fmt.Sprintf("%s/%d", dist, tc.keys), func(t *testing.T) {
			t.Parallel()
			var ref map[int][]Record
			for _, batch := range []int{1, 7, 100, 512} {
				cfg := Config{Splits: 3, Keys: tc.keys, Distribution: dist, Seed: 7, BatchSize: batch, RecordsPerSplit: 700, PrefetchKeys: tc.keys > 50}
				r := newReader(t, New(cfg), nil, nil)
				out := &collect{}
				if st := pollN(t, r, out, math.MaxInt); st != sluice.EndOfInput {
					t.Fatalf("batch %d: status %v, want EndOfInput", batch, st)
				}
				got := bySplit(t, out.recs, nil)
				for s, recs := range got {
					if len(recs) != 700 {
						t.Fatalf("batch %d: split %d has %d records, want 700", batch, s, len(recs))
					}
					for _, rec := range recs {
						if k, v := cfg.KeyOf(s, rec.Seq), cfg.ValueOf(s, rec.Seq); rec.Key != k || rec.Value != v {
							t.Fatalf("batch %d: record %d/%d = %s,%d; KeyOf/ValueOf say %s,%d", batch, s, rec.Seq, rec.Key, rec.Value, k, v)
						}
					}
				}
				if ref == nil {
					ref = got
					continue
				}
				for s := range ref {
					for i := range ref[s] {
						if ref[s][i] != got[s][i] {
							t.Fatalf("batch %d: split %d record %d = %+v, batch 1 gave %+v", batch, s, i, got[s][i], ref[s][i])
						}
					}
				}
			}
		})
	}
}

// TestSplitsAreIndependentOfSeed checks that seeds and splits select
// different sequences (a wrong mixing would make split 0 of seed 1 equal to
// split 1 of seed 0, say).
func TestSplitsAreIndependentOfSeed(t *testing.T) {
	t.Parallel()
	seqs := map[string]string{}
	for seed := range uint64(3) {
		for s := range 3 {
			cfg := Config{Splits: 3, Keys: 1 << 20, Seed: seed}
			var b strings.Builder
			for i := range int64(8) {
				b.WriteString(cfg.KeyOf(s, i))
			}
			if prev, dup := seqs[b.String()]; dup {
				t.Fatalf("seed %d split %d repeats %s", seed, s, prev)
			}
			seqs[b.String()] = fmt.Sprintf("seed %d split %d", seed, s)
		}
	}
}

// TestRestoreContinuesExactly: a reader restored from a snapshot emits
// exactly the records the original would have emitted next, also at
// another parallelism (splits reassigned by AssignSplit).
func TestRestoreContinuesExactly(t *testing.T) {
	t.Parallel()
	cfg := Config{Splits: 5, Keys: 100, Seed: 3, BatchSize: 33}
	src := New(cfg)

	// The reference: one reader reading 3000 records without interruption.
	ref := &collect{}
	pollN(t, newReader(t, src, nil, nil), ref, 3000)
	want := bySplit(t, ref.recs, nil)

	// Read 1000, snapshot, throw the reader away.
	first := &collect{}
	r := newReader(t, src, nil, nil)
	pollN(t, r, first, 1000)
	snap, err := r.SnapshotSplits(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	pos, err := Positions(snap)
	if err != nil {
		t.Fatal(err)
	}

	// Restore at parallelism 2: each reader gets the splits AssignSplit
	// gives its subtask, with their positions.
	restored := map[int][]Record{}
	for sub := range 2 {
		var mine []sluice.Split
		for _, s := range snap {
			if src.AssignSplit(s.ID, 2) == sub {
				mine = append(mine, s)
			}
		}
		out := &collect{}
		pollN(t, newReader(t, src, nil, mine), out, 1500)
		for s, recs := range bySplit(t, out.recs, pos) {
			restored[s] = recs
		}
	}
	before := bySplit(t, first.recs, nil)
	for s := range cfg.Splits {
		all := append(append([]Record(nil), before[s]...), restored[s]...)
		n := min(len(all), len(want[s]))
		if n < 100 {
			t.Fatalf("split %d: only %d records to compare", s, n)
		}
		for i := range n {
			if all[i] != want[s][i] {
				t.Fatalf("split %d record %d: restored run gave %+v, uninterrupted %+v", s, i, all[i], want[s][i])
			}
		}
	}
}

func TestAssignSplit(t *testing.T) {
	t.Parallel()
	src := New(Config{})
	for _, tc := range []struct {
		id   string
		p    int
		want int
	}{
		{"datagen-0", 3, 0}, {"datagen-4", 3, 1}, {"datagen-5", 3, 2}, {"datagen-7", 1, 0},
		{"kafka-3", 3, 0}, {"datagen-x", 3, 0}, {"datagen-01", 3, 0},
	} {
		if got := src.AssignSplit(tc.id, tc.p); got != tc.want {
			t.Errorf("AssignSplit(%q, %d) = %d, want %d", tc.id, tc.p, got, tc.want)
		}
	}
}

func TestAddSplitsRejects(t *testing.T) {
	t.Parallel()
	src := New(Config{Splits: 2})
	for _, tc := range []struct {
		name   string
		splits []sluice.Split
		want   string
	}{
		{"out of range", []sluice.Split{{ID: "datagen-2"}}, "out of range"},
		{"foreign id", []sluice.Split{{ID: "orders-0"}}, "want datagen-<n>"},
		{"corrupt state", []sluice.Split{{ID: "datagen-0", State: []byte{0x80}}}, "corrupt split state"},
		{"trailing bytes", []sluice.Split{{ID: "datagen-0", State: []byte{1, 2}}}, "corrupt split state"},
		{"twice", []sluice.Split{{ID: "datagen-1"}, {ID: "datagen-1"}}, "assigned twice"},
	} {
		sr, err := src.NewReader(context.Background(), &sluice.OperatorContext{})
		if err != nil {
			t.Fatal(err)
		}
		err = sr.AddSplits(context.Background(), tc.splits)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: AddSplits error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

func TestBoundedEnd(t *testing.T) {
	t.Parallel()
	src := New(Config{Splits: 3, RecordsPerSplit: 1000, BatchSize: 64})
	out := &collect{}
	r := newReader(t, src, nil, nil)
	if st := pollN(t, r, out, math.MaxInt); st != sluice.EndOfInput {
		t.Fatalf("status %v, want EndOfInput", st)
	}
	if len(out.recs) != 3000 {
		t.Fatalf("%d records, want 3000", len(out.recs))
	}
	for s, recs := range bySplit(t, out.recs, nil) {
		if len(recs) != 1000 {
			t.Errorf("split %d: %d records", s, len(recs))
		}
	}
	// Polling past the end stays at the end and emits nothing.
	if st, err := r.Poll(context.Background(), out); st != sluice.EndOfInput || err != nil || len(out.recs) != 3000 {
		t.Fatalf("poll after end: %v %v, %d records", st, err, len(out.recs))
	}
	snap, _ := r.SnapshotSplits(context.Background(), 1)
	pos, _ := Positions(snap)
	for s := range 3 {
		if pos[s] != 1000 {
			t.Errorf("split %d at position %d after the end, want 1000", s, pos[s])
		}
	}
	// A restored reader at the end ends at once.
	if st, _ := newReader(t, src, nil, snap).Poll(context.Background(), out); st != sluice.EndOfInput {
		t.Errorf("restored at the end: %v, want EndOfInput", st)
	}
}

// TestReaderWithoutSplits: with more subtasks than splits some readers get
// none; a bounded one ends at once, an endless one idles forever.
func TestReaderWithoutSplits(t *testing.T) {
	t.Parallel()
	out := &collect{}
	bounded := newReader(t, New(Config{RecordsPerSplit: 10}), nil, []sluice.Split{})
	if st, _ := bounded.Poll(context.Background(), out); st != sluice.EndOfInput {
		t.Errorf("bounded, no splits: %v, want EndOfInput", st)
	}
	endless := newReader(t, New(Config{}), nil, []sluice.Split{})
	if st, _ := endless.Poll(context.Background(), out); st != sluice.NothingAvailable {
		t.Errorf("endless, no splits: %v, want NothingAvailable", st)
	}
	select {
	case <-endless.Available():
		t.Error("endless reader without splits says records are available")
	default:
	}
	if len(out.recs) != 0 {
		t.Errorf("%d records from readers without splits", len(out.recs))
	}
}

func ready(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestRateLimit drives the token bucket with a fake clock.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	fake := clock.NewFake(time.Unix(1000, 0))
	// 400/s over 4 splits; this reader owns 1, so its share is 100/s.
	src := New(Config{Splits: 4, RatePerSecond: 400, Clock: fake})
	r := newReader(t, src, nil, []sluice.Split{{ID: "datagen-2"}})
	out := &collect{}
	ctx := context.Background()

	// The bucket starts empty.
	if st, _ := r.Poll(ctx, out); st != sluice.NothingAvailable || len(out.recs) != 0 {
		t.Fatalf("first poll: %v with %d records, want NothingAvailable and none", st, len(out.recs))
	}
	ch := r.Available()
	if ready(ch) {
		t.Fatal("available before the next token")
	}
	if again := r.Available(); again != ch || fake.Pending() != 1 {
		t.Fatalf("asking twice armed %d timers (same channel: %v), want 1 reused", fake.Pending(), again == ch)
	}
	fake.Advance(9 * time.Millisecond)
	if ready(ch) {
		t.Fatal("available after 9ms; the first token is due at 10ms")
	}
	fake.Advance(time.Millisecond)
	<-ch // fires at 10ms; blocks (the test times out) if it never does

	// Polled as the task does, at every wake-up: 100 records in the
	// first second at 100/s, one per 10ms.
	for range 99 {
		pollN(t, r, out, math.MaxInt)
		fake.Advance(10 * time.Millisecond)
	}
	pollN(t, r, out, math.MaxInt)
	if len(out.recs) != 100 {
		t.Fatalf("after 1s: %d records, want 100", len(out.recs))
	}
	// Idle (or backpressured) for a minute: the bucket keeps only 100ms of
	// tokens, 10 records, so the rate holds over any longer window.
	fake.Advance(time.Minute)
	pollN(t, r, out, math.MaxInt)
	if len(out.recs) != 110 {
		t.Fatalf("after an idle minute: %d records, want 110", len(out.recs))
	}
	// Partial tokens accumulate: 5 × 3ms earns 1.5 tokens, so one record.
	for range 5 {
		fake.Advance(3 * time.Millisecond)
		pollN(t, r, out, math.MaxInt)
	}
	if len(out.recs) != 111 {
		t.Fatalf("after 15ms: %d records, want 111", len(out.recs))
	}
	bySplit(t, out.recs, nil) // consecutive sequence numbers throughout

	// Close stops the armed timer.
	r.Poll(ctx, out)
	r.Available()
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestRateLimitSplitShare: when a split of a bounded reader ends, its share
// of the rate goes with it, so every split keeps running at Rate/Splits.
func TestRateLimitSplitShare(t *testing.T) {
	t.Parallel()
	fake := clock.NewFake(time.Unix(0, 0))
	src := New(Config{Splits: 2, RatePerSecond: 200, RecordsPerSplit: 50, Clock: fake, BatchSize: 25})
	r := newReader(t, src, nil, nil)
	out := &collect{}
	st := pollN(t, r, out, math.MaxInt) // starts the bucket
	// 200/s in 5ms steps: one record per step, alternating splits. Split 0
	// ends with record 99 at 495ms and takes its 100/s with it, so the last
	// record of split 1 comes 10ms later, at 505ms.
	for i := 0; st != sluice.EndOfInput; i++ {
		if i > 1000 {
			t.Fatal("the bounded input never ended")
		}
		fake.Advance(5 * time.Millisecond)
		st = pollN(t, r, out, math.MaxInt)
	}
	if len(out.recs) != 100 || fake.Now() != time.Unix(0, int64(505*time.Millisecond)) {
		t.Fatalf("ended after %d records at %v, want 100 at 505ms", len(out.recs), fake.Now().Sub(time.Unix(0, 0)))
	}

	src = New(Config{Splits: 2, RatePerSecond: 200, RecordsPerSplit: 10, Clock: fake})
	r = newReader(t, src, nil, []sluice.Split{{ID: "datagen-0"}, {ID: "datagen-1", State: encodePosition(10)}})
	out = &collect{}
	for range 5 {
		pollN(t, r, out, math.MaxInt)
		fake.Advance(10 * time.Millisecond)
	}
	pollN(t, r, out, math.MaxInt)
	// Split 1 had already ended, so the reader runs at 100/s: 5 records.
	if len(out.recs) != 5 {
		t.Fatalf("%d records in 50ms, want 5 (one live split at 100/s)", len(out.recs))
	}
}

// failAt fails the nth Emit.
type failAt struct {
	n, seen int
}

var errEmit = errors.New("downstream failed")

func (f *failAt) Emit(Record) error {
	f.seen++
	if f.seen == f.n {
		return errEmit
	}
	return nil
}

func TestEmitError(t *testing.T) {
	t.Parallel()
	r := newReader(t, New(Config{Splits: 1}), nil, nil)
	if _, err := r.Poll(context.Background(), &failAt{n: 10}); !errors.Is(err, errEmit) {
		t.Fatalf("Poll error %v, want the Emit error", err)
	}
	if r.splits[0].next != 9 {
		t.Errorf("position %d after 9 records and a failed Emit, want 9", r.splits[0].next)
	}
	// The same with keys drawn ahead, failing past the first chunk.
	big := newReader(t, New(Config{Splits: 1, Keys: 200_000, BatchSize: 1000, PrefetchKeys: true}), nil, nil)
	if _, err := big.Poll(context.Background(), &failAt{n: keyChunk + 10}); !errors.Is(err, errEmit) {
		t.Fatalf("Poll error %v, want the Emit error", err)
	}
	if got := big.splits[0].next; got != keyChunk+9 {
		t.Errorf("position %d after %d records and a failed Emit, want %d", got, keyChunk+9, keyChunk+9)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Poll(ctx, &collect{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Poll on a cancelled context: %v", err)
	}
}

// TestZipfSkew checks the sampled frequencies against the zipf weights,
// and the alias table against the distribution it encodes.
func TestZipfSkew(t *testing.T) {
	t.Parallel()
	const keys = 1000
	// The table, exactly: the probability of key i is its own column's keep
	// share plus the shares other columns alias to it.
	tab := newAlias(keys)
	prob := make([]float64, keys)
	for i := range keys {
		prob[i] += float64(tab.thresh[i]) / (1 << 32) / keys
		prob[tab.alias[i]] += (1 - float64(tab.thresh[i])/(1<<32)) / keys
	}
	h := 0.0
	for i := range keys {
		h += math.Pow(float64(i+1), -zipfS)
	}
	for i := range keys {
		want := math.Pow(float64(i+1), -zipfS) / h
		if math.Abs(prob[i]-want) > 1e-9 {
			t.Fatalf("alias table: key %d has probability %g, want %g", i, prob[i], want)
		}
	}

	// The samples.
	const n = 200_000
	cfg := Config{Splits: 2, Keys: keys, Distribution: Zipf, Seed: 11}
	exp := Expected(cfg, map[int]int64{0: n / 2, 1: n / 2})
	top10 := int64(0)
	for i := range 10 {
		k := string(appendKey(nil, i, 6))
		top10 += exp[k]
		want := float64(n) * math.Pow(float64(i+1), -zipfS) / h
		if got := float64(exp[k]); math.Abs(got-want) > 5*math.Sqrt(want) {
			t.Errorf("key %s: %v records, want %.0f ± %.0f", k, got, want, 5*math.Sqrt(want))
		}
	}
	// The 10 hottest of 1000 keys take about 48% of the records, where a
	// uniform distribution would give them 1%.
	if share := float64(top10) / n; share < 0.46 || share > 0.50 {
		t.Errorf("top 10 keys have %.1f%% of the records, want about 48%%", 100*share)
	}
}

func TestUniformAndSequentialCounts(t *testing.T) {
	t.Parallel()
	// Sequential: 3 splits × 100 records over 30 keys: 10 each.
	exp := Expected(Config{Splits: 3, Keys: 30, Distribution: Sequential}, map[int]int64{0: 100, 1: 100, 2: 100})
	if len(exp) != 30 {
		t.Fatalf("%d keys, want 30", len(exp))
	}
	for k, n := range exp {
		if n != 10 {
			t.Errorf("sequential: key %s has %d records, want 10", k, n)
		}
	}
	// Uniform: every key near n/keys.
	const n, keys = 100_000, 100
	exp = Expected(Config{Splits: 1, Keys: keys, Seed: 5}, map[int]int64{0: n})
	for k, c := range exp {
		if math.Abs(float64(c)-n/keys) > 5*math.Sqrt(n/keys) {
			t.Errorf("uniform: key %s has %d records, want about %d", k, c, n/keys)
		}
	}
	// Expected past a bounded end counts up to the end only.
	exp = Expected(Config{Splits: 1, Keys: 1, RecordsPerSplit: 10}, map[int]int64{0: 1000})
	if exp["k000000"] != 10 {
		t.Errorf("bounded: %v, want 10 records", exp)
	}
}

// TestExpectedMatchesReaders: Expected over the positions of a snapshot
// counts exactly the records the readers emitted.
func TestExpectedMatchesReaders(t *testing.T) {
	t.Parallel()
	for _, dist := range []string{Uniform, Zipf, Sequential} {
		cfg := Config{Splits: 4, Keys: 37, Distribution: dist, Seed: 9, BatchSize: 50}
		src := New(cfg)
		got := map[string]int64{}
		var snap []sluice.Split
		for sub := range 3 {
			var mine []sluice.Split
			all, _ := src.Splits(context.Background())
			for _, s := range all {
				if src.AssignSplit(s.ID, 3) == sub {
					mine = append(mine, s)
				}
			}
			out := &collect{}
			r := newReader(t, src, nil, mine)
			pollN(t, r, out, 1000*(sub+1))
			for _, rec := range out.recs {
				got[rec.Key]++
			}
			s, _ := r.SnapshotSplits(context.Background(), 1)
			snap = append(snap, s...)
		}
		pos, err := Positions(snap)
		if err != nil {
			t.Fatal(err)
		}
		want := Expected(cfg, pos)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: readers emitted %v, Expected says %v", dist, got, want)
		}
	}
}

func TestKeyFormat(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		keys int
		i    int
		want string
	}{
		{1000, 0, "k000000"}, {1000, 123, "k000123"}, {1_000_000, 999_999, "k999999"},
		{1_000_001, 1_000_000, "k1000000"}, {1_000_001, 5, "k0000005"},
	} {
		tab := newKeyTable(tc.keys)
		if got := tab.key(uint64(tc.i)); got != tc.want {
			t.Errorf("keys %d, key %d = %q, want %q", tc.keys, tc.i, got, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, ""},
		{Config{Splits: 8, RatePerSecond: 1e6, RecordsPerSplit: 5, Keys: 7, Distribution: Zipf, BatchSize: 1}, ""},
		{Config{Splits: -1}, "datagen.splits: must be in [1, 65536] (got -1)"},
		{Config{Splits: MaxSplits + 1}, "datagen.splits: must be in [1, 65536] (got 65537)"},
		{Config{RatePerSecond: -1}, "datagen.rate-per-second: must be a finite number >= 0"},
		{Config{RatePerSecond: math.NaN()}, "datagen.rate-per-second: must be a finite number >= 0"},
		{Config{RatePerSecond: math.Inf(1)}, "datagen.rate-per-second: must be a finite number >= 0"},
		{Config{RecordsPerSplit: -5}, "datagen.records-per-split: must be >= 0, 0 meaning endless (got -5)"},
		{Config{Keys: -5}, "datagen.keys: must be >= 1 (got -5)"},
		{Config{Keys: MaxKeys + 1}, "datagen.keys: must be <= 10000000 (got 10000001)"},
		{Config{Distribution: "normal"}, `datagen.distribution: must be "uniform", "zipf" or "sequential" (got "normal")`},
		{Config{BatchSize: -1}, "datagen.batch-size: must be in [1, 1048576] (got -1)"},
	} {
		err := tc.cfg.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: unexpected error %v", tc.cfg, err)
		case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)):
			t.Errorf("%+v: error %v, want %q", tc.cfg, err, tc.want)
		}
	}
	// Every problem is reported, not only the first.
	err := Config{Splits: -1, Keys: -1, Distribution: "normal", BatchSize: -1}.Validate()
	if got := errorKeys(err); got != "datagen.splits datagen.keys datagen.distribution datagen.batch-size" {
		t.Errorf("keys of %v: %s", err, got)
	}
	// An invalid config surfaces when the job starts.
	src := New(Config{Keys: -1})
	if _, err := src.Splits(context.Background()); err == nil || !strings.Contains(err.Error(), "datagen.keys") {
		t.Errorf("Splits with an invalid config: %v", err)
	}
	if _, err := src.NewReader(context.Background(), &sluice.OperatorContext{}); err == nil {
		t.Error("NewReader with an invalid config succeeded")
	}
}

func TestSplitIDs(t *testing.T) {
	t.Parallel()
	if got := SplitID(12); got != "datagen-12" {
		t.Errorf("SplitID(12) = %q", got)
	}
	for _, bad := range []string{"datagen-", "datagen--1", "datagen-+1", "datagen-01", "x-1", "datagen-1a"} {
		if _, err := ParseSplitID(bad); err == nil {
			t.Errorf("ParseSplitID(%q) succeeded", bad)
		}
	}
	if _, err := Positions([]sluice.Split{{ID: "datagen-1"}, {ID: "datagen-1"}}); err == nil {
		t.Error("Positions accepted a split twice")
	}
}

// TestPollDoesNotAllocate: the hot loop allocates nothing per record (the
// target is tens of millions of records per second per core).
func TestPollDoesNotAllocate(t *testing.T) {
	for _, dist := range []string{Uniform, Zipf, Sequential} {
		r := newReader(t, New(Config{Distribution: dist}), nil, nil)
		var sink discard
		ctx := context.Background()
		if a := testing.AllocsPerRun(100, func() { _, _ = r.Poll(ctx, &sink) }); a != 0 {
			t.Errorf("%s: %v allocations per Poll, want 0", dist, a)
		}
	}
}

type discard struct{ n int64 }

func (d *discard) Emit(r Record) error {
	d.n += r.Value
	return nil
}

// mapOp and filterOp mimic a chained map → filter → discard behind the
// source: one interface call per operator per record, as the runtime's
// chaining does.
type mapOp struct{ out sluice.Emitter[Record] }

func (m *mapOp) Emit(r Record) error {
	r.Value *= 2
	return m.out.Emit(r)
}

type filterOp struct{ out sluice.Emitter[Record] }

func (f *filterOp) Emit(r Record) error {
	if r.Value&2 == 0 {
		return f.out.Emit(r)
	}
	return nil
}

// BenchmarkPoll measures the source alone into a no-op Emitter, and
// behind it a map → filter → discard chain, on one goroutine.
//
//	go test -run '^$' -bench Poll -benchtime 2s ./connector/datagen
func BenchmarkPoll(b *testing.B) {
	for _, dist := range []string{Uniform, Zipf, Sequential} {
		for _, chain := range []bool{false, true} {
			name := dist
			if chain {
				name += "/map-filter-discard"
			}
			b.Run(name, func(b *testing.B) {
				r := newReader(b, New(Config{Distribution: dist}), nil, nil)
				sink := &discard{}
				var out sluice.Emitter[Record] = sink
				if chain {
					out = &mapOp{out: &filterOp{out: sink}}
				}
				ctx := context.Background()
				start := r.totalPosition()
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					if _, err := r.Poll(ctx, out); err != nil {
						b.Fatal(err)
					}
				}
				n := r.totalPosition() - start
				b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/record")
			})
		}
	}
}

func (r *reader) totalPosition() int64 {
	var n int64
	for _, s := range r.splits {
		n += s.next
	}
	return n
}

// errorKeys returns the keys of err's lines, space separated.
func errorKeys(err error) string {
	if err == nil {
		return ""
	}
	var keys []string
	for _, line := range strings.Split(err.Error(), "\n") {
		k, _, _ := strings.Cut(line, ":")
		keys = append(keys, k)
	}
	return strings.Join(keys, " ")
}

// TestPauseSplits: a paused split emits nothing and keeps its position; a
// reader whose splits are all paused has nothing available (and does not
// end, though bounded) until one is resumed; a resumed split goes on from
// its position, and the bounded input ends once every split is done.
func TestPauseSplits(t *testing.T) {
	t.Parallel()
	out := &collect{}
	r := newReader(t, New(Config{Splits: 2, RecordsPerSplit: 20, BatchSize: 4}), nil, nil)
	pollN(t, r, out, 8)
	r.PauseSplits([]string{SplitID(1)})
	before := len(bySplit(t, out.recs, nil)[1])
	if st := pollN(t, r, out, 1000); st != sluice.NothingAvailable {
		t.Fatalf("with split 1 paused and split 0 done: %v, want NothingAvailable", st)
	}
	got := bySplit(t, out.recs, nil)
	if len(got[0]) != 20 || len(got[1]) != before {
		t.Fatalf("split 0 emitted %d (want 20), paused split 1 %d (want %d)", len(got[0]), len(got[1]), before)
	}
	if ready(r.Available()) {
		t.Fatal("a reader with every split paused says records are available")
	}
	snap, err := r.SnapshotSplits(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if pos, _ := decodePosition(snap[1].State); pos != int64(before) {
		t.Fatalf("paused split 1 snapshot at %d, want %d", pos, before)
	}
	r.ResumeSplits([]string{SplitID(1)})
	if st := pollN(t, r, out, 1000); st != sluice.EndOfInput {
		t.Fatalf("after the resume: %v, want EndOfInput", st)
	}
	if got := bySplit(t, out.recs, nil); len(got[1]) != 20 {
		t.Fatalf("split 1 emitted %d records, want 20", len(got[1]))
	}
}
