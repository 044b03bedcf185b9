package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sluicehq/sluice/checkpoint"
)

// Status is the state of a checkpoint or savepoint directory as List finds
// it.
type Status string

// The statuses List reports.
const (
	// StatusComplete: _metadata and every state file verify.
	StatusComplete Status = "complete"
	// StatusIncomplete: no _metadata; an aborted, crashed or still running
	// checkpoint.
	StatusIncomplete Status = "incomplete"
	// StatusCorrupt: verification failed (ErrCorrupt); Summary.Err says
	// why.
	StatusCorrupt Status = "corrupt"
	// StatusUnreadable: reading failed for another reason, e.g. a
	// metadata version from a newer Sluice or an I/O error; Summary.Err
	// says why.
	StatusUnreadable Status = "unreadable"
)

// Summary describes one checkpoint or savepoint directory, for
// `sluice checkpoints ls`.
type Summary struct {
	// Dir is the directory name: "chk-7", "savepoint-7-3f9c0a1b2c4d".
	Dir string
	// Location is where the directory is (its path, for FS): what to pass
	// to --from-checkpoint.
	Location string
	// ID is the checkpoint id, from the directory name (or from the
	// metadata, if readable).
	ID int64
	// Kind is from the metadata if readable, else from the directory name.
	Kind checkpoint.Kind
	// Status is complete, incomplete, corrupt or unreadable.
	Status Status
	// Err says why the status is corrupt or unreadable.
	Err error
	// JobName, TriggeredAt, CompletedAt come from the metadata; zero if it
	// is unreadable.
	JobName                  string
	TriggeredAt, CompletedAt time.Time
	// Size is the total size of the state files the metadata references
	// (0 without readable metadata), shared ones included.
	Size int64
	// SharedSize is the part of Size in shared files (SharedDir) of an
	// incremental checkpoint, which other checkpoints may refer to as well:
	// deleting this checkpoint frees at most Size - SharedSize plus the
	// shared files no other checkpoint refers to.
	SharedSize int64
	// Files is the number of committed files in the directory, _metadata
	// included, leftovers of crashed writers excluded.
	Files int
	// Operators lists the operator uids in the metadata, sorted.
	Operators []string
}

// List summarises every checkpoint (chk-<id>) and savepoint
// (savepoint-<id>-…) directory under root, checkpoints first, each sorted by
// id. It verifies every complete one fully, reading all of its state files,
// so that "complete" means restorable. The root must exist.
//
// The savepoints of the job's default savepoint directory, root/savepoints
// (SavepointsDir), are listed too, after the others, their Dir prefixed
// with "savepoints/".
func List(ctx context.Context, root string) ([]Summary, error) {
	s, err := openFS(root)
	if err != nil {
		return nil, err
	}
	out, err := ListStorage(ctx, s)
	if err != nil {
		return nil, err
	}
	sub := filepath.Join(root, SavepointsDir)
	if fi, err := os.Stat(sub); err != nil || !fi.IsDir() {
		return out, nil
	}
	ss, err := openFS(sub)
	if err != nil {
		return nil, err
	}
	sps, err := ListStorage(ctx, ss)
	if err != nil {
		return nil, err
	}
	for _, sum := range sps {
		if _, ok := parseSavepointDir(sum.Dir); ok {
			sum.Dir = SavepointsDir + "/" + sum.Dir
			out = append(out, sum)
		}
	}
	return out, nil
}

