package sluice_test

// Interval joins in jobs (docs/design.md §14): timestamps and watermarks
// from two sources, the join's buffers and cleanup timers through
// failures and through a savepoint restored at another parallelism. The
// inputs are out of order by less than their sources' bound, so no record
// is ever late and the joined pairs do not depend on timing: exactly the
// pairs whose timestamps satisfy the bounds. The table tests with late
// records drive the operator directly (intervaljoin_internal_test.go).

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/checkpoint/store"
	"github.com/sluicehq/sluice/clock"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/connector/datagen"
	"github.com/sluicehq/sluice/connector/file"
	"github.com/sluicehq/sluice/fault"
	"github.com/sluicehq/sluice/internal/verify"
	"github.com/sluicehq/sluice/restart"
	"github.com/sluicehq/sluice/watermark"
)

var joinEvCodec = mustJoinCodec(codec.Struct("evRec",
	codec.FieldOf("key", func(r *evRec) *string { return &r.Key }, codec.Codec[string](codec.String)),
	codec.FieldOf("at", func(r *evRec) *int { return &r.At }, codec.Codec[int](codec.Int))))

var joinRecordCodec = mustJoinCodec(codec.Struct("datagen.Record",
	codec.FieldOf("split", func(r *datagen.Record) *int { return &r.Split }, codec.Codec[int](codec.Int)),
	codec.FieldOf("seq", func(r *datagen.Record) *int64 { return &r.Seq }, codec.Codec[int64](codec.Int64)),
	codec.FieldOf("key", func(r *datagen.Record) *string { return &r.Key }, codec.Codec[string](codec.String)),
	codec.FieldOf("value", func(r *datagen.Record) *int64 { return &r.Value }, codec.Codec[int64](codec.Int64))))

func mustJoinCodec[T any](c codec.Codec[T], err error) codec.Codec[T] {
	if err != nil {
		panic(err)
	}
	return c
}

// joinEv reports a joined pair of scripted records with its timestamp.
func joinEv() sluice.ProcessJoinFunction[string, evRec, evRec, string] {
	return sluice.ProcessJoinFunc[string, evRec, evRec, string](func(l, r evRec, jc *sluice.JoinContext[string, string]) error {
		if jc.LeftTimestamp() != ts(l.At) || jc.RightTimestamp() != ts(r.At) {
			return fmt.Errorf("pair %v %v: timestamps %s %s", l, r, fmtTS(jc.LeftTimestamp()), fmtTS(jc.RightTimestamp()))
		}
		jc.Collect(fmt.Sprintf("%v+%v@%s", l, r, fmtTS(jc.Timestamp())))
		return nil
	})
}

