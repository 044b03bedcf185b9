package queries_test

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/fault"
	"github.com/sluicehq/sluice/internal/nexmark"
	"github.com/sluicehq/sluice/internal/nexmark/queries"
	"github.com/sluicehq/sluice/restart"
)

// The tests of the comparison-profile queries (q3, q4, q5, q7, q8, q9,
// q11): each on a small hand-built input against hand-checked rows, and on
// generated input against cpReference, plain batch Go that applies the
// profile's rules to the same events, also under a restart.

// base is the event time of the hand-built inputs' zero, ms.
const base = nexmark.DefaultBaseTime

func cpPerson(id, ms int64, name, city, st string) nexmark.Event {
	return nexmark.Event{Kind: nexmark.KindPerson, Person: nexmark.Person{ID: id, Name: name, City: city, State: st, DateTime: base + ms}}
}

func cpAuction(id, seller, category, ms, expires int64) nexmark.Event {
	return nexmark.Event{Kind: nexmark.KindAuction, Auction: nexmark.Auction{ID: id, Seller: seller, Category: category,
		DateTime: base + ms, Expires: base + expires}}
}

func cpBid(auction, bidder, price, ms int64) nexmark.Event {
	return nexmark.Event{Kind: nexmark.KindBid, Bid: nexmark.Bid{Auction: auction, Bidder: bidder, Price: price, DateTime: base + ms}}
}

func cpQuery(t testing.TB, name string) queries.Query {
	t.Helper()
	q, ok := queries.Lookup(name)
	if !ok {
		t.Fatalf("query %s is not registered", name)
	}
	return q
}

func cpLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// cpRunEvents runs query name on the hand-built splits at parallelism par
// and returns its rows, sorted.
func cpRunEvents(t *testing.T, name string, par int, splits [][]nexmark.Event) []string {
	t.Helper()
	env := sluice.New(sluice.Config{JobName: name, Parallelism: par, CheckpointDir: t.TempDir(), Logger: cpLogger(),
		Restart: restart.None{}, BufferTimeout: time.Millisecond})
	out := &queries.Out{Collect: true}
	cpQuery(t, name).Build(env, nexmark.FromEvents(env, splits), out)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := env.Execute(ctx); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if got, n := out.Count(), len(out.Rows()); got != int64(n) {
		t.Fatalf("%s: Count %d, %d rows", name, got, n)
	}
	return out.Rows()
}

func cpCheckRows(t *testing.T, name string, got, want []string) {
	t.Helper()
	want = slices.Clone(want)
	slices.Sort(want)
	if slices.Equal(got, want) {
		return
	}
	t.Errorf("%s: %d rows, want %d", name, len(got), len(want))
	shown := 0
	for _, r := range want {
		if !slices.Contains(got, r) && shown < 10 {
			t.Errorf("  missing %s", r)
			shown++
		}
	}
	for _, r := range got {
		if !slices.Contains(want, r) && shown < 20 {
			t.Errorf("  unexpected %s", r)
			shown++
		}
	}
}

// at formats a relative time of the hand-built inputs as the rows do.
func at(ms int64) string { return strconv.FormatInt(base+ms, 10) }

func TestQ3HandBuilt(t *testing.T) {
	t.Parallel()
	splits := [][]nexmark.Event{{
		cpPerson(1, 0, "Kate Smith", "Bend", "OR"),
		cpAuction(1000, 1, 10, 10, 100), // person there: joined at once
		cpAuction(1001, 3, 10, 20, 100), // waits for person 3
		cpAuction(1002, 3, 10, 30, 100), // waits too
		cpAuction(1003, 1, 11, 40, 100), // other category
		cpPerson(3, 50, "Paul White", "Boise", "ID"),
		cpAuction(1004, 3, 10, 60, 100),
		cpPerson(2, 70, "Luke Jones", "Seattle", "WA"), // other state
	}, {
		cpAuction(1005, 2, 10, 0, 100),  // seller's state not selected
		cpAuction(1006, 99, 10, 0, 100), // seller never appears
		cpAuction(1007, 4, 10, 5, 100),
		cpPerson(4, 6, "John Noris", "Los Angeles", "CA"),
	}}
	want := []string{
		"Kate Smith,Bend,OR,1000",
		"Paul White,Boise,ID,1001", "Paul White,Boise,ID,1002", "Paul White,Boise,ID,1004",
		"John Noris,Los Angeles,CA,1007",
	}
	for _, par := range []int{1, 2} {
		cpCheckRows(t, "q3", cpRunEvents(t, "q3", par, splits), want)
		cpCheckRows(t, "q3 reference", cpReference["q3"](splits), want)
	}
}

