// Command sluice runs Sluice's built-in jobs and tools: the demo job with
// verification, benchmarks, checkpoint inspection and the embedded
// Kafka-compatible broker.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands []command

func init() {
	commands = []command{
		{"demo", "run the built-in count job with failures and verify its output", runDemo},
		{"run", "run a built-in job against a Kafka cluster (run count)", runRun},
		{"savepoint", "take a savepoint of a running job through its --http control API; prints its path", runJobCommand("savepoint", false)},
		{"stop", "stop a running job with a savepoint (stop --savepoint [--drain]); prints its path", runJobCommand("stop", false)},
		{"checkpoint", "take a checkpoint of a running job through its --http control API; prints its id", runJobCommand("checkpoint", false)},
		{"cancel", "cancel a running job at once, without a final checkpoint", runJobCommand("cancel", false)},
		{"check", "report whether the count job as built can restore a savepoint (check count SAVEPOINT)", runJobCommand("check", true)},
		{"describe", "print the count job's graph and uids (describe count)", runJobCommand("describe", true)},
		{"verify", "check the count job's output topic against its input topic", runVerify},
		{"compare", "compare a green deployment's output topic with blue's (docs/upgrades.md)", runCompare},
		{"bench", "measure throughput of the built-in benchmark pipelines", runBench},
		{"checkpoints", "list and describe checkpoints (ls, inspect)", runCheckpoints},
		{"broker", "serve the embedded Kafka-compatible broker", runBroker},
		{"chaos", "run named fault scenarios against a live pipeline and check its output record by record (docs/chaos.md)", runChaos},
		{"advise", "size a Kafka topic's partitions for its producers and consumers (advise partitions)", runAdvise},
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "sluice: a fault-tolerant, stateful stream processor with exactly-once output.\n\nUsage: sluice <command> [flags]\n\nCommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun 'sluice <command> --help' for the flags of a command.\n")
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches to a subcommand. The first SIGINT/SIGTERM asks the command
// to stop cleanly (the context is cancelled); a second one exits at once.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		fmt.Fprintln(stderr, "stopping (press Ctrl-C again to exit at once)")
		cancel()
		<-sigs
		os.Exit(130)
	}()
	for _, c := range commands {
		if c.name == args[0] {
			err := c.run(ctx, args[1:], stdout, stderr)
			switch {
			case err == nil:
				return 0
			case errors.Is(err, flag.ErrHelp):
				return 0
			case errors.Is(err, errUsage):
				return 2
			default:
				fmt.Fprintf(stderr, "sluice %s: %v\n", c.name, err)
				return 1
			}
		}
	}
	fmt.Fprintf(stderr, "sluice: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

// errUsage marks an error already explained by the flag package.
var errUsage = errors.New("usage")

// parseFlags parses args with fs, mapping flag errors to errUsage.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return errUsage
	}
	return nil
}