// TestIntervalJoinJob: orders joined with the payments of the same user
// 0 to 5 seconds later, both out of order (by less than their 10s bound),
// the results re-keyed downstream, which sees each with the timestamp of
// the later record of its pair. The late side outputs of both sides are
// planned and consumed, and stay empty.
func TestIntervalJoinJob(t *testing.T) {
	t.Parallel()
	cfg, clk := evConfig(t, 1)
	env := sluice.New(cfg)
	bound := watermark.ForBoundedOutOfOrderness(10 * time.Second)
	orders := sluice.FromSourceWithWatermarks(env, "orders", &scriptSource{clk: clk, interval: time.Second, scripts: [][]step{{
		rec("u1", 10), tick(), rec("u2", 12), rec("u1", 11), tick(), rec("u1", 30), tick(),
	}}}, bound, nil)
	payments := sluice.FromSourceWithWatermarks(env, "payments", &scriptSource{clk: clk, interval: time.Second, scripts: [][]step{{
		rec("u1", 15), tick(), rec("u1", 9), rec("u2", 13), tick(), rec("u2", 50), tick(),
	}}}, bound, nil)
	byKey := func(e evRec) string { return e.Key }
	lateOrders, latePayments := sluice.NewOutputTag[evRec]("late-orders"), sluice.NewOutputTag[evRec]("late-payments")
	ij := sluice.IntervalJoin(sluice.KeyBy(orders, byKey), sluice.KeyBy(payments, byKey), 0, 5*time.Second).
		SideOutputLeftLateData(lateOrders).SideOutputRightLateData(latePayments)
	joined := sluice.IntervalJoinProcess(ij, "join", joinEv, joinEvCodec, joinEvCodec)
	late := newCollector[evRec]()
	sluice.Sink(sluice.Union("late", sluice.SideOutput(joined, lateOrders), []sluice.Stream[evRec]{sluice.SideOutput(joined, latePayments)}), "late-sink", late.Sink())
	st := sluice.Process(sluice.KeyBy(joined, func(string) string { return "x" }), "stamp",
		func() sluice.KeyedProcessFunction[string, string, string] { return stampFn{} })
	out := newCollector[string]()
	sluice.Sink(st, "sink", out.Sink())
	run(t, env)
	got := out.Records()
	sort.Strings(got)
	want := []string{"u1@10+u1@15@15s ts=15s", "u1@11+u1@15@15s ts=15s", "u2@12+u2@13@13s ts=13s"}
	if !slices.Equal(got, want) {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if l := late.Records(); len(l) != 0 {
		t.Fatalf("late side outputs got %v, want nothing", l)
	}
}

// Datagen records as orders and payments: a record's event time is its
// sequence number in milliseconds plus a jitter of up to 4ms drawn from
// its value (payments 3ms later), so each split is out of order by less
// than the sources' 5ms bound.
const (
	ejLower = -2 * time.Millisecond
	ejUpper = 3 * time.Millisecond
)

func orderTS(r datagen.Record) int64 {
	return t0.UnixNano() + (r.Seq*1_000_000 + r.Value%5*1_000_000)
}

func paymentTS(r datagen.Record) int64 { return orderTS(r) + 3_000_000 }

func pairKey(o, p datagen.Record) string {
	return "o" + strconv.Itoa(o.Split) + "." + strconv.FormatInt(o.Seq, 10) + "/p" + strconv.Itoa(p.Split) + "." + strconv.FormatInt(p.Seq, 10)
}

// expectedPairs joins the two inputs by brute force: the pairs of
// records of the same key for which match holds.
func expectedPairs(og, pg datagen.Config, match func(o, p datagen.Record) bool) map[string]int64 {
	want := map[string]int64{}
	os, ps := input(og), input(pg)
	for _, o := range os {
		for _, p := range ps {
			if o.Key == p.Key && match(o, p) {
				want[pairKey(o, p)] = 1
			}
		}
	}
	return want
}

// TestIntervalJoinExactlyOnceUnderFailures: orders and payments from two
// datagen sources joined within [-2ms, +3ms], the pairs written by the
// two-phase-commit file sink, with failures injected at random operators
// and points (seeded, printing its seed). Every pair the inputs hold is
// committed exactly once, and nothing else: the buffers and their cleanup
// timers are restored from checkpoints consistent with the sources'
// positions, and watermarks rebuilt from the replayed records.
func TestIntervalJoinExactlyOnceUnderFailures(t *testing.T) {
	t.Parallel()
	joinExactlyOnce(t, 20261201, func(orders, payments sluice.KeyedStream[string, datagen.Record]) sluice.Stream[string] {
		return sluice.IntervalJoinProcess(sluice.IntervalJoin(orders, payments, ejLower, ejUpper), "join",
			func() sluice.ProcessJoinFunction[string, datagen.Record, datagen.Record, string] {
				return sluice.ProcessJoinFunc[string, datagen.Record, datagen.Record, string](func(o, p datagen.Record, jc *sluice.JoinContext[string, string]) error {
					jc.Collect(pairKey(o, p))
					return nil
				})
			}, joinRecordCodec, joinRecordCodec)
	}, func(o, p datagen.Record) bool {
		d := time.Duration(paymentTS(p) - orderTS(o))
		return d >= ejLower && d <= ejUpper
	}, "join")
}

// joinExactlyOnce runs three seeded jobs that join orders and payments
// from datagen with join (each pair as pairKey), written by the file sink,
// with failures injected at the sources, the sink and the operators ops,
// and checks that exactly the pairs match accepts are committed, each
// once.
func joinExactlyOnce(t *testing.T, seed uint64, join func(orders, payments sluice.KeyedStream[string, datagen.Record]) sluice.Stream[string],
	match func(o, p datagen.Record) bool, ops ...string) {
	t.Helper()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 11))
	fired := int64(0)
	for i := range 3 {
		og := datagen.Config{
			Splits: 1 + rng.IntN(2), RecordsPerSplit: int64(800 + rng.IntN(800)), RatePerSecond: float64(10_000 + rng.IntN(10_000)),
			Keys: 3 + rng.IntN(10), Seed: rng.Uint64(),
		}
		pg := og
		pg.Seed, pg.Splits = rng.Uint64(), 1+rng.IntN(2)
		want := expectedPairs(og, pg, match)
		par, failures := 1+rng.IntN(3), 1+rng.IntN(4)
		dir := t.TempDir()
		inj := fault.New(rng.Uint64())
		total := og.RecordsPerSplit * int64(og.Splits)
		inj.Schedule(inj.RandomTargets(append([]string{"orders", "payments", "sink"}, ops...), failures, int(min(total/int64(2*failures), 200))+1))
		env := sluice.New(sluice.Config{
			JobName: "join-eo", Parallelism: par, BufferTimeout: time.Millisecond, BatchSize: 1 + rng.IntN(64),
			WatermarkInterval: 2 * time.Millisecond,
			Checkpoint:        checkpoint.Config{Interval: 10 * time.Millisecond, MinPause: time.Millisecond, TolerableFailures: 100},
			CheckpointDir:     filepath.Join(dir, "checkpoints"),
			Restart:           restart.FixedDelay{Attempts: 1000, Delay: time.Millisecond},
			Faults:            inj, Logger: quietLogger(),
		})
		bound := watermark.ForBoundedOutOfOrderness(5 * time.Millisecond)
		orders := sluice.FromSourceWithWatermarks(env, "orders", datagen.New(og), bound,
			[]sluice.WatermarkOption[datagen.Record]{sluice.WithTimestampAssigner(func(r datagen.Record, _ int64) int64 { return orderTS(r) })})
		payments := sluice.FromSourceWithWatermarks(env, "payments", datagen.New(pg), bound,
			[]sluice.WatermarkOption[datagen.Record]{sluice.WithTimestampAssigner(func(r datagen.Record, _ int64) int64 { return paymentTS(r) })})
		byKey := func(r datagen.Record) string { return r.Key }
		pairs := join(sluice.KeyBy(orders, byKey), sluice.KeyBy(payments, byKey))
		sluice.Sink(pairs, "sink", file.NewSink(file.Config[string]{Dir: filepath.Join(dir, "out"), Encode: func(dst []byte, s string) []byte {
			return append(append(dst, s...), ",1\n"...)
		}}))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		res, err := env.Execute(ctx)
		cancel()
		if err != nil {
			t.Fatalf("iteration %d (seed %d): job failed: %v", i, seed, err)
		}
		fired += inj.Fired()
		outs, err := verify.ReadDir(filepath.Join(dir, "out"))
		if err != nil {
			t.Fatal(err)
		}
		rep := verify.Counts(want, outs)
		t.Logf("iteration %d: orders %+v payments %d splits, parallelism %d: %d restarts, %d checkpoints, %d pairs committed of %d",
			i, og, pg.Splits, par, res.Restarts, res.Checkpoints, rep.Committed, len(want))
		if !rep.ExactlyOnce() || len(want) == 0 {
			t.Fatalf("iteration %d (seed %d): %d of %d pairs lost, %d duplicated: %v", i, seed, rep.Lost, len(want), rep.Duplicated, rep.Examples)
		}
	}
	if fired == 0 {
		t.Fatal("no failure fired: the test proved nothing")
	}
}

