package file

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/restart"
)

var bg = context.Background()

// line encodes an int as "v\n".
func line(dst []byte, v int) []byte {
	dst = strconv.AppendInt(dst, int64(v), 10)
	return append(dst, '\n')
}

func opCtx(uid string, sub int, run string) *sluice.OperatorContext {
	return &sluice.OperatorContext{UID: uid, Subtask: sub, Parallelism: 2, RunID: run}
}

func newCommitter(t *testing.T, dir, uid string, sub int, run string) *Committer[int] {
	t.Helper()
	c, err := NewCommitter(Config[int]{Dir: dir, Encode: line}, opCtx(uid, sub, run))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// ls lists the names in dir, sorted.
func ls(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// writeTxn begins a transaction, writes vs and pre-commits it.
func writeTxn(t *testing.T, c *Committer[int], vs ...int) Txn {
	t.Helper()
	txn, err := c.BeginTransaction(bg)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		if err := c.Write(txn, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.PreCommit(bg, txn); err != nil {
		t.Fatal(err)
	}
	return txn
}

// TestLifecycle: begin → write → pre-commit → commit, and what a reader of
// the directory sees at each step (docs/design.md §6).
func TestLifecycle(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "out") // created by the committer
	c := newCommitter(t, dir, "sink", 1, "r1")
	txn, err := c.BeginTransaction(bg)
	if err != nil {
		t.Fatal(err)
	}
	if txn.Final != "part-sink-1-r1-000000" || txn.Temp != ".part-sink-1-r1-000000.inprogress.r1" {
		t.Fatalf("names %q %q", txn.Temp, txn.Final)
	}
	for v := range 20000 { // more than one buffer's worth
		if err := c.Write(txn, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.PreCommit(bg, txn); err != nil {
		t.Fatal(err)
	}
	// Pre-committed: durable, but only as a hidden file.
	if got := ls(t, dir); !slices.Equal(got, []string{txn.Temp}) {
		t.Fatalf("after pre-commit the directory holds %v", got)
	}
	if err := c.Write(txn, 1); err == nil {
		t.Error("write after pre-commit succeeded")
	}
	if err := c.PreCommit(bg, txn); err != nil {
		t.Errorf("second pre-commit: %v", err)
	}
	if err := c.Commit(bg, txn); err != nil {
		t.Fatal(err)
	}
	if got := ls(t, dir); !slices.Equal(got, []string{txn.Final}) {
		t.Fatalf("after commit the directory holds %v", got)
	}
	var want []byte
	for v := range 20000 {
		want = line(want, v)
	}
	if got := read(t, filepath.Join(dir, txn.Final)); got != string(want) {
		t.Fatalf("committed file has %d bytes, want %d", len(got), len(want))
	}
	// The next transaction gets the next name.
	next := writeTxn(t, c, 1)
	if next.Final != "part-sink-1-r1-000001" {
		t.Errorf("second transaction named %q", next.Final)
	}
}

// TestCommitIsIdempotent: commit again after a commit (a restore commits
// the transactions of the checkpoint again, some of which may have been
// committed before the failure).
func TestCommitIsIdempotent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := newCommitter(t, dir, "sink", 0, "r1")
	txn := writeTxn(t, c, 1, 2, 3)
	for i := range 3 {
		if err := c.Commit(bg, txn); err != nil {
			t.Fatalf("commit %d: %v", i+1, err)
		}
	}
	if got := read(t, filepath.Join(dir, txn.Final)); got != "1\n2\n3\n" {
		t.Errorf("committed %q", got)
	}
}

// TestRecoverAfterCrash: the committer dies after the pre-commit (the
// checkpoint completed, the commit never ran); the next attempt, another
// process with another run id, restores the transaction from checkpoint
// bytes and commits it.
func TestRecoverAfterCrash(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	old := newCommitter(t, dir, "sink", 1, "r1")
	txn := writeTxn(t, old, 7, 8)
	stored := TxnCodec.Append(nil, txn)
	old = nil // the crash: nothing of the old committer survives but files and checkpoint bytes

	restored, n, err := TxnCodec.Decode(stored)
	if err != nil || n != len(stored) {
		t.Fatalf("decode: %v (%d of %d bytes)", err, n, len(stored))
	}
	c := newCommitter(t, dir, "sink", 0, "r2") // subtask 0 recovers for everyone
	if err := c.RecoverAndCommit(bg, restored); err != nil {
		t.Fatal(err)
	}
	if err := c.CleanUp(bg, []Txn{restored}); err != nil {
		t.Fatal(err)
	}
	if got := ls(t, dir); !slices.Equal(got, []string{txn.Final}) {
		t.Fatalf("after recovery the directory holds %v", got)
	}
	if got := read(t, filepath.Join(dir, txn.Final)); got != "7\n8\n" {
		t.Errorf("recovered file holds %q", got)
	}
	// Recovering once more (a failure during the restore itself) is fine.
	if err := c.RecoverAndCommit(bg, restored); err != nil {
		t.Errorf("second recovery: %v", err)
	}
	// A decoded transaction can be committed, not written to.
	if err := c.Write(restored, 1); err == nil {
		t.Error("write to a decoded transaction succeeded")
	}
}

// TestCleanUp: strays of crashed attempts go, everything else stays.
func TestCleanUp(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// Attempt r1 of sink "sink": one transaction pre-committed for a
	// checkpoint that completed (recovered below), one pre-committed for a
	// checkpoint that never completed, one still open, one committed.
	r1 := newCommitter(t, dir, "sink", 0, "r1")
	recovered := writeTxn(t, r1, 1)
	strayPre := writeTxn(t, r1, 2)
	committed := writeTxn(t, r1, 3)
	if err := r1.Commit(bg, committed); err != nil {
		t.Fatal(err)
	}
	strayOpen, err := r1.BeginTransaction(bg)
	if err != nil {
		t.Fatal(err)
	}
	// Subtask 1 of the same attempt crashed too.
	strayOther := writeTxn(t, newCommitter(t, dir, "sink", 1, "r1"), 4)
	// Other sinks in the same directory: a uid that extends ours, a uid
	// that escapes to something like ours, another prefix.
	longer := writeTxn(t, newCommitter(t, dir, "sink-2", 0, "r1"), 5)
	escaped := writeTxn(t, newCommitter(t, dir, "sink/x", 0, "r1"), 6)
	otherPrefix, err := NewCommitter(Config[int]{Dir: dir, Encode: line, Prefix: "out"}, opCtx("sink", 0, "r1"))
	if err != nil {
		t.Fatal(err)
	}
	other := writeTxn(t, otherPrefix, 7)
	// Files that are not the sink's at all.
	for _, name := range []string{".part-sink-0-r1-x.inprogress.r1", ".hidden", "part-sink-0-r0-000000", ".part-sink.inprogress.r1"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The new attempt r2: subtask 1 already writes while subtask 0 cleans.
	current := writeTxn(t, newCommitter(t, dir, "sink", 1, "r2"), 8)

	c := newCommitter(t, dir, "sink", 0, "r2")
	if err := c.CleanUp(bg, []Txn{recovered}); err != nil {
		t.Fatal(err)
	}
	got := ls(t, dir)
	for _, gone := range []Txn{strayPre, strayOpen, strayOther} {
		if slices.Contains(got, gone.Temp) {
			t.Errorf("stray %s survived clean-up", gone.Temp)
		}
	}
	for _, kept := range []string{recovered.Temp, committed.Final, longer.Temp, escaped.Temp, other.Temp, current.Temp,
		".part-sink-0-r1-x.inprogress.r1", ".hidden", "part-sink-0-r0-000000", ".part-sink.inprogress.r1"} {
		if !slices.Contains(got, kept) {
			t.Errorf("clean-up removed %s", kept)
		}
	}
	if escaped.Final != "part-sink%2Fx-0-r1-000000" {
		t.Errorf("uid sink/x named %q", escaped.Final)
	}
}

// TestDataLoss: both files of a transaction to commit are gone; Commit
// must say so loudly, never report success.
func TestDataLoss(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := newCommitter(t, dir, "sink", 0, "r1")
	txn := writeTxn(t, c, 1)
	if err := os.Remove(filepath.Join(dir, txn.Temp)); err != nil {
		t.Fatal(err)
	}
	for _, commit := range []func(context.Context, Txn) error{c.Commit, c.RecoverAndCommit} {
		err := commit(bg, txn)
		if !errors.Is(err, ErrDataLoss) {
			t.Fatalf("commit of a vanished transaction: %v, want ErrDataLoss", err)
		}
		if !restart.IsUnrecoverable(err) {
			t.Errorf("data-loss error %q is not marked unrecoverable: a restart would only repeat it", err)
		}
		for _, name := range []string{txn.Temp, txn.Final} {
			if !strings.Contains(err.Error(), name) {
				t.Errorf("data-loss error %q does not name %s", err, name)
			}
		}
	}
}

func TestAbort(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := newCommitter(t, dir, "sink", 0, "r1")
	// An open transaction.
	open, err := c.BeginTransaction(bg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Write(open, 1); err != nil {
		t.Fatal(err)
	}
	if err := c.Abort(bg, open); err != nil {
		t.Fatal(err)
	}
	if err := c.Write(open, 2); err == nil {
		t.Error("write after abort succeeded")
	}
	// A pre-committed one, decoded (abort on restore), and aborting twice.
	pre := writeTxn(t, c, 3)
	dec, _, err := TxnCodec.Decode(TxnCodec.Append(nil, pre))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := c.Abort(bg, dec); err != nil {
			t.Fatal(err)
		}
	}
	if got := ls(t, dir); len(got) != 0 {
		t.Errorf("after aborts the directory holds %v", got)
	}
}

// TestMisuse: the protocol's order is enforced, and names from a corrupt
// checkpoint cannot reach outside the directory.
func TestMisuse(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := newCommitter(t, dir, "sink", 0, "r1")
	open, err := c.BeginTransaction(bg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Commit(bg, open); err == nil || !strings.Contains(err.Error(), "before its pre-commit") {
		t.Errorf("commit before pre-commit: %v", err)
	}
	if err := c.PreCommit(bg, Txn{Temp: open.Temp, Final: open.Final}); err == nil {
		t.Error("pre-commit of a transaction the committer did not open succeeded")
	}
	for _, bad := range []Txn{
		{Temp: "../.x.inprogress.r", Final: "part-x"},
		{Temp: ".x.inprogress.r", Final: "../../etc/passwd"},
		{Temp: "x.inprogress.r", Final: "part-x"},
		{Temp: ".x.inprogress.r", Final: ".part-x"},
		{Temp: ".x.inprogress.r", Final: ""},
		{Temp: "..", Final: "part-x"},
	} {
		if err := c.Commit(bg, bad); err == nil || !strings.Contains(err.Error(), "malformed transaction") {
			t.Errorf("commit of %+v: %v", bad, err)
		}
		if err := c.Abort(bg, bad); err == nil {
			t.Errorf("abort of %+v succeeded", bad)
		}
	}
}

func TestTxnCodec(t *testing.T) {
	t.Parallel()
	txn := Txn{Temp: ".part-s-0-r-000001.inprogress.r", Final: "part-s-0-r-000001"}
	b := TxnCodec.Append([]byte{9}, txn)
	got, n, err := TxnCodec.Decode(b[1:])
	if err != nil || n != len(b)-1 || got.Temp != txn.Temp || got.Final != txn.Final {
		t.Fatalf("round trip: %+v, %d, %v", got, n, err)
	}
	// Every truncation is an error, never a panic or a partial Txn.
	for i := range len(b) - 1 {
		if _, _, err := TxnCodec.Decode(b[1 : 1+i]); !errors.Is(err, codec.ErrTruncated) {
			t.Errorf("decode of %d bytes: %v, want ErrTruncated", i, err)
		}
	}
	if _, _, err := TxnCodec.Decode([]byte{2, 0, 0}); !errors.Is(err, codec.ErrCorrupt) {
		t.Errorf("unknown version: %v, want ErrCorrupt", err)
	}
}

func TestParseTemp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, owner, run string
		ok               bool
	}{
		{".part-sink-0-ab12-000003.inprogress.ab12", "part-sink", "ab12", true},
		{".part-my-sink-12-ab12-000003.inprogress.ab12", "part-my-sink", "ab12", true},
		{".part-sink-0-ab12-000003.inprogress.cd34", "", "", false}, // run ids disagree
		{"part-sink-0-ab12-000003", "", "", false},
		{".part-sink-x-ab12-000003.inprogress.ab12", "", "", false},
		{".part-sink-0-ab12-00000x.inprogress.ab12", "", "", false},
		{".part-0-ab12-000003.inprogress.ab12", "", "", false},
		{".part-sink-0-ab12-000003.inprogress.", "", "", false},
	} {
		owner, run, ok := parseTemp(tc.name)
		if owner != tc.owner || run != tc.run || ok != tc.ok {
			t.Errorf("parseTemp(%q) = %q, %q, %v; want %q, %q, %v", tc.name, owner, run, ok, tc.owner, tc.run, tc.ok)
		}
	}
}

func TestEscape(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		dash bool
		want string
	}{
		{"sink", true, "sink"}, {"my-sink.v2", true, "my-sink.v2"}, {"a/b", true, "a%2Fb"},
		{"a%2Fb", true, "a%252Fb"}, {"run-1", false, "run%2D1"}, {"ü", true, "%C3%BC"},
	} {
		if got := escape(tc.in, tc.dash); got != tc.want {
			t.Errorf("escape(%q, %v) = %q, want %q", tc.in, tc.dash, got, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg  Config[int]
		want string
	}{
		{Config[int]{Dir: "d", Encode: line}, ""},
		{Config[int]{Dir: "d", Encode: line, Prefix: "out_1", BufferSize: 1}, ""},
		{Config[int]{Encode: line}, "file.dir: required"},
		{Config[int]{Dir: "d"}, "file.encode: required"},
		{Config[int]{Dir: "d", Encode: line, Prefix: "part-x"}, `file.prefix: must be letters, digits and underscores (got "part-x")`},
		{Config[int]{Dir: "d", Encode: line, Prefix: ".part"}, "file.prefix"},
		{Config[int]{Dir: "d", Encode: line, BufferSize: -1}, "file.buffer-size: must be >= 1 (got -1)"},
		{Config[int]{Prefix: "a-b", BufferSize: -1}, "file.dir: required\nfile.encode: required\nfile.prefix: must be letters, digits and underscores (got \"a-b\")\nfile.buffer-size: must be >= 1 (got -1)"},
	} {
		err := tc.cfg.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
	if _, err := NewCommitter(Config[int]{Dir: t.TempDir(), Encode: line}, opCtx("sink", 0, "")); err == nil {
		t.Error("committer without a run id")
	}
}

// TestWriteDoesNotAllocate: a record costs an Encode into a reused buffer.
func TestWriteDoesNotAllocate(t *testing.T) {
	dir := t.TempDir()
	c := newCommitter(t, dir, "sink", 0, "r1")
	txn, err := c.BeginTransaction(bg)
	if err != nil {
		t.Fatal(err)
	}
	if a := testing.AllocsPerRun(100000, func() { _ = c.Write(txn, 123456) }); a != 0 {
		t.Errorf("%v allocations per Write, want 0", a)
	}
	if err := c.Abort(bg, txn); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkWrite measures the per-record cost of the sink, buffer flushes
// included (the fsync at pre-commit is per checkpoint, not per record).
//
//	go test -run '^$' -bench Write ./connector/file
func BenchmarkWrite(b *testing.B) {
	dir := b.TempDir()
	c, err := NewCommitter(Config[int]{Dir: dir, Encode: line}, opCtx("sink", 0, "r1"))
	if err != nil {
		b.Fatal(err)
	}
	txn, err := c.BeginTransaction(bg)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := c.Write(txn, i); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if err := c.Abort(bg, txn); err != nil {
		b.Fatal(err)
	}
}
