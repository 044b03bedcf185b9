package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/checkpoint"
)

func TestList(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, root := newOSStore(t)
	writeCheckpoint(t, c.Snapshot(1), 1, checkpoint.KindCheckpoint)
	writeCheckpoint(t, c.Snapshot(2), 2, checkpoint.KindCheckpoint)
	flipByte(t, filepath.Join(root, "chk-2", "counter-0.keyed"), 5, 0x01)
	w, _ := c.StateWriter(ctx, 3, "s")
	w.Write([]byte("x"))
	w.Commit()
	w, _ = c.StateWriter(ctx, 3, "crashed") // a leftover temporary file
	w.Write([]byte("y"))
	// A savepoint in the same root (ls works on savepoint roots too).
	sp, _ := NewSavepoint(c.Storage(), 10)
	writeCheckpoint(t, sp, 10, checkpoint.KindSavepoint)

	sums, err := List(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	type brief struct {
		id     int64
		kind   checkpoint.Kind
		status Status
		files  int
		ops    int
	}
	var got []brief
	for _, s := range sums {
		got = append(got, brief{s.ID, s.Kind, s.Status, s.Files, len(s.Operators)})
	}
	want := []brief{
		{1, checkpoint.KindCheckpoint, StatusComplete, 3, 2},
		{2, checkpoint.KindCheckpoint, StatusCorrupt, 3, 2},
		{3, checkpoint.KindCheckpoint, StatusIncomplete, 1, 0},
		{10, checkpoint.KindSavepoint, StatusComplete, 3, 2},
	}
	if len(got) != len(want) {
		t.Fatalf("List = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("List[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
	if !errors.Is(sums[1].Err, ErrCorrupt) || sums[0].Size == 0 || sums[0].Location != filepath.Join(root, "chk-1") {
		t.Errorf("summaries: %+v", sums[:2])
	}

	var b strings.Builder
	if err := FormatList(&b, sums); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	t.Logf("ls:\n%s", out)
	for _, want := range []string{
		"ID  KIND", "STATUS", "1   checkpoint  complete", "2   checkpoint  corrupt", "3   checkpoint  incomplete",
		"10  savepoint   complete", "2026-11-25T16:48:01.500Z", "chk-2: corrupt: ", "counter-0.keyed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("ls output lacks %q", want)
		}
	}

	if _, err := List(ctx, filepath.Join(root, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("List of a missing root: %v", err)
	}
}

func TestDescribe(t *testing.T) {
	t.Parallel()
	c, _, _ := newMemStore(t)
	m := writeCheckpoint(t, c.Snapshot(7), 7, checkpoint.KindCheckpoint)
	m.Version = checkpoint.FormatVersion
	m.Sources = map[string]checkpoint.SourceIdentity{"source": {Type: "kafka", Names: []string{"in"}}}
	for _, st := range m.Operators["counter"].Subtasks {
		st.KeyCodec = "string@v1"
		st.States = []checkpoint.StateInfo{{Name: "count", Kind: "value", Codecs: []string{"zigzag-varint@v1"}}}
	}
	var b strings.Builder
	if err := Describe(&b, m); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	t.Logf("inspect:\n%s", out)
	h := m.Operators["counter"].Subtasks[1].Keyed[0]
	for _, want := range []string{
		fmt.Sprintf("checkpoint 7 (format version %d)", checkpoint.FormatVersion),
		"fingerprint:     " + m.Fingerprint(),
		`source "source":  kafka[in]`,
		"keyed state count: value state, codecs zigzag-varint@v1; keys string@v1",
		"job:             demo",
		"completed:       2026-11-25T16:54:01.500Z (took 1.5s)",
		"max parallelism: 8",
		"state files:     2,",
		`operator "counter": parallelism 2, state of 2 subtasks`,
		"subtask 1: key groups 4-7 (4)",
		"keyed state counter-1.keyed: " + formatSize(h.Size) + ", crc32c " + hex8(h.CRC32C) + ", 4 key-group offsets",
		`operator "source": parallelism 1`,
		`operator state "offsets": 2 entries, 9 B`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q", want)
		}
	}
	// Operators are printed in uid order, so output is stable.
	if strings.Index(out, `operator "counter"`) > strings.Index(out, `operator "source"`) {
		t.Error("operators not sorted")
	}
}

func hex8(v uint32) string {
	const digits = "0123456789abcdef"
	b := make([]byte, 8)
	for i := 7; i >= 0; i-- {
		b[i] = digits[v&0xf]
		v >>= 4
	}
	return string(b)
}

func TestFormatSize(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		n    int64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB (1024 B)"}, {1536, "1.5 KiB (1536 B)"},
		{5 << 20, "5.0 MiB (5242880 B)"}, {3 << 30, "3.0 GiB (3221225472 B)"},
	} {
		if got := formatSize(tc.n); got != tc.want {
			t.Errorf("formatSize(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

// TestListDefaultSavepointDir: List of a job's checkpoint directory shows
// the savepoints in its savepoints/ subdirectory (the default
// savepoint-dir), after its checkpoints.
func TestListDefaultSavepointDir(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, root := newOSStore(t)
	writeCheckpoint(t, c.Snapshot(4), 4, checkpoint.KindCheckpoint)
	spRoot, err := NewFS(filepath.Join(root, SavepointsDir))
	if err != nil {
		t.Fatal(err)
	}
	sp, _ := NewSavepoint(spRoot, 7)
	writeCheckpoint(t, sp, 7, checkpoint.KindSavepoint)
	sums, err := List(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	if len(sums) != 2 || sums[0].ID != 4 || sums[1].ID != 7 || sums[1].Kind != checkpoint.KindSavepoint ||
		sums[1].Status != StatusComplete || !strings.HasPrefix(sums[1].Dir, SavepointsDir+"/savepoint-7-") ||
		sums[1].Location != filepath.Join(root, sums[1].Dir) {
		t.Fatalf("List = %+v", sums)
	}
	// The savepoint's location restores as is.
	if _, _, err := LoadPath(ctx, sums[1].Location); err != nil {
		t.Fatal(err)
	}
}