// joinRescaleScripts: four splits per side, records of eight keys with
// increasing times (the right side 3s behind), a hold in the middle
// (where run 1 stops with a savepoint) and more records after it. With
// bounds [-15s, +15s] the records before the hold are still buffered at
// the hold (the watermark trails the newest record by 1s), and pairs
// across the hold can only be joined from the savepoint's buffers.
func joinRescaleScripts(shift int) [][]step {
	var scripts [][]step
	for s := range 4 {
		var sc []step
		for i := range 5 {
			sc = append(sc, rec("k"+strconv.Itoa((s+i)%8), 10*i+s+shift), tick())
		}
		sc = append(sc, hold())
		for i := 5; i < 9; i++ {
			sc = append(sc, rec("k"+strconv.Itoa((s+i)%8), 10*i+s+shift), tick())
		}
		scripts = append(scripts, sc)
	}
	return scripts
}

func joinRescaleJob(cfg sluice.Config, left, right *scriptSource, out *collector[string]) *sluice.Environment {
	env := sluice.New(cfg)
	bound := watermark.ForBoundedOutOfOrderness(time.Second)
	a := sluice.FromSourceWithWatermarks(env, "left", left, bound, nil)
	b := sluice.FromSourceWithWatermarks(env, "right", right, bound, nil)
	byKey := func(e evRec) string { return e.Key }
	j := sluice.IntervalJoinProcess(sluice.IntervalJoin(sluice.KeyBy(a, byKey), sluice.KeyBy(b, byKey), -15*time.Second, 15*time.Second),
		"join", joinEv, joinEvCodec, joinEvCodec)
	sluice.Sink(j, "sink", out.Sink())
	return env
}

