package store_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/checkpoint/store"
)

// The life of a checkpoint: tasks write state files and ack with their
// handles, the coordinator writes _metadata (now the checkpoint is
// complete), and after a failure the job restores the latest one.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "sluice-example")
	defer os.RemoveAll(dir)

	fs, err := store.NewFS(filepath.Join(dir, "checkpoints"))
	if err != nil {
		panic(err)
	}
	cps := store.NewCheckpoints(fs)

	// At start: clean up after a crash and number checkpoints past any
	// leftovers.
	if err := cps.CleanIncomplete(ctx); err != nil {
		panic(err)
	}
	maxID, _ := cps.MaxID(ctx)
	id := maxID + 1

	// A task's asynchronous snapshot part.
	w, err := cps.StateWriter(ctx, id, "counter-0.keyed")
	if err != nil {
		panic(err)
	}
	defer w.Abort() // a no-op once committed
	fmt.Fprint(w, "key group 0: a=1 b=2")
	h, err := w.Commit()
	if err != nil {
		panic(err)
	}

	// The coordinator, once every task acked.
	err = cps.WriteMetadata(ctx, &checkpoint.Metadata{
		CheckpointID:   id,
		Kind:           checkpoint.KindCheckpoint,
		JobName:        "example",
		MaxParallelism: 1,
		Operators: map[string]*checkpoint.OperatorState{
			"counter": {Parallelism: 1, Subtasks: []*checkpoint.SubtaskState{
				{Subtask: 0, KeyGroups: checkpoint.KeyGroupRange{Start: 0, End: 0}, Keyed: []checkpoint.StateHandle{h}},
			}},
		},
	})
	if err != nil {
		panic(err)
	}

	// Recovery.
	m, err := cps.Latest(ctx, nil)
	if err != nil {
		panic(err)
	}
	state, err := cps.ReadState(ctx, m.CheckpointID, m.Operators["counter"].Subtasks[0].Keyed[0])
	if err != nil {
		panic(err)
	}
	fmt.Printf("restored checkpoint %d: %s\n", m.CheckpointID, state)
	// Output: restored checkpoint 1: key group 0: a=1 b=2
}
