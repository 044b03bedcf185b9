package countjob

import (
	"io"
	"log/slog"
	"os"
)

// quietLogger keeps expected restart warnings out of test output unless
// SLUICE_TEST_LOG is set.
func quietLogger() *slog.Logger {
	if os.Getenv("SLUICE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
