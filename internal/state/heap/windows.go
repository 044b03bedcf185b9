package heap

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/keygroup"
	"github.com/sluicehq/sluice/state"
	"github.com/sluicehq/sluice/window"
)

// WindowMajor is the window operator's fast path for non-merging
// event-time windows with the default trigger and an incremental function
// (docs/design.md §14): accumulators kept window-major — per state window
// (the window, or a pane of a sliding window), per key group, a map from
// key to accumulator — and one timer per window instead of one per key
// and window. A window fires for all its keys at once and its state goes
// whole at its cleanup time.
//
// Its snapshot is the generic operator's, entry for entry: a value state
// whose key (type KK, the operator's pair of key and state window) is
// built by pair, and per key and window the event-time timers the generic
// operator would hold (the window's end unless it fired already, and its
// cleanup time). So a checkpoint written by either restores into the
// other. The per-key-group maps are copy-on-write as the backend's tables.
type WindowMajor[KK, K comparable, V any] struct {
	base[KK]
	vc codec.Codec[V]
	// rd decodes restored accumulators while adopt runs: vc's Decode, or
	// the reader of an older version (a migration).
	rd    codec.DecodeFunc[V]
	hash  func(K) uint64
	pair  func(K, window.Window) KK
	split func(KK) (K, window.Window)
	enc   PairEncoding[K]
	// slide is the pane length of a sliding window, 0 when the state
	// windows are the windows themselves.
	slide    int64
	lateness time.Duration

	panes map[window.Window]*hmapTable[K, V]
	wins  map[window.Window]*winTimer
	q     []winEvent

	lastW  window.Window
	lastT  *hmapTable[K, V]
	toFire []bool
	// hints are the sizes of the last dropped state window's maps.
	hints []int
	// sink keeps Prefetch's loads from being optimized away.
	sink uint64
}

// PairEncoding is how the backend's key codec encodes a (key, window)
// pair: the key's encoding, then the window's.
type PairEncoding[K comparable] struct {
	AppendKey    func(dst []byte, k K) []byte
	AppendWindow func(dst []byte, w window.Window) []byte
}

// winTimer is a live window. fired[gi] is set once key group index gi
// fired (the watermark passed the window's end): per key group, because
// key groups are what a rescale moves, and the subtasks whose files a
// restore combines had different watermarks.
type winTimer struct{ fired []bool }

// winEvent is a window's timer: its end (fire) and/or its cleanup.
type winEvent struct {
	t     int64
	w     window.Window
	fire  bool
	clean bool
}

// NewWindowMajor registers window-major state called name (the name the
// generic operator gives its accumulators) and adopts restored entries
// and event-time timers: those the backend restored are taken over, so
// the operator must keep no other timers in b. hash is the user key's
// hash (the one b's key codec applies to the pair); slide is the pane
// length, 0 for windows kept whole. A restored timer that is neither a
// window's end nor after it (another trigger wrote the checkpoint), any
// processing-time timer, or TTL on the state is state.ErrIncompatible.
//
// enc must encode pair(k, w) as b's key codec does, as the user key's
// encoding followed by one of the window's (appendWindow): snapshots
// encode each window once.
func NewWindowMajor[KK, K comparable, V any](b *HeapBackend[KK], name string, c codec.Codec[V], hash func(K) uint64,
	pair func(K, window.Window) KK, split func(KK) (K, window.Window), enc PairEncoding[K],
	slide int64, lateness time.Duration) (*WindowMajor[KK, K, V], error) {
	_, old, err := b.prepare(name, kindValue, nil)
	if err != nil {
		return nil, err
	}
	if old != nil {
		return nil, fmt.Errorf("%w: state %q registered twice", state.ErrIncompatible, name)
	}
	if c == nil {
		return nil, errNil(name, "value codec")
	}
	s := &WindowMajor[KK, K, V]{
		base: b.newBase(name, kindValue, state.Options{}), vc: c, hash: hash, pair: pair, split: split, enc: enc,
		slide: slide, lateness: lateness,
		panes: make(map[window.Window]*hmapTable[K, V]),
		wins:  make(map[window.Window]*winTimer),
	}
	s.codecs = []codec.ID{codec.IDOf(c)}
	if rs, ok := b.raw[name]; ok && rs.meta.flags&flagTTL != 0 {
		return nil, fmt.Errorf("%w: %w: state %q was written with TTL; window state has none", state.ErrIncompatible, checkpoint.ErrIncompatible, name)
	}
	// The accumulator codec resolves against the written one as every
	// state's does (docs/design.md §10): as is, or through a migration.
	err = b.adopt(&s.base, func(w []codec.ID) []codec.Compatibility {
		return []codec.Compatibility{resolveCodec(s.vc, w, 0, &s.rd)}
	}, s.decodeGroup)
	s.rd = nil
	if err != nil {
		return nil, err
	}
	if err := s.adoptTimers(); err != nil {
		return nil, err
	}
	b.states[name] = s
	return s, nil
}

