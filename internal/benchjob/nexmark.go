package benchjob

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/internal/nexmark"
	"github.com/sluicehq/sluice/internal/nexmark/queries"
	"github.com/sluicehq/sluice/restart"
)

// NexmarkOptions configure one Nexmark query run.
type NexmarkOptions struct {
	// Query is a registered query name, "q0" to "q22".
	Query string
	// Gen configures the generator; Gen.Generators is set to Parallelism
	// when zero.
	Gen nexmark.GeneratorConfig
	// Parallelism is every operator's.
	Parallelism int
	// CheckpointInterval 0 disables periodic checkpoints (a final one is
	// still taken when the bounded input ends).
	CheckpointInterval time.Duration
	// Dir is the checkpoint directory.
	Dir string
	// CPUProfile, when set, is a file that receives a CPU profile of the
	// job's run (runtime/pprof).
	CPUProfile string
}

// NexmarkResult is what one query run measured. Its JSON form is the line
// `sluice bench nexmark --json` prints per query.
type NexmarkResult struct {
	// Query is the query's name, Events the events generated, Outputs the
	// rows the query emitted.
	Query   string `json:"query"`
	Events  int64  `json:"events"`
	Outputs int64  `json:"outputs"`
	// EventsPerSec is Events over the wall time of the job run.
	EventsPerSec float64 `json:"events_per_sec"`
	// EventsPerSecPerCore is Events over the CPU time (user + system) the
	// process spent during the run: the figure that compares across
	// machines and parallelisms.
	EventsPerSecPerCore float64 `json:"events_per_sec_per_core"`
	// PeakRSSBytes is the process's peak resident set size (VmHWM): a
	// fresh process per query makes it the query's.
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
	// ElapsedSec is the job's wall time, CPUSec the process's CPU time
	// (user + system) during it.
	ElapsedSec float64 `json:"elapsed_sec"`
	CPUSec     float64 `json:"cpu_sec"`
	// P99LatencyMs is the 99th percentile of the sampled row latencies
	// (queries.EmitTimed), absent for queries that sample none.
	P99LatencyMs *float64 `json:"p99_latency_ms,omitempty"`
	// Checkpoints counts completed checkpoints; CheckpointMs holds the
	// trigger-to-complete durations of the last ones (at most 32).
	Checkpoints  int64     `json:"checkpoints"`
	CheckpointMs []float64 `json:"checkpoint_ms"`
	// Parallelism, Profile, Rate and Seed repeat the run's parameters.
	Parallelism int     `json:"parallelism"`
	Profile     string  `json:"profile"`
	Rate        float64 `json:"rate"`
	Seed        uint64  `json:"seed"`
}

// RunNexmark runs one query over the generator to the end of its input,
// in this process.
func RunNexmark(ctx context.Context, o NexmarkOptions) (*NexmarkResult, error) {
	q, ok := queries.Lookup(o.Query)
	if !ok {
		return nil, fmt.Errorf("query: unknown %q", o.Query)
	}
	gen := o.Gen
	if gen.Generators == 0 {
		gen.Generators = o.Parallelism
	}
	if err := gen.Validate(); err != nil {
		return nil, err
	}
	interval := o.CheckpointInterval
	if interval <= 0 {
		interval = -1
	}
	env := sluice.New(sluice.Config{
		JobName:       "nexmark-" + o.Query,
		Parallelism:   o.Parallelism,
		BatchSize:     1024,
		Checkpoint:    checkpoint.Config{Interval: interval},
		CheckpointDir: o.Dir,
		Restart:       restart.None{},
		Logger:        slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
	})
	p := nexmark.NewProgress(gen)
	out := &queries.Out{Progress: p}
	if o.Dir != "" {
		// q10's part files: beside the checkpoints, removed once counted
		// (a 20M-event run writes gigabytes).
		out.FilesDir = o.Dir + "-files"
		defer os.RemoveAll(out.FilesDir)
	}
	q.Build(env, nexmark.EventsWithProgress(env, gen, p), out)
	if o.CPUProfile != "" {
		f, err := os.Create(o.CPUProfile)
		if err != nil {
			return nil, fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	cpu0 := processCPU()
	start := time.Now()
	res, err := env.Execute(ctx)
	if err != nil {
		return nil, err
	}
	el := time.Since(start)
	cpu := processCPU() - cpu0
	r := &NexmarkResult{Query: o.Query, Events: gen.Total(), Outputs: out.Count(), ElapsedSec: el.Seconds(), CPUSec: cpu.Seconds(),
		PeakRSSBytes: PeakRSS(), Checkpoints: res.Checkpoints, Parallelism: o.Parallelism, Profile: gen.Profile.String(),
		Rate: gen.Rate, Seed: gen.Seed, CheckpointMs: []float64{}}
	r.EventsPerSec = float64(r.Events) / el.Seconds()
	if cpu > 0 {
		r.EventsPerSecPerCore = float64(r.Events) / cpu.Seconds()
	}
	if l := out.Latencies(); len(l) > 0 {
		ms := float64(l[(len(l)*99)/100]) / 1e6
		r.P99LatencyMs = &ms
	}
	if cs := res.Status.Checkpoints; cs != nil {
		for _, h := range cs.History {
			if h.Status == checkpoint.StatusCompleted {
				r.CheckpointMs = append(r.CheckpointMs, float64(h.Duration)/1e6)
			}
		}
	}
	return r, nil
}

// processCPU returns the user and system CPU time the process used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
