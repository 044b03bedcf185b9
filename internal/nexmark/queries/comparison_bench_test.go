package queries_test

import (
	"cmp"
	"context"
	"os"
	"runtime/pprof"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/internal/nexmark"
	"github.com/sluicehq/sluice/internal/nexmark/queries"
	"github.com/sluicehq/sluice/restart"
)

// cpuTime returns the process's user+system CPU time.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkComparisonQueries runs each comparison-profile query on
// NEXMARK_EVENTS generated events (default 2M) at the default rate,
// parallelism 2, exactly-once checkpoints every 10 s, and reports events/s
// and events/s per core of process CPU time (`sluice bench nexmark` is
// the benchmark proper; this is for profiling with -cpuprofile).
func BenchmarkComparisonQueries(b *testing.B) {
	events := int64(2_000_000)
	if s := os.Getenv("NEXMARK_EVENTS"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			b.Fatalf("NEXMARK_EVENTS: %v", err)
		}
		events = n
	}
	only := os.Getenv("NEXMARK_QUERY")
	for _, name := range append([]string{"source"}, cpQueries...) {
		if only != "" && only != name {
			continue
		}
		b.Run(name, func(b *testing.B) {
			// "source" is the baseline: the generator and a filter that
			// drops every event.
			q := queries.Query{Name: "source", Build: func(_ *sluice.Environment, events sluice.Stream[nexmark.Event], out *queries.Out) {
				queries.Emit(out, sluice.Filter(events, "drop", func(nexmark.Event) bool { return false }), "sink", func(nexmark.Event) string { return "" })
			}}
			if name != "source" {
				q = cpQuery(b, name)
			}
			var wall, cpu time.Duration
			for range b.N {
				cfg := nexmark.DefaultConfig()
				cfg.Events, cfg.Generators = events, 2
				env := sluice.New(sluice.Config{JobName: name, Parallelism: 2, CheckpointDir: b.TempDir(), Logger: cpLogger(),
					Restart: restart.None{}, Checkpoint: checkpoint.Config{Interval: 10 * time.Second}})
				out := &queries.Out{}
				q.Build(env, nexmark.Events(env, cfg), out)
				if path := os.Getenv("NEXMARK_HEAPPROFILE"); path != "" {
					// A heap profile while the state is live, after
					// NEXMARK_HEAPPROFILE_AFTER (default 10s).
					after, _ := time.ParseDuration(os.Getenv("NEXMARK_HEAPPROFILE_AFTER"))
					time.AfterFunc(cmp.Or(after, 10*time.Second), func() {
						if f, err := os.Create(path); err == nil {
							_ = pprof.WriteHeapProfile(f)
							_ = f.Close()
						}
					})
				}
				c0, w0 := cpuTime(b), time.Now()
				if _, err := env.Execute(context.Background()); err != nil {
					b.Fatal(err)
				}
				wall += time.Since(w0)
				cpu += cpuTime(b) - c0
				b.ReportMetric(float64(out.Count()), "outputs")
			}
			n := float64(events) * float64(b.N)
			b.ReportMetric(n/wall.Seconds(), "events/s")
			b.ReportMetric(n/cpu.Seconds(), "events/s/core")
			var ru syscall.Rusage
			if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
				// The process's peak, so run one query per process
				// (NEXMARK_QUERY) to read it per query.
				b.ReportMetric(float64(ru.Maxrss)/1024, "peak-RSS-MB")
			}
		})
	}
}
