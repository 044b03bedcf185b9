package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sluicehq/sluice/internal/benchjob"
	"github.com/sluicehq/sluice/internal/bytesize"
)

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "nexmark" {
		return runBenchNexmark(ctx, args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pipelines := fs.String("pipelines", "stateless,keyed-sum", "comma-separated pipelines: stateless (datagen → map → filter → discard), keyed-sum (datagen → keyBy → keyed running sum → discard), tumbling (datagen with event time → keyBy → count in 10s tumbling windows → discard), sliding (the same in 10s windows sliding by 1s)")
	records := fs.Int64("records", 50_000_000, "input records per stateless run (keyed-sum and tumbling use a fifth of it, sliding a tenth)")
	keys := fs.Int("keys", 1_000_000, "distinct keys for keyed-sum and tumbling (sliding uses a tenth: ten windows per key)")
	par := fs.Int("parallelism", runtime.GOMAXPROCS(0), "parallelism of every operator")
	interval := fs.Duration("checkpoint-interval", time.Second, "checkpoint interval of the 'with checkpoints' runs")
	kafkaPipes := fs.String("kafka", "", "comma-separated Kafka pipelines to run instead: kafka-source, kafka-exactly-once, kafka-at-least-once (100-byte records, 4 partitions, checkpoints every second)")
	brokers := fs.String("brokers", "", "Kafka pipelines: use this cluster instead of the embedded broker in this process")
	kafkaRecords := fs.Int64("kafka-records", 2_000_000, "records per Kafka pipeline run")
	recovery := fs.Bool("recovery", true, "also measure recovery time after an injected failure in keyed-sum")
	prefetch := fs.Bool("prefetch-keys", true, "keyed pipelines: datagen touches a chunk of keys before emitting them, so that keys reach keyBy in cache as from a source decoding real records (false: every key's first read misses the cache on datagen's key table)")
	dir := fs.String("dir", "", "checkpoint directory (default: a temporary directory, removed afterwards)")
	var sf stateFlags
	sf.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: sluice bench [flags]\n       sluice bench nexmark [flags] (see sluice bench nexmark --help)\n\nRuns each pipeline on bounded datagen input twice, without and with checkpoints,\nand prints throughput, the longest synchronous snapshot pause, the longest\ncheckpoint, and the process's peak RSS.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var check flagCheck
	check.atLeast("records", *records, 1)
	check.atLeast("keys", int64(*keys), 1)
	check.atLeast("parallelism", int64(*par), 1)
	check.positive("checkpoint-interval", *interval)
	check.atLeast("kafka-records", *kafkaRecords, 1)
	sf.check(&check)
	if err := check.err(stderr); err != nil {
		return err
	}
	root := *dir
	if root == "" {
		tmp, err := os.MkdirTemp("", "sluice-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		root = tmp
	}
	if *kafkaPipes != "" {
		where := "embedded broker in this process"
		if *brokers != "" {
			where = *brokers
		}
		fmt.Fprintf(stdout, "sluice bench: %d cores, %s, Kafka on %s, parallelism %d\n", runtime.NumCPU(), runtime.Version(), where, *par)
		for i, p := range strings.Split(*kafkaPipes, ",") {
			rate, err := benchjob.RunKafka(ctx, benchjob.KafkaOptions{Pipeline: p, Records: *kafkaRecords, Parallelism: *par,
				Brokers: splitBrokers(*brokers), Dir: fmt.Sprintf("%s/kafka-%d", root, i)})
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			fmt.Fprintf(stdout, "%-22s %10d records  %8.0fk records/s\n", p, *kafkaRecords, rate/1e3)
		}
		return nil
	}
	fmt.Fprintf(stdout, "sluice bench: %d cores (GOMAXPROCS %d), %s/%s, %s, state backend %s\n", runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH, runtime.Version(), stateLabel(sf))
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "pipeline\tcheckpoints\trecords\trecords/s\tcompleted\tmax sync pause\tmax checkpoint\tpeak RSS\t")
	for i, p := range strings.Split(*pipelines, ",") {
		n, k := *records, *keys
		switch p {
		case benchjob.KeyedSum, benchjob.Tumbling:
			n /= 5
		case benchjob.Sliding:
			n, k = n/10, max(k/10, 1)
		}
		var base float64
		for _, iv := range []time.Duration{0, *interval} {
			o := benchjob.Options{Pipeline: p, Records: n, Keys: k, Parallelism: *par, CheckpointInterval: iv,
				Dir: fmt.Sprintf("%s/%d-%v", root, i, iv), State: sf.stateConfig(), PlainKeys: !*prefetch}
			r, err := benchjob.Run(ctx, o)
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			label := "off"
			if iv > 0 {
				label = "every " + iv.String()
			}
			cost := ""
			if iv == 0 {
				base = r.RecordsPerSec
			} else if base > 0 {
				cost = fmt.Sprintf(" (%+.1f%%)", 100*(r.RecordsPerSec-base)/base)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.2fM%s\t%d\t%v\t%v\t%d MB\t\n", p, label, n, r.RecordsPerSec/1e6, cost, r.Checkpoints,
				r.MaxSyncPause.Round(time.Microsecond), r.MaxCheckpoint.Round(time.Millisecond), r.PeakRSS>>20)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if *recovery {
		// Recovery: keyed-sum with 1M keys of state, one injected failure
		// after the first checkpoints (every 200ms), restart delay 0.
		n := *records / 5
		o := benchjob.Options{Pipeline: benchjob.KeyedSum, Records: n, Keys: *keys, Parallelism: *par,
			CheckpointInterval: 200 * time.Millisecond, Dir: root + "/recovery", FailAfter: int(n / int64(*par) * 3 / 4), State: sf.stateConfig()}
		r, err := benchjob.Run(ctx, o)
		if err != nil {
			return fmt.Errorf("recovery: %w", err)
		}
		fmt.Fprintf(stdout, "recovery: %d restart(s); last recovery (failure → tasks running on restored state) %v\n", r.Restarts, r.Recovery.Round(time.Millisecond))
	}
	return nil
}

// stateLabel names the backend of a bench run, with the pebble budget.
func stateLabel(sf stateFlags) string {
	if sf.stateBackend == "pebble" {
		return fmt.Sprintf("pebble (memory %s)", bytesize.Format(sf.stateMemory))
	}
	return sf.stateBackend
}
