package sluice

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/checkpoint/store"
	"github.com/sluicehq/sluice/clock"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/internal/runtime"
	"github.com/sluicehq/sluice/internal/state/heap"
	"github.com/sluicehq/sluice/keygroup"
)

// Outcome is what restoring a checkpoint does to one operator or state
// (docs/design.md §10), as CheckRestore reports it.
type Outcome int

// The outcomes of a restore, per operator and state.
const (
	// RestoredAsIs: the state is restored with the codecs it was written
	// with (or ones that read its bytes unchanged).
	RestoredAsIs Outcome = iota + 1
	// Migrated: a codec of the state changed and declares that it reads the
	// old version (codec.Evolving); every entry is decoded with the old
	// reader at restore, and the next checkpoint writes the new version.
	Migrated
	// Added: the job has the operator or state, the checkpoint does not;
	// it starts empty. (Printed "new"; the name New is taken by the
	// package's constructor.)
	Added
	// Dropped: the checkpoint has the operator or state, the job does not.
	// A dropped operator's state needs AllowNonRestoredState
	// (--allow-non-restored-state); a state an existing operator no longer
	// registers is kept unchanged in later checkpoints but is invisible to
	// the job (see RestoreReport.Kept).
	Dropped
	// Incompatible: the restore is refused; Reason says why.
	Incompatible
)

// String returns the outcome as `check` prints it: "restored as is",
// "migrated", "new", "dropped" or "incompatible".
func (o Outcome) String() string {
	switch o {
	case RestoredAsIs:
		return "restored as is"
	case Migrated:
		return "migrated"
	case Added:
		return "new"
	case Dropped:
		return "dropped"
	case Incompatible:
		return "incompatible"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// RestoreReport is CheckRestore's answer: what restoring a checkpoint or
// savepoint into the job as built would do, per operator and state.
type RestoreReport struct {
	// Checkpoint is where the checkpoint was read from; CheckpointID and
	// Kind are its id and kind (checkpoint or savepoint).
	Checkpoint   string
	CheckpointID int64
	Kind         checkpoint.Kind
	// CheckpointJob is the job name the checkpoint records, Job the name
	// of the job as built.
	CheckpointJob, Job string
	// Operators lists every operator uid with state in the checkpoint or
	// in the job, sorted by uid.
	Operators []OperatorRestore
	// Problems are refusals that belong to no one state: max parallelism,
	// a changed source. Each is a full sentence.
	Problems []string
}

// OperatorRestore is what a restore does to one operator uid.
type OperatorRestore struct {
	// UID is the operator's uid.
	UID string
	// Outcome sums up the operator: Added (not in the checkpoint), Dropped
	// (not in the job), Incompatible if any state is, Migrated if any
	// state is, else RestoredAsIs.
	Outcome Outcome
	// Reason explains an Incompatible or Dropped outcome.
	Reason string
	// OldParallelism is the parallelism the checkpoint was written with
	// (0 for a new operator), NewParallelism the job's (0 for a dropped
	// one). Keyed state redistributes by key group when they differ.
	OldParallelism, NewParallelism int
	// States lists the operator's states, sorted by kind and name.
	States []StateRestore
}

// StateRestore is what a restore does to one state of an operator.
type StateRestore struct {
	// Name is the state's name.
	Name string
	// Kind is "keyed value", "keyed list", "keyed map", "keyed
	// reducing", "broadcast", "operator" or "key codec" (the keyed
	// state's key codec, reported as a state of its own).
	Kind string
	// Outcome is what the restore does to it.
	Outcome Outcome
	// Written are the identities (name@vN) of the codecs the checkpoint
	// wrote it with, Now those the job uses; either may be empty (a new
	// or dropped state, state without recorded codecs).
	Written, Now []string
	// Reason explains the outcome where it is not plain.
	Reason string
}

// OK reports whether the restore would pass its compatibility checks
// without dropping state: false when any operator or state is
// Incompatible or there are Problems, and, unless allowNonRestored, when
// an operator is Dropped. A state an existing operator no longer registers
// (Dropped, but kept unchanged in later checkpoints, as the restore keeps
// it) does not make it false, since the restore does not refuse it; String
// lists it as a warning, and Kept returns such states.
func (r *RestoreReport) OK(allowNonRestored bool) bool {
	if len(r.Problems) > 0 {
		return false
	}
	for _, op := range r.Operators {
		if op.Outcome == Incompatible || op.Outcome == Dropped && !allowNonRestored {
			return false
		}
		for _, s := range op.States {
			if s.Outcome == Incompatible {
				return false
			}
		}
	}
	return true
}

// Kept returns, as "uid/state", the states in the checkpoint that an
// operator the job still has no longer registers (or declares): the
// restore keeps them unchanged in later checkpoints, but the job does not
// see them, which is what a renamed state looks like.
func (r *RestoreReport) Kept() []string {
	var out []string
	for _, op := range r.Operators {
		if op.Outcome == Dropped {
			continue
		}
		for _, s := range op.States {
			if s.Outcome == Dropped {
				out = append(out, op.UID+"/"+s.Name)
			}
		}
	}
	return out
}

// String renders the report as the table `check` prints: a header line,
// then per operator a line and per state an indented line with outcome,
// codecs and reason, then the problems.
func (r *RestoreReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %d (%s) of job %q into job %q\n", r.Kind, r.CheckpointID, r.Checkpoint, r.CheckpointJob, r.Job)
	tw := tabwriter.NewWriter(&b, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "OPERATOR / STATE\tOUTCOME\tCODECS\tNOTE")
	for _, op := range r.Operators {
		par := ""
		switch {
		case op.OldParallelism > 0 && op.NewParallelism > 0 && op.OldParallelism != op.NewParallelism:
			par = fmt.Sprintf("parallelism %d -> %d (state redistributes)", op.OldParallelism, op.NewParallelism)
		case op.NewParallelism > 0:
			par = fmt.Sprintf("parallelism %d", op.NewParallelism)
		case op.OldParallelism > 0:
			par = fmt.Sprintf("parallelism %d", op.OldParallelism)
		}
		note := strings.TrimPrefix(strings.Join([]string{par, op.Reason}, "; "), "; ")
		fmt.Fprintf(tw, "%s\t%s\t\t%s\n", op.UID, op.Outcome, strings.TrimSuffix(note, "; "))
		for _, s := range op.States {
			fmt.Fprintf(tw, "  %s %q\t%s\t%s\t%s\n", s.Kind, s.Name, s.Outcome, codecChange(s.Written, s.Now), s.Reason)
		}
	}
	_ = tw.Flush()
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "problem: %s\n", p)
	}
	for _, k := range r.Kept() {
		fmt.Fprintf(&b, "warning: state %s is in the checkpoint but no longer registered: kept, unseen by the job (renamed?)\n", k)
	}
	return b.String()
}