// q9Splits is q9's and q4's hand-built input.
func q9Splits() [][]nexmark.Event {
	return [][]nexmark.Event{{
		cpBid(100, 1, 999, 500),           // before auction 100 opened: early, never qualifies
		cpBid(101, 2, 10, 2000),           // before auction 101 arrives, at its open time: qualifies
		cpAuction(100, 7, 10, 1000, 5000), // open [1000, 5000]
		cpBid(100, 3, 50, 1000),
		cpAuction(101, 8, 10, 2000, 2500),
		cpBid(100, 4, 70, 2000), // winner of 100
		cpBid(101, 5, 5, 2400),
		cpBid(100, 5, 70, 3000), // same price, later
		cpAuction(102, 8, 11, 3000, 4000),
		cpBid(100, 6, 60, 5000),  // at expiry: qualifies, lower
		cpBid(100, 9, 999, 5001), // after expiry
		cpBid(999, 1, 1, 5002),   // no such auction
	}, {
		cpAuction(103, 9, 11, 100, 6000),
		cpBid(103, 7, 40, 200), // same price and time: the lower bidder wins
		cpBid(103, 3, 40, 200),
		cpBid(103, 8, 39, 300),
		cpBid(102, 2, 1, 2999), // before 102 opened
	}}
}

func TestQ9HandBuilt(t *testing.T) {
	t.Parallel()
	// auction,seller,category,expires,bidder,price,bidTime
	want := []string{
		"100,7,10," + at(5000) + ",4,70," + at(2000),
		"101,8,10," + at(2500) + ",2,10," + at(2000),
		"103,9,11," + at(6000) + ",3,40," + at(200),
	}
	for _, par := range []int{1, 2} {
		cpCheckRows(t, "q9", cpRunEvents(t, "q9", par, q9Splits()), want)
	}
	cpCheckRows(t, "q9 reference", cpReference["q9"](q9Splits()), want)
}

func TestQ4HandBuilt(t *testing.T) {
	t.Parallel()
	// category,n,average: 101 closes first (10), then 100 (70); 103 alone.
	want := []string{"10,1,10", "10,2,40", "11,1,40"}
	for _, par := range []int{1, 2} {
		cpCheckRows(t, "q4", cpRunEvents(t, "q4", par, q9Splits()), want)
	}
	cpCheckRows(t, "q4 reference", cpReference["q4"](q9Splits()), want)
}

func TestQ5HandBuilt(t *testing.T) {
	t.Parallel()
	splits := [][]nexmark.Event{
		{cpBid(1, 1, 1, 1000), cpBid(1, 1, 1, 3000), cpBid(1, 1, 1, 3500)},
		{cpBid(2, 1, 1, 1500), cpBid(2, 1, 1, 2500), cpBid(3, 1, 1, 9000)},
	}
	// auction,count,windowEnd: [-8 s, 2 s) ties 1 and 2 at one bid each;
	// the windows ending at 4..10 s have auction 1's three; at 12 s its
	// two; then auction 3 alone.
	want := []string{
		"1,1," + at(2000), "2,1," + at(2000),
		"1,3," + at(4000), "1,3," + at(6000), "1,3," + at(8000), "1,3," + at(10000),
		"1,2," + at(12000),
		"3,1," + at(14000), "3,1," + at(16000), "3,1," + at(18000),
	}
	for _, par := range []int{1, 2} {
		cpCheckRows(t, "q5", cpRunEvents(t, "q5", par, splits), want)
	}
	cpCheckRows(t, "q5 reference", cpReference["q5"](splits), want)
}