// ListStorage is List for any Storage.
func ListStorage(ctx context.Context, s Storage) ([]Summary, error) {
	var out []Summary
	for _, kind := range []checkpoint.Kind{checkpoint.KindCheckpoint, checkpoint.KindSavepoint} {
		prefix, parse := checkpointPrefix, parseCheckpointDir
		if kind == checkpoint.KindSavepoint {
			prefix, parse = savepointPrefix, parseSavepointDir
		}
		names, err := s.List(ctx, prefix)
		if err != nil {
			return nil, err
		}
		var sums []Summary
		byDir := make(map[string]int)
		for _, name := range names {
			id, ok := parse(name)
			if !ok {
				continue
			}
			dir, rest, _ := strings.Cut(name, "/")
			i, seen := byDir[dir]
			if !seen {
				i = len(sums)
				byDir[dir] = i
				sums = append(sums, Summary{Dir: dir, ID: id, Kind: kind, Status: StatusIncomplete})
			}
			if rest != "" && !isTemp(name) && !strings.HasSuffix(name, "/") {
				sums[i].Files++
			}
		}
		for i := range sums {
			sn := &Snapshot{s: s, dir: sums[i].Dir, id: -1}
			if kind == checkpoint.KindCheckpoint {
				sn.id = sums[i].ID
			}
			sums[i].Location = sn.Location()
			summarize(ctx, sn, &sums[i])
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		slices.SortStableFunc(sums, func(a, b Summary) int {
			if c := cmpInt64(a.ID, b.ID); c != 0 {
				return c
			}
			return strings.Compare(a.Dir, b.Dir)
		})
		out = append(out, sums...)
	}
	return out, nil
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// summarize fills sum from the snapshot's metadata and verification.
func summarize(ctx context.Context, sn *Snapshot, sum *Summary) {
	m, err := sn.ReadMetadata(ctx)
	if errors.Is(err, fs.ErrNotExist) {
		return // incomplete
	}
	if err == nil {
		sum.ID, sum.Kind, sum.JobName = m.CheckpointID, m.Kind, m.JobName
		sum.TriggeredAt, sum.CompletedAt = m.TriggeredAt, m.CompletedAt
		for _, h := range handles(m) {
			sum.Size += h.Size
			if h.Shared {
				sum.SharedSize += h.Size
			}
		}
		for uid := range m.Operators {
			sum.Operators = append(sum.Operators, uid)
		}
		slices.Sort(sum.Operators)
		err = sn.Verify(ctx, m)
	}
	switch {
	case err == nil:
		sum.Status = StatusComplete
	case errors.Is(err, ErrCorrupt):
		sum.Status, sum.Err = StatusCorrupt, err
	default:
		sum.Status, sum.Err = StatusUnreadable, err
	}
}

// FormatList writes sums as a table, followed by the reason of every corrupt
// or unreadable entry: the output of `sluice checkpoints ls`.
func FormatList(w io.Writer, sums []Summary) error {
	ew := &errWriter{w: w}
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tSTATUS\tCOMPLETED\tSIZE\tFILES\tOPERATORS\tDIR")
	for _, s := range sums {
		size, ops := "-", "-"
		if s.Status == StatusComplete || s.Status == StatusCorrupt && !s.CompletedAt.IsZero() {
			size, ops = formatSize(s.Size), fmt.Sprint(len(s.Operators))
			if s.SharedSize > 0 {
				size += " (" + formatSize(s.SharedSize) + " shared)"
			}
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n",
			s.ID, s.Kind, s.Status, formatTime(s.CompletedAt), size, s.Files, ops, s.Dir)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range sums {
		if s.Err != nil {
			fmt.Fprintf(ew, "%s: %s: %v\n", s.Dir, s.Status, s.Err)
		}
	}
	return ew.err
}

// Describe writes a human-readable account of m: the output of
// `sluice checkpoints inspect`. It lists every operator with its
// parallelism, and per subtask its key-group range, its keyed state files
// with sizes and checksums, and its operator state with entry counts.
func Describe(w io.Writer, m *checkpoint.Metadata) error {
	ew := &errWriter{w: w}
	hs := handles(m)
	var total, shared int64
	var nShared int
	for _, h := range hs {
		total += h.Size
		if h.Shared {
			shared += h.Size
			nShared++
		}
	}
	fmt.Fprintf(ew, "%s %d (format version %d)\n", m.Kind, m.CheckpointID, m.Version)
	fmt.Fprintf(ew, "  job:             %s\n", m.JobName)
	fmt.Fprintf(ew, "  triggered:       %s\n", formatTime(m.TriggeredAt))
	fmt.Fprintf(ew, "  completed:       %s", formatTime(m.CompletedAt))
	if !m.TriggeredAt.IsZero() && !m.CompletedAt.IsZero() {
		fmt.Fprintf(ew, " (took %s)", m.CompletedAt.Sub(m.TriggeredAt))
	}
	fmt.Fprintln(ew)
	fmt.Fprintf(ew, "  max parallelism: %d\n", m.MaxParallelism)
	// What the checkpoint belongs to (docs/design.md §10).
	fmt.Fprintf(ew, "  fingerprint:     %s\n", m.Fingerprint())
	for _, uid := range slices.Sorted(maps.Keys(m.Sources)) {
		fmt.Fprintf(ew, "  source %q:  %s\n", uid, m.Sources[uid])
	}
	if m.Version < 2 {
		fmt.Fprintln(ew, "  (format version 1: sources and state codecs not recorded)")
	}
	fmt.Fprintf(ew, "  state files:     %d, %s", len(hs), formatSize(total))
	if nShared > 0 {
		fmt.Fprintf(ew, " (%d shared, %s, in %s/)", nShared, formatSize(shared), SharedDir)
	}
	fmt.Fprintln(ew)
	fmt.Fprintf(ew, "  operators:       %d\n", len(m.Operators))
	for _, uid := range slices.Sorted(maps.Keys(m.Operators)) {
		op := m.Operators[uid]
		fmt.Fprintf(ew, "\noperator %q", uid)
		if op == nil {
			fmt.Fprintln(ew, ": no state")
			continue
		}
		fmt.Fprintf(ew, ": parallelism %d, state of %d subtasks\n", op.Parallelism, len(op.Subtasks))
		kc, states := op.States()
		for _, si := range states {
			ttl := ""
			if si.TTL {
				ttl = ", with TTL"
			}
			fmt.Fprintf(ew, "  keyed state %s: %s state%s, codecs %s; keys %s\n", si.Name, si.Kind, ttl, strings.Join(si.Codecs, ", "), kc)
		}
		for _, st := range op.Subtasks {
			if st == nil {
				continue
			}
			fmt.Fprintf(ew, "  subtask %d", st.Subtask)
			if len(st.Keyed) > 0 {
				kg := st.KeyGroups
				fmt.Fprintf(ew, ": key groups %d-%d (%d)", kg.Start, kg.End, kg.Len())
			}
			fmt.Fprintln(ew)
			for _, h := range st.Keyed {
				fmt.Fprintf(ew, "    keyed state %s: %s, crc32c %08x", h.Path, formatSize(h.Size), h.CRC32C)
				if h.Shared {
					fmt.Fprint(ew, ", shared")
				}
				if h.Format != "" {
					fmt.Fprintf(ew, ", format %s", h.Format)
				}
				if len(h.KeyGroupOffsets) > 0 {
					served := 0
					for _, o := range h.KeyGroupOffsets {
						if o >= 0 {
							served++
						}
					}
					if served == len(h.KeyGroupOffsets) {
						fmt.Fprintf(ew, ", %d key-group offsets", len(h.KeyGroupOffsets))
					} else {
						fmt.Fprintf(ew, ", serves %d of %d key groups", served, len(h.KeyGroupOffsets))
					}
				}
				fmt.Fprintln(ew)
			}
			for _, name := range slices.Sorted(maps.Keys(st.Operator)) {
				entries := st.Operator[name]
				var n int
				for _, e := range entries {
					n += len(e)
				}
				if bname, ok := strings.CutPrefix(name, checkpoint.BroadcastStatePrefix); ok && len(entries) == 1 {
					// A broadcast state: this subtask's copy (docs/design.md §4).
					h, _, err := checkpoint.ParseBroadcastHeader(entries[0])
					if err != nil {
						fmt.Fprintf(ew, "    broadcast state %q: %s, unreadable header: %v\n", bname, formatSize(int64(n)), err)
					} else {
						fmt.Fprintf(ew, "    broadcast state %q: %s, %s\n", bname, h, formatSize(int64(n)))
					}
					continue
				}
				fmt.Fprintf(ew, "    operator state %q: %d entries, %s\n", name, len(entries), formatSize(int64(n)))
			}
			if len(st.Keyed) == 0 && len(st.Operator) == 0 {
				fmt.Fprintln(ew, "    no state")
			}
		}
	}
	return ew.err
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// formatSize renders n bytes for people: exact below 1 KiB, else with one
// decimal in binary units and the exact count, since checksums are per byte.
func formatSize(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	f, unit := float64(n)/1024, "KiB"
	for _, u := range []string{"MiB", "GiB", "TiB"} {
		if f < 1024 {
			break
		}
		f, unit = f/1024, u
	}
	return fmt.Sprintf("%.1f %s (%d B)", f, unit, n)
}

// errWriter keeps the first write error so that formatting code can ignore
// errors until the end.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}
