package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

func lastJSON(t *testing.T, out string) demoSummary {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var s demoSummary
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &s); err != nil {
		t.Fatalf("last line is not the JSON summary: %v\n%s", err, out)
	}
	return s
}

// The demo, in process, with failures injected, on both pipelines: the
// summary's last line says nothing was lost or duplicated.
func TestDemoWithFailures(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"kafka", "file"} {
		t.Run(p, func(t *testing.T) {
			t.Parallel()
			demoWithFailures(t, p)
		})
	}
}

func demoWithFailures(t *testing.T, pipeline string) {
	var out, errb bytes.Buffer
	code := run([]string{"demo", "--pipeline", pipeline, "--dir", t.TempDir(), "--duration", "1500ms", "--rate", "50000", "--keys", "500",
		"--checkpoint-interval", "100ms", "--min-pause", "10ms", "--fail-every", "300ms", "--seed", "7"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	s := lastJSON(t, out.String())
	if s.Lost != 0 || s.Duplicated != 0 || s.Produced == 0 || s.Committed != s.Produced {
		t.Fatalf("summary %+v", s)
	}
	if s.Checkpoints < 2 {
		t.Fatalf("only %d checkpoints", s.Checkpoints)
	}
	// Every record reached the count operator at least once; replays after
	// restores count again in the total, never in the last attempt's count
	// (which is 0 when a failure during the stop restarted the job only to
	// take the final checkpoint).
	if s.ProcessedTotal < s.Produced || s.ProcessedLastAttempt < 0 || s.ProcessedLastAttempt > s.ProcessedTotal {
		t.Fatalf("processed %d in all attempts, %d in the last, for %d produced", s.ProcessedTotal, s.ProcessedLastAttempt, s.Produced)
	}
	if s.Restarts == 0 && s.ProcessedTotal != s.ProcessedLastAttempt {
		t.Fatalf("no restart, yet %d processed in all attempts and %d in the last", s.ProcessedTotal, s.ProcessedLastAttempt)
	}
}

// The windows pipeline, in process, with failures injected, through the
// file sink and the Kafka sink: the summary says every window result and
// late order expected from a failure-free run was committed exactly once.
func TestDemoWindowsWithFailures(t *testing.T) {
	t.Parallel()
	for _, sink := range []string{"file", "kafka"} {
		t.Run(sink, func(t *testing.T) {
			t.Parallel()
			var out, errb bytes.Buffer
			code := run([]string{"demo", "--pipeline", "windows", "--sink", sink, "--dir", t.TempDir(), "--duration", "1500ms", "--rate", "20000",
				"--keys", "300", "--checkpoint-interval", "100ms", "--min-pause", "10ms", "--fail-every", "300ms", "--seed", "7"}, &out, &errb)
			if code != 0 {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			var s windowsSummary
			if err := json.Unmarshal([]byte(lines[len(lines)-1]), &s); err != nil {
				t.Fatalf("last line is not the JSON summary: %v\n%s", err, out.String())
			}
			if s.Lost != 0 || s.Duplicated != 0 || s.Unexpected != 0 || s.Windows == 0 || s.Late == 0 ||
				s.CommittedWindows != s.Windows || s.CommittedLate != s.Late || s.Produced != 30000 || s.Sink != sink {
				t.Fatalf("summary %+v", s)
			}
			if s.Checkpoints < 2 || s.ProcessedTotal < s.Produced {
				t.Fatalf("%d checkpoints, %d orders processed in all attempts of %d", s.Checkpoints, s.ProcessedTotal, s.Produced)
			}
			// The late counter counts replays again, never fewer than the
			// late orders of one run.
			if s.LateCounted < s.Late {
				t.Fatalf("late counter %d below the %d late orders", s.LateCounted, s.Late)
			}
		})
	}
}

func TestSubcommandHelp(t *testing.T) {
	t.Parallel()
	for _, c := range []string{"demo", "bench", "checkpoints", "broker"} {
		var out, errb bytes.Buffer
		if code := run([]string{c, "--help"}, &out, &errb); code != 0 {
			t.Errorf("%s --help: exit %d: %s", c, code, errb.String())
		}
		if out.Len()+errb.Len() < 100 {
			t.Errorf("%s --help printed almost nothing", c)
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"demo", "--rate", "x"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "rate") {
		t.Errorf("bad flag: exit %d, stderr %q", code, errb.String())
	}
	if code := run([]string{"nope"}, &out, &errb); code != 2 {
		t.Errorf("unknown command: exit %d", code)
	}
}

// TestDemoSurvivesSIGKILL runs the demo as a real process, kills it with
// SIGKILL at random moments (mid-record, mid-checkpoint, between pre-commit
// and commit: wherever it happens to be), resumes it from its latest
// checkpoint each time, and verifies the committed output of all runs
// together: exactly once.
func TestDemoSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills a real process")
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("SLUICE_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (replay with SLUICE_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 9))
	bin := buildBinary(t)
	dir := t.TempDir()
	common := []string{"demo", "--pipeline", "file", "--dir", dir, "--rate", "40000", "--keys", "300", "--checkpoint-interval", "50ms", "--min-pause", "10ms",
		"--seed", strconv.FormatUint(seed, 10)}
	for i := 0; i < 4; i++ {
		args := append(append([]string{}, common...), "--duration", "0")
		if i > 0 {
			args = append(args, "--resume")
		}
		wait := time.Duration(300+rng.IntN(900)) * time.Millisecond
		runAndKill(t, bin, args, wait)
		t.Logf("run %d killed after %v", i, wait)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, append(common, "--duration", "1s", "--resume")...).CombinedOutput()
	if err != nil {
		t.Fatalf("final run: %v\n%s", err, out)
	}
	s := lastJSON(t, string(out))
	t.Logf("final summary %+v", s)
	if s.Lost != 0 || s.Duplicated != 0 || s.Produced == 0 {
		t.Fatalf("after 4 SIGKILLs: %+v", s)
	}
}

// TestDemoStopWithSavepoint: `sluice demo --http` serves the control API;
// `sluice stop --savepoint` against it ends the demo with a savepoint,
// which the demo verifies like its final checkpoint (exactly once), and
// a second demo restores it with --from-savepoint.
func TestDemoStopWithSavepoint(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"demo", "--pipeline", "file", "--dir", dir, "--duration", "0", "--rate", "20000", "--keys", "100",
			"--checkpoint-interval", "100ms", "--min-pause", "10ms", "--seed", "9", "--http", "127.0.0.1:0"}, &out, &errb)
	}()
	var api string
	for api == "" {
		if m := controlAPILine.FindStringSubmatch(out.String()); m != nil {
			api = m[1]
		}
		select {
		case code := <-done:
			t.Fatalf("demo ended: %d\n%s\n%s", code, out.String(), errb.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	time.Sleep(300 * time.Millisecond) // some input and checkpoints first
	var sout, serr bytes.Buffer
	if code := run([]string{"stop", "--savepoint", "--http", api}, &sout, &serr); code != 0 {
		t.Fatalf("stop: exit %d: %s", code, serr.String())
	}
	sp := strings.TrimSpace(sout.String())
	if code := <-done; code != 0 {
		t.Fatalf("demo after stop: exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "stopped with savepoint "+sp) {
		t.Fatalf("demo output does not name the savepoint %s:\n%s", sp, out.String())
	}
	s := lastJSON(t, out.String())
	if s.Lost != 0 || s.Duplicated != 0 || s.Produced == 0 {
		t.Fatalf("summary %+v", s)
	}
	out2, errb2 := &bytes.Buffer{}, &bytes.Buffer{}
	if code := run([]string{"demo", "--pipeline", "file", "--dir", dir, "--duration", "500ms", "--rate", "20000", "--keys", "100",
		"--checkpoint-interval", "100ms", "--min-pause", "10ms", "--seed", "9", "--from-savepoint", sp}, out2, errb2); code != 0 {
		t.Fatalf("demo --from-savepoint: exit %d\n%s\n%s", code, out2.String(), errb2.String())
	}
	s2 := lastJSON(t, out2.String())
	if s2.Lost != 0 || s2.Duplicated != 0 || s2.Produced <= s.Produced {
		t.Fatalf("after the restore: %+v (before: %+v)", s2, s)
	}
}
