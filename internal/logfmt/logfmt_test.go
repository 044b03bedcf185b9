package logfmt

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

func TestJSONIsOneObjectPerLine(t *testing.T) {
	var b bytes.Buffer
	log := New(&b, JSON, slog.LevelInfo)
	log.Debug("hidden")
	log.Warn("checkpoint aborted", "checkpoint", 7, "reason", `a "quoted" reason`)
	log.Error("job failed", "err", "boom\nsecond line")
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2:\n%s", len(lines), b.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatalf("%q: %v", lines[0], err)
	}
	if rec["level"] != "WARN" || rec["msg"] != "checkpoint aborted" || rec["checkpoint"] != float64(7) || rec["reason"] != `a "quoted" reason` {
		t.Fatalf("record %v", rec)
	}
	if err := json.Unmarshal([]byte(lines[1]), &rec); err != nil || rec["err"] != "boom\nsecond line" {
		t.Fatalf("%q: %v %v", lines[1], rec, err)
	}
}

func TestTextAndCheck(t *testing.T) {
	var b bytes.Buffer
	New(&b, Text, slog.LevelInfo).Info("hello", "k", 1)
	if !strings.Contains(b.String(), "level=INFO msg=hello k=1") {
		t.Fatalf("text: %q", b.String())
	}
	for _, ok := range []string{Text, JSON} {
		if err := Check(ok); err != nil {
			t.Errorf("Check(%q): %v", ok, err)
		}
	}
	if err := Check("yaml"); err == nil || !strings.Contains(err.Error(), `got "yaml"`) {
		t.Errorf("Check(yaml) = %v", err)
	}
}
