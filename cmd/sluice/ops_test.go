package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// terminalBuffer is a stdout that says it is a terminal.
type terminalBuffer struct{ bytes.Buffer }

func (*terminalBuffer) IsTerminal() bool { return true }

// demoArgs run the file pipeline for 2.5s: two status updates or more.
func demoArgs(t *testing.T, extra ...string) []string {
	return append([]string{"demo", "--pipeline", "file", "--dir", t.TempDir(), "--duration", "2500ms", "--rate", "20000", "--keys", "100",
		"--checkpoint-interval", "200ms", "--seed", "3"}, extra...)
}

// TestDemoProgress: on a terminal the demo redraws one status line in
// place, and the lines after it start on their own; elsewhere it prints
// plain lines without control characters.
func TestDemoProgress(t *testing.T) {
	t.Parallel()
	t.Run("terminal", func(t *testing.T) {
		t.Parallel()
		var out terminalBuffer
		var errb bytes.Buffer
		if code := run(demoArgs(t), &out, &errb); code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, out.String(), errb.String())
		}
		s := out.String()
		draws := strings.Split(s, "\r\x1b[K")
		if len(draws) < 3 {
			t.Fatalf("status line drawn %d times:\n%q", len(draws)-1, s)
		}
		for _, d := range draws[1 : len(draws)-1] {
			if !strings.Contains(d, "records ") || !strings.Contains(d, "checkpoints ") || strings.Contains(d, "\n") {
				t.Errorf("a redraw %q is not one status line", d)
			}
		}
		if !strings.Contains(s, "\r\x1b[Kduration reached: stopping with a final checkpoint...\n") {
			t.Errorf("the stop line does not replace the status line:\n%q", s)
		}
		if sum := lastJSON(t, s); sum.Lost != 0 || sum.Duplicated != 0 || sum.Produced == 0 {
			t.Errorf("summary %+v", sum)
		}
	})
	t.Run("plain", func(t *testing.T) {
		t.Parallel()
		var out, errb bytes.Buffer
		if code := run(demoArgs(t), &out, &errb); code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, out.String(), errb.String())
		}
		s := out.String()
		if strings.ContainsAny(s, "\r\x1b") {
			t.Errorf("control characters without a terminal:\n%q", s)
		}
		n := 0
		for _, l := range strings.Split(s, "\n") {
			if strings.Contains(l, "/s out ") && strings.Contains(l, "checkpoints ") {
				n++
			}
		}
		if n < 2 {
			t.Errorf("%d status lines:\n%s", n, s)
		}
	})
}

func TestDemoLogFormatJSON(t *testing.T) {
	t.Parallel()
	var out, errb bytes.Buffer
	if code := run(demoArgs(t, "--duration", "600ms", "-v", "--log-format", "json"), &out, &errb); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
	if len(lines) == 0 || lines[0] == "" {
		t.Fatal("no logs with -v")
	}
	for _, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil || rec["msg"] == nil {
			t.Fatalf("stderr line %q is not a JSON record: %v", l, err)
		}
	}
}

func TestOpsFlagsRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"demo", "--log-format", "xml"}, `--log-format: must be text or json, got "xml"`},
		{[]string{"demo", "--pprof", "--http", "off"}, "--pprof: the profiler is served on the control API: set --http too"},
		{[]string{"broker", "--log-format", "xml"}, `--log-format: must be text or json, got "xml"`},
	} {
		var out, errb bytes.Buffer
		if code := run(tc.args, &out, &errb); code != 2 || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q", tc.args, code, errb.String())
		}
	}
}