func TestQ7HandBuilt(t *testing.T) {
	t.Parallel()
	splits := [][]nexmark.Event{
		{cpBid(1, 11, 5, 100), cpBid(2, 12, 9, 200), cpBid(4, 14, 4, 10500)},
		{cpBid(3, 13, 9, 300), cpBid(5, 15, 3, 400), cpBid(6, 16, 2, 15000), cpBid(7, 17, 4, 19999)},
	}
	// auction,bidder,price,dateTime,windowEnd
	want := []string{
		"2,12,9," + at(200) + "," + at(10000), "3,13,9," + at(300) + "," + at(10000),
		"4,14,4," + at(10500) + "," + at(20000), "7,17,4," + at(19999) + "," + at(20000),
	}
	for _, par := range []int{1, 2} {
		cpCheckRows(t, "q7", cpRunEvents(t, "q7", par, splits), want)
	}
	cpCheckRows(t, "q7 reference", cpReference["q7"](splits), want)
}

func TestQ8HandBuilt(t *testing.T) {
	t.Parallel()
	splits := [][]nexmark.Event{{
		cpPerson(1, 1000, "Kate Smith", "Bend", "OR"),
		cpPerson(2, 3000, "Paul White", "Boise", "ID"),
		cpPerson(3, 4000, "Saul Abrams", "Kent", "WA"),
		cpPerson(4, 5000, "John Noris", "Bend", "OR"),
		cpPerson(5, 6000, "Vicky Jones", "Bend", "OR"),
	}, {
		cpAuction(100, 3, 10, 500, 600), // before person 3 is created, same window
		cpAuction(101, 1, 10, 2000, 3000),
		cpAuction(102, 4, 10, 5500, 6000),
		cpAuction(103, 4, 10, 7000, 8000), // a second auction: still one row
		cpAuction(104, 2, 10, 12000, 13000),
	}}
	want := []string{"1,Kate Smith," + at(0), "3,Saul Abrams," + at(0), "4,John Noris," + at(0)}
	for _, par := range []int{1, 2} {
		cpCheckRows(t, "q8", cpRunEvents(t, "q8", par, splits), want)
	}
	cpCheckRows(t, "q8 reference", cpReference["q8"](splits), want)
}

func TestQ11HandBuilt(t *testing.T) {
	t.Parallel()
	splits := [][]nexmark.Event{
		{cpBid(1, 1, 1, 0), cpBid(1, 1, 1, 5000), cpBid(1, 1, 1, 15000)}, // 15 s is exactly the gap after 5 s: one session
		{cpBid(1, 2, 1, 1000), cpBid(1, 1, 1, 26000)},                    // 11 s after 15 s: a new session
	}
	// bidder,bids,start,end
	want := []string{"1,3," + at(0) + "," + at(25000), "1,1," + at(26000) + "," + at(36000), "2,1," + at(1000) + "," + at(11000)}
	for _, par := range []int{1, 2} {
		cpCheckRows(t, "q11", cpRunEvents(t, "q11", par, splits), want)
	}
	cpCheckRows(t, "q11 reference", cpReference["q11"](splits), want)
}

// cpQueries are the comparison-profile queries.
var cpQueries = []string{"q3", "q4", "q5", "q7", "q8", "q9", "q11"}

// cpConfig is the generated input: 2 generators, the rate set so that
// the events span 80 s of event time, which closes 8 tumbling windows, 40
// sliding ones and many auctions and sessions mid-stream (200k events:
// 2,500 events/s).
func cpConfig(events int64) nexmark.GeneratorConfig {
	cfg := nexmark.DefaultConfig()
	cfg.Events, cfg.Generators, cfg.Rate = events, 2, float64(events)/80
	return cfg
}

// cpGenerate returns the events of cfg's splits.
func cpGenerate(cfg nexmark.GeneratorConfig) [][]nexmark.Event {
	splits := make([][]nexmark.Event, cfg.Generators)
	for g := range splits {
		gen := nexmark.NewGenerator(cfg, g)
		splits[g] = make([]nexmark.Event, 0, gen.Len())
		var ev nexmark.Event
		for gen.Next(&ev) {
			splits[g] = append(splits[g], ev)
		}
	}
	return splits
}

// cpEvents returns -short-aware sizes of the generated input.
func cpEvents() int64 {
	if testing.Short() {
		return 40_000
	}
	return 200_000
}

// cpSeed returns SLUICE_SEED if set, else the clock, and logs it.
func cpSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("SLUICE_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("SLUICE_SEED: %v", err)
		}
		seed = v
	}
	t.Logf("seed %d (replay with SLUICE_SEED=%d)", seed, seed)
	return seed
}

// cpFailure is a restart test's failure: the target, armed once a
// checkpoint taken after hold events of every split completed (see
// faultGate).
type cpFailure struct {
	target fault.Target
	hold   int64
}

// cpFailureAt returns a failure at a random point (a record of any
// operator, a barrier, a snapshot write) after a random hold, from a tenth
// to half of a split: the record target skips under a quarter of the
// input, fewer record hits than the half after the hold gives.
func cpFailureAt(rng *rand.Rand, cfg nexmark.GeneratorConfig) cpFailure {
	points := []fault.Point{fault.OnRecord, fault.OnBarrier, fault.InSnapshotWrite}
	f := cpFailure{target: fault.Target{Point: points[rng.IntN(len(points))], Subtask: -1, Skip: rng.IntN(3)}}
	if f.target.Point == fault.OnRecord {
		f.target.Skip = rng.IntN(int(cfg.Events / 4))
	}
	split := cfg.Events / int64(cfg.Generators)
	f.hold = split/10 + rng.Int64N(split*4/10)
	return f
}

// cpRunGenerated runs query name on the generator of cfg at parallelism
// 2; with a failure, with exactly-once checkpoints every 10 ms, restarts,
// and the failure armed once a checkpoint taken after its hold completed,
// which makes the restart restore state rather than start over. The
// failure always fires: the run fails the test if it did not.
func cpRunGenerated(t *testing.T, name string, cfg nexmark.GeneratorConfig, failure *cpFailure) cpOutput {
	t.Helper()
	const par = 2
	ecfg := sluice.Config{JobName: name, Parallelism: par, CheckpointDir: t.TempDir(), Logger: cpLogger(),
		Restart: restart.None{}, BufferTimeout: time.Millisecond}
	out := &queries.Out{Collect: true}
	var inj *fault.Injector
	var committed *cpCommitted
	if failure != nil {
		inj = fault.New(1)
		ecfg.Faults = inj
		ecfg.Checkpoint = checkpoint.Config{Interval: 10 * time.Millisecond, MinPause: time.Millisecond, TolerableFailures: 100}
		ecfg.Restart = restart.FixedDelay{Attempts: 10, Delay: time.Millisecond}
		committed = &cpCommitted{pending: map[string][]string{}}
		out = &queries.Out{Sink: committed.sink}
	}
	env := sluice.New(ecfg)
	var gate *faultGate
	if failure != nil {
		t.Logf("%s: failure %+v after %d events of each split", name, failure.target, failure.hold)
		gate = newFaultGate(env, inj, failure.target, failure.hold, par)
		cpQuery(t, name).Build(env, gate.events(env, cfg), out)
	} else {
		cpQuery(t, name).Build(env, nexmark.Events(env, cfg), out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := env.Execute(ctx)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if gate == nil {
		return out
	}
	if inj.Fired() != 1 || res.Restarts == 0 {
		t.Fatalf("%s: %d failures fired, %d restarts (armed after checkpoint %d): the run proved nothing about recovery",
			name, inj.Fired(), res.Restarts, gate.ArmedAt())
	}
	t.Logf("%s: armed after checkpoint %d; %d restarts, %d checkpoints, %d rows emitted, %d committed", name,
		gate.ArmedAt(), res.Restarts, res.Checkpoints, out.Count(), len(committed.rows))
	return committed
}

// cpOutput is what a run gives: its rows and their number.
type cpOutput interface {
	Count() int64
	Rows() []string
}

// cpCommitted is an exactly-once output for the restart tests: a
// two-phase-commit sink whose transactions are the rows a subtask wrote
// between two barriers, kept in memory (the attempts restart within the
// process) and made rows when their checkpoint completes.
type cpCommitted struct {
	mu      sync.Mutex
	pending map[string][]string
	rows    []string
}

func (c *cpCommitted) Count() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return int64(len(c.rows))
}

func (c *cpCommitted) Rows() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return sorted(slices.Clone(c.rows))
}

