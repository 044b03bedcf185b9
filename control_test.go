package sluice_test

// The control calls of a running job (docs/design.md §8): a checkpoint on
// request and a hard cancel.

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/checkpoint/store"
	"github.com/sluicehq/sluice/codec"
)

// commitCounter is a two-phase-commit sink that counts its commits.
type commitCounter struct {
	commits atomic.Int64
	written atomic.Int64
}

func (c *commitCounter) provider() sluice.SinkProvider[int] {
	return sluice.TwoPhaseCommitSink(sluice.TwoPhaseCommitConfig[int, int]{
		New: func(context.Context, *sluice.OperatorContext) (sluice.TwoPhaseCommitter[int, int], error) {
			return &countingCommitter{c: c}, nil
		},
		TxnCodec: codec.Int,
	})
}

type countingCommitter struct {
	c *commitCounter
	n int
}

func (k *countingCommitter) BeginTransaction(context.Context) (int, error) { k.n++; return k.n, nil }
func (k *countingCommitter) Write(int, int) error                          { k.c.written.Add(1); return nil }
func (k *countingCommitter) PreCommit(context.Context, int) error          { return nil }
func (k *countingCommitter) Commit(context.Context, int) error             { k.c.commits.Add(1); return nil }
func (k *countingCommitter) Abort(context.Context, int) error              { return nil }
func (k *countingCommitter) RecoverAndCommit(context.Context, int) error   { return nil }
func (k *countingCommitter) CleanUp(context.Context, []int) error          { return nil }

// metadataFailer is a checkpoint storage whose _metadata writes fail while
// armed: the checkpoint then fails at its last step (docs/design.md §3
// step 5) and the job keeps running.
type metadataFailer struct {
	store.Storage
	armed atomic.Bool
}

func (m *metadataFailer) Create(ctx context.Context, name string) (store.Writer, error) {
	if m.armed.Load() && strings.HasSuffix(name, store.MetadataName) {
		return nil, errors.New("disk full (injected)")
	}
	return m.Storage.Create(ctx, name)
}

// controlJob is an unbounded job without periodic checkpoints: a log
// source into a two-phase-commit sink.
func controlJob(cfg sluice.Config, src *logSource[int], sink *commitCounter) *sluice.Environment {
	cfg.JobName = "control"
	cfg.BufferTimeout = sluice.FlushAlways
	cfg.Checkpoint = checkpoint.Config{Interval: -1, TolerableFailures: 5}
	cfg.Logger = quietLogger()
	env := sluice.New(cfg)
	sluice.Sink(sluice.FromSource(env, "in", src), "out", sink.provider())
	return env
}

// TestTriggerCheckpoint takes checkpoints on request in a job without
// periodic ones: each returns its id once complete (the metadata is in
// storage, the job's status counts it), a failed one returns its reason
// while the job keeps running, and the next one completes.
func TestTriggerCheckpoint(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fs, err := store.NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	st := &metadataFailer{Storage: fs}
	src, sink := newLogSource[int](), &commitCounter{}
	env := controlJob(sluice.Config{CheckpointStorage: st, SavepointDir: filepath.Join(dir, "sp")}, src, sink)
	if _, err := env.TriggerCheckpoint(ctxTimeout(t)); !errors.Is(err, sluice.ErrNotRunning) {
		t.Fatalf("before Execute: %v, want ErrNotRunning", err)
	}
	x := start(t, env)
	src.Append(1, 2, 3)
	until(t, "records written", func() bool { return sink.written.Load() == 3 })

	id, err := env.TriggerCheckpoint(ctxTimeout(t))
	if err != nil {
		t.Fatalf("TriggerCheckpoint: %v", err)
	}
	if id != 1 {
		t.Fatalf("first checkpoint id %d, want 1", id)
	}
	if _, err := os.Stat(filepath.Join(dir, store.CheckpointDir(id), store.MetadataName)); err != nil {
		t.Fatalf("checkpoint %d returned but its metadata is not in storage: %v", id, err)
	}
	if s := env.Status(); s.LastCheckpointID != id || s.CheckpointsCompleted != 1 {
		t.Fatalf("status after checkpoint %d: last %d, completed %d", id, s.LastCheckpointID, s.CheckpointsCompleted)
	}
	// The sink commits the checkpoint (after it completed).
	until(t, "the checkpoint's commit", func() bool { return sink.commits.Load() == 1 })

	st.armed.Store(true)
	_, err = env.TriggerCheckpoint(ctxTimeout(t))
	if err == nil || !strings.Contains(err.Error(), "checkpoint 2 failed") || !strings.Contains(err.Error(), "disk full (injected)") {
		t.Fatalf("failing checkpoint: %v, want checkpoint 2 failed naming the cause", err)
	}
	if s := env.Status(); s.CheckpointsFailed != 1 || s.LastCheckpointID != 1 {
		t.Fatalf("status after the failure: failed %d, last %d", s.CheckpointsFailed, s.LastCheckpointID)
	}
	st.armed.Store(false)
	src.Append(4)
	id, err = env.TriggerCheckpoint(ctxTimeout(t))
	if err != nil || id != 3 {
		t.Fatalf("checkpoint after the failure: %d, %v; want 3", id, err)
	}
	env.Stop()
	if _, err := x.wait(t); err != nil {
		t.Fatalf("Execute: %v", err)
	}
	if _, err := env.TriggerCheckpoint(ctxTimeout(t)); !errors.Is(err, sluice.ErrNotRunning) {
		t.Fatalf("after the end: %v, want ErrNotRunning", err)
	}
}

