package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/sluicehq/sluice/internal/kafkacount"
	"github.com/sluicehq/sluice/internal/verify"
)

// runCompare is `sluice compare`: the overlap check of a blue-green upgrade
// (docs/upgrades.md).
func runCompare(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	brokers := fs.String("brokers", "", "Kafka bootstrap servers (required)")
	blue := fs.String("blue", "", "output topic of the running job, blue (required)")
	green := fs.String("green", "", "output topic of the job restored from blue's savepoint with new code, green (required)")
	complete := fs.Bool("complete", false, "also require green's output of every key to end where blue's ends (both have processed the same input to its end)")
	minOverlap := fs.Int64("min-overlap", 1, "least number of green's records compared with blue's for the check to pass")
	wait := fs.Duration("wait", 0, "keep re-checking until the outputs agree, at most this long (for jobs still catching up; 0 = check once); a check without --wait ends after 30s")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: sluice compare --brokers B --blue T --green U [--complete] [--min-overlap N] [--wait 30s]

Compares the output topic U of a green deployment (restored from a savepoint
of the blue one, reading the same input, with new code) with blue's output
topic T, both read to their last stable offset with read_committed: for every
key, green's outputs must be blue's from green's first one on, in the same
order, over the records both have (the overlap). A key's outputs must not
repeat a value (the count job's n; a sequence number), so that green's
first output finds its place in blue's. Green's output starts at the
savepoint, so blue has more: that is expected. Prints the counts and a JSON
summary as the last line; exits 1 when an output differs, when green's first
output of a key is not among blue's, when fewer than --min-overlap records
were compared, or (--complete) when one of them is behind. See
docs/upgrades.md.

Flags:
`)
		fs.PrintDefaults()
	}
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			fs.SetOutput(stdout) // asked for: not an error
		}
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var check flagCheck
	if *brokers == "" || *blue == "" || *green == "" {
		check.fail("--brokers, --blue and --green are required")
	}
	if *blue != "" && *blue == *green {
		check.fail("--green: must differ from --blue (%s): green writes to its own output topic", *blue)
	}
	check.atLeast("min-overlap", *minOverlap, 0)
	check.nonNegative("wait", *wait)
	if err := check.err(stderr); err != nil {
		return err
	}
	deadline := time.Now().Add(*wait)
	for {
		end := deadline
		if *wait <= 0 {
			end = time.Now().Add(verifyCheckTimeout)
		}
		cctx, cancel := context.WithDeadline(ctx, end)
		rep, err := kafkacount.Compare(cctx, splitBrokers(*brokers), *blue, *green)
		cancel()
		if _, ok := errors.AsType[*kafkacount.IncompleteReadError](err); ok && ctx.Err() == nil {
			return fmt.Errorf("could not read the topics to their end in time: %w", err)
		}
		if err != nil {
			return err
		}
		ok := rep.Agree(*complete) && rep.Compared >= *minOverlap
		if ok || time.Now().After(deadline) {
			printOverlap(stdout, rep)
			if !ok {
				return overlapError(rep, *complete, *minOverlap)
			}
			return nil
		}
		select {
		case <-time.After(500 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func overlapError(rep verify.OverlapReport, complete bool, minOverlap int64) error {
	switch {
	case !rep.Agree(false):
		return fmt.Errorf("green's output differs from blue's: %d mismatched, %d unaligned", rep.Mismatched, rep.Unaligned)
	case rep.Compared < minOverlap:
		return fmt.Errorf("only %d of green's records compared, --min-overlap is %d", rep.Compared, minOverlap)
	}
	return fmt.Errorf("outputs agree over the overlap but do not end together: green %d records ahead, blue %d ahead", rep.GreenAhead, rep.BlueAhead)
}

func printOverlap(w io.Writer, rep verify.OverlapReport) {
	fmt.Fprintf(w, "%d keys, %d records compared: %d mismatched, %d unaligned; green %d ahead, blue %d ahead; %d keys only in blue\n",
		rep.Keys, rep.Compared, rep.Mismatched, rep.Unaligned, rep.GreenAhead, rep.BlueAhead, rep.BlueOnlyKeys)
	for _, e := range rep.Examples {
		fmt.Fprintf(w, "  %s\n", e)
	}
	line, _ := json.Marshal(rep)
	fmt.Fprintln(w, string(line))
}
