// Package file is an exactly-once file sink on Sluice's two-phase-commit
// framework (docs/design.md §6, the file sink).
//
// Each transaction is one file. Records between two checkpoint barriers are
// appended to a hidden in-progress file; at the barrier it is flushed,
// fsynced and closed (pre-commit: durable but invisible); once the
// checkpoint is complete it is renamed to its final name and the directory
// is fsynced (commit: visible, and only then). A reader of Dir therefore
// sees whole files only, and exactly the records of complete checkpoints:
//
//	Dir/part-<uid>-<subtask>-<run>-<seq>                     committed
//	Dir/.part-<uid>-<subtask>-<run>-<seq>.inprogress.<run>   open or pre-committed
//
// Readers must skip names starting with "." (hidden files). <run> is the
// attempt's OperatorContext.RunID, unique per attempt and process, so no
// attempt can ever reuse the name of a file an earlier one left behind;
// <seq> counts the transactions of one subtask in one attempt.
//
// Recovery: the transactions pre-committed for the restored checkpoint are
// committed again (a rename that already happened is recognised, so commit
// is idempotent); every other in-progress file of the sink, written by
// attempts that crashed, is removed by CleanUp, because the records in it
// are replayed from the restored source positions.
//
// Two sinks may share a directory if their uids or prefixes differ: a sink
// only ever touches files whose names carry its own prefix and uid. Two
// running jobs must not share a directory and a sink uid.
package file

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/restart"
)

// DefaultPrefix is the default Config.Prefix.
const DefaultPrefix = "part"

// DefaultBufferSize is the default Config.BufferSize.
const DefaultBufferSize = 64 << 10

// ErrDataLoss is wrapped by Commit when a transaction's data is gone: both
// its pre-committed file and its committed file are missing, so records
// that a complete checkpoint counts as delivered exist nowhere. It is never
// retried away: someone removed files under Dir, or Dir is not the
// directory the checkpoint was written with.
var ErrDataLoss = errors.New("file sink: data loss")

// Config configures a file sink writing values of T.
type Config[T any] struct {
	// Dir is the output directory, created if missing. Required.
	Dir string
	// Encode appends the encoding of one value to dst, conventionally a
	// line such as "key,n\n", and returns the extended slice. It runs once
	// per record on a reused buffer, so it should append without
	// allocating. Required.
	Encode func(dst []byte, v T) []byte
	// Prefix starts the name of every committed file. Default "part". It is
	// letters, digits and underscores only: the file names are parsed back
	// at cleanup, and a dash in the prefix would make "<prefix>-<uid>"
	// ambiguous.
	Prefix string
	// BufferSize is how many bytes are buffered before a write to the
	// in-progress file. Default 64 KiB: large writes for throughput, small
	// enough to stay in cache.
	BufferSize int
}

func (c Config[T]) withDefaults() Config[T] {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.BufferSize == 0 {
		c.BufferSize = DefaultBufferSize
	}
	return c
}

// Validate checks the configuration after defaults and reports every
// offending field, each prefixed with its key, joined with errors.Join.
func (c Config[T]) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("file.dir: required"))
	}
	if c.Encode == nil {
		errs = append(errs, errors.New("file.encode: required"))
	}
	if !isWord(c.Prefix) {
		errs = append(errs, fmt.Errorf("file.prefix: must be letters, digits and underscores (got %q)", c.Prefix))
	}
	if c.BufferSize < 1 {
		errs = append(errs, fmt.Errorf("file.buffer-size: must be >= 1 (got %d)", c.BufferSize))
	}
	return errors.Join(errs...)
}

func isWord(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isWordByte(s[i]) {
			return false
		}
	}
	return true
}

func isWordByte(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_'
}

