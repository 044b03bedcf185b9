package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/checkpoint"
)

// memRoot is where in-memory stores are rooted.
const memRoot = "/jobs/demo/checkpoints"

// newMemStore returns checkpoints on a crash-simulating in-memory filesystem
// behind a fault injector.
func newMemStore(t *testing.T) (*Checkpoints, *memFS, *faultFS) {
	t.Helper()
	mem := newMemFS(memRoot)
	ff := newFaultFS(mem)
	s, err := newFS(memRoot, ff)
	if err != nil {
		t.Fatal(err)
	}
	return NewCheckpoints(s), mem, ff
}

// newOSStore returns checkpoints in a fresh temporary directory.
func newOSStore(t *testing.T) (*Checkpoints, string) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "checkpoints")
	s, err := NewFS(root)
	if err != nil {
		t.Fatal(err)
	}
	return NewCheckpoints(s), root
}

var t0 = time.Date(2026, 11, 25, 16, 47, 0, 0, time.UTC)

// writeCheckpoint writes a complete checkpoint id in sn: one keyed state file
// per subtask of "counter" (parallelism 2, max parallelism 8) and inline
// operator state for "source". It returns the metadata written.
func writeCheckpoint(t *testing.T, sn *Snapshot, id int64, kind checkpoint.Kind) *checkpoint.Metadata {
	t.Helper()
	ctx := context.Background()
	m := &checkpoint.Metadata{
		CheckpointID:   id,
		Kind:           kind,
		JobName:        "demo",
		TriggeredAt:    t0.Add(time.Duration(id) * time.Minute),
		CompletedAt:    t0.Add(time.Duration(id)*time.Minute + 1500*time.Millisecond),
		MaxParallelism: 8,
		Operators: map[string]*checkpoint.OperatorState{
			"source": {Parallelism: 1, Subtasks: []*checkpoint.SubtaskState{{
				Subtask:  0,
				Operator: map[string][][]byte{"offsets": {[]byte("p0=17"), []byte("p1=4")}},
			}}},
			"counter": {Parallelism: 2},
		},
	}
	for sub := range 2 {
		w, err := sn.StateWriter(ctx, fmt.Sprintf("counter-%d.keyed", sub))
		if err != nil {
			t.Fatal(err)
		}
		var offsets []int64
		for kg := sub * 4; kg < sub*4+4; kg++ {
			offsets = append(offsets, w.Written())
			fmt.Fprintf(w, "checkpoint %d key group %d: %s\n", id, kg, strings.Repeat("x", kg))
		}
		h, err := w.Commit()
		if err != nil {
			t.Fatal(err)
		}
		h.KeyGroupOffsets = offsets
		m.Operators["counter"].Subtasks = append(m.Operators["counter"].Subtasks, &checkpoint.SubtaskState{
			Subtask:   sub,
			KeyGroups: checkpoint.KeyGroupRange{Start: sub * 4, End: sub*4 + 3},
			Keyed:     []checkpoint.StateHandle{h},
		})
	}
	if err := sn.WriteMetadata(ctx, m); err != nil {
		t.Fatal(err)
	}
	return m
}

// capture returns a logger writing JSON records into a buffer, and a
// function returning the records logged so far.
func capture() (*slog.Logger, func() []map[string]any) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	return log, func() []map[string]any {
		var recs []map[string]any
		for line := range strings.Lines(buf.String()) {
			var r map[string]any
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				panic(err)
			}
			recs = append(recs, r)
		}
		return recs
	}
}

// flipByte xors one byte of the file at p.
func flipByte(t *testing.T, p string, off int, mask byte) {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	data[off] ^= mask
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func jsonUnmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

func crc32c(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }
