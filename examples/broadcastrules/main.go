// Command broadcastrules raises alerts on transactions above a per-category
// threshold, with the thresholds changed while the job runs: the rules are
// a low-rate stream broadcast to every subtask of the keyed stream of
// transactions (the broadcast state pattern, docs/design.md §4). Run it
// with `go run ./examples/broadcastrules`.
//
// A broadcast rule reaches each subtask at a different point of its
// transactions, so applying the rules a subtask happens to hold would make
// the alerts depend on timing. Here every rule says from which event time
// on it holds, and a transaction is judged at its own event time, once the
// watermark has passed it: the operator's watermark is the minimum over both
// inputs, so by then every rule in force at that time has arrived. The
// transactions wait in keyed state for their event-time timer. The alerts
// are therefore the same on every run, at any parallelism, after any
// restore.
//
// Both inputs are generated (datagen) and bounded; in production the rules
// would come from a compacted Kafka topic and the transactions from
// another.
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/connector/datagen"
	"github.com/sluicehq/sluice/restart"
	"github.com/sluicehq/sluice/state"
	"github.com/sluicehq/sluice/watermark"
)

// epoch is the event time of the first transaction of every split.
var epoch = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

// categories of transactions.
var categories = []string{"food", "tech", "travel"}

// Rule sets the threshold above which a transaction of Category raises an
// alert, from event time From (nanoseconds since the epoch) on, until a
// later rule of the category replaces it.
type Rule struct {
	ID        string
	Category  string
	Threshold int64
	From      int64
}

// at is the event time d after epoch.
func at(d time.Duration) int64 { return epoch.Add(d).UnixNano() }

// rules is the rules feed, in order of From.
var rules = []Rule{
	{"food-1", "food", 900, at(0)},
	{"tech-1", "tech", 1000, at(0)},
	{"travel-1", "travel", 800, at(0)},
	{"food-2", "food", 700, at(500 * time.Millisecond)},
	{"tech-2", "tech", 600, at(time.Second)},
	{"food-3", "food", 1000, at(1500 * time.Millisecond)},
}

// ruleCodec encodes a Rule in broadcast state.
var ruleCodec = must(codec.Struct("rule",
	codec.FieldOf("id", func(r *Rule) *string { return &r.ID }, codec.String),
	codec.FieldOf("category", func(r *Rule) *string { return &r.Category }, codec.String),
	codec.FieldOf("threshold", func(r *Rule) *int64 { return &r.Threshold }, codec.Int64),
	codec.FieldOf("from", func(r *Rule) *int64 { return &r.From }, codec.Int64),
))

// rulesDesc is the broadcast state: every rule, by ID.
var rulesDesc = sluice.NewBroadcastStateDescriptor("rules", codec.String, ruleCodec)

// Txn is a transaction of an account.
type Txn struct {
	Account  string
	Category string
	Amount   int64
}

var txnCodec = must(codec.Struct("txn",
	codec.FieldOf("account", func(t *Txn) *string { return &t.Account }, codec.String),
	codec.FieldOf("category", func(t *Txn) *string { return &t.Category }, codec.String),
	codec.FieldOf("amount", func(t *Txn) *int64 { return &t.Amount }, codec.Int64),
))

// txnGen generates the transactions: two splits of 3000, 1 ms of event
// time apart, amounts uniform in [0, 1024).
var txnGen = datagen.Config{Splits: 2, RecordsPerSplit: 3000, Keys: 40, Seed: 11}

// txnOf turns a generated record into a transaction.
func txnOf(r datagen.Record) Txn {
	return Txn{Account: r.Key, Category: categories[r.Value%int64(len(categories))], Amount: r.Value}
}

// txnTime is a transaction's event time.
func txnTime(r datagen.Record, _ int64) int64 { return at(time.Duration(r.Seq) * time.Millisecond) }

// Alert is one output: a transaction above the threshold of the rule in
// force at its event time.
type Alert struct {
	Account  string
	Category string
	Amount   int64
	Rule     string
	At       time.Time
}

// ruleAt returns the rule of category in force at ts in rs: the one with
// the latest From not after ts.
func ruleAt(rs func(yield func(string, Rule) bool), category string, ts int64) (Rule, bool) {
	var best Rule
	found := false
	for _, r := range rs {
		if r.Category == category && r.From <= ts && (!found || r.From > best.From) {
			best, found = r, true
		}
	}
	return best, found
}

