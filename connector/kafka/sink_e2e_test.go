package kafka

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/connector/datagen"
	"github.com/sluicehq/sluice/fault"
	"github.com/sluicehq/sluice/internal/testsrc"
	"github.com/sluicehq/sluice/restart"
)

// The operator uids of the test job.
const (
	e2eSourceUID = "source"
	e2eMapUID    = "map"
	e2eSinkUID   = "sink"
)

// appendSplitSeq writes a datagen record's identity, "split:seq".
func appendSplitSeq(dst []byte, r datagen.Record) []byte {
	dst = strconv.AppendInt(dst, int64(r.Split), 10)
	dst = append(dst, ':')
	return strconv.AppendInt(dst, r.Seq, 10)
}

// appendNoise appends n pseudo-random printable bytes derived from seed:
// benchmark payloads that compression cannot shrink, as real ones mostly
// cannot.
func appendNoise(dst []byte, seed uint64, n int) []byte {
	x := seed*0x9e3779b97f4a7c15 | 1
	for i := 0; i < n; i++ {
		if i%8 == 0 {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
		}
		dst = append(dst, byte('!'+(x>>(8*(i%8)))%94))
	}
	return dst
}

// e2eJob runs datagen → map → Kafka sink to the end of its bounded input.
type e2eJob struct {
	gen         datagen.Config
	parallelism int
	delivery    string
	inj         *fault.Injector
	interval    time.Duration
	valueSize   int // pad values with noise to this size (benchmarks)
	// ctx, if set, bounds the run; a cancelled run is a crash (nothing
	// more is committed) and returns no error.
	ctx context.Context
	// onRecord, if set, runs in the map operator for every record.
	onRecord func()
	// retryTimeout is the sink's RetryTimeout, default 20s.
	retryTimeout time.Duration
	// perCheckpoint, if set, lets each source reader emit at most that
	// many records per completed checkpoint (testsrc.Gated).
	perCheckpoint int
}

func (j e2eJob) run(tb testing.TB, addrs []string, topic, prefix, dir string) *sluice.Result {
	tb.Helper()
	sink, err := NewSink(SinkConfig[datagen.Record]{
		Brokers: addrs,
		Topic:   topic,
		Serializer: KeyValueSerializer(
			func(dst []byte, r datagen.Record) []byte { return append(dst, r.Key...) },
			func(dst []byte, r datagen.Record) []byte {
				start := len(dst)
				dst = appendSplitSeq(dst, r)
				if n := j.valueSize - (len(dst) - start); n > 1 {
					dst = appendNoise(append(dst, ' '), uint64(r.Split)<<40^uint64(r.Seq), n-1)
				}
				return dst
			}),
		DeliveryGuarantee:     j.delivery,
		TransactionalIDPrefix: prefix,
		RetryTimeout:          cmp.Or(j.retryTimeout, 20*time.Second),
		RetryBackoff:          10 * time.Millisecond,
		ClientOpts:            sinkTestOpts(),
		Logger:                sinkTestLogger(),
	})
	if err != nil {
		tb.Fatal(err)
	}
	interval := j.interval
	if interval == 0 {
		interval = 20 * time.Millisecond
	}
	env := sluice.New(sluice.Config{
		JobName:     "kafka-sink",
		Parallelism: j.parallelism,
		Checkpoint: checkpoint.Config{
			Interval: interval, MinPause: time.Millisecond, TolerableFailures: 100,
		},
		CheckpointDir: filepath.Join(dir, "checkpoints"),
		Restart:       restart.FixedDelay{Attempts: 1000, Delay: time.Millisecond},
		Faults:        j.inj,
		Logger:        sinkTestLogger(),
	})
	var source sluice.Source[datagen.Record] = datagen.New(j.gen)
	if j.perCheckpoint > 0 {
		source = testsrc.Gated(source, j.perCheckpoint)
	}
	src := sluice.FromSource(env, e2eSourceUID, source)
	mapped := sluice.Map(src, e2eMapUID, func(r datagen.Record) datagen.Record {
		if j.onRecord != nil {
			j.onRecord()
		}
		r.Value++
		return r
	})
	sluice.Sink(mapped, e2eSinkUID, sink)
	parent := j.ctx
	if parent == nil {
		parent = context.Background()
	}
	ctx, cancel := context.WithTimeout(parent, 3*time.Minute)
	defer cancel()
	res, err := env.Execute(ctx)
	if err != nil && (j.ctx == nil || j.ctx.Err() == nil) {
		tb.Fatalf("job failed: %v", err)
	}
	return res
}

