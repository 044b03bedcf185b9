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