func (s *WindowMajor[KK, K, V]) decodeGroup(gi int, body []byte, _ bool, _ int64) error {
	for len(body) > 0 {
		kk, n, err := s.b.decodeKey(body, gi)
		if err != nil {
			return err
		}
		body = body[n:]
		v, n, err := s.rd(body)
		if err != nil {
			return errEntry(kk, err)
		}
		body = body[n:]
		k, sw := s.split(kk)
		s.pane(sw).maps[gi].put(slotHash(s.hash(k)), k, v)
	}
	return nil
}

// adoptTimers turns the restored per-key event-time timers into live
// windows: a window fired already in a key group unless one of the
// group's keys still has the window's end as a timer.
func (s *WindowMajor[KK, K, V]) adoptTimers() error {
	b := s.b
	if b.timers.live > 0 {
		return fmt.Errorf("%w: %w: window state %q: the checkpoint holds %d processing-time timers, which this event-time window operator does not keep (was the trigger changed?)",
			state.ErrIncompatible, checkpoint.ErrIncompatible, s.name, b.timers.live)
	}
	if b.etimers.live == 0 {
		return nil
	}
	// Per window and key group: 0 no timer, 1 only later ones (fired), 2
	// the end (not fired). A group without keys in the window has not
	// fired: a key it gets fires with the window.
	seen := make(map[window.Window][]byte)
	for gi, m := range b.etimers.t.maps {
		for tk := range m {
			_, w := s.split(tk.key)
			g, ok := seen[w]
			if !ok {
				g = make([]byte, b.r.Len())
				seen[w] = g
			}
			switch {
			case tk.t == w.MaxTimestamp():
				g[gi] = 2
			case tk.t < w.MaxTimestamp():
				return fmt.Errorf("%w: %w: window state %q: restored event-time timer at %d for window %v, before its end: the checkpoint was written with another trigger",
					state.ErrIncompatible, checkpoint.ErrIncompatible, s.name, tk.t, w)
			default:
				g[gi] = max(g[gi], 1)
			}
		}
	}
	for w, g := range seen {
		f := make([]bool, len(g))
		for i, x := range g {
			f[i] = x == 1
		}
		s.addWindow(w, f)
	}
	b.etimers = timerService[KK]{}
	b.etimers.init(b.r.Len())
	return nil
}

// Group returns the key-group index of k in the backend's range, or an
// error wrapping ErrKeyGroupOutOfRange.
func (s *WindowMajor[KK, K, V]) Group(k K) (int, error) {
	b := s.b
	kg := keygroup.Of(s.hash(k), b.maxP)
	if kg < b.r.Start || kg > b.r.End {
		return 0, fmt.Errorf("%w: key %v is in key group %d, backend owns [%d, %d]",
			ErrKeyGroupOutOfRange, k, kg, b.r.Start, b.r.End)
	}
	return kg - b.r.Start, nil
}