// TestIntervalJoinRescale: the join's buffers and cleanup timers in a
// savepoint taken at parallelism 2 are restored at parallelism 3 and 1;
// the pairs of both runs together equal those of a run without the stop,
// each once, and run 2 joins records buffered before the savepoint.
func TestIntervalJoinRescale(t *testing.T) {
	t.Parallel()
	twoInputRescale(t, joinRescaleJob, 40, func(out2 []string) bool {
		// A pair of run 2 with its left record before the hold (at most
		// 44s) came out of the savepoint's buffer.
		for _, p := range out2 {
			var k string
			var at int
			if _, err := fmt.Sscanf(strings.Replace(p, "@", " ", 1), "%s %d", &k, &at); err == nil && at < 45 {
				return true
			}
		}
		return false
	})
}

// twoInputRescale runs job on the joinRescaleScripts: once without a
// stop (the reference), and, for a restore at parallelism 3 and at 1,
// stopped with a savepoint at the holds (parallelism 2) and restored. The
// outputs of both runs together must equal the reference's, each once,
// and restored must find in run 2's output something only the
// savepoint's state could have produced; the reference must have at least
// minWant outputs.
func twoInputRescale(t *testing.T, job func(cfg sluice.Config, left, right *scriptSource, out *collector[string]) *sluice.Environment,
	minWant int, restored func(out2 []string) bool) {
	t.Helper()
	newSources := func(clk *clock.Fake, release bool) (*scriptSource, *scriptSource, chan struct{}, chan struct{}) {
		la, ra := make(chan struct{}), make(chan struct{})
		l := &scriptSource{scripts: joinRescaleScripts(0), clk: clk, interval: time.Second, release: release, atHold: la}
		r := &scriptSource{scripts: joinRescaleScripts(3), clk: clk, interval: time.Second, release: release, atHold: ra}
		return l, r, la, ra
	}
	cfg, clk := evConfig(t, 2)
	ref := newCollector[string]()
	l, r, _, _ := newSources(clk, true)
	run(t, job(cfg, l, r, ref))
	want := ref.Records()
	sort.Strings(want)
	if len(want) < minWant {
		t.Fatalf("reference run has %d outputs, want at least %d: %v", len(want), minWant, want)
	}
	for _, par2 := range []int{3, 1} {
		t.Run(fmt.Sprintf("2→%d", par2), func(t *testing.T) {
			t.Parallel()
			cfg1, clk1 := evConfig(t, 2)
			l1, r1, la, ra := newSources(clk1, false)
			out1 := newCollector[string]()
			env1 := job(cfg1, l1, r1, out1)
			x := start(t, env1)
			for _, ch := range []chan struct{}{la, ra} {
				select {
				case <-ch:
				case <-time.After(waitTimeout):
					t.Fatal("sources did not reach the hold")
				}
			}
			env1.Stop()
			res, err := x.wait(t)
			if err != nil {
				t.Fatalf("run 1: %v", err)
			}
			if res.LastCheckpoint == nil {
				t.Fatal("run 1: no savepoint")
			}
			cfg2, clk2 := evConfig(t, par2)
			cfg2.FromCheckpoint = filepath.Join(cfg1.CheckpointDir, store.CheckpointDir(res.LastCheckpoint.CheckpointID))
			out2 := newCollector[string]()
			l2, r2, _, _ := newSources(clk2, true)
			run(t, job(cfg2, l2, r2, out2))
			got := append(out1.Records(), out2.Records()...)
			sort.Strings(got)
			if !slices.Equal(got, want) {
				t.Fatalf("run 1 output %v\nrun 2 output %v\nwant (sorted) %v", out1.Records(), out2.Records(), want)
			}
			if !restored(out2.Records()) {
				t.Fatalf("run 2 output nothing from the savepoint's state: %v", out2.Records())
			}
		})
	}
}
