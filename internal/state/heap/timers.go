package heap

import (
	"encoding/binary"
	"time"

	"github.com/sluicehq/sluice/codec"
)

// timerKey identifies a timer: at most one per key and time (Flink
// deduplicates timers the same way).
type timerKey[K comparable] struct {
	key K
	t   int64 // Unix nanoseconds
}

// timerEntry is a heap element; gi finds the key group's set.
type timerEntry[K comparable] struct {
	t   int64
	key K
	gi  int
}

// timerService is Flink's InternalTimerService for processing time, minus
// the clock: the runtime asks for NextTimer, arms a clock.Timer, and pops
// the due timers.
//
// The per-key-group sets in t are the truth: they are snapshotted (with the
// same copy-on-write as state) and checked when a timer is popped. The heap
// only orders them and is never shared with a snapshot. DeleteTimer removes a
// timer from its set and leaves its heap entry behind as stale, to be skipped
// when it surfaces; rebuilding the heap once stale entries outnumber live
// ones keeps deletion O(1) and the heap O(live timers).
type timerService[K comparable] struct {
	t    *table[timerKey[K], struct{}]
	heap []timerEntry[K]
	live int
}

func (ts *timerService[K]) init(groups int) {
	ts.t = newTable[timerKey[K], struct{}](groups)
}

// RegisterTimer registers a processing-time timer at t for the current key.
// Registering the same key and time again is a no-op. Times are kept as Unix
// nanoseconds, so they must lie between the years 1678 and 2262.
func (b *HeapBackend[K]) RegisterTimer(t time.Time) {
	ts := &b.timers
	tk := timerKey[K]{key: b.key, t: t.UnixNano()}
	if _, ok := ts.t.maps[b.gi][tk]; ok {
		return
	}
	ts.t.mut(&b.cow, b.gi)[tk] = struct{}{}
	ts.live++
	ts.push(timerEntry[K]{t: tk.t, key: b.key, gi: b.gi})
}

// DeleteTimer removes the current key's timer at t, if there is one.
func (b *HeapBackend[K]) DeleteTimer(t time.Time) {
	ts := &b.timers
	tk := timerKey[K]{key: b.key, t: t.UnixNano()}
	if _, ok := ts.t.maps[b.gi][tk]; !ok {
		return
	}
	delete(ts.t.mut(&b.cow, b.gi), tk)
	ts.live--
	if len(ts.heap) > 2*ts.live+64 {
		ts.rebuild()
	}
}

// NextTimer returns the time of the earliest timer, of any key, so the
// runtime can arm its clock; false if there are none.
func (b *HeapBackend[K]) NextTimer() (time.Time, bool) {
	ts := &b.timers
	for len(ts.heap) > 0 {
		e := ts.heap[0]
		if _, ok := ts.t.maps[e.gi][timerKey[K]{key: e.key, t: e.t}]; ok {
			return time.Unix(0, e.t), true
		}
		ts.pop() // stale: deleted or already fired
	}
	return time.Time{}, false
}

// PopDueTimer removes and returns the earliest timer due at now (its time is
// not after now) with its key; false if none is due. The caller then calls
// SetCurrentKey(key) and the user's OnTimer, which may register new timers.
// Timers with equal times pop in unspecified order. The returned time is in
// the local time zone; compare it with Equal.
func (b *HeapBackend[K]) PopDueTimer(now time.Time) (key K, t time.Time, ok bool) {
	ts := &b.timers
	n := now.UnixNano()
	for len(ts.heap) > 0 && ts.heap[0].t <= n {
		e := ts.pop()
		tk := timerKey[K]{key: e.key, t: e.t}
		if _, live := ts.t.maps[e.gi][tk]; !live {
			continue
		}
		delete(ts.t.mut(&b.cow, e.gi), tk)
		ts.live--
		return e.key, time.Unix(0, e.t), true
	}
	return key, t, false
}

// NumTimers returns the number of registered timers.
func (b *HeapBackend[K]) NumTimers() int { return b.timers.live }

