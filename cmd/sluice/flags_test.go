package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/broker"
)

// TestRunHelpListsFlags: `sluice run --help` and `sluice run count --help`
// print the flags of run count (the Flags section was empty), on stdout.
func TestRunHelpListsFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"run", "--help"}, {"run", "-h"}, {"run", "count", "--help"}} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errb.String())
		}
		for _, f := range []string{"-brokers", "-checkpoint-dir", "-parallelism", "-checkpoint-interval", "-restart"} {
			if !strings.Contains(out.String(), f) {
				t.Errorf("%v: help does not list %s:\n%s", args, f, out.String())
			}
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"run"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "-checkpoint-dir") {
		t.Errorf("run without a job: exit %d, stderr:\n%s", code, errb.String())
	}
}

// TestZeroFlagsRefused: a zero (or negative) number on the command line is
// refused, naming the flag, where the library would silently read it as its
// default; where zero has a meaning the usage says so.
func TestZeroFlagsRefused(t *testing.T) {
	t.Parallel()
	runCount := []string{"run", "count", "--brokers", "127.0.0.1:1", "--input", "i", "--output", "o", "--checkpoint-dir", "d"}
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{append(runCount, "--parallelism", "0"), "--parallelism"},
		{append(runCount, "--parallelism", "-3"), "--parallelism"},
		{append(runCount, "--checkpoint-interval", "0"), "--checkpoint-interval"},
		{append(runCount, "--min-pause", "-1s"), "--min-pause"},
		{append(runCount, "--partitions", "0"), "--partitions"},
		{append(runCount, "--restart", "fixed-delay:attempts=x"), "restart.attempts"},
		{append(runCount, "--log-level", "loud"), "--log-level"},
		{[]string{"demo", "--parallelism", "0"}, "--parallelism"},
		{[]string{"demo", "--checkpoint-interval", "0"}, "--checkpoint-interval"},
		{[]string{"demo", "--keys", "0"}, "--keys"},
		{[]string{"demo", "--splits", "0"}, "--splits"},
		{[]string{"demo", "--rate", "0"}, "--rate"}, // the kafka pipeline needs a rate
		{[]string{"demo", "--buffer-timeout", "-1s"}, "--buffer-timeout"},
		{[]string{"bench", "--parallelism", "0"}, "--parallelism"},
		{[]string{"bench", "--checkpoint-interval", "0"}, "--checkpoint-interval"},
		{[]string{"bench", "--records", "0"}, "--records"},
		{[]string{"bench", "--state-backend", "rocks"}, `--state-backend: "rocks" is not a state backend`},
		{[]string{"bench", "--state-memory", "0"}, "--state-memory: must be at least 8MiB"},
		{[]string{"demo", "--state-backend", "rocksdb"}, "--state-backend"},
		{[]string{"demo", "--state-memory", "lots"}, "-state-memory: \"lots\" is not a size"},
		{append(runCount, "--state-backend", "rocks"), "--state-backend"},
		{append(runCount, "--state-memory", "1MiB"), "--state-memory"},
		{[]string{"broker", "--partitions", "0"}, "--partitions"},
		{[]string{"broker", "--txn-max-timeout", "0"}, "--txn-max-timeout"},
		{[]string{"verify", "--brokers", "b", "--input", "i", "--output", "o", "--wait", "-1s"}, "--wait"},
	} {
		var out, errb bytes.Buffer
		code := run(tc.args, &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), tc.flag) {
			t.Errorf("%v: exit %d, want 2 with an error naming %s; stderr:\n%s", tc.args[:2], code, tc.flag, errb.String())
		}
	}
	// The flags whose zero means something say what.
	var out, errb bytes.Buffer
	run([]string{"demo", "--help"}, &out, &errb)
	help := out.String() + errb.String()
	for _, s := range []string{"0 = no pause", "0 = send every batch at once", "0 = never", "0 = until Ctrl-C", "0 = as fast as possible"} {
		if !strings.Contains(help, s) {
			t.Errorf("demo --help does not say %q", s)
		}
	}
}

