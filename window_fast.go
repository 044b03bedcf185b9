package sluice

import (
	"encoding/binary"
	"fmt"

	"github.com/sluicehq/sluice/internal/runtime"
	"github.com/sluicehq/sluice/internal/state/heap"
	"github.com/sluicehq/sluice/window"
)

// The window operator's fast path (docs/design.md §14): non-merging
// event-time windows with the default trigger and an incremental
// function keep their accumulators window-major (heap.WindowMajor): per
// state window (the window, or a pane of a sliding window) and key group,
// a map from key to accumulator, and one timer per window. A record costs
// one map update; a window fires for all its keys in key-group order and
// its state goes whole at its cleanup time. The checkpointed layout is the
// generic path's, so either restores the other's checkpoints.

// fastPath reports whether the operator can keep its state window-major.
func fastPath(a window.Assigner, tr window.Trigger, list bool) bool {
	return !list && !a.IsMerging() && a.Domain() == window.EventTime &&
		a.DefaultTrigger() == window.EventTimeTrigger() && tr == window.EventTimeTrigger()
}

func wkeyPair[K comparable](k K, w window.Window) wkey[K]  { return wkey[K]{key: k, w: w} }
func wkeySplit[K comparable](k wkey[K]) (K, window.Window) { return k.key, k.w }

// appendWindow is the window part of wkeyCodec's encoding.
func appendWindow(dst []byte, w window.Window) []byte {
	return binary.AppendVarint(binary.AppendVarint(dst, w.Start), w.End)
}

// openFast registers the window-major state under the generic path's name.
func (o *windowOp[K, T, ACC, OUT]) openFast() error {
	name := "window-acc"
	if o.panes {
		name = "window-panes"
	}
	hb, ok := o.backend.(heapBackend[wkey[K]])
	if !ok {
		// fastPath is decided with the job's backend: a bug if reached.
		return fmt.Errorf("window fast path on the %s state backend: it needs the heap backend", o.oc.State.Backend)
	}
	enc := heap.PairEncoding[K]{AppendKey: o.kc.Append, AppendWindow: appendWindow}
	ws, err := heap.NewWindowMajor(hb.HeapBackend, name, o.f.accCodec, o.kc.Hash, wkeyPair[K], wkeySplit[K], enc, o.slide, o.lateness)
	if err != nil {
		return err
	}
	o.ws = ws
	if o.panes {
		o.scratchAcc = make(map[K]ACC)
	}
	return nil
}

// PrefetchKeys warms the state of a batch's records on the fast path
// (runtime.KeyPrefetcher): the slots of the state window of the batch's
// first record, the window of all or nearly all of its records in a steady
// stream (a record of another window costs one needless load).
func (o *windowOp[K, T, ACC, OUT]) PrefetchKeys(kgs []uint16, hs []uint64, ts []int64) {
	if !o.fast || len(ts) == 0 || o.ws == nil {
		return
	}
	var sw window.Window
	if o.panes {
		sw = o.a.PaneOf(ts[0])
	} else {
		o.pbuf = o.a.Assign(ts[0], o.pbuf[:0])
		if len(o.pbuf) != 1 {
			return
		}
		sw = o.pbuf[0]
	}
	o.ws.Prefetch(sw, kgs, hs)
}

// emitFast is Emit on the fast path: the record is added to its state
// window (its pane, or each of its windows that is not late); a state
// window's first record makes its windows live (one timer each); a window
// the watermark passed already (a late record within the allowed
// lateness) re-emits the key's result at once, as the default trigger
// does.
//
// The key group and the key's hash come from the hash partitioner when it
// computed them (runtime.Time.KG and Hash), so the key is hashed once per
// record: the state's hash tables take the same hash.
func (o *windowOp[K, T, ACC, OUT]) emitFast(key K, ts int64, v T) error {
	kg, kh := o.tm.KG, o.tm.Hash
	if kg == runtime.NoKeyGroup {
		kh = o.ws.KeyHash(key)
		kg = o.ws.KeyGroupOf(kh)
	}
	gi, err := o.ws.GroupOf(key, kg, kh)
	if err != nil {
		return fmt.Errorf("%s: %w", o.uid, err)
	}
	if o.panes {
		return o.emitFastPane(key, gi, kh, ts, v)
	}
	skipped := true
	for _, w := range o.buf {
		if o.isLate(w) {
			continue
		}
		skipped = false
		hasPane := o.ws.HasPane(w)
		p, had := o.ws.Upsert(w, gi, kh, key)
		*p = o.f.add(*p, had, v)
		acc := *p
		if !hasPane {
			o.ws.AddWindow(w, w.MaxTimestamp() <= o.wm)
		}
		// A window that fired in this key group fires the key's updated
		// result at once, even when the watermark is below the window's end:
		// after a restore the watermark starts low, and the window's one
		// timer will not fire it again.
		if w.MaxTimestamp() <= o.wm || o.ws.Fired(w, gi) {
			if err := o.fireKey(key, acc, w); err != nil {
				return err
			}
		}
	}
	if skipped && satAddLate(ts, o.lateness) <= o.wm {
		return o.onLate(v, ts)
	}
	return nil
}

func (o *windowOp[K, T, ACC, OUT]) emitFastPane(key K, gi int, kh uint64, ts int64, v T) error {
	live := false
	for _, w := range o.buf {
		if !o.isLate(w) {
			live = true
			break
		}
	}
	if !live {
		if satAddLate(ts, o.lateness) <= o.wm {
			return o.onLate(v, ts)
		}
		return nil
	}
	pane := o.a.PaneOf(ts)
	hasPane := o.ws.HasPane(pane)
	p, had := o.ws.Upsert(pane, gi, kh, key)
	*p = o.f.add(*p, had, v)
	if !hasPane {
		for _, w := range o.buf {
			if !o.isLate(w) {
				o.ws.AddWindow(w, w.MaxTimestamp() <= o.wm)
			}
		}
	}
	for _, w := range o.buf {
		if o.isLate(w) || (w.MaxTimestamp() > o.wm && !o.ws.Fired(w, gi)) {
			continue
		}
		acc, ok := o.fastPaneAcc(key, gi, kh, w)
		if !ok {
			continue
		}
		if err := o.fireKey(key, acc, w); err != nil {
			return err
		}
	}
	return nil
}

// fastPaneAcc combines the panes of window w of key, whose hash is kh.
func (o *windowOp[K, T, ACC, OUT]) fastPaneAcc(key K, gi int, kh uint64, w window.Window) (ACC, bool) {
	var acc ACC
	has := false
	for p, n := w.Start, 0; p < w.End && n < maxPanes; p, n = p+o.slide, n+1 {
		a, ok := o.ws.Get(window.Window{Start: p, End: p + o.slide}, gi, kh, key)
		switch {
		case !ok:
		case has:
			acc = o.f.merge(acc, a)
		default:
			acc, has = a, true
		}
	}
	return acc, has
}

// fireKey emits key's result of window w.
func (o *windowOp[K, T, ACC, OUT]) fireKey(key K, acc ACC, w window.Window) error {
	saved := o.tm.TS
	o.tm.TS = w.MaxTimestamp()
	o.wc.w, o.wc.wm = w, o.wm
	err := o.f.fireAcc(key, acc, &o.wc)
	o.tm.TS = saved
	if err != nil {
		return fmt.Errorf("%s: window %v: %w", o.uid, w, err)
	}
	return o.wc.take()
}

// fastWatermark fires and cleans up the windows the watermark passed, in
// time order; a window emits its keys key group by key group.
func (o *windowOp[K, T, ACC, OUT]) fastWatermark(wm int64) error {
	o.wm = wm
	for {
		w, fire, clean, ok := o.ws.PopDue(wm)
		if !ok {
			return nil
		}
		if fire != nil {
			if err := o.fireWindow(w, fire); err != nil {
				return err
			}
		}
		if clean {
			if o.panes {
				o.ws.DropPane(window.Window{Start: w.Start, End: w.Start + o.slide})
			} else {
				o.ws.DropPane(w)
			}
		}
	}
}

// fireWindow emits window w's result for every key of the key groups
// (by index) set in groups.
func (o *windowOp[K, T, ACC, OUT]) fireWindow(w window.Window, groups []bool) error {
	var ferr error
	emit := func(k K, acc ACC) bool {
		ferr = o.fireKey(k, acc, w)
		return ferr == nil
	}
	if !o.panes {
		for gi, f := range groups {
			if !f {
				continue
			}
			if o.ws.Range(w, gi, emit); ferr != nil {
				return ferr
			}
		}
		return nil
	}
	m := o.scratchAcc
	merge := func(k K, a ACC) bool {
		if b, ok := m[k]; ok {
			m[k] = o.f.merge(b, a)
		} else {
			m[k] = a
		}
		return true
	}
	for gi, f := range groups {
		if !f {
			continue
		}
		clear(m)
		for p, n := w.Start, 0; p < w.End && n < maxPanes; p, n = p+o.slide, n+1 {
			o.ws.Range(window.Window{Start: p, End: p + o.slide}, gi, merge)
		}
		for k, acc := range m {
			if !emit(k, acc) {
				clear(m)
				return ferr
			}
		}
	}
	clear(m)
	return nil
}