func (c *cpCommitted) sink(string) sluice.SinkProvider[string] {
	return sluice.TwoPhaseCommitSink(sluice.TwoPhaseCommitConfig[string, string]{
		New: func(_ context.Context, oc *sluice.OperatorContext) (sluice.TwoPhaseCommitter[string, string], error) {
			return &cpCommitter{c: c, run: oc.RunID, prefix: oc.RunID + "/" + strconv.Itoa(oc.Subtask) + "/"}, nil
		},
		TxnCodec: codec.String,
	})
}

// cpCommitter is one sink subtask's side of a cpCommitted; a transaction
// id is "<run id>/<subtask>/<n>".
type cpCommitter struct {
	c           *cpCommitted
	run, prefix string
	n           int
}

func (w *cpCommitter) BeginTransaction(context.Context) (string, error) {
	w.n++
	return w.prefix + strconv.Itoa(w.n), nil
}

func (w *cpCommitter) Write(txn string, row string) error {
	w.c.mu.Lock()
	w.c.pending[txn] = append(w.c.pending[txn], row)
	w.c.mu.Unlock()
	return nil
}

func (w *cpCommitter) PreCommit(context.Context, string) error { return nil }

// Commit makes the transaction's rows output; a second commit finds none.
func (w *cpCommitter) Commit(_ context.Context, txn string) error {
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	w.c.rows = append(w.c.rows, w.c.pending[txn]...)
	delete(w.c.pending, txn)
	return nil
}

func (w *cpCommitter) Abort(_ context.Context, txn string) error {
	w.c.mu.Lock()
	delete(w.c.pending, txn)
	w.c.mu.Unlock()
	return nil
}

func (w *cpCommitter) RecoverAndCommit(ctx context.Context, txn string) error {
	return w.Commit(ctx, txn)
}

// CleanUp drops the transactions of earlier attempts that no checkpoint
// recorded: their rows are replayed.
func (w *cpCommitter) CleanUp(context.Context, []string) error {
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	for txn := range w.c.pending {
		if !strings.HasPrefix(txn, w.run+"/") {
			delete(w.c.pending, txn)
		}
	}
	return nil
}

// TestComparisonQueriesMatchReference: on generated input (parallelism 2,
// several windows and expiries closing mid-stream), every query's output
// count and rows equal what cpReference computes from the same events.
func TestComparisonQueriesMatchReference(t *testing.T) {
	t.Parallel()
	cfg := cpConfig(cpEvents())
	splits := cpGenerate(cfg)
	for _, name := range cpQueries {
		t.Run(name, func(t *testing.T) {
			want := cpReference[name](splits)
			if len(want) < 5 {
				t.Fatalf("the reference gives %d rows: the input proves little", len(want))
			}
			out := cpRunGenerated(t, name, cfg, nil)
			if out.Count() != int64(len(want)) {
				t.Errorf("%s: count %d, reference %d", name, out.Count(), len(want))
			}
			cpCheckRows(t, name, out.Rows(), want)
			t.Logf("%s: %d rows", name, len(want))
		})
	}
}