// GroupOf is Group for a key whose hash kh and key group kg the caller
// already computed (the hash partitioner did): it checks the range without
// hashing again (both sampled against the hash in race-detector builds, as
// HeapBackend.SetCurrentKeyInGroup).
func (s *WindowMajor[KK, K, V]) GroupOf(k K, kg int, kh uint64) (int, error) {
	b := s.b
	if kg < b.r.Start || kg > b.r.End {
		return 0, fmt.Errorf("%w: key %v is in key group %d, backend owns [%d, %d]",
			ErrKeyGroupOutOfRange, k, kg, b.r.Start, b.r.End)
	}
	if verifyKeyGroups && b.verifyDue() {
		if h := s.hash(k); h != kh || keygroup.Of(h, b.maxP) != kg {
			return 0, fmt.Errorf("%w: key %v was given key group %d and hash %#x, its hash is %#x, in key group %d",
				ErrKeyGroupOutOfRange, k, kg, kh, h, keygroup.Of(h, b.maxP))
		}
	}
	return kg - b.r.Start, nil
}

func (s *WindowMajor[KK, K, V]) pane(sw window.Window) *hmapTable[K, V] {
	if s.lastT != nil && s.lastW == sw {
		return s.lastT
	}
	t, ok := s.panes[sw]
	if !ok {
		// Size the maps as the last dropped window's, or before the
		// first drop as the window used last: windows of a steady
		// stream hold about as many keys, and growing a map from empty
		// rehashes it several times.
		hints := s.hints
		if hints == nil {
			hints = s.liveHints()
		}
		t = newHmapTable[K, V](s.b.r.Len(), hints)
		s.panes[sw] = t
	}
	s.lastW, s.lastT = sw, t
	return t
}

// KeyHash returns k's hash, the one its key group is computed from.
func (s *WindowMajor[KK, K, V]) KeyHash(k K) uint64 { return s.hash(k) }

// KeyGroupOf returns the key group of the key whose hash is kh.
func (s *WindowMajor[KK, K, V]) KeyGroupOf(kh uint64) int { return keygroup.Of(kh, s.b.maxP) }

// liveHints returns the sizes of the maps of the state window used last,
// nil if there is none: O(key groups), however many windows are live.
func (s *WindowMajor[KK, K, V]) liveHints() []int {
	t := s.lastT
	if t == nil || t.entries() == 0 {
		return nil
	}
	hints := make([]int, len(t.maps))
	for gi, m := range t.maps {
		hints[gi] = m.Len()
	}
	return hints
}

// Get returns the accumulator in state window sw of k, whose hash
// (KeyHash) is kh.
func (s *WindowMajor[KK, K, V]) Get(sw window.Window, gi int, kh uint64, k K) (V, bool) {
	var t *hmapTable[K, V]
	if s.lastT != nil && s.lastW == sw {
		t = s.lastT
	} else if t = s.panes[sw]; t == nil {
		var zero V
		return zero, false
	}
	return t.maps[gi].get(slotHash(kh), k)
}

// Prefetch touches, for each record of a batch (key groups kgs, key hashes
// hs), the slot of state window sw where its key's accumulator is or would
// go, if sw has state: the loads are independent, so the CPU overlaps their
// cache misses, and the records' lookups that follow find the slots in
// cache (runtime.KeyPrefetcher). It changes nothing.
func (s *WindowMajor[KK, K, V]) Prefetch(sw window.Window, kgs []uint16, hs []uint64) {
	t := s.lastT
	if t == nil || s.lastW != sw {
		if t = s.panes[sw]; t == nil {
			return
		}
	}
	start := s.b.r.Start
	var x uint64
	for i, kg := range kgs[:len(hs)] {
		gi := int(kg) - start
		if uint(gi) >= uint(len(t.maps)) {
			continue
		}
		m := t.maps[gi]
		x += m.slots[slotHash(hs[i])>>m.shift].h
	}
	s.sink += x
}

// Put sets the accumulator in state window sw of k, whose hash is kh.
func (s *WindowMajor[KK, K, V]) Put(sw window.Window, gi int, kh uint64, k K, v V) {
	s.pane(sw).mut(&s.b.cow, gi).put(slotHash(kh), k, v)
}

