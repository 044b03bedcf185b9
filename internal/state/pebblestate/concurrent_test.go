package pebblestate_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/internal/runtime"
	"github.com/sluicehq/sluice/internal/state/heap"
	"github.com/sluicehq/sluice/internal/state/pebblestate"
)

// TestSnapshotIsolatedFromLaterWrites writes a snapshot (canonical and
// incremental) on another goroutine while the task goroutine keeps
// overwriting every key: both restore to the values at the snapshot.
// Run with -race.
func TestSnapshotIsolatedFromLaterWrites(t *testing.T) {
	const maxP, n = 16, 5000
	r := checkpoint.KeyGroupRange{Start: 0, End: maxP - 1}
	fs := &fakeShared{root: t.TempDir()}
	c := newCounter(t, maxP, r, pebblestate.Options{Dir: t.TempDir() + "/db", Incremental: true}, nil)
	for i := range n {
		c.put(t, fmt.Sprint("k", i), int64(i))
	}
	s := c.b.Snapshot(1)
	type result struct {
		data []byte
		offs []int64
		hs   []checkpoint.StateHandle
		err  error
	}
	done := make(chan result)
	go func() {
		var buf bytes.Buffer
		offs, err := s.WriteKeyGroups(&buf)
		var hs []checkpoint.StateHandle
		if err == nil {
			hs, err = s.WriteIncremental(context.Background(), fs)
		}
		s.Release()
		done <- result{buf.Bytes(), offs, hs, err}
	}()
	for round := range 3 {
		for i := range n {
			c.put(t, fmt.Sprint("k", i), int64(i+(round+1)*n))
		}
	}
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	for _, restore := range []func(*pebblestate.Backend[string]) error{
		func(b *pebblestate.Backend[string]) error {
			return b.Restore([]heap.RestoreFile{{Data: res.data, Range: r, Offsets: res.offs}})
		},
		func(b *pebblestate.Backend[string]) error {
			return b.RestoreNative(context.Background(), []runtime.RestoredKeyed{fs.restored(res.hs, r)})
		},
	} {
		c2 := newCounter(t, maxP, r, pebblestate.Options{Dir: t.TempDir() + "/db"}, restore)
		for i := range n {
			c2.want(t, fmt.Sprint("k", i), int64(i))
		}
	}
}

// TestReleaseAndCloseDuringWrite: Release abandons a running write with
// heap.ErrReleased, Close releases outstanding snapshots, and a snapshot
// of a closed backend reports an error instead of panicking.
func TestReleaseAndCloseDuringWrite(t *testing.T) {
	const maxP = 16
	r := checkpoint.KeyGroupRange{Start: 0, End: maxP - 1}
	b, err := pebblestate.New(codec.String, maxP, r, nil, pebblestate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	v, _ := pebblestate.Value(b, "v", codec.Int64)
	for i := range 100_000 {
		b.SetCurrentKey(fmt.Sprint("k", i))
		v.Update(int64(i))
	}
	s := b.Snapshot(1)
	s.Release()
	if _, err := s.WriteKeyGroups(&bytes.Buffer{}); !errors.Is(err, heap.ErrReleased) {
		t.Fatalf("write after release: %v", err)
	}
	s2 := b.Snapshot(2)
	started := make(chan struct{})
	proceed := make(chan struct{})
	w := &slowWriter{started: started, proceed: proceed}
	done := make(chan error)
	go func() {
		_, err := s2.WriteKeyGroups(w)
		done <- err
	}()
	<-started
	s2.Release()
	close(proceed)
	if err := <-done; !errors.Is(err, heap.ErrReleased) {
		t.Fatalf("write during release: %v", err)
	}
	s3 := b.Snapshot(3) // never released: Close releases it
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s3.WriteKeyGroups(&bytes.Buffer{}); err == nil {
		t.Fatal("write of a snapshot of a closed backend succeeded")
	}
	if _, err := b.Snapshot(4).WriteKeyGroups(&bytes.Buffer{}); err == nil {
		t.Fatal("snapshot of a closed backend succeeded")
	}
}

// slowWriter signals its first write and holds it until proceed is
// closed.
type slowWriter struct {
	started, proceed chan struct{}
	n                int
}

func (w *slowWriter) Write(p []byte) (int, error) {
	if w.n == 0 {
		close(w.started)
		<-w.proceed
	}
	w.n++
	return len(p), nil
}
