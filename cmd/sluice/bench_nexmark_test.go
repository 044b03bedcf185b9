package main

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// TestBenchNexmarkJSON runs `sluice bench nexmark --query q0 --events 10000
// --json` as a user would (the binary re-executes itself per query) and
// checks the JSON line: the keys the benchmark promises, and q0's figures.
func TestBenchNexmarkJSON(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "bench", "nexmark", "--query", "q0", "--events", "10000", "--parallelism", "2", "--json")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 1 {
		t.Fatalf("want one JSON line, got %q", out)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
		t.Fatalf("%v: %s", err, lines[0])
	}
	for _, k := range []string{"query", "events", "outputs", "events_per_sec", "events_per_sec_per_core", "peak_rss_bytes"} {
		if _, ok := m[k]; !ok {
			t.Errorf("key %q missing in %s", k, lines[0])
		}
	}
	// 10000 events hold 9200 bids, and q0 passes every bid.
	if m["query"] != "q0" || m["events"] != 10000.0 || m["outputs"] != 9200.0 {
		t.Errorf("query/events/outputs %v/%v/%v, want q0/10000/9200", m["query"], m["events"], m["outputs"])
	}
	for _, k := range []string{"events_per_sec", "events_per_sec_per_core", "peak_rss_bytes"} {
		if v, _ := m[k].(float64); v <= 0 {
			t.Errorf("%s = %v, want > 0", k, m[k])
		}
	}
}

// TestBenchNexmarkFlags: bad flags are refused, naming the flag.
func TestBenchNexmarkFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--query", "q99"}, "--query: unknown query \"q99\""},
		{[]string{"--profile", "fast"}, "--profile"},
		{[]string{"--events", "0"}, "--events"},
		{[]string{"--rate", "-1"}, "nexmark.rate"},
	} {
		var stdout, stderr bytes.Buffer
		err := runBench(t.Context(), append([]string{"nexmark"}, tc.args...), &stdout, &stderr)
		if err == nil || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: err %v, stderr %q, want it to name %q", tc.args, err, stderr.String(), tc.want)
		}
	}
}