func (ts *timerService[K]) push(e timerEntry[K]) {
	ts.heap = append(ts.heap, e)
	h := ts.heap
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if h[p].t <= h[i].t {
			break
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
}

func (ts *timerService[K]) pop() timerEntry[K] {
	h := ts.heap
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	var zero timerEntry[K]
	h[last] = zero // let the key be collected
	ts.heap = h[:last]
	ts.down(0)
	return top
}

func (ts *timerService[K]) down(i int) {
	h := ts.heap
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && h[r].t < h[l].t {
			m = r
		}
		if h[i].t <= h[m].t {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

// rebuild refills the heap from the sets, dropping stale entries.
func (ts *timerService[K]) rebuild() {
	clear(ts.heap)
	h := ts.heap[:0]
	for gi, m := range ts.t.maps {
		for tk := range m {
			h = append(h, timerEntry[K]{t: tk.t, key: tk.key, gi: gi})
		}
	}
	ts.heap = h
	for i := len(h)/2 - 1; i >= 0; i-- {
		ts.down(i)
	}
}

func (ts *timerService[K]) freeze(seq int64, kc codec.KeyCodec[K]) groupAppender {
	return &frozenTimers[K]{maps: ts.t.freeze(seq), kc: kc}
}

// decodeGroup decodes a restored key group's timers: key, varint time,
// repeated. The caller rebuilds the heap once all are in.
func (ts *timerService[K]) decodeGroup(b *HeapBackend[K], gi int, body []byte) error {
	m := ts.t.maps[gi]
	for len(body) > 0 {
		k, n, err := b.decodeKey(body, gi)
		if err != nil {
			return err
		}
		body = body[n:]
		t, n := binary.Varint(body)
		if n <= 0 {
			return errEntry(k, errBadTime)
		}
		body = body[n:]
		tk := timerKey[K]{key: k, t: t}
		if _, dup := m[tk]; !dup {
			m[tk] = struct{}{}
			ts.live++
		}
	}
	return nil
}

type frozenTimers[K comparable] struct {
	maps []map[timerKey[K]]struct{}
	kc   codec.KeyCodec[K]
}

func (f *frozenTimers[K]) appendGroup(dst []byte, gi int, _ int64) []byte {
	for tk := range f.maps[gi] {
		dst = f.kc.Append(dst, tk.key)
		dst = binary.AppendVarint(dst, tk.t)
	}
	return dst
}

// RegisterEventTimer registers an event-time timer at t (nanoseconds since
// the epoch) for the current key; it fires once the watermark reaches t.
// Registering the same key and time again is a no-op.
func (b *HeapBackend[K]) RegisterEventTimer(t int64) {
	ts := &b.etimers
	tk := timerKey[K]{key: b.key, t: t}
	if _, ok := ts.t.maps[b.gi][tk]; ok {
		return
	}
	ts.t.mut(&b.cow, b.gi)[tk] = struct{}{}
	ts.live++
	ts.push(timerEntry[K]{t: t, key: b.key, gi: b.gi})
}

// DeleteEventTimer removes the current key's event-time timer at t, if any.
func (b *HeapBackend[K]) DeleteEventTimer(t int64) {
	ts := &b.etimers
	tk := timerKey[K]{key: b.key, t: t}
	if _, ok := ts.t.maps[b.gi][tk]; !ok {
		return
	}
	delete(ts.t.mut(&b.cow, b.gi), tk)
	ts.live--
	if len(ts.heap) > 2*ts.live+64 {
		ts.rebuild()
	}
}

// PopEventTimer removes and returns the earliest event-time timer due at
// watermark wm (its time is not after wm) with its key; false if none is.
// Timers pop in time order; equal times in unspecified order.
func (b *HeapBackend[K]) PopEventTimer(wm int64) (key K, t int64, ok bool) {
	ts := &b.etimers
	for len(ts.heap) > 0 && ts.heap[0].t <= wm {
		e := ts.pop()
		tk := timerKey[K]{key: e.key, t: e.t}
		if _, live := ts.t.maps[e.gi][tk]; !live {
			continue
		}
		delete(ts.t.mut(&b.cow, e.gi), tk)
		ts.live--
		return e.key, e.t, true
	}
	return key, 0, false
}

// NumEventTimers returns the number of registered event-time timers.
func (b *HeapBackend[K]) NumEventTimers() int { return b.etimers.live }
