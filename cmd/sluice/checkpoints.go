package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/sluicehq/sluice/checkpoint/store"
)

func runCheckpoints(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	help := func(w io.Writer) {
		fmt.Fprintf(w, `Usage:
  sluice checkpoints ls DIR        list the checkpoints and savepoints under DIR (a job's
                                   checkpoint directory; its savepoints/ too), verifying
                                   every complete one
  sluice checkpoints inspect PATH  describe one checkpoint or savepoint: PATH is its
                                   directory (e.g. DIR/chk-7) or its _metadata file
`)
	}
	if len(args) == 0 {
		help(stderr)
		return errUsage
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		help(stdout)
		return nil
	}
	fs := flag.NewFlagSet("checkpoints "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { help(stderr) }
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() != 1 {
		help(stderr)
		return errUsage
	}
	path := fs.Arg(0)
	switch args[0] {
	case "ls", "list":
		sums, err := store.List(ctx, path)
		if err != nil {
			return err
		}
		if len(sums) == 0 {
			fmt.Fprintf(stdout, "no checkpoints under %s\n", path)
			return nil
		}
		return store.FormatList(stdout, sums)
	case "inspect", "describe":
		// Describe what the metadata says first, then verify the files, so
		// that a corrupt checkpoint can still be looked at.
		sn, err := store.OpenPath(path)
		if err != nil {
			return err
		}
		m, err := sn.ReadMetadata(ctx)
		if err != nil {
			return err
		}
		if err := store.Describe(stdout, m); err != nil {
			return err
		}
		if err := sn.Verify(ctx, m); err != nil {
			return fmt.Errorf("verification failed: %w", err)
		}
		fmt.Fprintln(stdout, "verified: every state file matches its size and CRC32C")
		return nil
	}
	fmt.Fprintf(stderr, "unknown checkpoints command %q\n", args[0])
	help(stderr)
	return errUsage
}