// Upsert returns a pointer to the accumulator in state window sw of k,
// whose hash is kh: the zero value newly stored if k had none, and whether
// it had one (Get and Put in one lookup). The pointer is valid until the
// next write to the state.
func (s *WindowMajor[KK, K, V]) Upsert(sw window.Window, gi int, kh uint64, k K) (*V, bool) {
	return s.pane(sw).mut(&s.b.cow, gi).upsert(slotHash(kh), k)
}

// HasPane reports whether state window sw holds any entry (or did since
// its last drop).
func (s *WindowMajor[KK, K, V]) HasPane(sw window.Window) bool {
	if s.lastT != nil && s.lastW == sw {
		return true
	}
	_, ok := s.panes[sw]
	return ok
}

// Range calls fn for every key and accumulator of key group index gi in
// state window sw until fn returns false. fn must not change the state.
func (s *WindowMajor[KK, K, V]) Range(sw window.Window, gi int, fn func(K, V) bool) {
	t := s.panes[sw]
	if t == nil {
		return
	}
	for k, v := range t.maps[gi].all() {
		if !fn(k, v) {
			return
		}
	}
}

// AddWindow makes w live (its timers set) if it is not. passed says the
// watermark passed its end already (the caller fires each key's result as
// it comes, as the default trigger does): then only its cleanup timer is
// set.
func (s *WindowMajor[KK, K, V]) AddWindow(w window.Window, passed bool) {
	if _, ok := s.wins[w]; !ok {
		f := make([]bool, s.b.r.Len())
		if passed {
			for i := range f {
				f[i] = true
			}
		}
		s.addWindow(w, f)
	}
}

// Fired reports whether live window w has fired in key group index gi:
// the watermark passed its end there, or a restored checkpoint says so
// (after a restore the watermark starts low, so the caller cannot tell
// from it).
func (s *WindowMajor[KK, K, V]) Fired(w window.Window, gi int) bool {
	wt, ok := s.wins[w]
	return ok && wt.fired[gi]
}

func (s *WindowMajor[KK, K, V]) addWindow(w window.Window, fired []bool) {
	s.wins[w] = &winTimer{fired: fired}
	end, clean := w.MaxTimestamp(), s.cleanup(w)
	all := true
	for _, f := range fired {
		all = all && f
	}
	switch {
	case all:
		s.push(winEvent{t: clean, w: w, clean: true})
	case clean == end:
		s.push(winEvent{t: end, w: w, fire: true, clean: true})
	default:
		s.push(winEvent{t: end, w: w, fire: true})
		s.push(winEvent{t: clean, w: w, clean: true})
	}
}

func (s *WindowMajor[KK, K, V]) cleanup(w window.Window) int64 {
	return window.CleanupTime(w, window.EventTime, s.lateness)
}

// PopDue returns the earliest window timer due at watermark wm: the
// window, the key groups (by index) that fire now, nil if none, and
// whether its state is to be dropped (the caller then calls DropPane);
// false if none is due. fire is valid until the next call; the groups
// are marked fired.
func (s *WindowMajor[KK, K, V]) PopDue(wm int64) (w window.Window, fire []bool, clean, ok bool) {
	for len(s.q) > 0 && s.q[0].t <= wm {
		e := s.pop()
		wt, live := s.wins[e.w]
		if !live {
			continue
		}
		fire = nil
		if e.fire {
			s.toFire = append(s.toFire[:0], wt.fired...)
			any := false
			for i, f := range s.toFire {
				s.toFire[i] = !f
				any = any || !f
				wt.fired[i] = true
			}
			if any {
				fire = s.toFire
			}
		}
		if e.clean {
			delete(s.wins, e.w)
		}
		return e.w, fire, e.clean, true
	}
	return w, nil, false, false
}

// DropPane drops state window sw whole.
func (s *WindowMajor[KK, K, V]) DropPane(sw window.Window) {
	if t, ok := s.panes[sw]; ok {
		if s.hints == nil {
			s.hints = make([]int, len(t.maps))
		}
		for gi, m := range t.maps {
			s.hints[gi] = m.Len()
		}
	}
	delete(s.panes, sw)
	if s.lastW == sw {
		s.lastT = nil
	}
}

