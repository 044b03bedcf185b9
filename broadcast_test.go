package sluice_test

// Broadcast state (docs/design.md §4, §14): a rules stream broadcast to
// every subtask of a keyed or non-keyed stream, kept in broadcast state,
// checkpointed as operator state, restored at any parallelism.
//
// The tests are deterministic although the order between the broadcast and
// the main input is not: each phase appends rules, waits until every
// subtask acknowledged them (ProcessBroadcastElement emits an ack), and only
// then appends the records they apply to.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/checkpoint/store"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/connector/datagen"
	"github.com/sluicehq/sluice/connector/file"
	"github.com/sluicehq/sluice/fault"
	"github.com/sluicehq/sluice/internal/countjob"
	"github.com/sluicehq/sluice/internal/verify"
	"github.com/sluicehq/sluice/restart"
	"github.com/sluicehq/sluice/state"
	"github.com/sluicehq/sluice/watermark"
)

// rule sets (or, with Delete, removes) the limit of the rule Name.
type rule struct {
	Name   string
	Limit  int64
	Delete bool
}

// txn is a transaction of an account.
type txn struct {
	Account string
	Amount  int64
}

var limitsDesc = sluice.NewBroadcastStateDescriptor("limits", codec.String, codec.Int64)

// limitFn keeps a running total per account (keyed state) and, for every
// transaction, emits the account's total and the rules (broadcast state,
// in insertion order) whose limit the total exceeds, tagged with the
// subtask: "a total=150 over=[big] @1". Every broadcast rule is
// acknowledged by every subtask: "ack big @0".
type limitFn struct {
	total state.ValueState[int64]
	sub   int
}

func (f *limitFn) Open(rc *sluice.RuntimeContext[string]) error {
	f.sub = rc.Operator().Subtask
	var err error
	f.total, err = sluice.NewValueState(rc, "total", codec.Int64)
	return err
}

func (f *limitFn) ProcessElement(t txn, pc *sluice.ProcessContext[string, string]) error {
	n, _ := f.total.Value()
	n += t.Amount
	f.total.Update(n)
	limits, err := sluice.ReadOnlyBroadcastStateFor(pc, limitsDesc)
	if err != nil {
		return err
	}
	var over []string
	for name, lim := range limits.All() {
		if n > lim {
			over = append(over, name)
		}
	}
	pc.Collect(fmt.Sprintf("%s total=%d over=%v @%d", pc.CurrentKey(), n, over, f.sub))
	return nil
}

func (f *limitFn) ProcessBroadcastElement(r rule, bc *sluice.KeyedBroadcastContext[string, string]) error {
	limits, err := sluice.BroadcastStateFor(bc, limitsDesc)
	if err != nil {
		return err
	}
	if r.Delete {
		limits.Remove(r.Name)
	} else {
		limits.Put(r.Name, r.Limit)
	}
	bc.Collect(fmt.Sprintf("ack %s @%d", r.Name, f.sub))
	return nil
}

// limitJob: rules and transactions from log sources (parallelism 1), the
// transactions keyed by account into limitFn at the job's parallelism.
func limitJob(cfg sluice.Config, rules *logSource[rule], txns *logSource[txn], out *collector[string]) *sluice.Environment {
	env := sluice.New(cfg)
	r := sluice.BroadcastWith(sluice.FromSource(env, "rules", rules, sluice.Parallelism(1)), limitsDesc)
	t := sluice.KeyBy(sluice.FromSource(env, "txns", txns, sluice.Parallelism(1)), func(t txn) string { return t.Account })
	p := sluice.ProcessKeyedBroadcast(sluice.ConnectKeyedBroadcast(t, r), "limits",
		func() sluice.KeyedBroadcastProcessFunction[string, txn, rule, string] { return &limitFn{} }, sluice.Parallelism(cfg.Parallelism))
	sluice.Sink(p, "sink", out.Sink())
	return env
}

// waitPrefix waits until n records containing prefix were received.
func waitPrefix(t *testing.T, out *collector[string], prefix string, n int) {
	t.Helper()
	out.WaitFor(t, fmt.Sprintf("%d records %q", n, prefix), func(r []string) bool {
		c := 0
		for _, s := range r {
			if strings.Contains(s, prefix) {
				c++
			}
		}
		return c >= n
	})
}

// splitSubtask strips the " @N" suffix of every record, returning the
// records sorted and the set of subtasks that emitted them.
func splitSubtask(recs []string) ([]string, map[int]bool) {
	subs := map[int]bool{}
	var out []string
	for _, r := range recs {
		i := strings.LastIndex(r, " @")
		n, _ := strconv.Atoi(r[i+2:])
		subs[n] = true
		out = append(out, r[:i])
	}
	slices.Sort(out)
	return out, subs
}

func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// TestBroadcastRulesKeyed: rules broadcast to a keyed stream at
// parallelism 2, changed in the middle (a limit removed, one added, one
// changed); each transaction is judged by the rules every subtask held at
// that point, against its account's running total.
func TestBroadcastRulesKeyed(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, 2)
	cfg.BufferTimeout = sluice.FlushAlways
	rules, txns, out := newLogSource[rule](), newLogSource[txn](), newCollector[string]()
	x := start(t, limitJob(cfg, rules, txns, out))

	rules.Append(rule{Name: "big", Limit: 100}, rule{Name: "huge", Limit: 500})
	waitPrefix(t, out, "ack", 4) // two rules on each of two subtasks
	txns.Append(txn{"a", 50}, txn{"b", 120}, txn{"a", 60}, txn{"c", 600}, txn{"b", 10})
	waitPrefix(t, out, " total=", 5)
	rules.Append(rule{Name: "big", Delete: true}, rule{Name: "mid", Limit: 300}, rule{Name: "huge", Limit: 150})
	waitPrefix(t, out, "ack", 10)
	txns.Append(txn{"a", 200}, txn{"b", 1}, txn{"d", 5})
	waitPrefix(t, out, " total=", 8)
	rules.Close()
	txns.Close()
	if _, err := x.wait(t); err != nil {
		t.Fatalf("Execute: %v", err)
	}

	got, subs := splitSubtask(out.Records())
	want := sortedCopy([]string{
		"ack big", "ack big", "ack huge", "ack huge",
		"a total=50 over=[]", "b total=120 over=[big]", "a total=110 over=[big]", "c total=600 over=[big huge]", "b total=130 over=[big]",
		"ack big", "ack big", "ack mid", "ack mid", "ack huge", "ack huge",
		// huge (changed in place) keeps its place before mid (added).
		"a total=310 over=[huge mid]", "b total=131 over=[]", "d total=5 over=[]",
	})
	if !slices.Equal(got, want) {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(subs) != 2 {
		t.Fatalf("subtasks %v emitted, want both", subs)
	}
}

var labelsDesc = sluice.NewBroadcastStateDescriptor("labels", codec.String, codec.String)

// labelFn labels words of a non-keyed stream with the labels broadcast to
// it: "word:label", or "word:-" without one.
type labelFn struct{ sub int }

func (f *labelFn) Open(oc *sluice.OperatorContext) error { f.sub = oc.Subtask; return nil }

func (f *labelFn) ProcessElement(w string, c *sluice.ReadOnlyContext[string]) error {
	labels, err := sluice.ReadOnlyBroadcastStateFor(c, labelsDesc)
	if err != nil {
		return err
	}
	l, ok := labels.Get(w)
	if !ok {
		l = "-"
	}
	c.Collect(fmt.Sprintf("%s:%s @%d", w, l, f.sub))
	return nil
}

func (f *labelFn) ProcessBroadcastElement(r rule, c *sluice.BroadcastContext[string]) error {
	labels, err := sluice.BroadcastStateFor(c, labelsDesc)
	if err != nil {
		return err
	}
	if r.Delete {
		labels.Remove(r.Name)
	} else {
		labels.Put(r.Name, strconv.FormatInt(r.Limit, 10))
	}
	c.Collect(fmt.Sprintf("ack %s @%d", r.Name, f.sub))
	return nil
}

// TestBroadcastRulesNonKeyed: labels broadcast to a non-keyed stream
// rebalanced over two subtasks; every subtask applies the same labels.
func TestBroadcastRulesNonKeyed(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, 2)
	cfg.BufferTimeout = sluice.FlushAlways
	env := sluice.New(cfg)
	rules, words, out := newLogSource[rule](), newLogSource[string](), newCollector[string]()
	r := sluice.BroadcastWith(sluice.FromSource(env, "rules", rules, sluice.Parallelism(1)), labelsDesc)
	w := sluice.FromSource(env, "words", words, sluice.Parallelism(1))
	p := sluice.ProcessBroadcast(sluice.ConnectBroadcast(w, r), "label",
		func() sluice.BroadcastProcessFunction[string, rule, string] { return &labelFn{} }, sluice.Parallelism(2))
	sluice.Sink(p, "sink", out.Sink())
	x := start(t, env)

	rules.Append(rule{Name: "x", Limit: 1}, rule{Name: "y", Limit: 2})
	waitPrefix(t, out, "ack", 4)
	words.Append("x", "y", "z", "x", "y", "z")
	waitPrefix(t, out, "x:", 2)
	waitPrefix(t, out, "y:", 2)
	waitPrefix(t, out, "z:", 2)
	rules.Append(rule{Name: "x", Delete: true}, rule{Name: "z", Limit: 3})
	waitPrefix(t, out, "ack", 8)
	words.Append("x", "y", "z", "x")
	rules.Close()
	words.Close()
	if _, err := x.wait(t); err != nil {
		t.Fatalf("Execute: %v", err)
	}
	got, subs := splitSubtask(out.Records())
	want := sortedCopy([]string{
		"ack x", "ack x", "ack y", "ack y", "x:1", "y:2", "z:-", "x:1", "y:2", "z:-",
		"ack x", "ack x", "ack z", "ack z", "x:-", "y:2", "z:3", "x:-",
	})
	if !slices.Equal(got, want) {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(subs) != 2 {
		t.Fatalf("subtasks %v emitted, want both (the words are rebalanced)", subs)
	}
}

