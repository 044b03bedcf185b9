package countjob

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/connector/datagen"
)

// BenchmarkSavepointPause runs the count job with 1M keys of heap state (a
// sequential datagen cycling through them, unthrottled, a file sink) and,
// per iteration, takes a savepoint and then waits for the next periodic
// checkpoint. It reports, for each kind, the time from trigger to
// completion and the longest synchronous snapshot pause of a task (the
// running job's pause; docs/design.md §3 step 4) and the longest barrier
// alignment:
//
//	go test -run '^$' -bench SavepointPause -benchtime 3x ./internal/countjob/
func BenchmarkSavepointPause(b *testing.B) {
	const keys = 1 << 20
	dir := b.TempDir()
	env := sluice.New(sluice.Config{
		JobName: "count", Parallelism: 2, BufferTimeout: 5 * time.Millisecond,
		Checkpoint:    checkpoint.Config{Interval: 2 * time.Second, Timeout: time.Minute},
		CheckpointDir: filepath.Join(dir, "checkpoints"),
		Logger:        quietLogger(),
	})
	gen := datagen.Config{Splits: 2, RecordsPerSplit: 1 << 40, Keys: keys, Distribution: datagen.Sequential}
	Build(env, datagen.New(gen), exactlyOnceSink(filepath.Join(dir, "output")), 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := env.Execute(ctx); done <- err }()
	j := &spJob{env: env}
	// Every key seen at least once: 1M keys in state.
	for j.sinkIn() < 2*keys {
		select {
		case err := <-done:
			b.Fatalf("job ended: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	find := func(id int64) (checkpoint.CheckpointStats, bool) {
		st := env.Status().Checkpoints
		if st == nil {
			return checkpoint.CheckpointStats{}, false
		}
		for _, c := range st.History {
			if c.ID == id && c.Status == checkpoint.StatusCompleted {
				return c, true
			}
		}
		return checkpoint.CheckpointStats{}, false
	}
	var spDur, spSync, spAlign, cpDur, cpSync, cpAlign time.Duration
	for b.Loop() {
		if _, err := env.TriggerSavepoint(ctx); err != nil {
			b.Fatal(err)
		}
		spID := env.Status().Checkpoints.LastCompletedID
		sp, ok := find(spID)
		if !ok || sp.Kind != checkpoint.KindSavepoint {
			b.Fatalf("savepoint %d not in the history: %+v", spID, sp)
		}
		var cp checkpoint.CheckpointStats
		for {
			st := env.Status().Checkpoints
			if st.LastCompletedID > spID {
				if c, ok := find(st.LastCompletedID); ok && c.Kind == checkpoint.KindCheckpoint {
					cp = c
					break
				}
			}
			time.Sleep(5 * time.Millisecond) // polling counters; nothing decided by time
		}
		spDur += sp.Duration
		spSync = max(spSync, sp.MaxSyncDuration)
		spAlign = max(spAlign, sp.MaxAlignment)
		cpDur += cp.Duration
		cpSync = max(cpSync, cp.MaxSyncDuration)
		cpAlign = max(cpAlign, cp.MaxAlignment)
	}
	n := float64(b.N)
	b.ReportMetric(float64(spDur.Milliseconds())/n, "savepoint-ms")
	b.ReportMetric(float64(cpDur.Milliseconds())/n, "checkpoint-ms")
	b.ReportMetric(float64(spSync.Microseconds()), "savepoint-max-sync-µs")
	b.ReportMetric(float64(cpSync.Microseconds()), "checkpoint-max-sync-µs")
	b.ReportMetric(float64(spAlign.Microseconds()), "savepoint-max-align-µs")
	b.ReportMetric(float64(cpAlign.Microseconds()), "checkpoint-max-align-µs")
	b.StopTimer()
	cancel()
	<-done
}