// escape makes s safe in a file name, and injective so that distinct uids
// can never produce the same name: bytes outside [A-Za-z0-9_.] (and '-'
// when dash is true) become %XX.
func escape(s string, dash bool) string {
	safe := func(b byte) bool { return isWordByte(b) || b == '.' || dash && b == '-' }
	n := 0
	for i := 0; i < len(s); i++ {
		if !safe(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		if c := s[i]; safe(c) {
			b = append(b, c)
		} else {
			b = append(b, '%', hex[c>>4], hex[c&15])
		}
	}
	return string(b)
}

// NewSink returns an exactly-once sink writing files into cfg.Dir. An
// invalid cfg fails the job when the sink opens; call cfg.Validate to
// report it earlier.
func NewSink[T any](cfg Config[T]) sluice.SinkProvider[T] {
	return sluice.TwoPhaseCommitSink(sluice.TwoPhaseCommitConfig[T, Txn]{
		New: func(_ context.Context, oc *sluice.OperatorContext) (sluice.TwoPhaseCommitter[T, Txn], error) {
			return NewCommitter(cfg, oc)
		},
		TxnCodec: TxnCodec,
	})
}

const inProgress = ".inprogress."

// Committer is the two-phase committer of one sink subtask; NewSink makes
// one per subtask. It is exported for tests and tools that drive the
// protocol by hand. Its methods must be called from one goroutine.
type Committer[T any] struct {
	cfg    Config[T] // with defaults
	dir    string
	owner  string // "<prefix>-<escaped uid>": what this sink's names start with
	sub    int
	runID  string // escaped, no '-'
	seq    int
	logger *slog.Logger
	spare  []byte // the write buffer of the last closed transaction, reused
}

var _ sluice.TwoPhaseCommitter[int, Txn] = (*Committer[int])(nil)

// NewCommitter returns the committer of the subtask oc describes, after
// creating cfg.Dir. oc must carry the uid and a non-empty RunID.
func NewCommitter[T any](cfg Config[T], oc *sluice.OperatorContext) (*Committer[T], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if oc == nil || oc.RunID == "" || oc.UID == "" {
		return nil, errors.New("file sink: the operator context must carry a uid and a RunID: they make file names unique across attempts")
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("file sink: create output directory: %w", err)
	}
	logger := oc.Logger // the runtime's logger names the operator and subtask already
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Committer[T]{
		cfg:    cfg,
		dir:    cfg.Dir,
		owner:  cfg.Prefix + "-" + escape(oc.UID, true),
		sub:    oc.Subtask,
		runID:  escape(oc.RunID, false),
		logger: logger,
	}, nil
}

// Txn is a file sink transaction: one file. Only the names are stored in
// checkpoints (by TxnCodec); they are base names inside Config.Dir, so a
// checkpoint stays valid if the directory is reached by another path.
type Txn struct {
	// Temp is the hidden in-progress file.
	Temp string
	// Final is the committed file.
	Final string

	w *txnFile // the open file; nil for a transaction decoded from a checkpoint
}

// txnFile is the open in-progress file of a transaction.
type txnFile struct {
	f      *os.File
	buf    []byte
	closed bool
}

// BeginTransaction creates the in-progress file of a new transaction.
func (c *Committer[T]) BeginTransaction(ctx context.Context) (Txn, error) {
	if err := ctx.Err(); err != nil {
		return Txn{}, fmt.Errorf("file sink: begin transaction: %w", err)
	}
	final := c.owner + "-" + strconv.Itoa(c.sub) + "-" + c.runID + "-" + fmt.Sprintf("%06d", c.seq)
	c.seq++
	t := Txn{Temp: "." + final + inProgress + c.runID, Final: final}
	// O_EXCL: the name is meant to be new; finding it means two writers
	// share a run id, which must fail loudly rather than interleave.
	f, err := os.OpenFile(filepath.Join(c.dir, t.Temp), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return Txn{}, fmt.Errorf("file sink: begin transaction: %w", err)
	}
	buf := c.spare[:0]
	c.spare = nil
	if cap(buf) == 0 {
		buf = make([]byte, 0, c.cfg.BufferSize+4096)
	}
	t.w = &txnFile{f: f, buf: buf}
	return t, nil
}

// Write appends v to the transaction's buffer, writing the buffer out once
// it holds BufferSize bytes.
func (c *Committer[T]) Write(txn Txn, v T) error {
	w := txn.w
	if w == nil || w.closed {
		return fmt.Errorf("file sink: write to transaction %s, which is not open", txn.Final)
	}
	w.buf = c.cfg.Encode(w.buf, v)
	if len(w.buf) >= c.cfg.BufferSize {
		return w.flush()
	}
	return nil
}

func (w *txnFile) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	if _, err := w.f.Write(w.buf); err != nil {
		return fmt.Errorf("file sink: write %s: %w", w.f.Name(), err)
	}
	w.buf = w.buf[:0]
	return nil
}

// PreCommit flushes, fsyncs and closes the in-progress file, and fsyncs
// the directory so that the file's name survives a crash too: after it the
// transaction can be committed by another process. Pre-committing a
// transaction again does nothing. A done ctx fails it before the fsync (an
// fsync itself cannot be interrupted).
func (c *Committer[T]) PreCommit(ctx context.Context, txn Txn) error {
	w := txn.w
	if w == nil {
		return fmt.Errorf("file sink: pre-commit transaction %s, which this committer did not open", txn.Final)
	}
	if w.closed {
		return nil
	}
	if err := w.flush(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("file sink: pre-commit %s: %w", txn.Final, err)
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("file sink: pre-commit: fsync %s: %w", w.f.Name(), err)
	}
	if err := w.close(&c.spare); err != nil {
		return fmt.Errorf("file sink: pre-commit: close %s: %w", w.f.Name(), err)
	}
	if err := syncDir(c.dir); err != nil {
		return fmt.Errorf("file sink: pre-commit %s: %w", txn.Final, err)
	}
	return nil
}

// close closes the file and hands its buffer back for the next
// transaction.
func (w *txnFile) close(spare *[]byte) error {
	w.closed = true
	*spare = w.buf[:0]
	w.buf = nil
	return w.f.Close()
}