// TestBroadcastRescale: rules broadcast at parallelism 2, kept in a
// savepoint (stop), restored at 3 and 1 with no rule replayed: every new
// subtask has them all (new subtask 2 reads old subtask 0's copy), and the
// keyed totals continue.
func TestBroadcastRescale(t *testing.T) {
	t.Parallel()
	accounts := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"}
	rulesIn := []rule{{Name: "big", Limit: 100}, {Name: "huge", Limit: 300}, {Name: "tmp", Limit: 1}, {Name: "tmp", Delete: true}}
	var txns1, txns2 []txn
	for i, a := range accounts {
		txns1 = append(txns1, txn{a, int64(40 * i)})
		txns2 = append(txns2, txn{a, 60})
	}
	for _, par2 := range []int{3, 1} {
		t.Run(fmt.Sprintf("2→%d", par2), func(t *testing.T) {
			t.Parallel()
			cfg1 := testConfig(t, 2)
			cfg1.BufferTimeout = sluice.FlushAlways
			cfg1.Checkpoint = checkpoint.Config{Interval: -1}
			rules1, tx1, out1 := newLogSource[rule](), newLogSource[txn](), newCollector[string]()
			env1 := limitJob(cfg1, rules1, tx1, out1)
			x := start(t, env1)
			rules1.Append(rulesIn...)
			waitPrefix(t, out1, "ack", 2*len(rulesIn))
			tx1.Append(txns1...)
			waitPrefix(t, out1, "", 2*len(rulesIn)+len(txns1))
			env1.Stop()
			res, err := x.wait(t)
			if err != nil {
				t.Fatalf("run 1: %v", err)
			}
			if res.LastCheckpoint == nil {
				t.Fatal("run 1: no savepoint")
			}

			cfg2 := testConfig(t, par2)
			cfg2.BufferTimeout = sluice.FlushAlways
			cfg2.FromCheckpoint = filepath.Join(cfg1.CheckpointDir, store.CheckpointDir(res.LastCheckpoint.CheckpointID))
			rules2, tx2, out2 := newLogSource[rule](), newLogSource[txn](), newCollector[string]()
			rules2.Append(rulesIn...) // restored past them: not replayed
			tx2.Append(txns1...)
			tx2.Append(txns2...)
			rules2.Close()
			tx2.Close()
			run(t, limitJob(cfg2, rules2, tx2, out2))

			got, subs := splitSubtask(out2.Records())
			var want []string
			for i, a := range accounts {
				n := int64(40*i) + 60
				var over []string
				if n > 100 {
					over = append(over, "big")
				}
				if n > 300 {
					over = append(over, "huge")
				}
				want = append(want, fmt.Sprintf("%s total=%d over=%v", a, n, over))
			}
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("run 2 got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if len(subs) != par2 {
				t.Fatalf("run 2: subtasks %v emitted, want all %d (the accounts spread over them)", subs, par2)
			}
		})
	}
}

// storeFn keeps the limits of rules in broadcast state "limits" with
// value codec of V, for the codec-compatibility test.
type storeFn[V any] struct {
	desc sluice.BroadcastStateDescriptor[string, V]
	conv func(int64) V
}

func (f *storeFn[V]) Open(*sluice.RuntimeContext[string]) error { return nil }
func (f *storeFn[V]) ProcessElement(txn, *sluice.ProcessContext[string, string]) error {
	return nil
}
func (f *storeFn[V]) ProcessBroadcastElement(r rule, bc *sluice.KeyedBroadcastContext[string, string]) error {
	s, err := sluice.BroadcastStateFor(bc, f.desc)
	if err != nil {
		return err
	}
	s.Put(r.Name, f.conv(r.Limit))
	return nil
}

// storeJob: rs (default: one rule) stored by storeFn, no transactions.
func storeJob[V any](cfg sluice.Config, desc sluice.BroadcastStateDescriptor[string, V], conv func(int64) V, rs ...rule) *sluice.Environment {
	env := sluice.New(cfg)
	rules, txns := newLogSource[rule](), newLogSource[txn]()
	if len(rs) == 0 {
		rs = []rule{{Name: "big", Limit: 100}}
	}
	rules.Append(rs...)
	rules.Close()
	txns.Close()
	r := sluice.BroadcastWith(sluice.FromSource(env, "rules", rules, sluice.Parallelism(1)), desc)
	t := sluice.KeyBy(sluice.FromSource(env, "txns", txns, sluice.Parallelism(1)), func(t txn) string { return t.Account })
	p := sluice.ProcessKeyedBroadcast(sluice.ConnectKeyedBroadcast(t, r), "limits",
		func() sluice.KeyedBroadcastProcessFunction[string, txn, rule, string] {
			return &storeFn[V]{desc: desc, conv: conv}
		},
		sluice.Parallelism(cfg.Parallelism))
	sluice.Sink(p, "sink", sluice.DiscardSink[string]())
	return env
}

