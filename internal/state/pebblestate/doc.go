// Package pebblestate is the Pebble keyed-state backend (docs/design.md §4,
// docs/state-pebble.md): state larger than memory, on disk in one Pebble DB
// per keyed operator subtask, with the same state kinds, semantics, errors
// and restore rules as the heap backend (internal/state/heap), which it
// mirrors method for method. The sluice package makes one Backend per keyed
// operator subtask when Config.State.Backend is "pebble" and registers the
// user's states with Value, List, Map and Reducing.
//
// # Layout
//
// Every key starts with its key group (2 bytes, big-endian) and a state id
// (2 bytes), then the encoded key and, for map state, the encoded user key
// (see keys.go): a key-group range is one contiguous key range, so a
// rescale clips a DB with two range deletions. Timers live under their own
// state ids, ordered by time within a key group; the backend keeps only the
// earliest time of each key group in memory, in a min-tree.
//
// # The hot path
//
// SetCurrentKey hashes and encodes the key once into a reused buffer; a
// state access builds its Pebble key in another reused buffer, reads with
// DB.Get (and its closer) and writes with DB.Set without sync: the WAL is
// off, since durability comes from checkpoints. (An indexed batch in front
// of the DB, tried first, cost twice the CPU per read-modify-write and five
// allocations, since every Batch.Get builds batch iterators.) A read or
// write allocates about once, in Pebble. A storage error (which a state
// handle cannot return) is sticky: SetCurrentKey returns it
// at the next record and the snapshot writers return it.
//
// # TTL
//
// As in the heap backend (state.WithTTL): expired entries are never
// returned, are deleted when read, and are left out of every snapshot.
// Pebble has no public compaction filter, so background cleanup is an
// incremental sweep (ttl.go): every 1024 writes, and at each Snapshot, the
// backend walks the next slice of the TTL states' entries from a cursor that
// wraps around the range and deletes those that expired.
//
// # Snapshots
//
// Backend.Snapshot commits the pending writes and takes a Pebble snapshot
// (O(1)); with Options.Incremental or LocalRecovery it also flushes the
// memtable and takes a Pebble checkpoint into a local directory (hard
// links). Snapshot.WriteKeyGroups, on the asynchronous writer, writes the
// canonical keyed-state file (format 2), byte-compatible with the heap
// backend's, so savepoints move between backends at any parallelism.
// Snapshot.WriteIncremental (runtime.IncrementalSnapshot) uploads only the
// table files that the last completed checkpoint did not have, plus a small
// meta file; RestoreNative fetches and opens them (or, with local recovery,
// opens the task-local copy without fetching anything).
package pebblestate
