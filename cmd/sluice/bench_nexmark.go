package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sluicehq/sluice/internal/benchjob"
	"github.com/sluicehq/sluice/internal/nexmark"
	"github.com/sluicehq/sluice/internal/nexmark/queries"
)

// runBenchNexmark is `sluice bench nexmark`: every query in a fresh child
// process (this binary again, with --in-process), so that each query's
// peak RSS and CPU time are its own (docs/benchmarks.md).
func runBenchNexmark(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench nexmark", flag.ContinueOnError)
	fs.SetOutput(stderr)
	query := fs.String("query", "all", "the queries to run: qN, a comma-separated list, or all (every registered query)")
	events := fs.Int64("events", 10_000_000, "events per query run (rounded down to a multiple of --parallelism)")
	par := fs.Int("parallelism", runtime.GOMAXPROCS(0), "parallelism of every operator, and the number of generator splits")
	interval := fs.Duration("checkpoint-interval", 10*time.Second, "exactly-once checkpoint interval (0 = no periodic checkpoints; a final one is still taken at the end of input)")
	rate := fs.Float64("rate", nexmark.DefaultRate, "events per second of event time, over all generators (spaces the events' DateTime; the generator is not paced)")
	seed := fs.Uint64("seed", nexmark.DefaultSeed, "generator seed")
	profile := fs.String("profile", "comparison", "generator profile: comparison (the stream fixed event for event) or reference (the suite's own generator rules)")
	asJSON := fs.Bool("json", false, "print one JSON object per query on its own line instead of a table")
	inProcess := fs.Bool("in-process", false, "run the queries in this process, one after the other, instead of one child process each (peak RSS is then the largest so far)")
	dir := fs.String("dir", "", "checkpoint directory (default: a temporary directory, removed afterwards)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of each query run to this file, suffixed with -<query> (go tool pprof reads it)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: sluice bench nexmark [flags]\n\nRuns Nexmark queries on the built-in generator, each in a fresh process, and\nprints per query events/s, events/s per core of process CPU time, p99 latency\nwhere the query samples it, peak RSS and checkpoint durations.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var check flagCheck
	check.atLeast("events", *events, 1)
	check.atLeast("parallelism", int64(*par), 1)
	check.nonNegative("checkpoint-interval", *interval)
	prof, err := nexmark.ParseProfile(*profile)
	if err != nil {
		check.fail("--profile: %v", err)
	}
	names, err := queryNames(*query)
	if err != nil {
		check.fail("--query: %v", err)
	}
	gen := nexmark.GeneratorConfig{Events: *events, Generators: *par, Rate: *rate, BaseTime: nexmark.DefaultBaseTime, Seed: *seed, Profile: prof}
	if err := gen.Validate(); err != nil {
		for _, e := range strings.Split(err.Error(), "\n") {
			check.fail("%s", e)
		}
	}
	if *events < int64(*par) {
		check.fail("--events: must be at least --parallelism (%d), got %d", *par, *events)
	}
	if err := check.err(stderr); err != nil {
		return err
	}
	root := *dir
	if root == "" {
		tmp, err := os.MkdirTemp("", "sluice-nexmark-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		root = tmp
	}
	var results []*benchjob.NexmarkResult
	for i, q := range names {
		var r *benchjob.NexmarkResult
		if *inProcess {
			o := benchjob.NexmarkOptions{Query: q, Gen: gen, Parallelism: *par,
				CheckpointInterval: *interval, Dir: fmt.Sprintf("%s/%d-%s", root, i, q)}
			if *cpuProfile != "" {
				o.CPUProfile = *cpuProfile + "-" + q
			}
			r, err = benchjob.RunNexmark(ctx, o)
		} else {
			r, err = runNexmarkChild(ctx, q, fs, fmt.Sprintf("%s/%d-%s", root, i, q), stderr)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
		if *asJSON {
			b, err := json.Marshal(r)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s\n", b)
		}
		results = append(results, r)
	}
	if *asJSON {
		return nil
	}
	fmt.Fprintf(stdout, "sluice bench nexmark: %d cores (GOMAXPROCS %d), %s/%s, %s; %s profile, %d events, parallelism %d, checkpoints every %v, rate %g/s, seed %d\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH, runtime.Version(), prof, gen.Total(), *par, *interval, *rate, *seed)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "query\tevents\toutputs\tevents/s\tper core\tp99 latency\tpeak RSS\tcheckpoints\tmax checkpoint\t")
	for _, r := range results {
		lat := "-"
		if r.P99LatencyMs != nil {
			lat = fmt.Sprintf("%.1f ms", *r.P99LatencyMs)
		}
		maxCk := "-"
		if len(r.CheckpointMs) > 0 {
			maxCk = fmt.Sprintf("%.0f ms", slices.Max(r.CheckpointMs))
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.2fM\t%.2fM\t%s\t%d MB\t%d\t%s\t\n", r.Query, r.Events, r.Outputs, r.EventsPerSec/1e6,
			r.EventsPerSecPerCore/1e6, lat, r.PeakRSSBytes>>20, r.Checkpoints, maxCk)
	}
	return tw.Flush()
}

// queryNames expands --query.
func queryNames(s string) ([]string, error) {
	if s == "all" {
		var out []string
		for _, q := range queries.All() {
			out = append(out, q.Name)
		}
		return out, nil
	}
	var out []string
	for _, n := range strings.Split(s, ",") {
		if _, ok := queries.Lookup(n); !ok {
			var known []string
			for _, q := range queries.All() {
				known = append(known, q.Name)
			}
			return nil, fmt.Errorf("unknown query %q (known: %s, or all)", n, strings.Join(known, " "))
		}
		out = append(out, n)
	}
	return out, nil
}

// runNexmarkChild runs one query in a fresh process: this binary with the
// same flags, --in-process --json --query q, and reads its JSON line.
func runNexmarkChild(ctx context.Context, q string, fs *flag.FlagSet, dir string, stderr io.Writer) (*benchjob.NexmarkResult, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find this binary to run the query in a child process: %w", err)
	}
	args := []string{"bench", "nexmark", "--in-process", "--json", "--query", q, "--dir", dir}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "in-process", "json", "query", "dir":
		default:
			args = append(args, "--"+f.Name+"="+f.Value.String())
		}
	})
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.Stdout, cmd.Stderr = &out, stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("child process %s %s: %w", self, strings.Join(args, " "), err)
	}
	sc := bufio.NewScanner(&out)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r benchjob.NexmarkResult
		if err := json.Unmarshal(sc.Bytes(), &r); err == nil && r.Query == q {
			return &r, nil
		}
	}
	return nil, fmt.Errorf("child process printed no result for %s (output %s)", q, strconv.Quote(out.String()))
}