// TestBroadcastIncompatibleCodec: broadcast state written with one value
// codec and restored by a job that declares another is refused, naming
// the state and both codecs; the same codecs restore.
func TestBroadcastIncompatibleCodec(t *testing.T) {
	t.Parallel()
	cfg1 := testConfig(t, 2)
	res := run(t, storeJob(cfg1, limitsDesc, func(v int64) int64 { return v }))
	if res.LastCheckpoint == nil {
		t.Fatal("no final checkpoint")
	}
	from := filepath.Join(cfg1.CheckpointDir, store.CheckpointDir(res.LastCheckpoint.CheckpointID))
	var desc strings.Builder
	if err := store.Describe(&desc, res.LastCheckpoint); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(desc.String(), `broadcast state "limits": keys string@v1, values zigzag-varint@v1, 1 entry`); n != 2 {
		t.Errorf("inspect shows %d copies of the broadcast state with its codecs, want one per subtask (2):\n%s", n, desc.String())
	}

	// A job without the broadcast operator (its uid changed) is refused,
	// naming the broadcast state.
	cfgR := testConfig(t, 2)
	cfgR.FromCheckpoint = from
	envR := sluice.New(cfgR)
	sluice.Sink(sluice.FromSource(envR, "txns", newLogSource[txn]()), "sink", sluice.DiscardSink[txn]())
	if _, err := envR.Execute(ctxTimeout(t)); err == nil || !errors.Is(err, checkpoint.ErrIncompatible) || !strings.Contains(err.Error(), `operator "limits" (`) ||
		!strings.Contains(err.Error(), `broadcast state "limits")`) {
		t.Errorf("restore without the operator: %v, want a refusal naming its broadcast state", err)
	}

	cfg2 := testConfig(t, 3)
	cfg2.FromCheckpoint = from
	run(t, storeJob(cfg2, limitsDesc, func(v int64) int64 { return v }))

	cfg3 := testConfig(t, 3)
	cfg3.FromCheckpoint = from
	cfg3.Restart = restart.FixedDelay{Attempts: 5, Delay: time.Millisecond}
	f64 := sluice.NewBroadcastStateDescriptor("limits", codec.String, codec.Float64)
	_, err := storeJob(cfg3, f64, func(v int64) float64 { return float64(v) }).Execute(ctxTimeout(t))
	if err == nil || !errors.Is(err, checkpoint.ErrIncompatible) {
		t.Fatalf("Execute: %v, want checkpoint.ErrIncompatible", err)
	}
	for _, s := range []string{`broadcast state "limits"`, "zigzag-varint@v1", "float64-le@v1", "limits/"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
	t.Logf("refused: %v", err)
	if strings.Contains(err.Error(), "cannot read it") {
		t.Errorf("error %q: the declared codec IDs differ, so the restore must be refused before decoding", err)
	}
}

// TestBroadcastUndeclaredState: a function asking for a broadcast state
// its stream did not declare fails the job with the state's name.
func TestBroadcastUndeclaredState(t *testing.T) {
	t.Parallel()
	other := sluice.NewBroadcastStateDescriptor("other", codec.String, codec.Int64)
	env := sluice.New(testConfig(t, 1))
	rules, txns := newLogSource[rule](), newLogSource[txn]()
	rules.Append(rule{Name: "big", Limit: 100})
	rules.Close()
	txns.Close()
	r := sluice.BroadcastWith(sluice.FromSource(env, "rules", rules), other)
	k := sluice.KeyBy(sluice.FromSource(env, "txns", txns), func(t txn) string { return t.Account })
	p := sluice.ProcessKeyedBroadcast(sluice.ConnectKeyedBroadcast(k, r), "limits",
		func() sluice.KeyedBroadcastProcessFunction[string, txn, rule, string] { return &limitFn{} })
	sluice.Sink(p, "sink", sluice.DiscardSink[string]())
	_, err := env.Execute(ctxTimeout(t))
	if err == nil || !strings.Contains(err.Error(), `broadcast state "limits" is not declared`) {
		t.Fatalf("Execute: %v, want an error naming the undeclared state", err)
	}
}

// TestBroadcastBuildErrors: declaring no broadcast state, one twice, or
// one without a name or codec fails the build.
func TestBroadcastBuildErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		descs []sluice.AnyBroadcastStateDescriptor
		want  string
	}{
		{nil, "no broadcast state descriptor"},
		{[]sluice.AnyBroadcastStateDescriptor{limitsDesc, limitsDesc}, `broadcast state "limits" is declared twice`},
		{[]sluice.AnyBroadcastStateDescriptor{sluice.NewBroadcastStateDescriptor[string, int64]("", codec.String, codec.Int64)}, "empty broadcast state name"},
		{[]sluice.AnyBroadcastStateDescriptor{sluice.NewBroadcastStateDescriptor[string, int64]("x", codec.String, nil)}, `broadcast state "x": nil key or value codec`},
	} {
		err := buildErr(t, func(env *sluice.Environment) {
			r := sluice.BroadcastWith(sluice.FromSource(env, "rules", newLogSource[rule]()), tc.descs...)
			k := sluice.KeyBy(sluice.FromSource(env, "txns", newLogSource[txn]()), func(t txn) string { return t.Account })
			p := sluice.ProcessKeyedBroadcast(sluice.ConnectKeyedBroadcast(k, r), "limits",
				func() sluice.KeyedBroadcastProcessFunction[string, txn, rule, string] { return &limitFn{} })
			sluice.Sink(p, "sink", sluice.DiscardSink[string]())
		})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("build error %v, want %q", err, tc.want)
		}
	}
}

// ruleCounter counts, in broadcast state, how often each rule key was
// broadcast and emits "rule:<key>@<subtask>,n" for each: a broadcast state
// lost or applied twice after a restore breaks the 1..n sequence of a
// subtask. The keyed input is counted per key as by the count job.
type ruleCounter struct {
	n   state.ValueState[int64]
	sub int
}

var ruleCountsDesc = sluice.NewBroadcastStateDescriptor("rule-counts", codec.String, codec.Int64)