// codecChange renders written -> now, or one list when they are equal.
func codecChange(written, now []string) string {
	w, n := strings.Join(written, ", "), strings.Join(now, ", ")
	switch {
	case w == n || n == "":
		return w
	case w == "":
		return n
	}
	return w + " -> " + n
}

// CheckRestore compares a checkpoint or savepoint (path as for
// FromCheckpoint: its directory or its _metadata file) with the job as
// built in e, without running it, and reports per operator and state what
// a restore would do (docs/design.md §10): the same rules the restore
// applies, so a report that is OK(cfg.AllowNonRestoredState) means the
// restore passes its compatibility checks. It returns an error when the
// checkpoint cannot be read or the job cannot be planned, not for an
// incompatibility: that is in the report.
func (e *Environment) CheckRestore(path string) (*RestoreReport, error) {
	return e.checkRestore(context.Background(), path)
}

func (e *Environment) checkRestore(ctx context.Context, path string) (*RestoreReport, error) {
	if err := e.cfg.Validate(); err != nil {
		return nil, err
	}
	if e.err != nil {
		return nil, e.err
	}
	plan, err := e.plan()
	if err != nil {
		return nil, err
	}
	m, sn, err := store.LoadPath(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("check restore of %s: %w", path, err)
	}
	r := &RestoreReport{Checkpoint: sn.Location(), CheckpointID: m.CheckpointID, Kind: m.Kind, CheckpointJob: m.JobName, Job: plan.JobName}
	// Dropped operators are reported per operator (OK decides whether
	// they are allowed), so they are allowed here.
	rc := runtime.ResolveRestore(m, plan, runtime.RestoreOptions{Explicit: true,
		AllowNonRestoredState: true, AllowSourceChange: e.cfg.AllowSourceChange})
	r.Problems = rc.Refusals
	par := map[string]int{}
	for _, v := range plan.Vertices {
		for _, uid := range v.UIDs {
			par[uid] = v.Parallelism
		}
	}
	for _, d := range rc.Dropped {
		op := m.Operators[d.UID]
		or := OperatorRestore{UID: d.UID, Outcome: Dropped, OldParallelism: op.Parallelism,
			Reason: "the job has no operator with this uid: its state is dropped, which needs AllowNonRestoredState (--allow-non-restored-state); if it was renamed, give it its old uid (sluice.UID)"}
		for _, s := range checkpointStates(op) {
			s.Outcome = Dropped
			or.States = append(or.States, s)
		}
		r.Operators = append(r.Operators, or)
	}
	probed, err := e.probeStates(ctx, plan, m)
	if err != nil {
		return nil, err
	}
	for _, uid := range slices.Sorted(maps.Keys(par)) {
		op := m.Operators[uid]
		states, stateful := probed[uid]
		if !op.HasState() && len(states) == 0 {
			continue
		}
		if m.Version < 2 && op.HasState() {
			// Format 1 recorded no states: what the job registers restores
			// unchecked, as the restore does.
			for i := range states {
				if states[i].Outcome == Added {
					states[i].Outcome = RestoredAsIs
					states[i].Reason = "metadata format 1: codecs not recorded, cannot be checked"
				}
			}
		}
		or := OperatorRestore{UID: uid, NewParallelism: par[uid]}
		if op.HasState() {
			or.OldParallelism = op.Parallelism
		}
		or.States = states
		if !stateful {
			// Not probed: operator state (sources, sinks) restores as is.
			or.States = checkpointStates(op)
			for i := range or.States {
				or.States[i].Outcome = RestoredAsIs
			}
		}
		or.Outcome = summarize(op.HasState(), or.States)
		r.Operators = append(r.Operators, or)
	}
	slices.SortFunc(r.Operators, func(a, b OperatorRestore) int { return strings.Compare(a.UID, b.UID) })
	return r, nil
}

