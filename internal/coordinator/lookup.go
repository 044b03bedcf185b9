package coordinator

import (
	"slices"

	"github.com/sluicehq/sluice/checkpoint"
)

// CheckpointStats returns a copy of the statistics of snapshot id, false
// when it is not in the history (never triggered by this coordinator, or
// dropped beyond checkpoint.HistorySize). Cheaper than Stats for one entry:
// the runtime calls it once per completed checkpoint.
func (c *Coordinator) CheckpointStats(id int64) (checkpoint.CheckpointStats, bool) {
	for i := len(c.history) - 1; i >= 0; i-- {
		if h := c.history[i]; h.ID == id {
			out := *h
			out.Tasks = slices.Clone(h.Tasks)
			if out.Status == checkpoint.StatusInProgress {
				out.Duration = c.now.Sub(out.TriggeredAt)
			}
			return out, true
		}
	}
	return checkpoint.CheckpointStats{}, false
}