// Commit renames the pre-committed file to its final name and fsyncs the
// directory. It is idempotent: if the in-progress file is gone but the
// final one exists, an earlier Commit did the rename (the directory is
// fsynced again, in case that Commit crashed before its fsync). If both
// are gone the records are lost, and Commit returns an error wrapping
// ErrDataLoss naming both files. A done ctx fails it before the rename: the
// transaction stays pre-committed, and a restore commits it.
func (c *Committer[T]) Commit(ctx context.Context, txn Txn) error {
	if txn.w != nil && !txn.w.closed {
		return fmt.Errorf("file sink: commit transaction %s before its pre-commit", txn.Final)
	}
	if err := checkNames(txn); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("file sink: commit %s: %w (it stays pre-committed and is committed on restore)", txn.Final, err)
	}
	temp, final := filepath.Join(c.dir, txn.Temp), filepath.Join(c.dir, txn.Final)
	if err := os.Rename(temp, final); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("file sink: commit %s: %w", txn.Final, err)
		}
		if _, serr := os.Stat(final); serr != nil {
			if errors.Is(serr, fs.ErrNotExist) {
				// No restart can bring the files back: terminal.
				return restart.Unrecoverable(fmt.Errorf("%w: committing transaction %s found neither its pre-committed file %s nor its committed file %s: the records of a complete checkpoint are gone",
					ErrDataLoss, txn.Final, temp, final))
			}
			return fmt.Errorf("file sink: commit %s: %w", txn.Final, serr)
		}
	}
	if err := syncDir(c.dir); err != nil {
		return fmt.Errorf("file sink: commit %s: %w", txn.Final, err)
	}
	return nil
}

// checkNames rejects transactions whose names would reach outside Dir or
// break the naming scheme: a corrupt checkpoint must not rename arbitrary
// files.
func checkNames(txn Txn) error {
	ok := func(n string) bool {
		return n != "" && n != "." && n != ".." && filepath.Base(n) == n && !strings.ContainsAny(n, `/\`)
	}
	if !ok(txn.Temp) || !ok(txn.Final) || !strings.HasPrefix(txn.Temp, ".") || strings.HasPrefix(txn.Final, ".") {
		return fmt.Errorf("file sink: malformed transaction (temp %q, final %q)", txn.Temp, txn.Final)
	}
	return nil
}

// RecoverAndCommit commits a transaction pre-committed before a failure;
// it is Commit, which is idempotent.
func (c *Committer[T]) RecoverAndCommit(ctx context.Context, txn Txn) error {
	return c.Commit(ctx, txn)
}

// Abort closes the transaction's file if it is open and removes it; an
// already missing file is fine. It ignores ctx: removing a local file is
// quick, and an abort must happen also when the attempt was cancelled.
func (c *Committer[T]) Abort(_ context.Context, txn Txn) error {
	if w := txn.w; w != nil && !w.closed {
		_ = w.close(&c.spare) // the file is removed next; its close error is moot
	}
	if err := checkNames(txn); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(c.dir, txn.Temp)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("file sink: abort %s: %w", txn.Final, err)
	}
	return nil
}

// CleanUp removes the in-progress files of this sink (same prefix and
// uid, any subtask) that earlier attempts left: open or pre-committed
// transactions that no complete checkpoint covers, whose records are
// replayed. It keeps the Temp files of recovered and every file of the
// current attempt (other subtasks may already be writing), and touches no
// file of another sink.
func (c *Committer[T]) CleanUp(ctx context.Context, recovered []Txn) error {
	keep := make(map[string]bool, len(recovered))
	for _, t := range recovered {
		keep[t.Temp] = true
	}
	entries, err := os.ReadDir(c.dir)
	if err != nil {
		return fmt.Errorf("file sink: clean up: %w", err)
	}
	removed := 0
	for _, e := range entries {
		name := e.Name()
		owner, run, ok := parseTemp(name)
		if !ok || owner != c.owner || run == c.runID || keep[name] || !e.Type().IsRegular() {
			continue
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("file sink: clean up: %w", err)
		}
		if err := os.Remove(filepath.Join(c.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("file sink: clean up: %w", err)
		}
		c.logger.Info("removed in-progress file of an earlier attempt", "file", name)
		removed++
	}
	if removed > 0 {
		if err := syncDir(c.dir); err != nil {
			return fmt.Errorf("file sink: clean up: %w", err)
		}
	}
	return nil
}

// parseTemp splits ".<owner>-<subtask>-<run>-<seq>.inprogress.<run>" into
// owner and run. Owner is "<prefix>-<uid>"; the uid may contain dashes, so
// the fixed fields are taken from the right (run ids are escaped without
// dashes, subtask and seq are digits).
func parseTemp(name string) (owner, run string, ok bool) {
	if !strings.HasPrefix(name, ".") {
		return "", "", false
	}
	i := strings.LastIndex(name, inProgress)
	if i < 0 {
		return "", "", false
	}
	final, run := name[1:i], name[i+len(inProgress):]
	f := strings.Split(final, "-")
	if len(f) < 5 || run == "" || f[len(f)-2] != run || !isDigits(f[len(f)-1]) || !isDigits(f[len(f)-3]) {
		return "", "", false
	}
	return strings.Join(f[:len(f)-3], "-"), run, true
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// syncDir fsyncs a directory, making renames, creations and removals in it
// durable. Go cannot fsync a directory on Windows (the call fails), so
// there it is skipped and durability of names rests on NTFS's journal.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fsync directory: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}
