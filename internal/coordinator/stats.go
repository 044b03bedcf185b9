package coordinator

import (
	"slices"

	"github.com/sluicehq/sluice/checkpoint"
)

// Stats returns a copy of the counters and the recent history.
func (c *Coordinator) Stats() checkpoint.Stats {
	s := c.stats
	s.InProgress = len(c.pending)
	s.Retained = slices.Clone(c.retained)
	s.History = make([]checkpoint.CheckpointStats, len(c.history))
	for i, h := range c.history {
		s.History[i] = *h
		s.History[i].Tasks = slices.Clone(h.Tasks)
		if h.Status == checkpoint.StatusInProgress {
			s.History[i].Duration = c.now.Sub(h.TriggeredAt)
		}
	}
	return s
}

// record adds a freshly triggered snapshot to the history, dropping the
// oldest entry beyond HistorySize.
func (c *Coordinator) record(st *checkpoint.CheckpointStats) {
	if len(c.history) == checkpoint.HistorySize {
		// Shift rather than reslice so the backing array does not grow
		// forever under the ever-advancing window.
		copy(c.history, c.history[1:])
		c.history = c.history[:checkpoint.HistorySize-1]
	}
	c.history = append(c.history, st)
}