// e2eCheck reads the topic read_committed and checks it record by record
// against the generator: every (split, seq) once, with its key; with
// allowDup, at least once.
func e2eCheck(t *testing.T, gen datagen.Config, recs []*kgo.Record, allowDup bool) {
	t.Helper()
	seen := make(map[[2]int64]int, gen.Splits*int(gen.RecordsPerSplit))
	for _, r := range recs {
		var split, seq int64
		if _, err := fmt.Sscanf(string(r.Value), "%d:%d", &split, &seq); err != nil {
			t.Fatalf("bad value %q at %s[%d]@%d", r.Value, r.Topic, r.Partition, r.Offset)
		}
		if want := gen.KeyOf(int(split), seq); string(r.Key) != want {
			t.Fatalf("record %d:%d has key %q, want %q", split, seq, r.Key, want)
		}
		seen[[2]int64{split, seq}]++
	}
	var lost, dup int
	var firstLost, firstDup string
	for s := range gen.Splits {
		for q := range gen.RecordsPerSplit {
			switch n := seen[[2]int64{int64(s), q}]; {
			case n == 0:
				if lost == 0 {
					firstLost = fmt.Sprintf("%d:%d", s, q)
				}
				lost++
			case n > 1:
				if dup == 0 {
					firstDup = fmt.Sprintf("%d:%d (%d times)", s, q, n)
				}
				dup++
			}
		}
	}
	if lost > 0 || (dup > 0 && !allowDup) || len(recs) < gen.Splits*int(gen.RecordsPerSplit) {
		t.Fatalf("%d records read: %d lost (first %s), %d duplicated (first %s)", len(recs), lost, firstLost, dup, firstDup)
	}
	t.Logf("%d records read, %d duplicated, none lost", len(recs), dup)
}

func e2eIterations(def int) int {
	if s := os.Getenv("SLUICE_CHAOS_ITERATIONS"); s != "" {
		if n, err := strconv.Atoi(s); err == nil {
			return n
		}
	}
	if testing.Short() {
		return 1
	}
	return def
}

// sinkRand returns a generator for one stream of a seeded test. The seed
// is mixed (splitmix64) first: PCG's first outputs for nearby seeds, such
// as clock readings, are alike.
func sinkRand(seed, stream uint64) *rand.Rand {
	mix := func(z uint64) uint64 {
		z += 0x9e3779b97f4a7c15
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		return z ^ z>>31
	}
	return rand.New(rand.NewPCG(mix(seed), mix(seed^stream<<32+stream)))
}

// e2eTargets returns n failures at random operators and points: at a
// record (after up to 5000 of them, or 200 polls of the source), or at a
// checkpoint step (after up to 6 of them), so that every kind strikes
// while the job runs.
func e2eTargets(rng *rand.Rand, n int) []fault.Target {
	uids := []string{e2eSourceUID, e2eMapUID, e2eSinkUID}
	ts := make([]fault.Target, n)
	for i := range ts {
		p := fault.Points[rng.IntN(len(fault.Points))]
		uid := uids[rng.IntN(len(uids))]
		if p == fault.AfterPreCommit || p == fault.BeforeCommit {
			uid = e2eSinkUID // only two-phase-commit sinks have these points
		}
		skip := rng.IntN(7)
		switch {
		case p == fault.OnRecord && uid == e2eSourceUID:
			skip = rng.IntN(200) // the source's record point is per poll of up to 64
		case p == fault.OnRecord:
			skip = rng.IntN(5000)
		}
		ts[i] = fault.Target{Point: p, UID: uid, Subtask: -1, Skip: skip}
	}
	return ts
}

// e2eBrokerFaults installs a seeded selection of broker faults, each for a
// few requests, spread over the run: retriable errors, errors answered
// after the work was applied, dropped connections.
func e2eBrokerFaults(t *testing.T, rng *rand.Rand, c *kfake.Cluster, topic string) {
	all := []struct {
		name string
		f    kfake.Fault
	}{
		{"EndTxn COORDINATOR_NOT_AVAILABLE", kfake.Fault{Keys: []kmsg.Key{kmsg.EndTxn}, Err: kerr.CoordinatorNotAvailable}},
		{"EndTxn CONCURRENT_TRANSACTIONS", kfake.Fault{Keys: []kmsg.Key{kmsg.EndTxn}, Err: kerr.ConcurrentTransactions}},
		{"EndTxn UNKNOWN_SERVER_ERROR", kfake.Fault{Keys: []kmsg.Key{kmsg.EndTxn}, Err: kerr.UnknownServerError}},
		{"Produce NOT_LEADER_FOR_PARTITION", kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: topic, Err: kerr.NotLeaderForPartition}},
		{"Produce REQUEST_TIMED_OUT after append", kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: topic, Err: kerr.RequestTimedOut}},
		{"InitProducerID COORDINATOR_LOAD_IN_PROGRESS", kfake.Fault{Keys: []kmsg.Key{kmsg.InitProducerID}, Err: kerr.CoordinatorLoadInProgress}},
		{"InitProducerID CONCURRENT_TRANSACTIONS", kfake.Fault{Keys: []kmsg.Key{kmsg.InitProducerID}, Err: kerr.ConcurrentTransactions}},
		{"ListTransactions COORDINATOR_LOAD_IN_PROGRESS", kfake.Fault{Keys: []kmsg.Key{kmsg.ListTransactions}, Err: kerr.CoordinatorLoadInProgress}},
	}
	for _, f := range all {
		if rng.IntN(3) == 0 {
			continue
		}
		f.f.Count = 1 + rng.IntN(4)
		// Strike some way into the run, not only at its start.
		skip := int32(rng.IntN(20))
		var seen int32
		f.f.When = func(kmsg.Request) bool { seen++; return seen > skip }
		c.Fault(f.f)
		t.Logf("broker fault: %s ×%d after %d requests", f.name, f.f.Count, skip)
	}
	for _, key := range []kmsg.Key{kmsg.EndTxn, kmsg.Produce, kmsg.InitProducerID} {
		if rng.IntN(2) == 0 {
			n := 1 + rng.IntN(2)
			sinkDropConns(c, key, n)
			t.Logf("broker fault: %s connection dropped ×%d", key.Name(), n)
		}
	}
}

