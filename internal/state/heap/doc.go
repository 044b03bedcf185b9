// Package heap is the heap state backend behind package state
// (docs/design.md §4): it keeps one subtask's keyed state and processing-time
// timers in hash tables, one per key group and state, so that a snapshot can be split
// by key group and restored at another parallelism. The sluice package makes
// one HeapBackend per keyed operator subtask and registers the user's states
// with Value, List, Map and Reducing.
//
// # The current key
//
// As in Flink, state handles are not indexed by key: the runtime calls
// HeapBackend.SetCurrentKey before it hands a record or a timer to the user's
// function, and every handle reads and writes the current key's entry. All
// methods of a backend and of its state handles belong to the task goroutine
// (docs/design.md §2: a task is one goroutine and a mailbox, so state needs no
// locks). The only exceptions are Snapshot.WriteKeyGroups and
// Snapshot.Release, which run on the asynchronous snapshot writer.
//
// # Snapshots: short synchronous part, asynchronous write (docs/design.md §11)
//
// HeapBackend.Snapshot freezes the current map of every key group of every
// state and returns at once: it copies map references, never entries, so its
// pause does not grow with the number of keys. The task then keeps
// processing; the first write to a frozen key group clones that group's map
// (about keys/maxParallelism entries) and writes the clone, so the frozen map
// the writer is serializing never changes. Release tells the backend, through
// an atomic watermark, that the frozen maps may be written in place again.
// This is the per-key-group flavour of Flink's CopyOnWriteStateMap.
//
// # Aliasing
//
// Values are stored as given (see package state): a snapshot may be
// serializing a value the task still holds, so neither side may mutate it.
package heap
