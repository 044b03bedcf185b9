// Package window holds the deterministic cores of windowing on keyed
// streams: the assigners users choose (tumbling, sliding, session,
// global), the per-key set of merging (session) windows, triggers and
// evictors as pure decision functions, and the lateness rule. The engine's window operator
// keeps contents and timers in keyed state and calls into this package;
// nothing here does I/O, starts a goroutine or reads a clock. See
// docs/design.md §14 Event time.
//
// # Time
//
// Timestamps, watermarks and window bounds are int64 nanoseconds since the
// Unix epoch, as in package watermark. A [Window] is the half-open
// interval [Start, End); its [Window.MaxTimestamp] is End-1, the
// timestamp at which its event-time timer fires.
//
// Event time and processing time use the same arithmetic: an [Assigner]
// only records which clock the engine must feed it (a record's timestamp,
// or the processing time when the record arrives) and which clock its
// default trigger listens to.
//
// # Lateness
//
// In event time, a window is late once its MaxTimestamp plus the allowed
// lateness is at or below the current watermark ([IsLate]); a record
// assigned only to late windows is late and goes to the late side output.
// A window's state is dropped at [CleanupTime]. In processing time no
// record is late.
package window
