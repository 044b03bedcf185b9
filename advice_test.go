package sluice_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/connector/datagen"
	"github.com/sluicehq/sluice/restart"
)

// TestAdviceAtOpenOncePerRun: a source of 3 splits at parallelism 2 reads
// them unevenly. When its subtasks open, the job logs that once at WARN,
// not once per subtask, and not again after a restart.
func TestAdviceAtOpenOncePerRun(t *testing.T) {
	var log logBuffer
	env := sluice.New(sluice.Config{
		JobName: "advice", Parallelism: 2, CheckpointDir: t.TempDir(),
		Checkpoint: checkpoint.Config{Interval: 20 * time.Millisecond},
		Restart:    restart.FixedDelay{Attempts: 3, Delay: -1},
		Logger:     slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	in := sluice.FromSource(env, "gen", datagen.New(datagen.Config{Splits: 3, Keys: 10, RecordsPerSplit: 200}))
	var failed atomic.Bool
	sluice.Sink(in, "sink", sluice.SinkFunc[datagen.Record](func(datagen.Record) error {
		if !failed.Swap(true) {
			return errors.New("one failure")
		}
		return nil
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
	defer cancel()
	res, err := env.Execute(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Restarts != 1 {
		t.Fatalf("%d restarts, want 1", res.Restarts)
	}
	want := `msg="source \"gen\": parallelism 2 is neither a multiple nor a divisor of its 3 splits: subtasks read 1 or 2 each`
	if n := strings.Count(log.String(), want); n != 1 {
		t.Fatalf("warning logged %d times, want 1:\n%s", n, log.String())
	}
	if !strings.Contains(log.String(), "advice=uneven-partitions") {
		t.Errorf("no kind:\n%s", log.String())
	}
	// Advise asks only sources that count partitions: datagen does not.
	if ws, err := env.Advise(ctx); err != nil || len(ws) != 0 {
		t.Errorf("Advise: %v %v", ws, err)
	}
}
