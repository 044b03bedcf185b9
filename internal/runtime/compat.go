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

// RestoreOptions are the overrides and circumstances of a restore that
// the job-level checks depend on (docs/design.md §10).
type RestoreOptions struct {
	// Explicit says the user chose the checkpoint (FromCheckpoint): a
	// savepoint may move between jobs, so the job name is not compared.
	Explicit bool
	// AllowNonRestoredState drops state of operators the job lacks.
	AllowNonRestoredState bool
	// AllowSourceChange restores positions of a source that now reads
	// something else.
	AllowSourceChange bool
}

// RestoreCheck is the verdict of the job-level restore checks on one
// checkpoint and one plan: a pure function of both (ResolveRestore), so
// that the restore and `check` (sluice.Environment.CheckRestore) agree.
type RestoreCheck struct {
	// Refusals are the differences that refuse the restore, each a full
	// sentence naming the checkpoint's value and the job's.
	Refusals []string
	// Dropped lists the uids, sorted, of operators with state in the
	// checkpoint that the job lacks, with a description of each state.
	// They refuse the restore unless AllowNonRestoredState.
	Dropped []DroppedOperator
	// OtherJob is set when the checkpoint of another job name is restored
	// explicitly (allowed, logged at INFO).
	OtherJob bool
	// SourceChanges lists the sources, by uid, that read something else
	// now; they refuse the restore unless AllowSourceChange.
	SourceChanges []SourceChange
	// Old says the metadata predates the checks (format 1).
	Old bool
}

// DroppedOperator is an operator uid with state in a checkpoint that the
// job does not have.
type DroppedOperator struct {
	UID    string
	States []string
}

// SourceChange is a source uid whose identity differs between the
// checkpoint and the job.
type SourceChange struct {
	UID       string
	Then, Now checkpoint.SourceIdentity
}

// ResolveRestore applies the job-level restore checks (docs/design.md
// §10) to checkpoint metadata m and plan p: max parallelism, job name (for
// the job's own checkpoint directory), operator uids with state, and
// source identities. It has no side effects: the job master logs and
// refuses from its result, CheckRestore reports it.
func ResolveRestore(m *checkpoint.Metadata, p *Plan, o RestoreOptions) RestoreCheck {
	var rc RestoreCheck
	rc.Old = m.Version < 2
	if m.MaxParallelism != p.MaxParallelism {
		rc.Refusals = append(rc.Refusals, fmt.Sprintf("max parallelism: checkpoint has %d key groups, the job %d (key groups cannot be remapped; set MaxParallelism to %d)",
			m.MaxParallelism, p.MaxParallelism, m.MaxParallelism))
	}
	if m.JobName != p.JobName && m.JobName != "" {
		if o.Explicit {
			rc.OtherJob = true
		} else {
			rc.Refusals = append(rc.Refusals, fmt.Sprintf("job name: the checkpoint directory holds checkpoints of job %q, this job is %q (use another checkpoint directory, "+
				"or restore one of them explicitly with FromCheckpoint / --from-checkpoint)", m.JobName, p.JobName))
		}
	}
	uids := PlanUIDs(p)
	var dropped []string
	for _, uid := range slices.Sorted(maps.Keys(m.Operators)) {
		op := m.Operators[uid]
		if uids[uid] || !op.HasState() {
			continue
		}
		desc := DescribeOperatorState(op)
		rc.Dropped = append(rc.Dropped, DroppedOperator{UID: uid, States: desc})
		dropped = append(dropped, fmt.Sprintf("operator %q (%s)", uid, strings.Join(desc, "; ")))
	}
	if len(dropped) > 0 && !o.AllowNonRestoredState {
		rc.Refusals = append(rc.Refusals, fmt.Sprintf("the checkpoint holds state of operators the job does not have: %s; if an operator was renamed, give it its old uid "+
			"(sluice.UID); to drop the state set AllowNonRestoredState (--allow-non-restored-state)", strings.Join(dropped, ", ")))
	}
	for _, uid := range slices.Sorted(maps.Keys(p.Sources)) {
		now := p.Sources[uid]
		then, recorded := m.Sources[uid]
		if !recorded || then.Equal(now) {
			continue // a new source, a version 1 checkpoint, one that did not describe itself, or unchanged
		}
		rc.SourceChanges = append(rc.SourceChanges, SourceChange{UID: uid, Then: then, Now: now})
		if !o.AllowSourceChange {
			rc.Refusals = append(rc.Refusals, fmt.Sprintf("source %q: the checkpoint read %s, the job reads %s; to restore the positions of the splits both read and start the others fresh, "+
				"set AllowSourceChange (--allow-source-change)", uid, then, now))
		}
	}
	return rc
}

// PlanUIDs returns the set of operator uids of plan p.
func PlanUIDs(p *Plan) map[string]bool {
	uids := map[string]bool{}
	for _, v := range p.Vertices {
		for _, uid := range v.UIDs {
			uids[uid] = true
		}
	}
	return uids
}

// checkRestore decides whether the checkpoint rp belongs to this job
// (docs/design.md §10), with ResolveRestore, and logs what it allows. Each
// difference is named, with the checkpoint's value and the job's; the
// error wraps checkpoint.ErrIncompatible. explicit says the user chose the
// checkpoint (FromCheckpoint).
func (j *Job) checkRestore(rp *restorePoint, explicit bool) error {
	m, p := rp.meta, j.plan
	where := fmt.Sprintf("checkpoint %d (%s)", m.CheckpointID, rp.src.Location())
	rc := ResolveRestore(m, p, RestoreOptions{Explicit: explicit, AllowNonRestoredState: j.cfg.AllowNonRestoredState, AllowSourceChange: j.cfg.AllowSourceChange})
	if rc.Old {
		j.log.Warn("checkpoint predates restore compatibility checks (metadata format 1): its sources and state codecs cannot be checked; "+
			"the next checkpoint records them", "checkpoint", where)
	}
	if rc.OtherJob {
		j.log.Info("restoring a checkpoint of another job name", "checkpoint", where, "checkpoint job", m.JobName, "job", p.JobName)
	}
	if len(rc.Refusals) > 0 {
		errs := make([]error, len(rc.Refusals))
		for i, r := range rc.Refusals {
			errs[i] = errors.New(r)
		}
		return fmt.Errorf("restore %s into job %q: %w: %w", where, p.JobName, checkpoint.ErrIncompatible, errors.Join(errs...))
	}
	for _, d := range rc.Dropped {
		for _, s := range d.States {
			j.log.Warn("dropping state of an operator the job does not have (AllowNonRestoredState)",
				"checkpoint", where, "operator", d.UID, "state", s)
		}
	}
	for _, sc := range rc.SourceChanges {
		j.log.Warn("restoring source positions of a changed source (AllowSourceChange): positions of splits it no longer reads are dropped, new ones start fresh",
			"checkpoint", where, "operator", sc.UID, "checkpoint source", sc.Then.String(), "job source", sc.Now.String())
	}
	return nil
}

// DescribeOperatorState lists an operator's states for messages: keyed
// states with kind and codecs, and operator state names.
func DescribeOperatorState(op *checkpoint.OperatorState) []string {
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