// NumWindows returns the number of live windows (with timers).
func (s *WindowMajor[KK, K, V]) NumWindows() int { return len(s.wins) }

func (s *WindowMajor[KK, K, V]) push(e winEvent) {
	s.q = append(s.q, e)
	h := s.q
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if !evLess(h[i], h[p]) {
			break
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
}

func evLess(a, b winEvent) bool {
	if a.t != b.t {
		return a.t < b.t
	}
	return a.w.Start < b.w.Start
}

func (s *WindowMajor[KK, K, V]) pop() winEvent {
	h := s.q
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	s.q = h[:last]
	h = s.q
	for i := 0; ; {
		l := 2*i + 1
		if l >= len(h) {
			break
		}
		m := l
		if r := l + 1; r < len(h) && evLess(h[r], h[l]) {
			m = r
		}
		if !evLess(h[m], h[i]) {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	return top
}

func (s *WindowMajor[KK, K, V]) keys(fn func(KK)) {
	for sw, t := range s.panes {
		for _, m := range t.maps {
			for k := range m.all() {
				fn(s.pair(k, sw))
			}
		}
	}
}

func (s *WindowMajor[KK, K, V]) numKeys() int {
	n := 0
	for _, t := range s.panes {
		n += t.entries()
	}
	return n
}

// frozenPane is a state window's maps as a snapshot saw them.
type frozenPane[K comparable, V any] struct {
	w    window.Window
	maps []*hmap[K, V]
	wenc []byte // the window's encoding
}

type frozenWin struct {
	w     window.Window
	fired []bool
}

// frozenWindows is a WindowMajor as a snapshot froze it: O(state windows
// × key groups) to take.
type frozenWindows[KK, K comparable, V any] struct {
	meta     blockMeta
	vc       codec.Codec[V]
	enc      PairEncoding[K]
	slide    int64
	lateness time.Duration
	panes    []frozenPane[K, V]
	byWin    map[window.Window]int
	wins     []frozenWin
	seen     map[K]struct{}
	masks    map[K]uint64
	sc       scratch[K, V]
	wmask    []uint64
	key      []byte
}

func (s *WindowMajor[KK, K, V]) freeze(seq int64) frozenState {
	f := &frozenWindows[KK, K, V]{
		meta: s.meta(), vc: s.vc, enc: s.enc, slide: s.slide, lateness: s.lateness,
		panes: make([]frozenPane[K, V], 0, len(s.panes)),
		byWin: make(map[window.Window]int, len(s.panes)),
		wins:  make([]frozenWin, 0, len(s.wins)),
	}
	for sw, t := range s.panes {
		f.panes = append(f.panes, frozenPane[K, V]{w: sw, maps: t.freeze(seq), wenc: s.enc.AppendWindow(nil, sw)})
	}
	slices.SortFunc(f.panes, func(x, y frozenPane[K, V]) int { return cmp.Compare(x.w.Start, y.w.Start) })
	for i, p := range f.panes {
		f.byWin[p.w] = i
	}
	for w, wt := range s.wins {
		f.wins = append(f.wins, frozenWin{w: w, fired: slices.Clone(wt.fired)})
	}
	slices.SortFunc(f.wins, func(x, y frozenWin) int { return cmp.Compare(x.w.Start, y.w.Start) })
	return f
}

func (f *frozenWindows[KK, K, V]) header() blockMeta { return f.meta }

func (f *frozenWindows[KK, K, V]) appendGroup(dst []byte, gi int, _ int64) []byte {
	for _, p := range f.panes {
		forEachSeqPrefetched(&f.sc, p.maps[gi].Len(), p.maps[gi].all(), func(k K, v V) {
			dst = f.enc.AppendKey(dst, k)
			dst = append(dst, p.wenc...)
			dst = f.vc.Append(dst, v)
		})
	}
	return dst
}

// appendEventTimers appends the event-time timers the generic operator
// would hold in key group index gi: per key of a live window, the window's
// end unless it fired, and its cleanup time if later.
func (f *frozenWindows[KK, K, V]) appendEventTimers(dst []byte, gi int) []byte {
	if f.slide != 0 {
		return f.appendPaneTimers(dst, gi)
	}
	for _, fw := range f.wins {
		i, ok := f.byWin[fw.w]
		if !ok {
			continue
		}
		p := &f.panes[i]
		forEachSeqPrefetched(&f.sc, p.maps[gi].Len(), p.maps[gi].all(), func(k K, _ V) {
			dst = f.appendTimers(dst, k, fw, gi, p.wenc)
		})
	}
	return dst
}

// appendTimers appends key k's timers of window fw, whose encoding is
// wenc, in key group index gi.
func (f *frozenWindows[KK, K, V]) appendTimers(dst []byte, k K, fw frozenWin, gi int, wenc []byte) []byte {
	end, clean := fw.w.MaxTimestamp(), window.CleanupTime(fw.w, window.EventTime, f.lateness)
	f.key = append(f.enc.AppendKey(f.key[:0], k), wenc...)
	if !fw.fired[gi] {
		dst = binary.AppendVarint(append(dst, f.key...), end)
	}
	if clean != end && clean != math.MaxInt64 {
		dst = binary.AppendVarint(append(dst, f.key...), clean)
	}
	return dst
}

// appendPaneTimers is appendEventTimers for panes: a key has the timers
// of every live window holding one of its panes. With up to 64 panes it
// marks each key's panes in a bit set, visiting every entry once;
// otherwise it visits each window's panes.
func (f *frozenWindows[KK, K, V]) appendPaneTimers(dst []byte, gi int) []byte {
	if len(f.panes) <= 64 {
		if f.masks == nil {
			f.masks = make(map[K]uint64)
			f.wmask = make([]uint64, len(f.wins))
			for j, fw := range f.wins {
				for p := fw.w.Start; p < fw.w.End; p += f.slide {
					if i, ok := f.byWin[window.Window{Start: p, End: p + f.slide}]; ok {
						f.wmask[j] |= 1 << i
					}
				}
			}
		}
		clear(f.masks)
		for i, p := range f.panes {
			for k := range p.maps[gi].all() {
				f.masks[k] |= 1 << i
			}
		}
		var wenc []byte
		for j, fw := range f.wins {
			wenc = f.enc.AppendWindow(wenc[:0], fw.w)
			for k, m := range f.masks {
				if m&f.wmask[j] != 0 {
					dst = f.appendTimers(dst, k, fw, gi, wenc)
				}
			}
		}
		return dst
	}
	if f.seen == nil {
		f.seen = make(map[K]struct{})
	}
	var wenc []byte
	for _, fw := range f.wins {
		wenc = f.enc.AppendWindow(wenc[:0], fw.w)
		clear(f.seen)
		for p := fw.w.Start; p < fw.w.End; p += f.slide {
			i, ok := f.byWin[window.Window{Start: p, End: p + f.slide}]
			if !ok {
				continue
			}
			for k := range f.panes[i].maps[gi].all() {
				if _, dup := f.seen[k]; !dup {
					f.seen[k] = struct{}{}
					dst = f.appendTimers(dst, k, fw, gi, wenc)
				}
			}
		}
	}
	return dst
}

// eventTimerSource is a frozen state that contributes event-time timers
// to the snapshot's timer block.
type eventTimerSource interface {
	appendEventTimers(dst []byte, gi int) []byte
}

// joinedTimers appends the backend's event-time timers, then those of
// the states that keep their own.
type joinedTimers struct {
	base   groupAppender
	extras []eventTimerSource
}

func (j *joinedTimers) appendGroup(dst []byte, gi int, now int64) []byte {
	dst = j.base.appendGroup(dst, gi, now)
	for _, x := range j.extras {
		dst = x.appendEventTimers(dst, gi)
	}
	return dst
}

// untracked reports that window state's changes are not all recorded in
// the backend's change tracking (panes are dropped whole, fired marks are
// set without a write), so incremental snapshots rewrite every key group
// of a backend holding it (incremental.go).
func (s *WindowMajor[KK, K, V]) untracked() bool { return true }
