// Package watermark holds the deterministic cores of event-time progress:
// watermark strategies chosen by users at sources, the per-reader combiner
// of split watermarks, the per-task combiner of input watermarks, and the
// watermark alignment of FLIP-182. See docs/design.md §14 Event time.
//
// # Time
//
// Timestamps and watermarks are int64 nanoseconds since the Unix epoch
// (time.Time.UnixNano). [NoWatermark] (math.MinInt64) means no watermark
// yet; [Final] (math.MaxInt64) is the watermark emitted at the end of
// input, after which no record can follow. A watermark w asserts that no
// record with a timestamp <= w follows; a record with a smaller or equal
// timestamp that arrives anyway is late.
//
// # Determinism
//
// Nothing in this package starts a goroutine, reads a clock or owns a
// channel. The engine feeds records' timestamps in, calls OnPeriodicEmit on
// its own timer every [Config.Interval] with the current processing time,
// and forwards what the cores return as in-band watermark and idleness
// events. The same inputs always produce the same outputs, which is how the
// scripted tests under testdata/ check every interleaving.
//
// # Idleness
//
// A split or input that is silent for the idleness timeout stops holding
// the combined watermark back; it rejoins when it speaks again. A combined
// watermark never goes backwards: a rejoining split whose watermark is
// below the current output holds further progress back until it catches
// up, but does not lower what was already emitted.
package watermark
