package sluice_test

import (
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/sluicehq/sluice/checkpoint"
)

func TestDbgUnaligned(t *testing.T) {
	dbgLogger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r := runBackpressured(t, checkpoint.Config{Unaligned: true}, 3*time.Second)
	t.Logf("%+v", r)
}
