package sluice

import (
	"sync"

	"github.com/sluicehq/sluice/checkpoint"
)

// OnCheckpointComplete registers fn to be called once for every checkpoint
// or savepoint the job completes, in every attempt, with its statistics
// (the entry the coordinator's history holds for it; docs/design.md §8).
// The metrics use it so that their checkpoint duration histogram observes
// each checkpoint exactly once, however many complete between two scrapes.
//
// fn runs on the job master loop and must return quickly; it must not call
// the Environment's blocking methods (TriggerSavepoint, StopWithSavepoint).
// Safe to call before or while the job executes; register before Execute
// to see every checkpoint.
func (e *Environment) OnCheckpointComplete(fn func(checkpoint.CheckpointStats)) {
	e.ckHooks.mu.Lock()
	defer e.ckHooks.mu.Unlock()
	e.ckHooks.fns = append(e.ckHooks.fns, fn)
}

// checkpointHooks are the functions of OnCheckpointComplete.
type checkpointHooks struct {
	mu  sync.Mutex
	fns []func(checkpoint.CheckpointStats)
}

// call calls every registered function with cs.
func (h *checkpointHooks) call(cs checkpoint.CheckpointStats) {
	h.mu.Lock()
	fns := h.fns
	h.mu.Unlock()
	for _, fn := range fns {
		fn(cs)
	}
}

// Config returns the environment's configuration with the defaults
// applied: what the job runs with (the metrics export its checkpoint
// interval and timeout).
func (e *Environment) Config() Config { return e.cfg }
