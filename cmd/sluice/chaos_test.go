package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runChaosProc runs `sluice chaos args` as a process and returns its exit
// code, its output and the summary of its last line.
func runChaosProc(t *testing.T, bin string, args ...string) (int, string, chaosSummary) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"chaos"}, args...)...)
	out, err := cmd.CombinedOutput()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var sum chaosSummary
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "{") {
			if err := json.Unmarshal([]byte(lines[i]), &sum); err != nil {
				t.Fatalf("summary line %q: %v", lines[i], err)
			}
			break
		}
	}
	if sum.Scenarios == 0 {
		t.Fatalf("no summary line; output:\n%s", out)
	}
	return code, string(out), sum
}

func chaosArgs(t *testing.T, scenario string, extra ...string) []string {
	return append([]string{"--scenario", scenario, "--duration", "6s", "--seed", "3", "--rate", "200",
		"--wedge-timeout", "30s", "--dir", filepath.Join(t.TempDir(), "chaos")}, extra...)
}

// TestChaosCatchesBrokenJobs is the checker's own test (issue 12): the
// same kill -9 scenario that the real job passes must fail, naming what
// it found, for a job whose sink has no transactions (its output before a
// kill stays and is written again after the restore: duplicates) and for
// one whose source commits its offsets as it reads, before the checkpoint
// (what it read but had not committed to the output is skipped after a
// kill: lost). The real job passes first, with the same seed, so the
// failures are the broken parts' and not the scenario's.
func TestChaosCatchesBrokenJobs(t *testing.T) {
	if testing.Short() {
		t.Skip("runs broker and job processes")
	}
	bin := buildBinary(t)
	// A kill finds nothing to double or skip when it lands right after a
	// checkpoint, before the job wrote or read past it: 3 of 10 kills did
	// (six 6-second runs of the broken sink on 2 loaded cores; one such run
	// failed this test). About 15 kills make missing with every one of
	// them negligible (0.3^15 ≈ 1e-8).
	many := []string{"--duration", "10s", "--gap-min", "400ms", "--gap-max", "800ms"}
	code, out, sum := runChaosProc(t, bin, chaosArgs(t, "kill", many...)...)
	if code != 0 || sum.Faults == 0 || sum.Lost != 0 || sum.Duplicated != 0 || sum.Wedged != 0 {
		t.Fatalf("the real job under kill -9: exit %d, %+v\n%s", code, sum, out)
	}
	t.Logf("real job: %d faults, 0 lost, 0 duplicated", sum.Faults)
	for _, tc := range []struct {
		broken string
		caught func(chaosSummary) bool
	}{
		{"sink", func(s chaosSummary) bool { return s.Duplicated > 0 }},
		{"source", func(s chaosSummary) bool { return s.Lost > 0 }},
	} {
		t.Run(tc.broken, func(t *testing.T) {
			code, out, sum := runChaosProc(t, bin, chaosArgs(t, "kill", append([]string{"--broken", tc.broken}, many...)...)...)
			if code == 0 || !tc.caught(sum) {
				t.Fatalf("broken %s not caught: exit %d, %+v\n%s", tc.broken, code, sum, out)
			}
			t.Logf("broken %s caught: exit %d, %d faults, %d lost, %d duplicated", tc.broken, code, sum.Faults, sum.Lost, sum.Duplicated)
		})
	}
}

// TestChaosScenariosPass runs a few scenarios of other kinds once, short:
// a network partition through the proxy, a zombie and a load spike must
// leave the output exactly once, and the report file must say so too.
func TestChaosScenariosPass(t *testing.T) {
	if testing.Short() {
		t.Skip("runs broker and job processes")
	}
	bin := buildBinary(t)
	report := filepath.Join(t.TempDir(), "report.json")
	code, out, sum := runChaosProc(t, bin, chaosArgs(t, "partition-reset,zombie,load-spike", "--report", report)...)
	if code != 0 || sum.Lost != 0 || sum.Duplicated != 0 || sum.Wedged != 0 || sum.Violations != 0 || sum.Faults < 3 {
		t.Fatalf("exit %d, %+v\n%s", code, sum, out)
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Summary   chaosSummary      `json:"summary"`
		Scenarios []*scenarioReport `json:"scenarios"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Scenarios) != 3 || rep.Summary.Faults != sum.Faults {
		t.Fatalf("report: %+v", rep)
	}
	for _, s := range rep.Scenarios {
		if s.Faults == 0 || s.Produced == 0 || s.Committed != s.Produced {
			t.Errorf("scenario %s: %+v", s.Name, s)
		}
	}
}

func TestChaosFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--scenario", "nope"},
		{"--duration", "0s"},
		{"--rate", "0"},
		{"--gap-min", "2s", "--gap-max", "1s"},
		{"--broken", "both"},
	} {
		var stdout, stderr strings.Builder
		if err := runChaos(t.Context(), args, &stdout, &stderr); !errors.Is(err, errUsage) {
			t.Errorf("chaos %v: %v, want a usage error", args, err)
		}
		if stderr.Len() == 0 {
			t.Errorf("chaos %v: no message", args)
		}
	}
}

func TestPercentileAndSummary(t *testing.T) {
	xs := []int64{10, 20, 30, 40, 50, 60, 70, 80, 90, 100}
	if p := percentile(xs, 50); p != 50 {
		t.Errorf("p50 = %v", p)
	}
	if p := percentile(xs, 99); p != 100 {
		t.Errorf("p99 = %v", p)
	}
	if p := percentile(nil, 99); p != 0 {
		t.Errorf("p99 of none = %v", p)
	}
	s := summarize(5, []*scenarioReport{
		{Name: "a", Faults: 3, Restarts: 4, Lost: 1},
		{Name: "b", Faults: 2, Duplicated: 2, Wedged: true, Violations: []string{"x"}},
		{Name: "c", Skipped: "why"},
	})
	if s.Scenarios != 3 || s.Skipped != 1 || s.Faults != 5 || s.Restarts != 4 || s.Lost != 1 || s.Duplicated != 2 || s.Wedged != 1 || s.Violations != 1 {
		t.Fatalf("summary %+v", s)
	}
	if s.PerScen["b"].Duplicated != 2 || s.PerScen["c"].Skipped != "why" {
		t.Fatalf("per scenario %+v", s.PerScen)
	}
}
