package pebblestate

import (
	"errors"
	"math"
	"math/bits"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// timerIndex keeps, in memory, the earliest timer time of every key group of
// the range (the timers themselves are in Pebble under their own state id,
// ordered by time within a key group) and a min-tree over them, so that the
// earliest timer of the subtask is found in O(1) and kept in O(log key
// groups) per change. Memory is O(key groups), independent of the number of
// timers.
type timerIndex struct {
	sid  uint16
	p    int         // leaves: the next power of two ≥ key groups
	tree []timerSlot // tree[1] is the minimum; leaves at p+gi
	live int
}

// timerSlot is a key group's earliest time, or none (a timer may be at
// math.MaxInt64, so no time can mean none).
type timerSlot struct {
	t    int64
	none bool
}

func (a timerSlot) less(b timerSlot) bool { return !a.none && (b.none || a.t < b.t) }

var noSlot = timerSlot{t: math.MaxInt64, none: true}

func (ti *timerIndex) init(sid uint16, groups int) {
	ti.sid = sid
	ti.p = 1
	if groups > 1 {
		ti.p = 1 << bits.Len(uint(groups-1))
	}
	ti.tree = make([]timerSlot, 2*ti.p)
	for i := range ti.tree {
		ti.tree[i] = noSlot
	}
	ti.live = 0
}

func (ti *timerIndex) min(gi int) timerSlot { return ti.tree[ti.p+gi] }

func (ti *timerIndex) setMin(gi int, s timerSlot) {
	i := ti.p + gi
	ti.tree[i] = s
	for i > 1 {
		i /= 2
		if ti.tree[2*i+1].less(ti.tree[2*i]) {
			ti.tree[i] = ti.tree[2*i+1]
		} else {
			ti.tree[i] = ti.tree[2*i]
		}
	}
}

// first returns the key-group index holding the earliest timer and its
// time; -1 if there is none.
func (ti *timerIndex) first() (int, int64) {
	if ti.tree[1].none {
		return -1, 0
	}
	i := 1
	for i < ti.p {
		if ti.tree[2*i] == ti.tree[i] {
			i = 2 * i
		} else {
			i = 2*i + 1
		}
	}
	return i - ti.p, ti.tree[1].t
}

// timerKey builds the Pebble key of the current key's timer at t.
func (b *Backend[K]) timerKey(sid uint16, t int64) []byte {
	k := appendPrefix(b.kbuf[:0], b.kg, sid)
	k = appendTime(k, t)
	k = append(k, b.kenc...)
	b.kbuf = k
	return k
}

func (b *Backend[K]) register(ti *timerIndex, t int64) {
	key := b.timerKey(ti.sid, t)
	if b.exists(key) {
		return
	}
	b.set(key, nil)
	ti.live++
	if s := (timerSlot{t: t}); s.less(ti.min(b.gi)) {
		ti.setMin(b.gi, s)
	}
}

func (b *Backend[K]) unregister(ti *timerIndex, t int64) {
	key := b.timerKey(ti.sid, t)
	if !b.exists(key) {
		return
	}
	b.del(key)
	ti.live--
	if m := ti.min(b.gi); !m.none && m.t == t {
		b.refreshMin(ti, b.gi)
	}
}

// refreshMin reads key group gi's earliest timer from Pebble.
func (b *Backend[K]) refreshMin(ti *timerIndex, gi int) {
	kg := b.r.Start + gi
	it := b.iter(appendPrefix(nil, kg, ti.sid), appendPrefix(nil, kg, ti.sid+1))
	if it == nil {
		return
	}
	s := noSlot
	if it.First() {
		if k := it.Key(); len(k) >= prefixLen+8 {
			s = timerSlot{t: readTime(k[prefixLen:])}
		}
	}
	it.Close()
	ti.setMin(gi, s)
}

// pop removes and returns the earliest timer if its time is not after
// due, with its key.
func (b *Backend[K]) pop(ti *timerIndex, due int64) (key K, t int64, ok bool) {
	gi, t0 := ti.first()
	if gi < 0 || t0 > due {
		return key, 0, false
	}
	kg := b.r.Start + gi
	it := b.iter(appendPrefix(nil, kg, ti.sid), appendPrefix(nil, kg, ti.sid+1))
	if it == nil {
		return key, 0, false
	}
	if !it.First() {
		it.Close()
		ti.setMin(gi, noSlot) // stale minimum: should not happen
		return key, 0, false
	}
	pk := append([]byte(nil), it.Key()...)
	next := noSlot
	if it.Next() {
		next = timerSlot{t: readTime(it.Key()[prefixLen:])}
	}
	if err := it.Close(); err != nil {
		b.fail(err)
		return key, 0, false
	}
	if len(pk) < prefixLen+8 {
		b.fail(errors.New("malformed timer key"))
		return key, 0, false
	}
	t = readTime(pk[prefixLen:])
	k, _, err := b.kc.Decode(pk[prefixLen+8:])
	if err != nil {
		b.fail(err)
		return key, 0, false
	}
	b.del(pk)
	ti.live--
	ti.setMin(gi, next)
	return k, t, true
}

// rebuildTimers recomputes the timer indexes from Pebble, after a restore.
func (b *Backend[K]) rebuildTimers() error {
	for _, ti := range []*timerIndex{&b.timers, &b.etimers} {
		ti.init(ti.sid, b.r.Len())
		for gi := range b.r.Len() {
			kg := b.r.Start + gi
			it, err := b.db.NewIter(&pebble.IterOptions{LowerBound: appendPrefix(nil, kg, ti.sid), UpperBound: appendPrefix(nil, kg, ti.sid+1)})
			if err != nil {
				return err
			}
			first := true
			for ok := it.First(); ok; ok = it.Next() {
				k := it.Key()
				if len(k) < prefixLen+8 {
					it.Close()
					return errors.New("malformed timer key")
				}
				if first {
					ti.setMin(gi, timerSlot{t: readTime(k[prefixLen:])})
					first = false
				}
				ti.live++
			}
			if err := it.Close(); err != nil {
				return err
			}
		}
	}
	return nil
}

// RegisterTimer registers a processing-time timer at t for the current key.
// Registering the same key and time again is a no-op. Times are kept as Unix
// nanoseconds, so they must lie between the years 1678 and 2262.
func (b *Backend[K]) RegisterTimer(t time.Time) { b.register(&b.timers, t.UnixNano()) }

// DeleteTimer removes the current key's timer at t, if there is one.
func (b *Backend[K]) DeleteTimer(t time.Time) { b.unregister(&b.timers, t.UnixNano()) }

// NextTimer returns the time of the earliest timer, of any key, so the
// runtime can arm its clock; false if there are none.
func (b *Backend[K]) NextTimer() (time.Time, bool) {
	if gi, t := b.timers.first(); gi >= 0 {
		return time.Unix(0, t), true
	}
	return time.Time{}, false
}

// PopDueTimer removes and returns the earliest timer due at now (its time is
// not after now) with its key; false if none is due. Timers with equal times
// pop in key-group, then key order.
func (b *Backend[K]) PopDueTimer(now time.Time) (K, time.Time, bool) {
	k, t, ok := b.pop(&b.timers, now.UnixNano())
	if !ok {
		return k, time.Time{}, false
	}
	return k, time.Unix(0, t), true
}

// NumTimers returns the number of registered processing-time timers.
func (b *Backend[K]) NumTimers() int { return b.timers.live }

// RegisterEventTimer registers an event-time timer at t (nanoseconds since
// the epoch) for the current key; it fires once the watermark reaches t.
// Registering the same key and time again is a no-op.
func (b *Backend[K]) RegisterEventTimer(t int64) { b.register(&b.etimers, t) }

// DeleteEventTimer removes the current key's event-time timer at t, if any.
func (b *Backend[K]) DeleteEventTimer(t int64) { b.unregister(&b.etimers, t) }

// PopEventTimer removes and returns the earliest event-time timer due at
// watermark wm (its time is not after wm) with its key; false if none is.
func (b *Backend[K]) PopEventTimer(wm int64) (K, int64, bool) { return b.pop(&b.etimers, wm) }

// NumEventTimers returns the number of registered event-time timers.
func (b *Backend[K]) NumEventTimers() int { return b.etimers.live }