// summarize derives an operator's outcome from its states'.
func summarize(inCheckpoint bool, states []StateRestore) Outcome {
	if !inCheckpoint {
		return Added
	}
	out := RestoredAsIs
	for _, s := range states {
		switch s.Outcome {
		case Incompatible:
			return Incompatible
		case Migrated:
			out = Migrated
		}
	}
	return out
}

// checkpointStates lists the states an operator has in a checkpoint, with
// their codecs and no outcome yet: keyed states (and their key codec),
// broadcast and operator states.
func checkpointStates(op *checkpoint.OperatorState) []StateRestore {
	var out []StateRestore
	if op == nil {
		return nil
	}
	kc, states := op.States()
	if kc != "" {
		out = append(out, StateRestore{Name: "key", Kind: "key codec", Written: []string{kc}})
	}
	for _, s := range states {
		out = append(out, StateRestore{Name: s.Name, Kind: "keyed " + s.Kind, Written: s.Codecs})
	}
	names := map[string]bool{}
	for _, st := range op.Subtasks {
		if st != nil {
			for n := range st.Operator {
				names[n] = true
			}
		}
	}
	for _, n := range slices.Sorted(maps.Keys(names)) {
		if b, ok := strings.CutPrefix(n, checkpoint.BroadcastStatePrefix); ok {
			out = append(out, StateRestore{Name: b, Kind: "broadcast"})
			continue
		}
		out = append(out, StateRestore{Name: n, Kind: "operator"})
	}
	return out
}

// statePlanner is implemented by the operators whose keyed state a
// restore check plans (keyed functions, windows): after Open with
// runtime.OperatorContext.PlanOnly set, plannedStates returns the backend's
// verdicts.
type statePlanner interface {
	runtime.Operator
	plannedStates() []heap.Resolution
}