// TestComparisonQueriesUnderRestart: with exactly-once checkpoints and one
// failure injected at a random point (a record of any operator, a barrier,
// a snapshot write) after a checkpoint taken mid-input completed, the
// committed rows still equal the reference, record for record.
func TestComparisonQueriesUnderRestart(t *testing.T) {
	t.Parallel()
	cfg := cpConfig(cpEvents())
	splits := cpGenerate(cfg)
	rng := rand.New(rand.NewPCG(cpSeed(t), 11))
	for _, name := range cpQueries {
		t.Run(name, func(t *testing.T) {
			want := cpReference[name](splits)
			failure := cpFailureAt(rng, cfg)
			out := cpRunGenerated(t, name, cfg, &failure)
			if out.Count() != int64(len(want)) {
				t.Errorf("%s: count %d, reference %d", name, out.Count(), len(want))
			}
			cpCheckRows(t, name, out.Rows(), want)
		})
	}
}

// cpReference computes each query's rows from the events with plain batch
// logic, straight from the comparison profile's rules.
var cpReference = map[string]func([][]nexmark.Event) []string{
	"q3": refQ3, "q4": refQ4, "q5": refQ5, "q7": refQ7, "q8": refQ8, "q9": refQ9, "q11": refQ11,
}

// all returns the events of every split, of the kind asked for.
func cpAll(splits [][]nexmark.Event, kind nexmark.Kind) []nexmark.Event {
	var out []nexmark.Event
	for _, s := range splits {
		for _, ev := range s {
			if ev.Kind == kind {
				out = append(out, ev)
			}
		}
	}
	return out
}

func sorted(rows []string) []string { slices.Sort(rows); return rows }

func refQ3(splits [][]nexmark.Event) []string {
	persons := map[int64]nexmark.Person{}
	for _, ev := range cpAll(splits, nexmark.KindPerson) {
		if p := ev.Person; p.State == "OR" || p.State == "ID" || p.State == "CA" {
			persons[p.ID] = p
		}
	}
	var rows []string
	for _, ev := range cpAll(splits, nexmark.KindAuction) {
		a := ev.Auction
		if p, ok := persons[a.Seller]; ok && a.Category == 10 {
			rows = append(rows, fmt.Sprintf("%s,%s,%s,%d", p.Name, p.City, p.State, a.ID))
		}
	}
	return sorted(rows)
}

// refWinners returns, per auction with a bid made while it was open, the
// winning bid: highest price, then earliest, then lowest bidder.
func refWinners(splits [][]nexmark.Event) map[int64]nexmark.Bid {
	auctions := map[int64]nexmark.Auction{}
	for _, ev := range cpAll(splits, nexmark.KindAuction) {
		auctions[ev.Auction.ID] = ev.Auction
	}
	win := map[int64]nexmark.Bid{}
	for _, ev := range cpAll(splits, nexmark.KindBid) {
		b := ev.Bid
		a, ok := auctions[b.Auction]
		if !ok || b.DateTime < a.DateTime || b.DateTime > a.Expires {
			continue
		}
		w, had := win[b.Auction]
		if !had || b.Price > w.Price || (b.Price == w.Price && (b.DateTime < w.DateTime || (b.DateTime == w.DateTime && b.Bidder < w.Bidder))) {
			win[b.Auction] = b
		}
	}
	return win
}

func cpAuctions(splits [][]nexmark.Event) map[int64]nexmark.Auction {
	m := map[int64]nexmark.Auction{}
	for _, ev := range cpAll(splits, nexmark.KindAuction) {
		m[ev.Auction.ID] = ev.Auction
	}
	return m
}

func refQ9(splits [][]nexmark.Event) []string {
	auctions := cpAuctions(splits)
	var rows []string
	for id, b := range refWinners(splits) {
		a := auctions[id]
		rows = append(rows, fmt.Sprintf("%d,%d,%d,%d,%d,%d,%d", a.ID, a.Seller, a.Category, a.Expires, b.Bidder, b.Price, b.DateTime))
	}
	return sorted(rows)
}

