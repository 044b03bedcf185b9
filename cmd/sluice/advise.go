package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/sluicehq/sluice/advise"
)

const adviseUsage = `Usage: sluice advise partitions --producers P --consumers C [--redundancy R]

Sizes a Kafka topic: partitions = ceil(max(producers, consumers) × redundancy),
with the redundancy between 1.5 and 2 (room to scale without repartitioning).
P is how many producers write the topic at once, C how many consumers read it
at once (the Sluice source's parallelism). Prints the formula with its numbers,
the result, and, when C does not divide the result, the next count that it
does, so that every consumer subtask reads as many partitions as any other
(a job's describe and start warn about uneven or idle source subtasks).

Flags:
`

func runAdvise(_ context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "partitions" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprint(stdout, adviseUsage)
			return nil
		}
		fmt.Fprint(stderr, adviseUsage)
		return errUsage
	}
	fs := flag.NewFlagSet("advise partitions", flag.ContinueOnError)
	fs.SetOutput(stderr)
	producers := fs.Int("producers", 0, "producers writing the topic concurrently (required)")
	consumers := fs.Int("consumers", 0, "consumers reading it concurrently: the source's parallelism (required)")
	redundancy := fs.Float64("redundancy", advise.DefaultRedundancy, "redundancy factor, 1.5 to 2")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), adviseUsage)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	s, err := advise.Partitions(*producers, *consumers, *redundancy)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return errUsage
	}
	fmt.Fprint(stdout, s)
	return nil
}
