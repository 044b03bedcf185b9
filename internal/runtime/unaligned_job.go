package runtime

import (
	"errors"
	"fmt"
	"sort"

	"github.com/sluicehq/sluice/checkpoint"
)

// ErrUnalignedRescale is wrapped by the error of a restore that would change
// the parallelism of a job from a checkpoint holding channel state: the
// in-flight records of an unaligned checkpoint belong to the subtask that
// captured them and are not redistributed (docs/design.md §3 "Unaligned
// checkpoints").
var ErrUnalignedRescale = errors.New("an unaligned checkpoint with in-flight records cannot be restored at another parallelism")

// unalignedCheckpoint reports whether checkpoint b runs unaligned (at once
// or after its aligned timeout): periodic checkpoints in exactly-once mode
// with Config.Unaligned. Savepoints and the final checkpoint stay aligned,
// as in Flink: what a stop leaves must be processed before its snapshot.
func (a *attempt) unalignedCheckpoint(b Barrier) bool {
	return a.cfg.Unaligned && a.cfg.Mode != checkpoint.AtLeastOnce && b.Kind == checkpoint.KindCheckpoint && !b.Stop
}

// unalignedBarrier flags b unaligned from the start when checkpoints are
// unaligned without an aligned timeout.
func (a *attempt) unalignedBarrier(b Barrier) Barrier {
	if a.unalignedCheckpoint(b) && a.cfg.AlignedTimeout == 0 {
		b.Unaligned = true
	}
	return b
}

// announceUnaligned tells every non-source task that checkpoint b runs
// unaligned: at once, or from its trigger plus the aligned timeout on. The
// notice travels on the control channel, which a task drains before its
// data, so it overtakes every record in flight — the role of Flink's
// priority barrier; the barrier itself still follows the data on every
// channel and ends that channel's capture.
func (a *attempt) announceUnaligned(b Barrier) error {
	if !a.unalignedCheckpoint(b) {
		return nil
	}
	c := taskCtl{kind: ctlUnaligned, barrier: b}
	if a.cfg.AlignedTimeout > 0 {
		from := b.Timestamp
		if from.IsZero() {
			from = a.clock.Now()
		}
		c.at = from.Add(a.cfg.AlignedTimeout)
	}
	for _, t := range a.tasks {
		if t.chain.Source != nil {
			continue
		}
		if err := a.sendCtl(t, c); err != nil {
			return err
		}
	}
	return nil
}

// checkChannelRescale refuses to restore a checkpoint holding channel
// state at another parallelism of any operator.
func checkChannelRescale(plan *Plan, rp *restorePoint) error {
	if rp == nil {
		return nil
	}
	uids := make([]string, 0, len(rp.meta.Operators))
	for uid := range rp.meta.Operators {
		uids = append(uids, uid)
	}
	sort.Strings(uids)
	holder := ""
	for _, uid := range uids {
		for _, s := range rp.meta.Operators[uid].Subtasks {
			if len(s.Channels) > 0 && holder == "" {
				holder = fmt.Sprintf("%s/%d", uid, s.Subtask)
			}
		}
	}
	if holder == "" {
		return nil
	}
	for _, v := range plan.Vertices {
		for _, uid := range v.UIDs {
			os, ok := rp.meta.Operators[uid]
			if ok && os.Parallelism != v.Parallelism {
				return fmt.Errorf("restore from checkpoint %d: operator %q had parallelism %d, now %d, and the checkpoint holds in-flight records (first at %s): %w; restore at the old parallelism, then take a savepoint (always aligned) and rescale from it",
					rp.meta.CheckpointID, uid, os.Parallelism, v.Parallelism, holder, ErrUnalignedRescale)
			}
		}
	}
	return nil
}

// restoredChannels returns the channel state the checkpoint holds for
// subtask sub of chain, on its head operator.
func restoredChannels(rp *restorePoint, chain *Chain, sub int) []checkpoint.ChannelState {
	if rp == nil || chain.Source != nil || len(chain.Ops) == 0 {
		return nil
	}
	os, ok := rp.meta.Operators[chain.Ops[0].UID]
	if !ok {
		return nil
	}
	for _, s := range os.Subtasks {
		if s.Subtask == sub {
			return s.Channels
		}
	}
	return nil
}

func channelBytes(cs []checkpoint.ChannelState) int64 {
	var n int64
	for _, c := range cs {
		n += int64(len(c.Data))
	}
	return n
}
