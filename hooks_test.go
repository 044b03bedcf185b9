package sluice_test

import (
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/clock"
	"github.com/sluicehq/sluice/connector/datagen"
	"github.com/sluicehq/sluice/internal/testsrc"
)

// TestOnCheckpointComplete: the hook is called once for every completed
// checkpoint, with its completed statistics, in id order; the count equals
// the checkpoints the job reports, the final one included.
func TestOnCheckpointComplete(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, 2)
	cfg.Clock = clock.Real{}
	cfg.Checkpoint = checkpoint.Config{Interval: 10 * time.Millisecond}
	env := sluice.New(cfg)
	var mu sync.Mutex
	var got []checkpoint.CheckpointStats
	env.OnCheckpointComplete(func(cs checkpoint.CheckpointStats) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, cs)
	})
	// At most 100 records per split between checkpoints: several
	// checkpoints complete before the input ends, however loaded the machine.
	src := sluice.FromSource(env, "src", testsrc.Gated[datagen.Record](datagen.New(datagen.Config{Splits: 2, RecordsPerSplit: 500, BatchSize: 10}), 100))
	sluice.Sink(src, "sink", sluice.DiscardSink[datagen.Record]())
	res, err := env.Execute(ctxTimeout(t))
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if int64(len(got)) != res.Checkpoints || len(got) < 3 {
		t.Fatalf("hook called %d times, the job completed %d checkpoints (want ≥ 3)", len(got), res.Checkpoints)
	}
	for i, cs := range got {
		if cs.Status != checkpoint.StatusCompleted || cs.CompletedAt.IsZero() || cs.Duration != cs.CompletedAt.Sub(cs.TriggeredAt) {
			t.Errorf("call %d: %+v, want a completed checkpoint's statistics", i, cs)
		}
		if i > 0 && cs.ID <= got[i-1].ID {
			t.Errorf("call %d: id %d after %d", i, cs.ID, got[i-1].ID)
		}
	}
	if last := got[len(got)-1]; last.ID != res.LastCheckpoint.CheckpointID {
		t.Errorf("last hook id %d, last checkpoint %d", last.ID, res.LastCheckpoint.CheckpointID)
	}
}