// TestRunRefusesOutputEqualToInput: the same topic as input and output is
// refused before anything is contacted, naming both flags.
func TestRunRefusesOutputEqualToInput(t *testing.T) {
	t.Parallel()
	var out, errb bytes.Buffer
	code := run([]string{"run", "count", "--brokers", "127.0.0.1:1", "--input", "events", "--output", "events", "--checkpoint-dir", t.TempDir()}, &out, &errb)
	if code != 2 || !strings.Contains(errb.String(), "--output: must differ from --input (events)") {
		t.Fatalf("exit %d, stderr:\n%s", code, errb.String())
	}
}

// TestStopSummary: "stopped cleanly" only when no checkpoint failed; a run
// that completed none is an error (exit 1).
func TestStopSummary(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		st   sluice.JobStatus
		want string
		err  bool
	}{
		{sluice.JobStatus{CheckpointsCompleted: 12, Restarts: 1}, "stopped cleanly after 12 checkpoints, 1 restarts", false},
		{sluice.JobStatus{CheckpointsCompleted: 1, CheckpointsFailed: 40}, "stopped after a final checkpoint: 1 checkpoints completed, 40 failed (see the log), 0 restarts", false},
		{sluice.JobStatus{CheckpointsFailed: 40, Restarts: 3}, "stopped, but no checkpoint completed (40 failed, 3 restarts): nothing this run read was committed", true},
	} {
		msg, err := stopSummary(tc.st)
		if !strings.HasPrefix(msg, tc.want) || (err != nil) != tc.err {
			t.Errorf("%+v: %q, %v; want %q (error %v)", tc.st, msg, err, tc.want, tc.err)
		}
	}
}

// TestRunCountLogsRestoredCheckpoint: run count, started again on its
// checkpoint dir, says at INFO (its default level) which checkpoint it
// restored, with its id, location and age, after a stop with a final
// checkpoint.
func TestRunCountLogsRestoredCheckpoint(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, err := broker.Start(ctx, broker.Config{Ephemeral: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	brokers := strings.Join(b.Addrs(), ",")
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.DefaultProduceTopic("in"), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i := range 100 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte("k" + strconv.Itoa(i%7)), Value: []byte("x")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	args := []string{"count", "--brokers", brokers, "--input", "in", "--output", "out", "--checkpoint-dir", dir,
		"--checkpoint-interval", "50ms", "--min-pause", "0", "--parallelism", "1"}
	runOnce := func() (string, string) {
		runCtx, stop := context.WithCancel(ctx)
		var out, errb syncBuffer
		done := make(chan error, 1)
		go func() { done <- runRun(runCtx, args, &out, &errb) }()
		// Stop once the whole input was committed in the output.
		rd, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.ConsumeTopics("out"), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
		if err != nil {
			t.Fatal(err)
		}
		defer rd.Close()
		for n := 0; n < 100; {
			fs := rd.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("output incomplete after %d records; stderr:\n%s", n, errb.String())
			}
			n += fs.NumRecords()
		}
		stop()
		if err := <-done; err != nil {
			t.Fatalf("run count: %v\nstderr:\n%s", err, errb.String())
		}
		return out.String(), errb.String()
	}
	out, _ := runOnce()
	// The stop took a final checkpoint. Under load one of the 50ms periodic
	// checkpoints may fail, and then the summary says so instead of
	// "cleanly" (TestStopSummary pins each wording): both are a stop with a
	// final checkpoint, which is what the second run restores.
	if !strings.Contains(out, "stopped cleanly after") && !strings.Contains(out, "stopped after a final checkpoint") {
		t.Fatalf("first run:\n%s", out)
	}
	// The second run reads its committed output (the first run's) again;
	// it restores the final checkpoint of the first run.
	_, logs := func() (string, string) {
		runCtx, stop := context.WithCancel(ctx)
		var out, errb syncBuffer
		done := make(chan error, 1)
		go func() { done <- runRun(runCtx, args, &out, &errb) }()
		for !strings.Contains(errb.String(), "restoring checkpoint") && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
		stop()
		if err := <-done; err != nil {
			t.Fatalf("second run: %v\nstderr:\n%s", err, errb.String())
		}
		return out.String(), errb.String()
	}()
	if !regexpMatch(`level=INFO msg="restoring checkpoint" job=count attempt=0 checkpoint=\d+ location=\S+/chk-\d+ age=\S+`, logs) {
		t.Fatalf("no INFO line naming the restored checkpoint:\n%s", logs)
	}
}

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }
