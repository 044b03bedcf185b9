package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/sluicehq/sluice/broker"
	"github.com/sluicehq/sluice/internal/logfmt"
)

const brokerUsage = `Usage: sluice broker [flags]

Serve the embedded Kafka-compatible broker (franz-go's kfake) until
interrupted. Any Kafka client can use it: point Sluice jobs, kcat or the
Java client at the address it prints. Topics are created on demand.

It is a single in-process node: no replication, one goroutine serves every
request. With a data directory, records, consumer group offsets and
transactions survive a restart; a transaction open at a crash (kill -9) is
aborted on restart, one open at a clean stop (Ctrl-C) is kept.
See docs/broker.md.

Examples:
  sluice broker                          # 127.0.0.1:9092, data in ./data/broker
  sluice broker --ephemeral --port 0     # in memory, on a free port
  kcat -b 127.0.0.1:9092 -L              # list topics

Flags:
`

// runBroker implements `sluice broker`: it starts the embedded broker,
// prints one line when it is ready, serves until ctx is cancelled, then
// closes it cleanly (persisting the data directory) and says so.
func runBroker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	def := broker.DefaultConfig()
	fs := flag.NewFlagSet("broker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "-help" || a == "--help" {
			fs.SetOutput(stdout) // asked for: not an error
		}
	}
	port := fs.Int("port", def.Port, "TCP `port` to listen on; 0 picks a free one")
	host := fs.String("host", def.Host, "`address` to listen on, also advertised to clients, so it must be one they can dial (not 0.0.0.0)")
	dataDir := fs.String("data-dir", def.DataDir, "`directory` the log, group offsets and transaction state persist to (locked while in use)")
	partitions := fs.Int("partitions", def.DefaultPartitions, "partition `count` of topics created on demand")
	syncWrites := fs.Bool("sync-writes", false, "fsync every produced batch before acknowledging it: survives power loss, much slower")
	txnMax := fs.Duration("txn-max-timeout", def.TxnMaxTimeout, "transaction.max.timeout.ms: the longest transaction timeout a producer may ask for")
	ephemeral := fs.Bool("ephemeral", false, "keep everything in memory; nothing survives a restart (no --data-dir)")
	logLevel := fs.String("log-level", "info", "log `level` on stderr: debug (every request), info, warn or error")
	logFormat := fs.String("log-format", logfmt.Text, logfmt.Usage)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), brokerUsage)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err // flag.ErrHelp for --help; the flag package printed the rest
	}
	var check flagCheck
	check.atLeast("partitions", int64(*partitions), 1)
	check.positive("txn-max-timeout", *txnMax)
	if err := logfmt.Check(*logFormat); err != nil {
		check.fail("--log-format: %v", err)
	}
	if err := check.err(stderr); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("broker.log-level: must be debug, info, warn or error, got %q", *logLevel)
	}

	cfg := broker.Config{
		Port:              *port,
		Host:              *host,
		DataDir:           *dataDir,
		Ephemeral:         *ephemeral,
		DefaultPartitions: *partitions,
		SyncWrites:        *syncWrites,
		TxnMaxTimeout:     *txnMax,
		Logger:            logfmt.New(stderr, *logFormat, level),
	}
	if *ephemeral && !flagSet(fs, "data-dir") {
		cfg.DataDir = "" // the default does not apply; an explicit one is an error
	}
	b, err := broker.Start(ctx, cfg)
	if err != nil {
		return err
	}

	where := "data dir " + cfg.DataDir
	if cfg.Ephemeral {
		where = "ephemeral: in memory, nothing is kept"
	}
	fmt.Fprintf(stdout, "broker listening on %s (%s)\n", strings.Join(b.Addrs(), ","), where)

	<-ctx.Done()
	if err := b.Close(); err != nil {
		return fmt.Errorf("stopping: %w", err)
	}
	if cfg.Ephemeral {
		fmt.Fprintln(stdout, "broker stopped cleanly")
	} else {
		fmt.Fprintf(stdout, "broker stopped cleanly (data dir %s saved)\n", cfg.DataDir)
	}
	return nil
}

// flagSet reports whether the flag called name was given on the command
// line.
func flagSet(fs *flag.FlagSet, name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found
}
