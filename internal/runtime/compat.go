package runtime

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/sluicehq/sluice/checkpoint"
)

// describedSnapshot is implemented by keyed snapshots that describe their
// states (heap.Snapshot), so that the metadata records them
// (docs/design.md §10).
type describedSnapshot interface {
	KeyCodec() string
	States() []checkpoint.StateInfo
}

// checkRestore decides whether the checkpoint rp belongs to this job
// (docs/design.md §10): max parallelism, job name (for the job's own
// checkpoint directory), operator uids with state, and source identities.
// Each difference is named, with the checkpoint's value and the job's; the
// error wraps checkpoint.ErrIncompatible. explicit says the user chose the
// checkpoint (FromCheckpoint): a savepoint may move between jobs, so the
// job name is then not compared.
func (j *Job) checkRestore(rp *restorePoint, explicit bool) error {
	m, p := rp.meta, j.plan
	where := fmt.Sprintf("checkpoint %d (%s)", m.CheckpointID, rp.src.Location())
	var errs []error
	refuse := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}
	if m.Version < 2 {
		j.log.Warn("checkpoint predates restore compatibility checks (metadata format 1): its sources and state codecs cannot be checked; "+
			"the next checkpoint records them", "checkpoint", where)
	}
	if m.MaxParallelism != p.MaxParallelism {
		refuse("max parallelism: checkpoint has %d key groups, the job %d (key groups cannot be remapped; set MaxParallelism to %d)",
			m.MaxParallelism, p.MaxParallelism, m.MaxParallelism)
	}
	if m.JobName != p.JobName && m.JobName != "" {
		if explicit {
			j.log.Info("restoring a checkpoint of another job name", "checkpoint", where, "checkpoint job", m.JobName, "job", p.JobName)
		} else {
			refuse("job name: the checkpoint directory holds checkpoints of job %q, this job is %q (use another checkpoint directory, "+
				"or restore one of them explicitly with FromCheckpoint / --from-checkpoint)", m.JobName, p.JobName)
		}
	}

	uids := map[string]bool{}
	for _, v := range p.Vertices {
		for _, uid := range v.UIDs {
			uids[uid] = true
		}
	}
	var dropped []string
	for _, uid := range slices.Sorted(maps.Keys(m.Operators)) {
		op := m.Operators[uid]
		if uids[uid] || !op.HasState() {
			continue
		}
		desc := describeOperatorState(op)
		if j.cfg.AllowNonRestoredState {
			for _, s := range desc {
				j.log.Warn("dropping state of an operator the job does not have (AllowNonRestoredState)",
					"checkpoint", where, "operator", uid, "state", s)
			}
			continue
		}
		dropped = append(dropped, fmt.Sprintf("operator %q (%s)", uid, strings.Join(desc, "; ")))
	}
	if len(dropped) > 0 {
		refuse("the checkpoint holds state of operators the job does not have: %s; if an operator was renamed, give it its old uid "+
			"(sluice.UID); to drop the state set AllowNonRestoredState (--allow-non-restored-state)", strings.Join(dropped, ", "))
	}

	for _, uid := range slices.Sorted(maps.Keys(p.Sources)) {
		now := p.Sources[uid]
		then, recorded := m.Sources[uid]
		switch {
		case !recorded:
			continue // a new source, a version 1 checkpoint, or one that did not describe itself
		case then.Equal(now):
			continue
		case j.cfg.AllowSourceChange:
			j.log.Warn("restoring source positions of a changed source (AllowSourceChange): positions of splits it no longer reads are dropped, new ones start fresh",
				"checkpoint", where, "operator", uid, "checkpoint source", then.String(), "job source", now.String())
		default:
			refuse("source %q: the checkpoint read %s, the job reads %s; to restore the positions of the splits both read and start the others fresh, "+
				"set AllowSourceChange (--allow-source-change)", uid, then, now)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("restore %s into job %q: %w: %w", where, p.JobName, checkpoint.ErrIncompatible, err)
	}
	return nil
}

// describeOperatorState lists an operator's states for messages: keyed
// states with kind and codecs, and operator state names.
func describeOperatorState(op *checkpoint.OperatorState) []string {
	var out []string
	kc, states := op.States()
	for _, s := range states {
		out = append(out, "keyed state "+s.String())
	}
	keyed := false
	names := map[string]bool{}
	for _, st := range op.Subtasks {
		if st == nil {
			continue
		}
		keyed = keyed || len(st.Keyed) > 0
		for n := range st.Operator {
			names[n] = true
		}
	}
	if keyed && len(states) == 0 {
		out = append(out, "keyed state (states not recorded: metadata format 1)")
	}
	for _, n := range slices.Sorted(maps.Keys(names)) {
		if b, ok := strings.CutPrefix(n, checkpoint.BroadcastStatePrefix); ok {
			out = append(out, fmt.Sprintf("broadcast state %q", b))
			continue
		}
		out = append(out, fmt.Sprintf("operator state %q", n))
	}
	if kc != "" && len(out) > 0 {
		out[0] += ", keys " + kc
	}
	return out
}