func refQ4(splits [][]nexmark.Event) []string {
	auctions := cpAuctions(splits)
	type winner struct{ category, expires, auction, price int64 }
	var ws []winner
	for id, b := range refWinners(splits) {
		a := auctions[id]
		ws = append(ws, winner{a.Category, a.Expires, a.ID, b.Price})
	}
	// Each category's winners in the order their auctions close.
	slices.SortFunc(ws, func(x, y winner) int {
		return cmp.Or(cmp.Compare(x.category, y.category), cmp.Compare(x.expires, y.expires), cmp.Compare(x.auction, y.auction))
	})
	var rows []string
	var sum, n, cat int64
	for i, w := range ws {
		if i == 0 || w.category != cat {
			sum, n, cat = 0, 0, w.category
		}
		sum += w.price
		n++
		rows = append(rows, fmt.Sprintf("%d,%d,%d", cat, n, sum/n))
	}
	return sorted(rows)
}

// floorDiv is ⌊a/b⌋ for b > 0.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

func refQ5(splits [][]nexmark.Event) []string {
	const size, slide = 10_000, 2_000
	type aw struct{ auction, end int64 }
	counts := map[aw]int64{}
	for _, ev := range cpAll(splits, nexmark.KindBid) {
		ts := ev.Bid.DateTime
		// Every window [start, start+size) with start a multiple of slide
		// that holds ts.
		for start := floorDiv(ts, slide) * slide; start > ts-size; start -= slide {
			counts[aw{ev.Bid.Auction, start + size}]++
		}
	}
	maxima := map[int64]int64{}
	for k, n := range counts {
		maxima[k.end] = max(maxima[k.end], n)
	}
	var rows []string
	for k, n := range counts {
		if n == maxima[k.end] {
			rows = append(rows, fmt.Sprintf("%d,%d,%d", k.auction, n, k.end))
		}
	}
	return sorted(rows)
}

func refQ7(splits [][]nexmark.Event) []string {
	const size = 10_000
	bids := cpAll(splits, nexmark.KindBid)
	maxima := map[int64]int64{}
	for _, ev := range bids {
		end := floorDiv(ev.Bid.DateTime, size)*size + size
		if m, ok := maxima[end]; !ok || ev.Bid.Price > m {
			maxima[end] = ev.Bid.Price
		}
	}
	var rows []string
	for _, ev := range bids {
		b := ev.Bid
		if end := floorDiv(b.DateTime, size)*size + size; b.Price == maxima[end] {
			rows = append(rows, fmt.Sprintf("%d,%d,%d,%d,%d", b.Auction, b.Bidder, b.Price, b.DateTime, end))
		}
	}
	return sorted(rows)
}

func refQ8(splits [][]nexmark.Event) []string {
	const size = 10_000
	type iw struct{ id, start int64 }
	created := map[iw]string{}
	for _, ev := range cpAll(splits, nexmark.KindPerson) {
		created[iw{ev.Person.ID, floorDiv(ev.Person.DateTime, size) * size}] = ev.Person.Name
	}
	sold := map[iw]bool{}
	for _, ev := range cpAll(splits, nexmark.KindAuction) {
		sold[iw{ev.Auction.Seller, floorDiv(ev.Auction.DateTime, size) * size}] = true
	}
	var rows []string
	for k, name := range created {
		if sold[k] {
			rows = append(rows, fmt.Sprintf("%d,%s,%d", k.id, name, k.start))
		}
	}
	return sorted(rows)
}

func refQ11(splits [][]nexmark.Event) []string {
	const gap = 10_000
	times := map[int64][]int64{}
	for _, ev := range cpAll(splits, nexmark.KindBid) {
		times[ev.Bid.Bidder] = append(times[ev.Bid.Bidder], ev.Bid.DateTime)
	}
	var rows []string
	for bidder, ts := range times {
		slices.Sort(ts)
		// A session goes on while the next bid is at most gap after the
		// last one (the windows [t, t+gap) touch or overlap).
		start, last, n := ts[0], ts[0], int64(1)
		for _, t := range ts[1:] {
			if t-last > gap {
				rows = append(rows, fmt.Sprintf("%d,%d,%d,%d", bidder, n, start, last+gap))
				start, n = t, 0
			}
			last = t
			n++
		}
		rows = append(rows, fmt.Sprintf("%d,%d,%d,%d", bidder, n, start, last+gap))
	}
	return sorted(rows)
}