func (f *ruleCounter) Open(rc *sluice.RuntimeContext[string]) error {
	f.sub = rc.Operator().Subtask
	var err error
	f.n, err = sluice.NewValueState(rc, "count", codec.Int64)
	return err
}

func (f *ruleCounter) ProcessElement(_ datagen.Record, pc *sluice.ProcessContext[string, countjob.Count]) error {
	n, _ := f.n.Value()
	n++
	f.n.Update(n)
	pc.Collect(countjob.Count{Key: pc.CurrentKey(), N: n})
	return nil
}

func (f *ruleCounter) ProcessBroadcastElement(r datagen.Record, bc *sluice.KeyedBroadcastContext[string, countjob.Count]) error {
	s, err := sluice.BroadcastStateFor(bc, ruleCountsDesc)
	if err != nil {
		return err
	}
	n, _ := s.Get(r.Key)
	n++
	s.Put(r.Key, n)
	bc.Collect(countjob.Count{Key: "rule:" + r.Key + "@" + strconv.Itoa(f.sub), N: n})
	return nil
}

// ruleCounterNonKeyed: ruleCounter's broadcast side on a non-keyed
// stream, whose records it emits as "rec:<split>/<seq>,1".
type ruleCounterNonKeyed struct{ sub int }

func (f *ruleCounterNonKeyed) Open(oc *sluice.OperatorContext) error { f.sub = oc.Subtask; return nil }

func (f *ruleCounterNonKeyed) ProcessElement(r datagen.Record, c *sluice.ReadOnlyContext[countjob.Count]) error {
	c.Collect(countjob.Count{Key: "rec:" + strconv.Itoa(r.Split) + "/" + strconv.FormatInt(r.Seq, 10), N: 1})
	return nil
}

func (f *ruleCounterNonKeyed) ProcessBroadcastElement(r datagen.Record, bc *sluice.BroadcastContext[countjob.Count]) error {
	s, err := sluice.BroadcastStateFor(bc, ruleCountsDesc)
	if err != nil {
		return err
	}
	n, _ := s.Get(r.Key)
	n++
	s.Put(r.Key, n)
	bc.Collect(countjob.Count{Key: "rule:" + r.Key + "@" + strconv.Itoa(f.sub), N: n})
	return nil
}

// TestBroadcastExactlyOnceUnderFailures: a rules stream counted in
// broadcast state on every subtask and a main stream (keyed and counted
// in keyed state, or not keyed and passed through), both written by the
// two-phase-commit file sink, with failures injected at random operators
// and points. The committed output holds every count 1..n exactly once,
// the rule counts of every subtask included: each checkpoint's broadcast
// state matches the broadcast input's position and the sink's
// transactions.
func TestBroadcastExactlyOnceUnderFailures(t *testing.T) {
	t.Parallel()
	seed := uint64(20261202)
	rng := rand.New(rand.NewPCG(seed, 11))
	fired := int64(0)
	for i := range 4 {
		keyed := i%2 == 0
		main := datagen.Config{
			Splits: 1 + rng.IntN(3), RecordsPerSplit: int64(1000 + rng.IntN(1500)),
			RatePerSecond: float64(20_000 + rng.IntN(20_000)), Keys: 2 + rng.IntN(30),
			Distribution: []string{"uniform", "zipf", "sequential"}[rng.IntN(3)], Seed: rng.Uint64(),
		}
		rules := datagen.Config{
			Splits: 1, RecordsPerSplit: int64(200 + rng.IntN(300)), RatePerSecond: float64(3000 + rng.IntN(3000)),
			Keys: 1 + rng.IntN(5), Seed: rng.Uint64(),
		}
		par, failures := 1+rng.IntN(3), 1+rng.IntN(4)
		dir := t.TempDir()
		inj := fault.New(rng.Uint64())
		inj.Schedule(inj.RandomTargets([]string{"main", "rules", "count", "sink"}, failures, 150))
		env := sluice.New(sluice.Config{
			JobName: "broadcast-eo", Parallelism: par, BufferTimeout: time.Millisecond, BatchSize: 1 + rng.IntN(64),
			Checkpoint:    checkpoint.Config{Interval: 10 * time.Millisecond, MinPause: time.Millisecond, TolerableFailures: 100},
			CheckpointDir: filepath.Join(dir, "checkpoints"),
			Restart:       restart.FixedDelay{Attempts: 1000, Delay: time.Millisecond},
			Faults:        inj, Logger: quietLogger(),
		})
		in := sluice.FromSource(env, "main", datagen.New(main))
		rs := sluice.BroadcastWith(sluice.FromSource(env, "rules", datagen.New(rules), sluice.Parallelism(1)), ruleCountsDesc)
		var counts sluice.Stream[countjob.Count]
		if keyed {
			counts = sluice.ProcessKeyedBroadcast(sluice.ConnectKeyedBroadcast(sluice.KeyBy(in, func(r datagen.Record) string { return r.Key }), rs), "count",
				func() sluice.KeyedBroadcastProcessFunction[string, datagen.Record, datagen.Record, countjob.Count] {
					return &ruleCounter{}
				})
		} else {
			counts = sluice.ProcessBroadcast(sluice.ConnectBroadcast(sluice.Rebalance(in, "spread"), rs), "count",
				func() sluice.BroadcastProcessFunction[datagen.Record, datagen.Record, countjob.Count] {
					return &ruleCounterNonKeyed{}
				})
		}
		sluice.Sink(counts, "sink", file.NewSink(file.Config[countjob.Count]{Dir: filepath.Join(dir, "out"), Encode: countjob.AppendLine}))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		res, err := env.Execute(ctx)
		cancel()
		if err != nil {
			t.Fatalf("iteration %d (seed %d): job failed: %v", i, seed, err)
		}
		fired += inj.Fired()

		pos := map[int]int64{}
		for s := range main.Splits {
			pos[s] = main.RecordsPerSplit
		}
		want := map[string]int64{}
		if keyed {
			want = datagen.Expected(main, pos)
		} else {
			for _, r := range input(main) {
				want["rec:"+strconv.Itoa(r.Split)+"/"+strconv.FormatInt(r.Seq, 10)] = 1
			}
		}
		for k, n := range datagen.Expected(rules, map[int]int64{0: rules.RecordsPerSplit}) {
			for sub := range par {
				want["rule:"+k+"@"+strconv.Itoa(sub)] = n
			}
		}
		outs, err := verify.ReadDir(filepath.Join(dir, "out"))
		if err != nil {
			t.Fatal(err)
		}
		rep := verify.Counts(want, outs)
		t.Logf("iteration %d (seed %d): keyed %v, main %+v rules %+v parallelism %d: %d restarts, %d checkpoints, committed %d, failures fired %d",
			i, seed, keyed, main, rules, par, res.Restarts, res.Checkpoints, rep.Committed, inj.Fired())
		if !rep.ExactlyOnce() || rep.Committed == 0 {
			t.Fatalf("iteration %d (seed %d): %d lost, %d duplicated: %v", i, seed, rep.Lost, rep.Duplicated, rep.Examples)
		}
	}
	if fired == 0 {
		t.Fatal("no failure fired: the test proved nothing")
	}
}