// TestCancel cancels a running job: Execute returns an error wrapping
// ErrCancelled, no final checkpoint is taken and nothing is committed, as
// opposed to Stop, which commits a final checkpoint (checked in the same
// test so that the difference is seen).
func TestCancel(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name          string
		end           func(*sluice.Environment)
		wantErr       error
		wantCommitted bool
	}{
		{"cancel", (*sluice.Environment).Cancel, sluice.ErrCancelled, false},
		{"stop", (*sluice.Environment).Stop, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			src, sink := newLogSource[int](), &commitCounter{}
			env := controlJob(sluice.Config{CheckpointDir: dir}, src, sink)
			x := start(t, env)
			src.Append(1, 2, 3)
			until(t, "records written", func() bool { return sink.written.Load() == 3 })
			tc.end(env)
			res, err := x.wait(t)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("Execute after %s: %v, want %v", tc.name, err, tc.wantErr)
			}
			committed := res.Checkpoints > 0 || sink.commits.Load() > 0
			if committed != tc.wantCommitted {
				t.Fatalf("after %s: %d checkpoints, %d commits; want committed=%v", tc.name, res.Checkpoints, sink.commits.Load(), tc.wantCommitted)
			}
			if ids, err := store.NewCheckpoints(mustFS(t, dir)).Completed(ctxTimeout(t)); err != nil || (len(ids) > 0) != tc.wantCommitted {
				t.Fatalf("after %s: checkpoints in storage %v (%v)", tc.name, ids, err)
			}
		})
	}
}

// TestCancelBeforeExecute: a Cancel before Execute cancels the job as soon
// as it runs; a second Cancel is harmless.
func TestCancelBeforeExecute(t *testing.T) {
	t.Parallel()
	src, sink := newLogSource[int](), &commitCounter{}
	env := controlJob(sluice.Config{CheckpointDir: t.TempDir()}, src, sink)
	env.Cancel()
	env.Cancel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := env.Execute(ctx)
	if !errors.Is(err, sluice.ErrCancelled) {
		t.Fatalf("Execute: %v, want ErrCancelled", err)
	}
}

// TestCancelEndsHungStop: Stop takes the final checkpoint, whose commit
// hangs; Cancel then ends the job at once (without waiting for the stop's
// bound), the hung commit sees the cancellation, and Execute's error wraps
// ErrCancelled.
func TestCancelEndsHungStop(t *testing.T) {
	t.Parallel()
	env, h, cancel, done := hangingJob(t)
	defer cancel()
	env.Stop()
	recv(t, h.committing, "the final checkpoint's commit")
	env.Cancel()
	if err := recv(t, done, "Execute to return after Cancel"); !errors.Is(err, sluice.ErrCancelled) {
		t.Fatalf("Execute: %v, want ErrCancelled", err)
	}
	if err := recv(t, h.commitErr, "the commit's error"); !errors.Is(err, context.Canceled) {
		t.Fatalf("the commit returned %v, want context.Canceled", err)
	}
}
