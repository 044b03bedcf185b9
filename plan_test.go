package sluice_test

// Tests of job-graph planning (docs/design.md §2 chaining) and of the checks that
// Execute makes before anything runs: configuration keys, uids, key codecs,
// dangling operators.

import (
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/connector/datagen"
	"github.com/sluicehq/sluice/restart"
)

// countFn is a minimal keyed function for graphs that are only planned.
type countFn struct{}

func (countFn) Open(*sluice.RuntimeContext[string]) error { return nil }
func (countFn) ProcessElement(r datagen.Record, pc *sluice.ProcessContext[string, string]) error {
	pc.Collect(r.Key)
	return nil
}

func newCount() sluice.KeyedProcessFunction[string, datagen.Record, string] { return countFn{} }

// TestDescribeChaining: map and filter after a source are chained into the
// source's task (forward edge, equal parallelism, single input); KeyBy is a
// hash edge that starts a new task, into which the sink is chained.
func TestDescribeChaining(t *testing.T) {
	t.Parallel()
	env := sluice.New(sluice.Config{Parallelism: 2})
	src := sluice.FromSource(env, "src", datagen.New(gen))
	m := sluice.Map(src, "map", func(r datagen.Record) datagen.Record { return r })
	f := sluice.Filter(m, "filter", func(datagen.Record) bool { return true })
	p := sluice.Process(sluice.KeyBy(f, func(r datagen.Record) string { return r.Key }), "count", newCount)
	sluice.Sink(p, "sink", sluice.DiscardSink[string]())
	got, err := env.Describe()
	if err != nil {
		t.Fatal(err)
	}
	want := `task "src" parallelism 2: [src map filter]
task "count" parallelism 2: [count sink]
edge src -> count (hash)
`
	if got != want {
		t.Fatalf("Describe:\n%s\nwant:\n%s", got, want)
	}
}

// TestDescribeStartNewChain: StartNewChain keeps an operator out of its
// input's chain (a forward edge between two tasks), and the operators after
// it chain onto it.
func TestDescribeStartNewChain(t *testing.T) {
	t.Parallel()
	env := sluice.New(sluice.Config{Parallelism: 2})
	src := sluice.FromSource(env, "src", datagen.New(gen))
	m := sluice.Map(src, "map", func(r datagen.Record) datagen.Record { return r })
	f := sluice.Filter(m, "filter", func(datagen.Record) bool { return true }, sluice.StartNewChain())
	sluice.Sink(f, "sink", sluice.DiscardSink[datagen.Record]())
	got, err := env.Describe()
	if err != nil {
		t.Fatal(err)
	}
	want := `task "src" parallelism 2: [src map]
task "filter" parallelism 2: [filter sink]
edge src -> filter (forward)
`
	if got != want {
		t.Fatalf("Describe:\n%s\nwant:\n%s", got, want)
	}
}

// TestDescribeFanOutAndUnion: a stream read by two operators feeds both (one
// chained, one behind a rebalance edge at another parallelism), and a union
// is a task of its own with one edge per input.
func TestDescribeFanOutAndUnion(t *testing.T) {
	t.Parallel()
	env := sluice.New(sluice.Config{Parallelism: 2})
	src := sluice.FromSource(env, "src", datagen.New(gen))
	a := sluice.Map(src, "a", func(r datagen.Record) string { return r.Key })
	b := sluice.Map(src, "b", func(r datagen.Record) string { return r.Key }, sluice.Parallelism(3))
	u := sluice.Union("union", a, []sluice.Stream[string]{b})
	sluice.Sink(u, "sink", sluice.DiscardSink[string]())
	got, err := env.Describe()
	if err != nil {
		t.Fatal(err)
	}
	want := `task "src" parallelism 2: [src a]
task "b" parallelism 3: [b]
task "union" parallelism 2: [union sink]
edge src -> b (rebalance)
edge src -> union (forward)
edge b -> union (rebalance)
`
	if got != want {
		t.Fatalf("Describe:\n%s\nwant:\n%s", got, want)
	}
}

