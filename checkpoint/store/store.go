// Package store keeps checkpoints and savepoints durable: state files and
// the _metadata that makes a checkpoint complete. Storage is behind the small
// Storage interface, so that another store (an object store, an in-memory
// one in tests) can hold a job's checkpoints: pass it as
// sluice.Config.CheckpointStorage. FS is the local-filesystem
// implementation and the default.
//
// # Layout
//
// A job's checkpoints live under one root, one directory per checkpoint:
//
//	<root>/chk-<id>/<state files>
//	<root>/chk-<id>/_metadata
//
// Savepoints live under a root of their own, with the same layout but a
// directory name that cannot collide between jobs or runs:
//
//	<savepoint root>/savepoint-<id>-<random>/...
//
// A checkpoint is complete exactly when its _metadata exists (docs/design.md §3
// step 5); a directory without one is the leftover of an aborted or crashed
// checkpoint. State handles in _metadata hold paths relative to the
// checkpoint's own directory, so a savepoint directory is self-contained: it
// can be moved or copied anywhere and restored from its new path (LoadPath).
//
// # Integrity
//
// Every file is checksummed with CRC32C (Castagnoli). State files carry their
// size and checksum in their handle; _metadata wraps its JSON body with the
// body's checksum and length. Readers verify both and report ErrCorrupt, so a
// flipped bit or a truncated file is detected, and Latest falls back to the
// previous complete checkpoint, loudly (docs/design.md §4).
//
// # Atomicity and durability
//
// Writers write to a temporary file next to the target and, on Commit, fsync
// the file, rename it into place and fsync the directory (creating and
// fsyncing missing directories first). So a name is either absent or holds
// its complete, durable content; a crash leaves at most temporary files,
// which CleanIncomplete removes.
package store

import (
	"context"
	"errors"
	"hash/crc32"
	"io"
	"path"
	"strings"
)

// Errors reported by this package. Every error is wrapped with the file and
// checkpoint it concerns; test for these with errors.Is.
var (
	// ErrCorrupt means stored data failed verification: a checksum or size
	// mismatch, a truncated or malformed _metadata, a state file that the
	// metadata references but that is missing, or a handle whose path leaves
	// its checkpoint directory.
	ErrCorrupt = errors.New("corrupt checkpoint data")
	// ErrNoCheckpoint means there is no completed checkpoint at all. It is
	// not returned when completed checkpoints exist but are all corrupt:
	// that case is reported with ErrCorrupt, so that a caller which starts
	// from scratch on ErrNoCheckpoint never silently drops a job's state.
	ErrNoCheckpoint = errors.New("no completed checkpoint")
	// ErrUnsupportedVersion means a _metadata file was written by a newer
	// Sluice (its format version is above checkpoint.FormatVersion). It is
	// deliberately not ErrCorrupt: skipping such a checkpoint in favour of
	// an older one would silently roll a job back after a downgrade.
	ErrUnsupportedVersion = errors.New("unsupported metadata format version")
)

// castagnoli is the CRC32C table used for every checksum in checkpoints.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Storage is the small interface checkpoint storage needs, so that an object
// store (S3-compatible) can implement it later. FS is the local filesystem
// implementation.
//
// Names are slash-separated paths relative to the storage root, like object
// keys: "chk-7/_metadata". A name is clean (no "." or ".." elements, no
// leading or trailing slash) and none of its elements starts with a dot:
// those are reserved for the temporary files of uncommitted writers.
//
// Implementations must be safe for concurrent use by multiple goroutines.
type Storage interface {
	// Create opens a new file for writing. Nothing is visible under name
	// until the Writer's Commit returns successfully.
	Create(ctx context.Context, name string) (Writer, error)
	// Open opens a committed file for reading. A missing file is an error
	// for which errors.Is(err, fs.ErrNotExist) holds.
	Open(ctx context.Context, name string) (io.ReadCloser, error)
	// List returns, sorted, every name that starts with prefix (a plain
	// string prefix, as in object stores). So that cleanup can find them,
	// the result may include the leftovers of uncommitted writers (names
	// with an element starting with ".") and, for FS, empty directories
	// (names ending in "/"). A prefix under which nothing exists yields an
	// empty list, not an error.
	List(ctx context.Context, prefix string) ([]string, error)
	// DeleteAll removes every name that starts with prefix, including the
	// leftovers List reports. Deleting nothing is not an error. The removal
	// is durable when DeleteAll returns.
	DeleteAll(ctx context.Context, prefix string) error
}

// Writer writes one file of a Storage. Exactly one of Commit or Abort ends
// it; calling Abort after Commit is a no-op, so `defer w.Abort()` is the
// idiom for cleaning up on error paths. A Writer is not safe for concurrent
// use.
type Writer interface {
	io.Writer
	// Commit makes the written bytes durable and visible under the
	// Writer's name, atomically, and returns their length and CRC32C. On
	// error nothing new is visible under the name.
	Commit() (size int64, crc32c uint32, err error)
	// Abort discards what was written. It is a no-op after Commit or
	// Abort.
	Abort() error
}

// checkName reports whether name is a valid Storage name for a committed
// file (see Storage).
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("empty name")
	case strings.HasPrefix(name, "/"):
		return errors.New("absolute name")
	case strings.ContainsAny(name, "\\\x00"):
		return errors.New("name contains a backslash or NUL")
	case path.Clean(name) != name:
		return errors.New("name is not clean")
	}
	for elem := range strings.SplitSeq(name, "/") {
		if strings.HasPrefix(elem, ".") {
			// Also rejects "." and "..": a name never leaves its root,
			// and dot-names are reserved for temporary files.
			return errors.New("name element starts with a dot")
		}
	}
	return nil
}

// checkPrefix reports whether prefix is valid for List and DeleteAll: empty,
// or a clean relative path optionally followed by a slash. Unlike a name it
// may contain dot-elements, so that the temporary files List reports can be
// deleted.
func checkPrefix(prefix string) error {
	p := strings.TrimSuffix(prefix, "/")
	switch {
	case p == "" && prefix != "":
		return errors.New(`prefix "/"`)
	case p == "":
		return nil
	case strings.HasPrefix(p, "/"):
		return errors.New("absolute prefix")
	case strings.ContainsAny(p, "\\\x00"):
		return errors.New("prefix contains a backslash or NUL")
	case path.Clean(p) != p:
		return errors.New("prefix is not clean")
	}
	for elem := range strings.SplitSeq(p, "/") {
		if elem == "." || elem == ".." {
			return errors.New("prefix leaves the root")
		}
	}
	return nil
}

// isTemp reports whether name is (or lies under) the temporary file of an
// uncommitted writer.
func isTemp(name string) bool {
	for elem := range strings.SplitSeq(name, "/") {
		if strings.HasPrefix(elem, ".") {
			return true
		}
	}
	return false
}

// joinName joins a snapshot directory and a name within it; dir "" is the
// storage root.
func joinName(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}
