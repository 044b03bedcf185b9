// Package coordinator is the checkpoint coordinator (docs/design.md §3): a
// deterministic state machine that takes events (ticks, acks, declines, the
// outcome of metadata writes) and returns the actions the runtime must carry
// out (trigger barriers, persist metadata, complete, abort, discard, fail the
// job). It reads no clock and does no I/O, so every interleaving is replayed
// by the scripts in testdata. What users configure and read, the Config,
// statistics and Metadata, lives in package checkpoint.
package coordinator