// TestSinkExactlyOnceUnderFailures runs datagen → map → exactly-once Kafka
// sink while the engine's injector fails operators at random points
// (records, barriers, snapshot writes, right after a pre-commit, right
// before a commit) and the broker fails requests, then reads the topic
// read_committed and checks it record by record: nothing lost, nothing
// twice, and no transaction left open (the read would block).
func TestSinkExactlyOnceUnderFailures(t *testing.T) {
	if testing.Short() {
		t.Skip("runs jobs with restarts")
	}
	t.Parallel()
	seed := sinkTestSeed(t)
	for it := range e2eIterations(2) {
		seed := seed + uint64(it)
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			rng := sinkRand(seed, 0)
			b, addrs := sinkBroker(t)
			sinkCreateTopic(t, addrs, "out", 4)
			gen := datagen.Config{Splits: 4, RecordsPerSplit: 10_000, Keys: 50, Seed: seed, BatchSize: 64, RatePerSecond: 40_000}
			inj := fault.New(seed)
			targets := e2eTargets(rng, 10)
			t.Logf("failures: %+v", targets)
			inj.Schedule(targets)
			e2eBrokerFaults(t, rng, sinkCluster(b), "out")
			job := e2eJob{gen: gen, parallelism: 1 + rng.IntN(3), delivery: DeliveryExactlyOnce, inj: inj}
			res := job.run(t, addrs, "out", "eo", t.TempDir())
			t.Logf("parallelism %d: %d failures injected, %d restarts, %d checkpoints", job.parallelism, inj.Fired(), res.Restarts, res.Checkpoints)
			e2eCheck(t, gen, sinkReadCommitted(t, addrs, "out", 4), false)
			if inj.Fired() == 0 {
				t.Error("no failure was injected: the run proves nothing")
			}
		})
	}
}

// TestSinkExactlyOnceTwoPhaseFailures aims failures at the two points of
// two-phase commit that matter most: right after a pre-commit (the
// transaction is open on the broker, the checkpoint fails: clean-up must
// abort it) and right before a commit (the checkpoint is complete: the
// restore must commit it).
func TestSinkExactlyOnceTwoPhaseFailures(t *testing.T) {
	if testing.Short() {
		t.Skip("runs jobs with restarts")
	}
	t.Parallel()
	_, addrs := sinkBroker(t)
	sinkCreateTopic(t, addrs, "out", 4)
	gen := datagen.Config{Splits: 4, RecordsPerSplit: 5000, Keys: 50, Seed: 3, BatchSize: 32, RatePerSecond: 40_000}
	inj := fault.New(3)
	inj.Schedule([]fault.Target{
		{Point: fault.BeforeCommit, UID: e2eSinkUID, Subtask: 0, Skip: 2},
		{Point: fault.AfterPreCommit, UID: e2eSinkUID, Subtask: 1, Skip: 1},
		{Point: fault.BeforeCommit, UID: e2eSinkUID, Subtask: 1, Skip: 3},
		{Point: fault.BeforeCommit, UID: e2eSinkUID, Subtask: -1},
		{Point: fault.AfterPreCommit, UID: e2eSinkUID, Subtask: 0},
		{Point: fault.OnRecord, UID: e2eSinkUID, Subtask: -1, Skip: 1000},
	})
	// At most 400 records per reader and checkpoint: some 25 checkpoints
	// per subtask at least, however slow the machine, so every scheduled
	// failure fires before the input ends.
	res := e2eJob{gen: gen, parallelism: 2, delivery: DeliveryExactlyOnce, inj: inj, perCheckpoint: 400}.run(t, addrs, "out", "2pc", t.TempDir())
	t.Logf("%d failures injected, %d restarts, %d checkpoints", inj.Fired(), res.Restarts, res.Checkpoints)
	if inj.Pending() > 0 {
		t.Errorf("only %d failures fired, %d pending", inj.Fired(), inj.Pending())
	}
	e2eCheck(t, gen, sinkReadCommitted(t, addrs, "out", 4), false)
}

