package runtime

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/checkpoint/store"
)

type logBuf struct{ strings.Builder }

func compatJob(t *testing.T, cfg Config) (*Job, *logBuf) {
	t.Helper()
	fs, err := store.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuf{}
	cfg.Store = store.NewCheckpoints(fs)
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	plan := &Plan{JobName: "count", MaxParallelism: 128,
		Vertices: []*Vertex{{UID: "src", UIDs: []string{"src", "count"}}},
		Sources:  map[string]checkpoint.SourceIdentity{"src": {Type: "kafka", Names: []string{"in"}}}}
	j, err := NewJob(plan, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return j, logs
}

func keyedOp() *checkpoint.OperatorState {
	return &checkpoint.OperatorState{Parallelism: 1, Subtasks: []*checkpoint.SubtaskState{{
		Keyed: []checkpoint.StateHandle{{Path: "count-0.keyed"}}}}}
}

func TestCheckRestore(t *testing.T) {
	t.Parallel()
	j, logs := compatJob(t, Config{})
	rp := func(m *checkpoint.Metadata) *restorePoint {
		return &restorePoint{meta: m, src: j.cfg.Store.Snapshot(m.CheckpointID)}
	}
	// A format 1 checkpoint (no sources, no states recorded) of this job
	// restores, with a WARN that it cannot be checked.
	v1 := &checkpoint.Metadata{Version: 1, CheckpointID: 3, JobName: "count", MaxParallelism: 128,
		Operators: map[string]*checkpoint.OperatorState{"count": keyedOp()}}
	if err := j.checkRestore(rp(v1), false); err != nil {
		t.Fatalf("format 1: %v", err)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "metadata format 1") {
		t.Fatalf("format 1 restore not warned about:\n%s", logs.String())
	}
	// But its operators are still checked: uids were always recorded.
	gone := &checkpoint.Metadata{Version: 1, CheckpointID: 4, JobName: "count", MaxParallelism: 128,
		Operators: map[string]*checkpoint.OperatorState{"old": keyedOp()}}
	if err := j.checkRestore(rp(gone), false); !errors.Is(err, checkpoint.ErrIncompatible) ||
		!strings.Contains(err.Error(), `operator "old" (keyed state (states not recorded: metadata format 1))`) {
		t.Fatalf("format 1, removed operator: %v", err)
	}

	// Several differences are all named at once.
	m := &checkpoint.Metadata{Version: 2, CheckpointID: 5, JobName: "other", MaxParallelism: 64,
		Operators: map[string]*checkpoint.OperatorState{},
		Sources:   map[string]checkpoint.SourceIdentity{"src": {Type: "kafka", Names: []string{"x", "y"}}}}
	err := j.checkRestore(rp(m), false)
	for _, want := range []string{"checkpoint has 64 key groups, the job 128", `job "other", this job is "count"`,
		`source "src": the checkpoint read kafka[x,y], the job reads kafka[in]`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err lacks %q: %v", want, err)
		}
	}
	// Named explicitly, another job name is fine (savepoints move between
	// jobs); the other differences are not.
	m.MaxParallelism = 128
	m.Sources = nil
	if err := j.checkRestore(rp(m), true); err != nil {
		t.Fatalf("explicit checkpoint of another job name: %v", err)
	}
	// A stateless operator the job lacks is no reason to refuse.
	m.Operators["stateless"] = &checkpoint.OperatorState{Parallelism: 1, Subtasks: []*checkpoint.SubtaskState{{}}}
	if err := j.checkRestore(rp(m), true); err != nil {
		t.Fatalf("stateless operator: %v", err)
	}
}
