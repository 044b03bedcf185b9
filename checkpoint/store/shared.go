package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sluicehq/sluice/checkpoint"
)

// SharedDir is the directory, under a checkpoint root, of the state files
// that several checkpoints may refer to (incremental checkpoints,
// docs/design.md §4): shared/<uid>-<subtask>-<run>/<name>. A handle to such a
// file has Shared set and a Path relative to the root.
//
// Reference counting is by the checkpoints themselves, crash-safely: a
// shared file is referenced while the _metadata of a complete checkpoint
// names it. Discard deletes, after the checkpoint's _metadata, the shared
// files it named that no other complete checkpoint names; CleanIncomplete
// deletes every shared file no complete checkpoint names (the leftovers of
// aborted or crashed checkpoints, and of a Discard that crashed). So a
// crash anywhere leaves at most orphans, which the next CleanIncomplete
// removes, and never a complete checkpoint with a missing file.
const SharedDir = "shared"

// SharedPrefix returns the directory, relative to the checkpoint root, of
// the shared files of one operator subtask in one run:
// "shared/<uid>-<subtask>-<run>".
func SharedPrefix(uid string, subtask int, run string) string {
	return fmt.Sprintf("%s/%s-%d-%s", SharedDir, uid, subtask, run)
}

// SharedWriter opens a new shared state file dir/name, dir from
// SharedPrefix. Commit returns a handle with Shared set and Path relative to
// the root. name must be a single path element; a name that another name
// of the same dir extends (kg-1 and kg-10) is allowed but then the shorter
// one is never deleted by Discard (the store deletes by prefix).
func (c *Checkpoints) SharedWriter(ctx context.Context, dir, name string) (*StateWriter, error) {
	if !strings.HasPrefix(dir, SharedDir+"/") || strings.Count(dir, "/") != 1 {
		return nil, fmt.Errorf("store: shared file %q: directory %q is not under %s/", name, dir, SharedDir)
	}
	if strings.Contains(name, "/") {
		return nil, fmt.Errorf("store: shared file %q: name must be one path element", name)
	}
	p := dir + "/" + name
	if err := checkName(p); err != nil {
		return nil, fmt.Errorf("store: shared file %q: %w", p, err)
	}
	w, err := c.s.Create(ctx, p)
	if err != nil {
		return nil, err
	}
	return &StateWriter{w: w, path: p, shared: true}, nil
}

// sharedRefs returns the shared paths m refers to.
func sharedRefs(m *checkpoint.Metadata) map[string]bool {
	out := map[string]bool{}
	for _, h := range handles(m) {
		if h.Shared {
			out[h.Path] = true
		}
	}
	return out
}

// referenced returns the shared paths the complete checkpoints other than
// except refer to. ok is false if some complete checkpoint's _metadata
// could not be read: its references are unknown, so nothing may be deleted.
func (c *Checkpoints) referenced(ctx context.Context, except int64) (refs map[string]bool, ok bool, err error) {
	ids, err := c.Completed(ctx)
	if err != nil {
		return nil, false, err
	}
	refs = map[string]bool{}
	ok = true
	for _, id := range ids {
		if id == except {
			continue
		}
		m, err := c.ReadMetadata(ctx, id)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// Discarded meanwhile: it refers to nothing any more.
			continue
		case errors.Is(err, ErrCorrupt):
			ok = false
			continue
		case err != nil:
			return nil, false, err
		}
		maps.Copy(refs, sharedRefs(m))
	}
	return refs, ok, nil
}

// deleteShared deletes the shared files in victims. It deletes no
// directory: a writer of this run may be creating a file in one
// (CleanIncomplete, when none runs, removes empty ones).
func (c *Checkpoints) deleteShared(ctx context.Context, victims map[string]bool) error {
	if len(victims) == 0 {
		return nil
	}
	var names []string // for a Storage that deletes only by prefix
	var errs []error
	for _, n := range slices.Sorted(maps.Keys(victims)) {
		if d, ok := c.s.(interface {
			Delete(ctx context.Context, name string) error
		}); ok {
			if err := d.Delete(ctx, n); err != nil {
				errs = append(errs, fmt.Errorf("store: delete shared file %s: %w", n, err))
			}
			continue
		}
		if names == nil {
			var err error
			if names, err = c.s.List(ctx, SharedDir+"/"); err != nil {
				return err
			}
		}
		if extended(names, n, victims) {
			continue // deleting the prefix would delete a live file too
		}
		if err := c.s.DeleteAll(ctx, n); err != nil {
			errs = append(errs, fmt.Errorf("store: delete shared file %s: %w", n, err))
		}
	}
	return errors.Join(errs...)
}

// extended reports whether a committed name of sorted names that is not a
// victim starts with n, so that deleting the prefix n would delete it too.
func extended(names []string, n string, victims map[string]bool) bool {
	i, _ := slices.BinarySearch(names, n)
	for _, o := range names[i:] {
		if !strings.HasPrefix(o, n) {
			return false
		}
		if o != n && !victims[o] {
			return true
		}
	}
	return false
}

// cleanShared deletes every file of the shared area that no complete
// checkpoint refers to, temporary files of crashed writers included, and
// empty directories. Part of CleanIncomplete: no writer may be running.
func (c *Checkpoints) cleanShared(ctx context.Context) error {
	names, err := c.s.List(ctx, SharedDir+"/")
	if err != nil || len(names) == 0 {
		return err
	}
	refs, ok, err := c.referenced(ctx, -1)
	if err != nil {
		return err
	}
	if !ok {
		// A corrupt _metadata may name any of them; keep everything.
		return nil
	}
	var errs []error
	victims := map[string]bool{}
	dirs := map[string]bool{} // directories of the shared area that keep a file
	for _, n := range names {
		switch {
		case strings.HasSuffix(n, "/"):
		case isTemp(n):
			if err := c.s.DeleteAll(ctx, n); err != nil {
				errs = append(errs, err)
			}
		case refs[n]:
			for d := path.Dir(n); d != "."; d = path.Dir(d) {
				dirs[d] = true
			}
		default:
			victims[n] = true
		}
	}
	if err := c.deleteShared(ctx, victims); err != nil {
		return errors.Join(append(errs, err)...)
	}
	// Then the directories left empty, deepest first.
	var empty []string
	for _, n := range names {
		for d := path.Dir(strings.TrimSuffix(n, "/")); d != "."; d = path.Dir(d) {
			if !dirs[d] && !slices.Contains(empty, d) {
				empty = append(empty, d)
			}
		}
		if strings.HasSuffix(n, "/") && !dirs[strings.TrimSuffix(n, "/")] && !slices.Contains(empty, strings.TrimSuffix(n, "/")) {
			empty = append(empty, strings.TrimSuffix(n, "/"))
		}
	}
	slices.SortFunc(empty, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	for _, d := range empty {
		if err := c.s.DeleteAll(ctx, d+"/"); err != nil {
			errs = append(errs, fmt.Errorf("store: delete empty shared directory %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}

// sharedStorage returns the Storage a shared handle of sn is relative to:
// the checkpoint root the snapshot directory lies in.
func (sn *Snapshot) sharedStorage() (Storage, error) {
	if sn.dir != "" {
		return sn.s, nil
	}
	f, ok := sn.s.(*FS)
	if !ok {
		return nil, fmt.Errorf("store: %s: shared state files need the checkpoint root", sn.Location())
	}
	// Opened by path (--from-checkpoint .../chk-7): the root is the parent.
	return openFS(filepath.Dir(f.Root()))
}