// TestSinkRescale crashes a job and restores its latest checkpoint at
// another parallelism. The crash comes when the broker stops answering
// EndTxn: every subtask then holds a transaction pre-committed for a
// complete checkpoint (its commit fails) and an open one (its abort
// fails), and the job is cancelled, which commits nothing more. The
// restore must commit the pre-committed transactions of every old subtask,
// also of subtasks that no longer exist, and abort the open ones (or the
// read_committed read blocks); the output must be exactly once.
func TestSinkRescale(t *testing.T) {
	if testing.Short() {
		t.Skip("runs jobs")
	}
	t.Parallel()
	for _, c := range []struct{ from, to int }{{3, 1}, {2, 3}, {2, 1}} {
		t.Run(fmt.Sprintf("%d to %d", c.from, c.to), func(t *testing.T) {
			t.Parallel()
			b, addrs := sinkBroker(t)
			sinkCreateTopic(t, addrs, "out", 4)
			dir := t.TempDir()
			gen := datagen.Config{Splits: 4, RecordsPerSplit: 5000, Keys: 50, Seed: 9, BatchSize: 64, RatePerSecond: 40_000}
			ctx, crash := context.WithCancel(context.Background())
			var n atomic.Int64
			var recovered atomic.Bool
			cluster := sinkCluster(b)
			cluster.ControlKey(int16(kmsg.EndTxn), func(req kmsg.Request) (kmsg.Response, error, bool) {
				if recovered.Load() {
					cluster.DropControl()
					return nil, nil, false
				}
				cluster.KeepControl()
				if n.Load() < 12_000 {
					return nil, nil, false
				}
				crash()
				resp := req.ResponseKind().(*kmsg.EndTxnResponse)
				resp.SetVersion(req.GetVersion())
				resp.ErrorCode = kerr.CoordinatorLoadInProgress.Code
				return resp, nil, true
			})
			first := e2eJob{gen: gen, parallelism: c.from, delivery: DeliveryExactlyOnce, ctx: ctx,
				onRecord: func() { n.Add(1) }, retryTimeout: time.Second}
			res := first.run(t, addrs, "out", "rescale", dir)
			if ctx.Err() == nil {
				t.Fatal("the first run ended before the crash")
			}
			recovered.Store(true)
			ongoing := 0
			for id := range sinkOngoing(t, addrs) {
				if strings.HasPrefix(id, "rescale-") {
					ongoing++
					// The job's first instance holds ownership epoch 1
					// of its checkpoint directory (docs/design.md §9).
					if !strings.HasSuffix(id, "-e1") {
						t.Errorf("transactional id %q of the first instance does not carry its ownership epoch 1", id)
					}
				}
			}
			if ongoing == 0 {
				t.Fatal("no transaction left open by the crash: the test proves nothing")
			}
			t.Logf("crashed after %d checkpoints with %d transactions open", res.Checkpoints, ongoing)
			second := e2eJob{gen: gen, parallelism: c.to, delivery: DeliveryExactlyOnce}
			second.run(t, addrs, "out", "rescale", dir)
			e2eCheck(t, gen, sinkReadCommitted(t, addrs, "out", 4), false)
		})
	}
}

// TestSinkAtLeastOnceUnderFailures: at-least-once loses nothing (it may
// duplicate).
func TestSinkAtLeastOnceUnderFailures(t *testing.T) {
	if testing.Short() {
		t.Skip("runs jobs with restarts")
	}
	t.Parallel()
	seed := sinkTestSeed(t)
	_, addrs := sinkBroker(t)
	sinkCreateTopic(t, addrs, "out", 4)
	gen := datagen.Config{Splits: 4, RecordsPerSplit: 5000, Keys: 50, Seed: seed, BatchSize: 64, RatePerSecond: 40_000}
	inj := fault.New(seed)
	targets := e2eTargets(sinkRand(seed, 1), 5)
	t.Logf("failures: %+v", targets)
	inj.Schedule(targets)
	res := e2eJob{gen: gen, parallelism: 2, delivery: DeliveryAtLeastOnce, inj: inj}.run(t, addrs, "out", "", t.TempDir())
	t.Logf("%d failures injected, %d restarts", inj.Fired(), res.Restarts)
	e2eCheck(t, gen, sinkReadCommitted(t, addrs, "out", 4), true)
}