// alerter buffers each account's transactions by event time in keyed
// state and judges them when the watermark passes.
type alerter struct {
	pending state.MapState[int64, []Txn]
}

func (a *alerter) Open(rc *sluice.RuntimeContext[string]) (err error) {
	a.pending, err = sluice.NewMapState(rc, "pending", codec.Int64, codec.List(txnCodec))
	return err
}

func (a *alerter) ProcessElement(t Txn, pc *sluice.ProcessContext[string, Alert]) error {
	ts := pc.Timestamp()
	list, _ := a.pending.Get(ts)
	a.pending.Put(ts, append(list, t))
	pc.RegisterEventTimeTimer(ts)
	return nil
}

func (a *alerter) OnTimer(when time.Time, pc *sluice.ProcessContext[string, Alert]) error {
	ts := when.UnixNano()
	list, _ := a.pending.Get(ts)
	a.pending.Remove(ts)
	rs, err := sluice.ReadOnlyBroadcastStateFor(pc, rulesDesc)
	if err != nil {
		return err
	}
	for _, t := range list {
		if r, ok := ruleAt(rs.All(), t.Category, ts); ok && t.Amount > r.Threshold {
			pc.Collect(Alert{t.Account, t.Category, t.Amount, r.ID, when.UTC()})
		}
	}
	return nil
}

// ProcessBroadcastElement stores the rule: the same on every subtask.
func (a *alerter) ProcessBroadcastElement(r Rule, bc *sluice.KeyedBroadcastContext[string, Alert]) error {
	rs, err := sluice.BroadcastStateFor(bc, rulesDesc)
	if err != nil {
		return err
	}
	rs.Put(r.ID, r)
	return nil
}

func run(ctx context.Context, dir string, parallelism int) ([]Alert, error) {
	env := sluice.New(sluice.Config{
		JobName:       "broadcastrules",
		Parallelism:   parallelism,
		CheckpointDir: dir,
		Restart:       restart.None{},
	})
	monotonous := watermark.ForMonotonousTimestamps()
	// The rules feed: datagen's record i of one split is rules[i].
	ruleRecs := sluice.FromSourceWithWatermarks(env, "rules",
		datagen.New(datagen.Config{Splits: 1, RecordsPerSplit: int64(len(rules)), Keys: 1}), monotonous,
		[]sluice.WatermarkOption[datagen.Record]{sluice.WithTimestampAssigner(func(r datagen.Record, _ int64) int64 { return rules[r.Seq].From })},
		sluice.Parallelism(1))
	ruleStream := sluice.BroadcastWith(sluice.Map(ruleRecs, "rule", func(r datagen.Record) Rule { return rules[r.Seq] }), rulesDesc)

	txnRecs := sluice.FromSourceWithWatermarks(env, "transactions", datagen.New(txnGen), monotonous,
		[]sluice.WatermarkOption[datagen.Record]{sluice.WithTimestampAssigner(txnTime)})
	txns := sluice.KeyBy(sluice.Map(txnRecs, "txn", txnOf), func(t Txn) string { return t.Account })

	alerts := sluice.ProcessKeyedBroadcast(sluice.ConnectKeyedBroadcast(txns, ruleStream), "alerts",
		func() sluice.KeyedBroadcastProcessFunction[string, Txn, Rule, Alert] { return &alerter{} })
	var mu sync.Mutex
	var out []Alert
	sluice.Sink(alerts, "collect", sluice.SinkFunc[Alert](func(a Alert) error {
		mu.Lock()
		defer mu.Unlock()
		out = append(out, a)
		return nil
	}))
	if _, err := env.Execute(ctx); err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].At.Equal(out[j].At) {
			return out[i].At.Before(out[j].At)
		}
		if out[i].Account != out[j].Account {
			return out[i].Account < out[j].Account
		}
		return out[i].Amount < out[j].Amount
	})
	return out, nil
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func main() {
	dir, err := os.MkdirTemp("", "sluice-broadcastrules-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	out, err := run(context.Background(), dir, 2)
	if err != nil {
		log.Fatal(err)
	}
	perRule := map[string]int{}
	for _, a := range out {
		fmt.Printf("%s %s %-6s %4d > rule %s\n", a.At.Format("15:04:05.000"), a.Account, a.Category, a.Amount, a.Rule)
		perRule[a.Rule]++
	}
	fmt.Printf("%d alerts; by rule:", len(out))
	for _, r := range rules {
		fmt.Printf(" %s=%d", r.ID, perRule[r.ID])
	}
	fmt.Println()
}
