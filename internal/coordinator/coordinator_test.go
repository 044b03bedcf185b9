package coordinator

import (
	"errors"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/checkpoint"
)

// TestCoordinatorConfig checks that the coordinator resolves the defaults
// of its Config and the -1 sentinel of TolerableFailures.
func TestCoordinatorConfig(t *testing.T) {
	t.Parallel()
	want := checkpoint.Config{
		Interval: 5 * time.Second, Timeout: 60 * time.Second, MinPause: 500 * time.Millisecond,
		MaxConcurrent: 1, TolerableFailures: 3, Mode: checkpoint.ExactlyOnce, Retained: 3,
	}
	set := checkpoint.Config{TolerableFailures: -1}
	if got := tolerable(set); got != 0 {
		t.Errorf("tolerable() with -1 = %d, want 0", got)
	}
	c, err := NewCoordinator(checkpoint.Config{}, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Config(); got != want {
		t.Errorf("Coordinator.Config() = %+v, want %+v", got, want)
	}
	// NewCoordinator refuses an invalid config with Validate's error
	// (checkpoint.TestConfigValidate checks those errors).
	for _, bad := range []checkpoint.Config{
		{Interval: 5},
		{TolerableFailures: -2},
		{Mode: "sometimes", Retained: -1},
	} {
		verr := bad.Validate()
		if verr == nil {
			t.Fatalf("%+v.Validate() = nil, want an error", bad)
		}
		if _, err := NewCoordinator(bad, testOptions()); err == nil || err.Error() != verr.Error() {
			t.Errorf("NewCoordinator(%+v) error = %v, want %v", bad, err, verr)
		}
	}
}

// TestNewCoordinatorOptions checks that bad options are refused with an
// error naming the option.
func TestNewCoordinatorOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts func(*CoordinatorOptions)
		want string
	}{
		{"max parallelism", func(o *CoordinatorOptions) { o.MaxParallelism = 0 }, "MaxParallelism must be positive, got 0"},
		{"first id", func(o *CoordinatorOptions) { o.FirstID = 0 }, "FirstID must be at least 1, got 0"},
		{"no tasks", func(o *CoordinatorOptions) { o.Tasks = nil }, "Tasks must not be empty"},
		{"duplicate task", func(o *CoordinatorOptions) { o.Tasks = append(o.Tasks, checkpoint.TaskID{Vertex: "a", Subtask: 0}) }, "task a/0 listed twice"},
		{"completed id zero", func(o *CoordinatorOptions) { o.Completed = []int64{0} }, "Completed[0] = 0: ids start at 1"},
		{"completed not increasing", func(o *CoordinatorOptions) {
			o.Completed = []int64{3, 2}
			o.FirstID = 4
		}, "Completed must be strictly increasing (oldest first), got 2 after 3"},
		{"completed not below first id", func(o *CoordinatorOptions) {
			o.Completed = []int64{1, 5}
			o.FirstID = 5
		}, "Completed[1] = 5 is not below FirstID 5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := testOptions()
			tt.opts(&o)
			_, err := NewCoordinator(checkpoint.Config{}, o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewCoordinator() error = %v, want it to contain %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "checkpoint: coordinator options: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

// newTest returns a coordinator with the script config and the given tasks.
func newTest(t *testing.T, cfg checkpoint.Config, tasks ...checkpoint.TaskID) *Coordinator {
	t.Helper()
	o := testOptions()
	if len(tasks) > 0 {
		o.Tasks = tasks
	}
	c, err := NewCoordinator(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// stepAll steps every event and returns the actions.
func stepAll(c *Coordinator, evs ...Event) []Action {
	for _, ev := range evs {
		c.Step(ev)
	}
	return c.Ready()
}

// TestMetadata checks the metadata assembled from the acks (docs/design.md §3 steps
// 4-5): states merged per operator uid across chained tasks, subtasks sorted,
// parallelism counted, the job's identity and times filled in.
func TestMetadata(t *testing.T) {
	t.Parallel()
	src0, src1, sink0 := checkpoint.TaskID{Vertex: "src", Subtask: 0}, checkpoint.TaskID{Vertex: "src", Subtask: 1}, checkpoint.TaskID{Vertex: "sink", Subtask: 0}
	c := newTest(t, scriptConfig(), src0, src1, sink0)
	if a := stepAll(c, TickEvent{Now: at(10 * time.Second)}); len(a) != 1 {
		t.Fatalf("want one trigger, got %v", a)
	}
	// Task src/i is a chain of operators "src" and "map"; "sink" is alone.
	st := func(i int, kg checkpoint.KeyGroupRange) *checkpoint.SubtaskState {
		return &checkpoint.SubtaskState{Subtask: i, KeyGroups: kg, Keyed: []checkpoint.StateHandle{{Path: "f", Size: int64(i + 1)}}}
	}
	s1src, s1map := st(1, checkpoint.KeyGroupRange{}), st(1, checkpoint.KeyGroupRange{Start: 64, End: 127})
	s0src, s0map := st(0, checkpoint.KeyGroupRange{}), st(0, checkpoint.KeyGroupRange{Start: 0, End: 63})
	sink := &checkpoint.SubtaskState{Subtask: 0, Operator: map[string][][]byte{"txn": {[]byte("t1")}}}
	acks := []Event{
		TickEvent{Now: at(12 * time.Second)},
		AckEvent{CheckpointID: 1, Task: src1, States: map[string]*checkpoint.SubtaskState{"src": s1src, "map": s1map},
			Bytes: 100, AlignmentDuration: 3 * time.Millisecond, SyncDuration: time.Millisecond},
		AckEvent{CheckpointID: 1, Task: sink0, States: map[string]*checkpoint.SubtaskState{"sink": sink, "stateless": nil},
			Bytes: 10, AlignmentDuration: 7 * time.Millisecond, SyncDuration: 2 * time.Millisecond},
		TickEvent{Now: at(13 * time.Second)},
		AckEvent{CheckpointID: 1, Task: src0, States: map[string]*checkpoint.SubtaskState{"src": s0src, "map": s0map},
			Bytes: 1, AlignmentDuration: 5 * time.Millisecond, SyncDuration: 9 * time.Millisecond, AsyncDuration: 4 * time.Millisecond},
	}
	got := stepAll(c, acks...)
	want := &checkpoint.Metadata{
		Version:        checkpoint.FormatVersion,
		CheckpointID:   1,
		Kind:           checkpoint.KindCheckpoint,
		JobName:        "job",
		TriggeredAt:    at(10 * time.Second),
		CompletedAt:    at(13 * time.Second),
		MaxParallelism: 128,
		Operators: map[string]*checkpoint.OperatorState{
			"src":  {Parallelism: 2, Subtasks: []*checkpoint.SubtaskState{s0src, s1src}},
			"map":  {Parallelism: 2, Subtasks: []*checkpoint.SubtaskState{s0map, s1map}},
			"sink": {Parallelism: 1, Subtasks: []*checkpoint.SubtaskState{sink}},
		},
	}
	if len(got) != 1 {
		t.Fatalf("want one PersistAction, got %v", got)
	}
	pa, ok := got[0].(PersistAction)
	if !ok || !reflect.DeepEqual(pa.Metadata, want) {
		t.Fatalf("got %#v\nwant metadata %#v", got[0], want)
	}
	// The stats of the pending checkpoint add up the acks.
	h := c.Stats().History[0]
	wantStats := checkpoint.CheckpointStats{
		ID: 1, Kind: checkpoint.KindCheckpoint, Status: checkpoint.StatusInProgress, TriggeredAt: at(10 * time.Second),
		Duration: 3 * time.Second, Bytes: 111, MaxAlignment: 7 * time.Millisecond,
		MaxSyncDuration: 9 * time.Millisecond, MaxAsyncDuration: 4 * time.Millisecond, FullBytes: 111, IncrementalBytes: 111,
		Acked: 3, Total: 3,
		// One entry per ack, in ack order, timed by the coordinator.
		Tasks: []checkpoint.TaskCheckpointStats{
			{Vertex: "src", Subtask: 1, AckedAt: at(12 * time.Second), Duration: 2 * time.Second, Bytes: 100,
				Alignment: 3 * time.Millisecond, SyncDuration: time.Millisecond},
			{Vertex: "sink", Subtask: 0, AckedAt: at(12 * time.Second), Duration: 2 * time.Second, Bytes: 10,
				Alignment: 7 * time.Millisecond, SyncDuration: 2 * time.Millisecond},
			{Vertex: "src", Subtask: 0, AckedAt: at(13 * time.Second), Duration: 3 * time.Second, Bytes: 1,
				Alignment: 5 * time.Millisecond, SyncDuration: 9 * time.Millisecond, AsyncDuration: 4 * time.Millisecond},
		},
	}
	if !reflect.DeepEqual(h, wantStats) {
		t.Errorf("stats = %+v\nwant %+v", h, wantStats)
	}
	// CompleteAction hands back the same metadata.
	got = stepAll(c, TickEvent{Now: at(14 * time.Second)}, PersistedEvent{CheckpointID: 1})
	if len(got) != 1 || got[0].(CompleteAction).Metadata != pa.Metadata {
		t.Fatalf("want CompleteAction with the persisted metadata, got %v", got)
	}
	h = c.Stats().History[0]
	if h.Status != checkpoint.StatusCompleted || h.CompletedAt != at(14*time.Second) || h.Duration != 4*time.Second {
		t.Errorf("completed stats = %+v", h)
	}
}

// TestMetadataDeterministic checks that the same events give the same
// actions and metadata on every run, whatever Go's map iteration order
// (STYLE: deterministic cores).
func TestMetadataDeterministic(t *testing.T) {
	t.Parallel()
	run := func() []Action {
		tasks := []checkpoint.TaskID{{Vertex: "a", Subtask: 0}, {Vertex: "a", Subtask: 1}, {Vertex: "a", Subtask: 2}, {Vertex: "a", Subtask: 3}}
		c := newTest(t, scriptConfig(), tasks...)
		evs := []Event{TickEvent{Now: at(10 * time.Second)}}
		for _, tk := range tasks {
			states := map[string]*checkpoint.SubtaskState{}
			for _, uid := range []string{"u1", "u2", "u3", "u4", "u5", "u6"} {
				states[uid] = &checkpoint.SubtaskState{Subtask: tk.Subtask}
			}
			evs = append(evs, AckEvent{CheckpointID: 1, Task: tk, States: states})
		}
		return stepAll(c, evs...)
	}
	first := run()
	for range 20 {
		if got := run(); !reflect.DeepEqual(got, first) {
			t.Fatalf("run differs:\n%#v\n%#v", got, first)
		}
	}
}

// TestConflictingStates checks that two tasks reporting the same operator
// subtask (a runtime bug) abort the checkpoint as a decline instead of
// silently dropping one state (docs/design.md §3 step 4).
func TestConflictingStates(t *testing.T) {
	t.Parallel()
	c := newTest(t, scriptConfig())
	stepAll(c, TickEvent{Now: at(10 * time.Second)})
	same := map[string]*checkpoint.SubtaskState{"op": {Subtask: 0}}
	got := stepAll(c,
		AckEvent{CheckpointID: 1, Task: checkpoint.TaskID{Vertex: "a", Subtask: 0}, States: same},
		AckEvent{CheckpointID: 1, Task: checkpoint.TaskID{Vertex: "b", Subtask: 0}, States: same},
	)
	want := `checkpoint 1 declined by task b/0: invalid ack: state of operator "op" subtask 0 already reported by task a/0`
	if len(got) != 1 || formatAction(got[0]) != "abort: "+want {
		t.Fatalf("got %v, want abort %q", got, want)
	}
	if !errors.Is(got[0].(AbortAction).Reason, ErrDeclined) {
		t.Errorf("reason does not wrap ErrDeclined")
	}
}

// TestReasonsWrap checks that abort reasons and the job failure wrap both
// their cause and the underlying error, so the runtime can use errors.Is.
func TestReasonsWrap(t *testing.T) {
	t.Parallel()
	diskFull := errors.New("disk full")
	boom := errors.New("boom")
	c := newTest(t, checkpoint.Config{Interval: 10 * time.Second, TolerableFailures: 1})

	stepAll(c, TickEvent{Now: at(10 * time.Second)})
	got := stepAll(c, DeclineEvent{CheckpointID: 1, Task: checkpoint.TaskID{Vertex: "b", Subtask: 0}, Err: boom})
	reason := got[0].(AbortAction).Reason
	var ae *AbortError
	if !errors.As(reason, &ae) || ae.Task != (checkpoint.TaskID{Vertex: "b", Subtask: 0}) || ae.Err != boom {
		t.Errorf("decline reason = %#v", reason)
	}
	if !errors.Is(reason, ErrDeclined) || !errors.Is(reason, boom) || errors.Is(reason, ErrExpired) {
		t.Errorf("decline reason %v wraps the wrong errors", reason)
	}

	stepAll(c, TickEvent{Now: at(20 * time.Second)})
	got = stepAll(c,
		AckEvent{CheckpointID: 2, Task: checkpoint.TaskID{Vertex: "a", Subtask: 0}},
		AckEvent{CheckpointID: 2, Task: checkpoint.TaskID{Vertex: "b", Subtask: 0}},
		PersistedEvent{CheckpointID: 2, Err: diskFull},
	)
	if len(got) != 3 {
		t.Fatalf("want persist, abort, fail-job; got %v", got)
	}
	if r := got[1].(AbortAction).Reason; !errors.Is(r, ErrPersistFailed) || !errors.Is(r, diskFull) {
		t.Errorf("persist reason %v wraps the wrong errors", r)
	}
	fail := got[2].(FailJobAction).Err
	if !errors.Is(fail, checkpoint.ErrTooManyFailures) || !errors.Is(fail, ErrPersistFailed) || !errors.Is(fail, diskFull) {
		t.Errorf("fail-job error %v wraps the wrong errors", fail)
	}

	c = newTest(t, scriptConfig())
	stepAll(c, TickEvent{Now: at(10 * time.Second)})
	got = stepAll(c, TickEvent{Now: at(40 * time.Second)})
	if r := got[0].(AbortAction).Reason; !errors.Is(r, ErrExpired) {
		t.Errorf("timeout reason %v does not wrap ErrExpired", r)
	}
}

// TestStatsHistory checks that the history is bounded to the last
// HistorySize snapshots, oldest first, and that Stats returns a copy.
func TestStatsHistory(t *testing.T) {
	t.Parallel()
	c := newTest(t, scriptConfig())
	const n = checkpoint.HistorySize + 8
	for i := range n {
		c.Step(TriggerSavepointEvent{Now: at(time.Duration(i) * time.Second)})
	}
	if got := len(c.Ready()); got != n {
		t.Fatalf("want %d triggers, got %d", n, got)
	}
	s := c.Stats()
	if len(s.History) != checkpoint.HistorySize || s.History[0].ID != n-checkpoint.HistorySize+1 || s.History[checkpoint.HistorySize-1].ID != n {
		t.Fatalf("history = %d entries, ids %d..%d; want %d entries, ids %d..%d",
			len(s.History), s.History[0].ID, s.History[len(s.History)-1].ID, checkpoint.HistorySize, n-checkpoint.HistorySize+1, n)
	}
	if s.InProgress != n {
		t.Errorf("InProgress = %d, want %d", s.InProgress, n)
	}
	// In progress, Duration runs to the latest time seen.
	if last := s.History[checkpoint.HistorySize-1]; last.Status != checkpoint.StatusInProgress || last.Duration != 0 {
		t.Errorf("newest entry = %+v", last)
	}
	if first := s.History[0]; first.Duration != checkpoint.HistorySize*time.Second-time.Second {
		t.Errorf("oldest entry duration = %v", first.Duration)
	}
	// Mutating the copy does not touch the coordinator.
	s.History[0].ID = -1
	s.Retained = append(s.Retained, 99)
	if s2 := c.Stats(); s2.History[0].ID == -1 || len(s2.Retained) != 0 {
		t.Errorf("Stats is not a copy")
	}
	// A failed entry carries its reason.
	stepAll(c, DeclineEvent{CheckpointID: n, Task: checkpoint.TaskID{Vertex: "a", Subtask: 0}, Err: errors.New("boom")})
	last := c.Stats().History[checkpoint.HistorySize-1]
	if last.Status != checkpoint.StatusFailed || last.FailureReason != "savepoint 40 declined by task a/0: boom" ||
		last.CompletedAt != at((n-1)*time.Second) {
		t.Errorf("failed entry = %+v", last)
	}
}

// TestReadyDrains checks that Ready hands out each action once.
func TestReadyDrains(t *testing.T) {
	t.Parallel()
	c := newTest(t, scriptConfig())
	c.Step(TickEvent{Now: at(10 * time.Second)})
	if got := c.Ready(); len(got) != 1 {
		t.Fatalf("first Ready = %v", got)
	}
	if got := c.Ready(); got != nil {
		t.Fatalf("second Ready = %v, want nil", got)
	}
}

// TestPointerEvents checks that pointers to events work like the events,
// and that a nil pointer or nil event is no event.
func TestPointerEvents(t *testing.T) {
	t.Parallel()
	c := newTest(t, scriptConfig())
	var nilTick *TickEvent
	got := stepAll(c,
		nil, nilTick,
		&TickEvent{Now: at(10 * time.Second)},
		&AckEvent{CheckpointID: 1, Task: checkpoint.TaskID{Vertex: "a", Subtask: 0}},
		&AckEvent{CheckpointID: 1, Task: checkpoint.TaskID{Vertex: "b", Subtask: 0}},
		&PersistedEvent{CheckpointID: 1},
		&TriggerSavepointEvent{Now: at(11 * time.Second)},
		&DeclineEvent{CheckpointID: 2, Task: checkpoint.TaskID{Vertex: "a", Subtask: 0}},
		&TriggerFinalCheckpointEvent{Now: at(12 * time.Second)},
	)
	var lines []string
	for _, a := range got {
		lines = append(lines, formatAction(a))
	}
	want := []string{
		"trigger 1 checkpoint @10s",
		"persist 1",
		"complete 1 checkpoint",
		"trigger 2 savepoint @11s",
		"abort: savepoint 2 declined by task a/0",
		"trigger 3 checkpoint @12s stop",
	}
	if !reflect.DeepEqual(lines, want) {
		t.Errorf("got\n\t%s\nwant\n\t%s", strings.Join(lines, "\n\t"), strings.Join(want, "\n\t"))
	}
}

// TestRandomInterleavings drives coordinators with seeded random sequences
// of every event kind, and checks the protocol's invariants after each step
// (docs/design.md §3 steps 1-6). Each seed runs twice and must give the same trace:
// the coordinator is deterministic.
func TestRandomInterleavings(t *testing.T) {
	t.Parallel()
	for seed := range uint64(300) {
		first := randomRun(t, seed)
		if again := randomRun(t, seed); !reflect.DeepEqual(first, again) {
			t.Fatalf("seed %d: two runs differ", seed)
		}
	}
}

// randomRun runs one seeded random interaction, checking invariants, and
// returns its trace of actions.
func randomRun(t *testing.T, seed uint64) []string {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	cfg := checkpoint.Config{
		Interval:          time.Duration(1+r.IntN(10)) * time.Second,
		Timeout:           time.Duration(5+r.IntN(30)) * time.Second,
		MinPause:          time.Duration(1+r.IntN(5)) * time.Second,
		MaxConcurrent:     1 + r.IntN(3),
		TolerableFailures: r.IntN(6) - 1,
		Retained:          1 + r.IntN(3),
	}
	tasks := []checkpoint.TaskID{{Vertex: "a", Subtask: 0}, {Vertex: "a", Subtask: 1}, {Vertex: "b", Subtask: 0}}
	c := newTest(t, cfg, tasks...)
	cfg = c.Config()

	type state struct {
		kind       checkpoint.Kind
		stop       bool
		persisting bool
	}
	var (
		trace     []string
		live      = map[int64]*state{} // the model's pending snapshots
		completed = map[int64]checkpoint.Kind{}
		discarded = map[int64]bool{}
		lastID    int64
		failed    bool
		now       time.Duration
	)
	fatal := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d: "+format+"\ntrace:\n\t%s", append(append([]any{seed}, args...), strings.Join(trace, "\n\t"))...)
	}
	for step := 0; step < 200; step++ {
		var ev Event
		// Mostly a pending id, sometimes a stale or unknown one.
		id := lastID - int64(r.IntN(3)) + int64(r.IntN(2))
		if ids := slices.Sorted(maps.Keys(live)); len(ids) > 0 && r.IntN(10) < 8 {
			id = ids[r.IntN(len(ids))]
		}
		task := tasks[r.IntN(len(tasks))]
		if r.IntN(20) == 0 {
			task = checkpoint.TaskID{Vertex: "stranger", Subtask: 0}
		}
		switch k := r.IntN(100); {
		case k < 30:
			now += time.Duration(r.IntN(3000)) * time.Millisecond
			ev = TickEvent{Now: at(now)}
		case k < 70:
			ev = AckEvent{CheckpointID: id, Task: task, States: map[string]*checkpoint.SubtaskState{task.Vertex: {Subtask: task.Subtask}}}
		case k < 74:
			ev = DeclineEvent{CheckpointID: id, Task: task, Err: errors.New("boom")}
		case k < 90:
			var err error
			if r.IntN(4) == 0 {
				err = errors.New("disk full")
			}
			ev = PersistedEvent{CheckpointID: id, Err: err}
		case k < 93:
			ev = TriggerSavepointEvent{Now: at(now), Stop: r.IntN(4) == 0}
		case k < 94:
			ev = TriggerFinalCheckpointEvent{Now: at(now)}
		default:
			ev = TickEvent{Now: at(now)} // a tick that does not move time
		}
		c.Step(ev)
		var completedNow int64 // the checkpoint completed by this step, if any
		for _, a := range c.Ready() {
			trace = append(trace, formatAction(a))
			if failed {
				fatal("action after FailJobAction: %s", formatAction(a))
			}
			switch a := a.(type) {
			case TriggerAction:
				if a.CheckpointID <= lastID {
					fatal("trigger id %d not above %d", a.CheckpointID, lastID)
				}
				_, isTick := ev.(TickEvent)
				if isTick {
					// Periodic: limits hold.
					if a.Kind != checkpoint.KindCheckpoint || a.Stop {
						fatal("periodic trigger of %s stop=%v", a.Kind, a.Stop)
					}
					if len(live) >= cfg.MaxConcurrent {
						fatal("periodic trigger with %d pending, max %d", len(live), cfg.MaxConcurrent)
					}
					for _, s := range live {
						if s.stop {
							fatal("periodic trigger while a stop snapshot is pending")
						}
					}
				}
				lastID = a.CheckpointID
				live[a.CheckpointID] = &state{kind: a.Kind, stop: a.Stop}
			case PersistAction:
				s := live[a.Metadata.CheckpointID]
				if s == nil || s.persisting {
					fatal("persist of %d not pending or twice", a.Metadata.CheckpointID)
				}
				s.persisting = true
			case CompleteAction:
				s := live[a.CheckpointID]
				if s == nil || !s.persisting {
					fatal("complete of %d without persist", a.CheckpointID)
				}
				delete(live, a.CheckpointID)
				completed[a.CheckpointID] = a.Kind
				if a.Kind == checkpoint.KindCheckpoint {
					completedNow = a.CheckpointID
				}
			case AbortAction:
				s := live[a.CheckpointID]
				if s == nil {
					fatal("abort of %d, not pending", a.CheckpointID)
				}
				// Subsumption follows the CompleteAction of a newer
				// checkpoint, and never hits a savepoint.
				if errors.Is(a.Reason, ErrSubsumed) && (s.kind != checkpoint.KindCheckpoint || a.CheckpointID >= completedNow) {
					fatal("%d subsumed, but the checkpoint completed now is %d", a.CheckpointID, completedNow)
				}
				delete(live, a.CheckpointID)
			case DiscardAction:
				if completed[a.CheckpointID] != checkpoint.KindCheckpoint || discarded[a.CheckpointID] {
					fatal("discard of %d: not a completed checkpoint, or twice", a.CheckpointID)
				}
				discarded[a.CheckpointID] = true
			case FailJobAction:
				if len(live) != 0 {
					fatal("FailJobAction with %d snapshots still pending", len(live))
				}
				failed = true
			}
		}
		// The coordinator's view matches the model's.
		var want []int64
		for id := range live {
			want = append(want, id)
		}
		slices.Sort(want)
		if got := c.Pending(); !slices.Equal(got, want) {
			fatal("Pending() = %v, model %v", got, want)
		}
		if s := c.Stats(); len(s.Retained) > cfg.Retained || s.ConsecutiveFailures > tolerable(cfg)+1 {
			fatal("stats out of bounds: %+v", s)
		}
		if d, ok := c.NextDeadline(); ok && failed {
			fatal("deadline %v after failing the job", d)
		}
	}
	return trace
}
