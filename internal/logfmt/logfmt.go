// Package logfmt makes the loggers of Sluice's commands: log/slog's text
// handler, or its JSON handler for log collectors (--log-format json), one
// record a line (docs/design.md §8).
package logfmt

import (
	"fmt"
	"io"
	"log/slog"
)

// The values of --log-format.
const (
	// Text is slog's key=value text format, for people. The default.
	Text = "text"
	// JSON is one JSON object a line, with the keys time, level, msg and
	// each attribute's, for log collectors.
	JSON = "json"
)

// Usage is the usage text of a --log-format flag.
const Usage = `log format on stderr: text (key=value) or json (one JSON object a line)`

// Check refuses a format that is neither Text nor JSON; the caller prefixes
// the error with the key as the user wrote it.
func Check(format string) error {
	if format != Text && format != JSON {
		return fmt.Errorf("must be %s or %s, got %q", Text, JSON, format)
	}
	return nil
}

// New returns a logger writing records at level and above to w in format
// (Text or JSON; Check first, New treats anything but JSON as Text).
func New(w io.Writer, format string, level slog.Leveler) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == JSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
