package runtime

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/checkpoint/store"
	"github.com/sluicehq/sluice/clock"
	"github.com/sluicehq/sluice/restart"
)

// idleSource is a source driver with no records: it only takes part in
// checkpoints.
type idleSource struct{ avail chan struct{} }

func (s *idleSource) Open(context.Context, *OperatorContext) error { return nil }
func (s *idleSource) Poll(context.Context) (PollStatus, error)     { return NothingAvailable, nil }
func (s *idleSource) Available() <-chan struct{}                   { return s.avail }
func (s *idleSource) Snapshot(context.Context, Barrier) (map[string][][]byte, error) {
	return nil, nil
}
func (s *idleSource) NotifyComplete(context.Context, int64) error { return nil }
func (s *idleSource) Close(context.Context) error                 { return nil }

// slowMetadata is a Storage whose _metadata commits for the checkpoints in
// block wait until release is closed.
type slowMetadata struct {
	store.Storage
	block   map[string]bool
	release chan struct{}
}

func (s *slowMetadata) Create(ctx context.Context, name string) (store.Writer, error) {
	w, err := s.Storage.Create(ctx, name)
	if err != nil || !s.block[name] {
		return w, err
	}
	return &slowWriter{Writer: w, release: s.release}, nil
}

type slowWriter struct {
	store.Writer
	release chan struct{}
}

func (w *slowWriter) Commit() (int64, uint32, error) {
	<-w.release
	return w.Writer.Commit()
}

// TestMetadataWriteOffTheLoop: while checkpoint 1's _metadata write hangs
// (a slow or stuck disk), the job master loop goes on: the checkpoint
// expires on time and Status reports it; once the write returns, the
// aborted checkpoint's files are deleted (after the write, so it cannot
// recreate them), and the job still stops with a final checkpoint. With
// the write on the loop, nothing expired until the disk answered.
func TestMetadataWriteOffTheLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		fsys, err := store.NewFS(dir)
		if err != nil {
			t.Fatal(err)
		}
		slow := &slowMetadata{Storage: fsys, block: map[string]bool{store.CheckpointDir(1) + "/" + store.MetadataName: true}, release: make(chan struct{})}
		src := &idleSource{avail: make(chan struct{})}
		plan := &Plan{JobName: "slow-disk", Vertices: []*Vertex{{
			ID: 0, Name: "src", UID: "src", Parallelism: 1, UIDs: []string{"src"},
			Instantiate: func(*Wiring) (*Chain, error) { return &Chain{SourceUID: "src", Source: src}, nil },
		}}}
		j, err := NewJob(plan, Config{
			Checkpoint: checkpoint.Config{Interval: time.Second, Timeout: 5 * time.Second, MinPause: time.Second},
			Restart:    restart.NoRestart(), Store: store.NewCheckpoints(slow), Clock: clock.Real{},
			Logger: quietTestLogger(),
		})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- j.Run(t.Context()) }()

		time.Sleep(1500 * time.Millisecond) // checkpoint 1 triggered at 1s, acked, persisting
		synctest.Wait()
		if st := j.Status(); st.CheckpointsFailed != 0 || st.CheckpointsCompleted != 0 {
			t.Fatalf("after 1.5s: %d failed, %d completed; want checkpoint 1 persisting", st.CheckpointsFailed, st.CheckpointsCompleted)
		}
		time.Sleep(5 * time.Second) // past 1s + 5s: checkpoint 1 expires
		synctest.Wait()
		if st := j.Status(); st.CheckpointsFailed != 1 {
			t.Fatalf("checkpoint 1's _metadata write hangs: %d checkpoints failed at 6.5s, want 1 (expired while persisting)", st.CheckpointsFailed)
		}
		if _, err := os.Stat(filepath.Join(dir, store.CheckpointDir(1))); err != nil {
			t.Fatalf("checkpoint 1's files deleted while its _metadata write still runs: %v", err)
		}
		close(slow.release)
		synctest.Wait()
		if _, err := os.Stat(filepath.Join(dir, store.CheckpointDir(1))); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("aborted checkpoint 1 still on disk after its write returned: %v", err)
		}
		j.Stop()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		if m := j.LastCompleted(); m == nil || m.CheckpointID < 2 {
			t.Fatalf("last completed %+v, want the final checkpoint after 1", m)
		}
	})
}

// quietTestLogger discards the job's log unless SLUICE_TEST_LOG is set.
func quietTestLogger() *slog.Logger {
	if os.Getenv("SLUICE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