// TestExecuteConfigErrorsNameTheKey: every invalid setting is reported by
// Execute, before anything runs, with its configuration key (STYLE: "errors
// that name the key").
func TestExecuteConfigErrorsNameTheKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		key string
		cfg sluice.Config
	}{
		{"parallelism", sluice.Config{Parallelism: -1}},
		{"parallelism", sluice.Config{Parallelism: 200}},
		{"max-parallelism", sluice.Config{MaxParallelism: -5}},
		{"max-parallelism", sluice.Config{MaxParallelism: 1 << 16}},
		{"buffer-timeout", sluice.Config{BufferTimeout: -5 * time.Millisecond}},
		{"batch-size", sluice.Config{BatchSize: -1}},
		{"channel-capacity", sluice.Config{ChannelCapacity: -1}},
		{checkpoint.KeyInterval, sluice.Config{Checkpoint: checkpoint.Config{Interval: time.Nanosecond}}},
		{checkpoint.KeyTimeout, sluice.Config{Checkpoint: checkpoint.Config{Timeout: -time.Second}}},
		{checkpoint.KeyMode, sluice.Config{Checkpoint: checkpoint.Config{Mode: "twice"}}},
		{checkpoint.KeyTolerableFailures, sluice.Config{Checkpoint: checkpoint.Config{TolerableFailures: -2}}},
		{"restart.jitter", sluice.Config{Restart: restart.ExponentialDelay{Jitter: 2}}},
		{"restart.attempts", sluice.Config{Restart: restart.FixedDelay{Attempts: -1}}},
	} {
		t.Run(tc.key, func(t *testing.T) {
			t.Parallel()
			cfg := tc.cfg
			cfg.CheckpointDir = t.TempDir()
			cfg.Logger = quietLogger()
			env := sluice.New(cfg)
			src := sluice.FromSource(env, "src", datagen.New(gen))
			sluice.Sink(src, "sink", sluice.DiscardSink[datagen.Record]())
			_, err := env.Execute(ctxTimeout(t))
			if err == nil {
				t.Fatalf("Execute with %+v: no error", tc.cfg)
			}
			if !strings.HasPrefix(err.Error(), tc.key+":") {
				t.Fatalf("Execute: %q, want an error starting with the key %q", err, tc.key+":")
			}
		})
	}
}

// TestExecuteGraphErrors: mistakes in the job graph are reported by Execute
// (and Describe) with what to do about them.
func TestExecuteGraphErrors(t *testing.T) {
	t.Parallel()
	type point struct{ X, Y int }
	for _, tc := range []struct {
		name  string
		build func(env *sluice.Environment)
		want  []string
	}{
		{"duplicate uid", func(env *sluice.Environment) {
			src := sluice.FromSource(env, "src", datagen.New(gen))
			m := sluice.Map(src, "m1", func(r datagen.Record) string { return r.Key }, sluice.UID("shared"))
			m = sluice.Map(m, "m2", func(s string) string { return s }, sluice.UID("shared"))
			sluice.Sink(m, "sink", sluice.DiscardSink[string]())
		}, []string{`"shared"`, "sluice.UID"}},
		{"duplicate name", func(env *sluice.Environment) {
			src := sluice.FromSource(env, "src", datagen.New(gen))
			sluice.Sink(sluice.Map(src, "src", func(r datagen.Record) string { return r.Key }), "sink", sluice.DiscardSink[string]())
		}, []string{`uid "src"`}},
		{"key without codec", func(env *sluice.Environment) {
			src := sluice.FromSource(env, "src", datagen.New(gen))
			ks := sluice.KeyBy(src, func(r datagen.Record) point { return point{int(r.Seq), r.Split} })
			p := sluice.Process(ks, "proc", func() sluice.KeyedProcessFunction[point, datagen.Record, string] { return nil })
			sluice.Sink(p, "sink", sluice.DiscardSink[string]())
		}, []string{"WithKeyCodec", "point"}},
		{"output goes nowhere", func(env *sluice.Environment) {
			src := sluice.FromSource(env, "src", datagen.New(gen))
			sluice.Map(src, "dangling", func(r datagen.Record) string { return r.Key })
			sluice.Sink(src, "sink", sluice.DiscardSink[datagen.Record]())
		}, []string{`"dangling"`, "goes nowhere"}},
		{"no operators", func(*sluice.Environment) {}, []string{"no operators"}},
		{"operator parallelism", func(env *sluice.Environment) {
			src := sluice.FromSource(env, "src", datagen.New(gen))
			sluice.Sink(src, "sink", sluice.DiscardSink[datagen.Record](), sluice.Parallelism(0))
		}, []string{`"sink"`, "parallelism"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := sluice.New(sluice.Config{CheckpointDir: t.TempDir(), Logger: quietLogger()})
			tc.build(env)
			// Describe reports the same mistakes (it used to describe a
			// graph with a duplicate uid or a key without codec).
			if d, err := env.Describe(); err == nil {
				t.Fatalf("Describe: no error, described:\n%s", d)
			}
			_, err := env.Execute(ctxTimeout(t))
			if err == nil {
				t.Fatal("Execute: no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("Execute: %q, want it to mention %s", err, w)
				}
			}
		})
	}
}