// probeStates plans the restore of every keyed operator of the job: it
// builds subtask 0 of each chain and opens its keyed operators with
// PlanOnly set, which runs their registrations (the user's Open) against a
// backend in planning mode, so the codecs are resolved exactly as the
// restore resolves them (heap.Resolution). Nothing is read, sent or
// written; sources and sinks are built but never opened. It returns the
// states per operator uid, for the operators it planned.
func (e *Environment) probeStates(ctx context.Context, plan *runtime.Plan, m *checkpoint.Metadata) (map[string][]StateRestore, error) {
	par := map[int]int{}
	for _, v := range plan.Vertices {
		par[v.ID] = v.Parallelism
	}
	channels := make(map[int]any, len(plan.Edges))
	for _, ed := range plan.Edges {
		channels[ed.ID] = ed.NewChannels(par[ed.From], par[ed.To], 1)
	}
	done := make(chan struct{})
	defer close(done)
	clk := e.cfg.Clock
	if clk == nil {
		clk = clock.Real{}
	}
	quiet := slog.New(slog.DiscardHandler)
	out := map[string][]StateRestore{}
	for _, v := range plan.Vertices {
		tm := runtime.NewTime()
		chain, err := v.Instantiate(&runtime.Wiring{Subtask: 0, Channels: channels, Done: done, Stats: &runtime.TaskStats{}, BatchSize: plan.BatchSize, Time: tm})
		if err != nil {
			return nil, fmt.Errorf("check restore: build %s: %w", v.Name, err)
		}
		for _, op := range chain.Ops {
			sp, keyed := op.Op.(statePlanner)
			bp, bcast := op.Op.(broadcastPlanner)
			if !keyed && !bcast {
				continue
			}
			st := m.Operators[op.UID]
			if st == nil {
				st = &checkpoint.OperatorState{}
			}
			var states []StateRestore
			if keyed {
				rc := &runtime.OperatorContext{UID: op.UID, Name: op.Name, Subtask: 0, Parallelism: v.Parallelism, MaxParallelism: plan.MaxParallelism,
					KeyGroups: keygroup.RangeFor(0, v.Parallelism, plan.MaxParallelism), RunID: "check-restore", Clock: clk, Logger: quiet,
					Time: tm, PlanOnly: st}
				if err := sp.Open(ctx, rc); err != nil {
					return nil, fmt.Errorf("check restore: open %s to learn its states: %w", op.UID, err)
				}
				for _, r := range sp.plannedStates() {
					states = append(states, stateRestore(r))
				}
			}
			if bcast {
				states = append(states, bp.broadcastPlan(st)...)
			}
			for _, s := range checkpointStates(st) {
				if s.Kind == "operator" {
					s.Outcome = RestoredAsIs
					states = append(states, s)
				}
			}
			out[op.UID] = states
		}
	}
	return out, nil
}

// stateRestore converts the backend's verdict on a keyed state.
func stateRestore(r heap.Resolution) StateRestore {
	s := StateRestore{Name: r.Name, Kind: "keyed " + r.Kind, Reason: r.Reason, Written: ids(r.Written), Now: ids(r.Now)}
	if r.Kind == "key codec" {
		s.Name, s.Kind = "key", "key codec"
	}
	switch r.Outcome {
	case heap.AsIs:
		s.Outcome = RestoredAsIs
	case heap.Migrated:
		s.Outcome = Migrated
	case heap.Fresh:
		s.Outcome, s.Reason = Added, "starts empty"
	case heap.Unregistered:
		s.Outcome = Dropped
		s.Reason = "in the checkpoint, but the operator no longer registers it: kept unchanged in later checkpoints, invisible to the job (was it renamed?)"
	default:
		s.Outcome = Incompatible
	}
	return s
}

func ids(in []codec.ID) []string {
	var out []string
	for _, id := range in {
		out = append(out, id.String())
	}
	return out
}

// broadcastPlanner is implemented by the broadcast operators: what
// restoring the checkpointed state of their uid does to their broadcast
// states, which they declare when the job is built.
type broadcastPlanner interface {
	broadcastPlan(st *checkpoint.OperatorState) []StateRestore
}