// TestBroadcastUndeclaredStateKept: broadcast state restored into a job
// that no longer declares it is logged at WARN and kept, unchanged, in the
// job's checkpoints, so that a later version declaring it again gets it
// back (as restored keyed state that Open does not register).
func TestBroadcastUndeclaredStateKept(t *testing.T) {
	t.Parallel()
	cfg1 := testConfig(t, 2)
	rules1, tx1 := newLogSource[rule](), newLogSource[txn]()
	v1 := []rule{{Name: "big", Limit: 100}, {Name: "huge", Limit: 500}}
	rules1.Append(v1...)
	rules1.Close()
	tx1.Close()
	res := run(t, limitJob(cfg1, rules1, tx1, newCollector[string]()))

	// Version 2 declares another broadcast state only.
	logs := &logBuffer{}
	cfg2 := testConfig(t, 3)
	cfg2.Logger = slog.New(slog.NewTextHandler(logs, nil))
	cfg2.FromCheckpoint = filepath.Join(cfg1.CheckpointDir, store.CheckpointDir(res.LastCheckpoint.CheckpointID))
	other := sluice.NewBroadcastStateDescriptor("other", codec.String, codec.Int64)
	// Its rules source restores past the two rules and reads a third.
	res2 := run(t, storeJob(cfg2, other, func(v int64) int64 { return v }, append(v1, rule{Name: "x", Limit: 1})...))
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "state=limits") {
		t.Errorf("no WARN naming the undeclared broadcast state:\n%s", logs)
	}

	// Version 3 declares it again: the rules of version 1 apply.
	cfg3 := testConfig(t, 2)
	cfg3.FromCheckpoint = filepath.Join(cfg2.CheckpointDir, store.CheckpointDir(res2.LastCheckpoint.CheckpointID))
	rules3, tx3, out3 := newLogSource[rule](), newLogSource[txn](), newCollector[string]()
	rules3.Append(append(v1, rule{Name: "x", Limit: 1})...) // all read before
	rules3.Close()
	tx3.Append(txn{"a", 200}, txn{"b", 600})
	tx3.Close()
	run(t, limitJob(cfg3, rules3, tx3, out3))
	got, _ := splitSubtask(out3.Records())
	want := []string{"a total=200 over=[big]", "b total=600 over=[big huge]"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

var (
	updatesTag = sluice.NewOutputTag[string]("updates")
	overTag    = sluice.NewOutputTag[string]("over")
)

// sideLimitFn: limitFn that also reports each rule it stores on side
// output "updates" (BroadcastOutput) and each account over a limit on side
// output "over" (Output).
type sideLimitFn struct{ limitFn }

func (f *sideLimitFn) ProcessElement(t txn, pc *sluice.ProcessContext[string, string]) error {
	if err := f.limitFn.ProcessElement(t, pc); err != nil {
		return err
	}
	limits, err := sluice.ReadOnlyBroadcastStateFor(pc, limitsDesc)
	if err != nil {
		return err
	}
	n, _ := f.total.Value()
	if lim, ok := limits.Get("big"); ok && n > lim {
		sluice.Output(pc, overTag, t.Account)
	}
	return nil
}

func (f *sideLimitFn) ProcessBroadcastElement(r rule, bc *sluice.KeyedBroadcastContext[string, string]) error {
	if err := f.limitFn.ProcessBroadcastElement(r, bc); err != nil {
		return err
	}
	sluice.BroadcastOutput(bc, updatesTag, fmt.Sprintf("%s=%d @%d", r.Name, r.Limit, f.sub))
	return nil
}

// sideLabelFn: labelFn that sends unlabelled words to side output "over".
type sideLabelFn struct{ labelFn }

func (f *sideLabelFn) ProcessElement(w string, c *sluice.ReadOnlyContext[string]) error {
	labels, err := sluice.ReadOnlyBroadcastStateFor(c, labelsDesc)
	if err != nil {
		return err
	}
	if !labels.Contains(w) {
		sluice.BroadcastOutput(c, overTag, w)
		return nil
	}
	return f.labelFn.ProcessElement(w, c)
}

// TestBroadcastSideOutputs: a keyed broadcast function emits side outputs
// from ProcessBroadcastElement (BroadcastOutput) and ProcessElement
// (Output), a non-keyed one from ProcessElement (BroadcastOutput).
func TestBroadcastSideOutputs(t *testing.T) {
	t.Parallel()
	t.Run("keyed", func(t *testing.T) {
		t.Parallel()
		cfg := testConfig(t, 2)
		cfg.BufferTimeout = sluice.FlushAlways
		env := sluice.New(cfg)
		rules, txns := newLogSource[rule](), newLogSource[txn]()
		out, updates, over := newCollector[string](), newCollector[string](), newCollector[string]()
		r := sluice.BroadcastWith(sluice.FromSource(env, "rules", rules, sluice.Parallelism(1)), limitsDesc)
		k := sluice.KeyBy(sluice.FromSource(env, "txns", txns, sluice.Parallelism(1)), func(t txn) string { return t.Account })
		p := sluice.ProcessKeyedBroadcast(sluice.ConnectKeyedBroadcast(k, r), "limits",
			func() sluice.KeyedBroadcastProcessFunction[string, txn, rule, string] { return &sideLimitFn{} }, sluice.Parallelism(2))
		sluice.Sink(p, "sink", out.Sink())
		sluice.Sink(sluice.SideOutput(p, updatesTag), "updates", updates.Sink())
		sluice.Sink(sluice.SideOutput(p, overTag), "over", over.Sink(), sluice.Parallelism(1))
		x := start(t, env)
		rules.Append(rule{Name: "big", Limit: 100})
		waitPrefix(t, out, "ack", 2)
		txns.Append(txn{"a", 50}, txn{"b", 150}, txn{"a", 60})
		rules.Close()
		txns.Close()
		if _, err := x.wait(t); err != nil {
			t.Fatalf("Execute: %v", err)
		}
		if got := sortedCopy(updates.Records()); !slices.Equal(got, []string{"big=100 @0", "big=100 @1"}) {
			t.Errorf("updates side output %v", got)
		}
		if got := sortedCopy(over.Records()); !slices.Equal(got, []string{"a", "b"}) {
			t.Errorf("over side output %v, want [a b]", got)
		}
	})
	t.Run("non-keyed", func(t *testing.T) {
		t.Parallel()
		cfg := testConfig(t, 2)
		cfg.BufferTimeout = sluice.FlushAlways
		env := sluice.New(cfg)
		rules, words := newLogSource[rule](), newLogSource[string]()
		out, over := newCollector[string](), newCollector[string]()
		r := sluice.BroadcastWith(sluice.FromSource(env, "rules", rules, sluice.Parallelism(1)), labelsDesc)
		w := sluice.FromSource(env, "words", words, sluice.Parallelism(1))
		p := sluice.ProcessBroadcast(sluice.ConnectBroadcast(w, r), "label",
			func() sluice.BroadcastProcessFunction[string, rule, string] { return &sideLabelFn{} }, sluice.Parallelism(2))
		sluice.Sink(p, "sink", out.Sink())
		sluice.Sink(sluice.SideOutput(p, overTag), "unlabelled", over.Sink())
		x := start(t, env)
		rules.Append(rule{Name: "x", Limit: 1})
		waitPrefix(t, out, "ack", 2)
		words.Append("x", "y", "z", "x")
		rules.Close()
		words.Close()
		if _, err := x.wait(t); err != nil {
			t.Fatalf("Execute: %v", err)
		}
		if got := sortedCopy(over.Records()); !slices.Equal(got, []string{"y", "z"}) {
			t.Errorf("unlabelled side output %v, want [y z]", got)
		}
		got, _ := splitSubtask(out.Records())
		if want := []string{"ack x", "ack x", "x:1", "x:1"}; !slices.Equal(got, want) {
			t.Errorf("main output %v, want %v", got, want)
		}
	})
}

// tsFn reports the timestamps its contexts give.
type tsFn struct{}

func (tsFn) Open(*sluice.OperatorContext) error { return nil }
func (tsFn) ProcessElement(w string, c *sluice.ReadOnlyContext[string]) error {
	c.Collect(fmt.Sprintf("%s ts=%d", w, c.Timestamp()))
	c.CollectWithTimestamp(w+" moved", c.Timestamp()+1000)
	return nil
}
func (tsFn) ProcessBroadcastElement(r rule, c *sluice.BroadcastContext[string]) error {
	c.Collect(fmt.Sprintf("rule %s ts=%d @%d", r.Name, c.Timestamp(), c.Operator().Subtask))
	return nil
}

// stampTS appends the timestamp its records arrive with.
type stampTS struct{}

func (stampTS) Open(*sluice.RuntimeContext[string]) error { return nil }
func (stampTS) ProcessElement(s string, pc *sluice.ProcessContext[string, string]) error {
	pc.Collect(s + " |" + strconv.FormatInt(pc.Timestamp(), 10))
	return nil
}

// TestBroadcastTimestamps: both contexts see the timestamp of the record
// being processed, and what they collect carries it (or the one given to
// CollectWithTimestamp) downstream.
func TestBroadcastTimestamps(t *testing.T) {
	t.Parallel()
	env := sluice.New(testConfig(t, 2))
	rules, words := newLogSource[rule](), newLogSource[string]()
	rules.Append(rule{Name: "x", Limit: 7})
	words.Append("a", "bb")
	rules.Close()
	words.Close()
	r := sluice.BroadcastWith(sluice.FromSourceWithWatermarks(env, "rules", rules, watermark.ForMonotonousTimestamps(),
		[]sluice.WatermarkOption[rule]{sluice.WithTimestampAssigner(func(r rule, _ int64) int64 { return r.Limit })}, sluice.Parallelism(1)), labelsDesc)
	w := sluice.FromSourceWithWatermarks(env, "words", words, watermark.ForMonotonousTimestamps(),
		[]sluice.WatermarkOption[string]{sluice.WithTimestampAssigner(func(w string, _ int64) int64 { return int64(100 * len(w)) })}, sluice.Parallelism(1))
	p := sluice.ProcessBroadcast(sluice.ConnectBroadcast(w, r), "ts",
		func() sluice.BroadcastProcessFunction[string, rule, string] { return tsFn{} }, sluice.Parallelism(2))
	out := newCollector[string]()
	stamped := sluice.Process(sluice.KeyBy(p, func(s string) string { return s }), "stamp",
		func() sluice.KeyedProcessFunction[string, string, string] { return stampTS{} })
	sluice.Sink(stamped, "sink", out.Sink())
	run(t, env)
	got := sortedCopy(out.Records())
	want := sortedCopy([]string{"rule x ts=7 @0 |7", "rule x ts=7 @1 |7", "a ts=100 |100", "bb ts=200 |200", "a moved |1100", "bb moved |1200"})
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// auditFn: limitFn where rule "audit" visits every account's total
// (ApplyToKeyedState), reports it, and resets totals above its limit;
// rule "bad" visits a state that is not registered.
type auditFn struct{ limitFn }

func (f *auditFn) ProcessBroadcastElement(r rule, bc *sluice.KeyedBroadcastContext[string, string]) error {
	switch r.Name {
	case "audit":
		return bc.ApplyToKeyedState("total", func(k string) error {
			n, _ := f.total.Value()
			bc.Collect(fmt.Sprintf("audit %s=%d @%d", k, n, f.sub))
			if n > r.Limit {
				f.total.Clear()
			}
			return nil
		})
	case "bad":
		return bc.ApplyToKeyedState("nope", func(string) error { return nil })
	}
	return f.limitFn.ProcessBroadcastElement(r, bc)
}

// TestBroadcastApplyToKeyedState: a broadcast rule visits the keyed state
// of every key on every subtask, with the key current; what it changes is
// what the next records of those keys see. Visiting an unregistered state
// fails the job, naming it.
func TestBroadcastApplyToKeyedState(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, 2)
	cfg.BufferTimeout = sluice.FlushAlways
	env := sluice.New(cfg)
	rules, txns, out := newLogSource[rule](), newLogSource[txn](), newCollector[string]()
	r := sluice.BroadcastWith(sluice.FromSource(env, "rules", rules, sluice.Parallelism(1)), limitsDesc)
	k := sluice.KeyBy(sluice.FromSource(env, "txns", txns, sluice.Parallelism(1)), func(t txn) string { return t.Account })
	p := sluice.ProcessKeyedBroadcast(sluice.ConnectKeyedBroadcast(k, r), "limits",
		func() sluice.KeyedBroadcastProcessFunction[string, txn, rule, string] { return &auditFn{} }, sluice.Parallelism(2))
	sluice.Sink(p, "sink", out.Sink())
	x := start(t, env)
	accounts := []string{"a", "b", "c", "d", "e", "f"}
	for i, a := range accounts {
		txns.Append(txn{a, int64(10 * (i + 1))})
	}
	waitPrefix(t, out, " total=", len(accounts))
	rules.Append(rule{Name: "audit", Limit: 30})
	waitPrefix(t, out, "audit", len(accounts))
	for _, a := range accounts {
		txns.Append(txn{a, 1})
	}
	waitPrefix(t, out, " total=", 2*len(accounts))
	rules.Append(rule{Name: "bad"})
	_, err := x.wait(t)
	if err == nil || !strings.Contains(err.Error(), `keyed state "nope" is not registered`) {
		t.Fatalf("Execute: %v, want an error naming the unregistered state", err)
	}
	got, subs := splitSubtask(out.Records())
	var want []string
	for i, a := range accounts {
		n := int64(10 * (i + 1))
		want = append(want, fmt.Sprintf("%s total=%d over=[]", a, n), fmt.Sprintf("audit %s=%d", a, n))
		if n > 30 {
			n = 0
		}
		want = append(want, fmt.Sprintf("%s total=%d over=[]", a, n+1))
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(subs) != 2 {
		t.Fatalf("subtasks %v emitted, want both", subs)
	}
}
