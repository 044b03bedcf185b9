package runtime

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestAlignerScripts replays the scripts in testdata/aligner (datadriven
// format, as the coordinator's in package checkpoint). Directives:
//
//	init inputs=<n> [mode=exactly-once|at-least-once]
//	barrier input=<i> id=<n> [unaligned]
//	                           the reader of input i delivered barrier n
//	                           (flagged unaligned)
//	unaligned id=<n>           checkpoint n goes unaligned here (the job
//	                           master's notice, or its aligned timeout)
//	end input=<i>              input i ended
//	abort id=<n>               the job master aborted checkpoint n
//	state                      "aligning <n> blocked [..] ended [..]"
//	                           (and "captured [..]" while unaligned)
//
// Each event's output is the aligner's actions, one a line. The harness
// models the input readers: in exactly-once mode a reader that delivered a
// barrier is blocked until released, so a script that delivers on a blocked
// input is rejected, and an action that releases an input that is not
// blocked, blocks one twice, or snapshots a checkpoint twice fails the test
// (the invariants of aligner's doc comment); so does, for an unaligned
// checkpoint, capturing an input that is blocked, ended or captured,
// releasing anything between its snapshot and its completion or discard,
// or completing it while an input is still captured.
func TestAlignerScripts(t *testing.T) {
	t.Parallel()
	datadriven.Walk(t, "testdata/aligner", func(t *testing.T, path string) {
		t.Parallel()
		var h *alignScript
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			if d.Cmd == "init" {
				var n int
				d.ScanArgs(t, "inputs", &n)
				mode := "exactly-once"
				d.MaybeScanArgs(t, "mode", &mode)
				if mode != "exactly-once" && mode != "at-least-once" {
					d.Fatalf(t, "unknown mode %q", mode)
				}
				h = newAlignScript(n, mode == "exactly-once")
				return ""
			}
			if h == nil {
				d.Fatalf(t, "%s before init", d.Cmd)
			}
			return h.exec(t, d)
		})
	})
}

// alignScript is the harness of one script: the aligner and a model of its
// inputs' readers.
type alignScript struct {
	a           *aligner
	blocked     []bool
	ended       []bool
	captured    []bool
	snapshotted map[int64]bool
	snapshot    int64 // snapshotted, barrier not yet emitted
	// open is the unaligned checkpoint snapshotted and not yet completed
	// or discarded.
	open int64
}

func newAlignScript(n int, exactlyOnce bool) *alignScript {
	return &alignScript{a: newAligner(n, exactlyOnce), blocked: make([]bool, n), ended: make([]bool, n), captured: make([]bool, n), snapshotted: map[int64]bool{}}
}

func (h *alignScript) exec(t *testing.T, d *datadriven.TestData) string {
	input := func() int {
		var i int
		d.ScanArgs(t, "input", &i)
		if i < 0 || i >= len(h.blocked) {
			d.Fatalf(t, "no input %d", i)
		}
		if h.blocked[i] {
			d.Fatalf(t, "input %d is blocked behind a barrier: its reader cannot deliver", i)
		}
		if h.ended[i] {
			d.Fatalf(t, "input %d ended", i)
		}
		return i
	}
	var acts []alignAction
	switch d.Cmd {
	case "barrier":
		i := input()
		var id int64
		d.ScanArgs(t, "id", &id)
		if h.a.exactlyOnce {
			// The reader blocks on its gate right after forwarding.
			h.blocked[i] = true
		}
		acts = h.a.Barrier(i, Barrier{ID: id, Unaligned: d.HasArg("unaligned")})
		// The reader's own blocking is modelled above; the aligner must
		// say so with a block action, or release it at once (stale, or the
		// last barrier of an alignment).
		if h.a.exactlyOnce {
			h.blocked[i] = false
			blockedBy := false
			for _, a := range acts {
				if a.Op == alignBlock && a.Input == i {
					blockedBy = true
				}
			}
			if !blockedBy {
				h.blocked[i] = true // the release among acts opens it
			}
		}
	case "end":
		i := input()
		h.ended[i] = true
		acts = h.a.End(i)
	case "abort":
		var id int64
		d.ScanArgs(t, "id", &id)
		acts = h.a.Abort(id)
	case "unaligned":
		var id int64
		d.ScanArgs(t, "id", &id)
		acts = h.a.Unaligned(Barrier{ID: id})
	case "state":
		n, _ := h.a.Aligning()
		st := fmt.Sprintf("aligning %d blocked %v ended %v", n, indexes(h.blocked), indexes(h.ended))
		if h.open != 0 {
			st += fmt.Sprintf(" captured %v", indexes(h.captured))
		}
		return st
	default:
		d.Fatalf(t, "unknown directive %q", d.Cmd)
	}
	var out []string
	fail := func(format string, args ...any) { d.Fatalf(t, format, args...) }
	for _, a := range acts {
		h.check(fail, a)
		out = append(out, a.String())
	}
	h.checkSettled(fail)
	return strings.Join(out, "\n")
}

// check enforces the aligner's invariants on one action.
func (h *alignScript) check(fail func(string, ...any), a alignAction) {
	switch a.Op {
	case alignBlock:
		if h.blocked[a.Input] {
			fail("%v: input %d already blocked", a, a.Input)
		}
		h.blocked[a.Input] = true
	case alignRelease:
		if !h.blocked[a.Input] {
			fail("%v: input %d is not blocked (a stale gate token would break the next alignment)", a, a.Input)
		}
		if h.snapshot != 0 {
			fail("%v: input released between snapshot %d and its barrier", a, h.snapshot)
		}
		if h.open != 0 && !h.captured[a.Input] {
			// A captured input is released only past a stale barrier:
			// its capture goes on.
			fail("%v: input released while unaligned checkpoint %d is open", a, h.open)
		}
		h.blocked[a.Input] = false
	case alignCapture:
		if h.blocked[a.Input] || h.ended[a.Input] || h.captured[a.Input] {
			fail("%v: input %d is blocked, ended or captured already", a, a.Input)
		}
		if h.open != a.ID {
			fail("%v: capture for a checkpoint not open (open %d)", a, h.open)
		}
		h.captured[a.Input] = true
	case alignCaptured:
		if !h.captured[a.Input] {
			fail("%v: input %d is not captured", a, a.Input)
		}
		h.captured[a.Input] = false
	case alignComplete, alignDiscard:
		if h.open != a.ID {
			fail("%v: checkpoint %d is not open (open %d)", a, a.ID, h.open)
		}
		if slices.Contains(h.captured, true) {
			fail("%v: inputs %v still captured", a, indexes(h.captured))
		}
		h.open = 0
	case alignSnapshot:
		if h.snapshotted[a.ID] {
			fail("%v: checkpoint %d snapshotted twice", a, a.ID)
		}
		h.snapshotted[a.ID] = true
		h.snapshot = a.ID
	case alignEmit:
		if h.snapshot != a.ID {
			fail("%v: barrier emitted before its snapshot", a)
		}
		h.snapshot = 0
		if a.Barrier.Unaligned {
			if h.open != 0 {
				fail("%v: unaligned checkpoint %d still open", a, h.open)
			}
			h.open = a.ID
		}
	case alignDecline:
		if h.open != 0 {
			fail("%v: unaligned checkpoint %d declined without its discard", a, h.open)
		}
	}
}

// checkSettled enforces what holds between two calls: no snapshot without
// its barrier, and an input is blocked exactly while the aligner aligns
// with its barrier (exactly-once), so nothing stays blocked once no
// alignment is in progress.
func (h *alignScript) checkSettled(fail func(string, ...any)) {
	if h.snapshot != 0 {
		fail("snapshot %d without its barrier emitted", h.snapshot)
	}
	for i, b := range h.blocked {
		if b != (h.a.exactlyOnce && h.a.seen[i]) {
			fail("input %d blocked=%v while the aligner has seen=%v (aligning %d)", i, b, h.a.seen[i], h.a.aligning)
		}
	}
	if _, ok := h.a.Aligning(); !ok && slices.Contains(h.blocked, true) {
		fail("inputs %v blocked with no alignment in progress", indexes(h.blocked))
	}
	for i, c := range h.captured {
		if c != h.a.capture[i] {
			fail("input %d captured=%v while the aligner has capture=%v", i, c, h.a.capture[i])
		}
	}
	if (h.open != 0) != h.a.capturing {
		fail("open unaligned checkpoint %d while the aligner has capturing=%v", h.open, h.a.capturing)
	}
}

// TestAlignerRandom drives aligners with random sequences of barriers
// (ids mostly increasing, with stale and duplicate ones), ends and aborts,
// as the readers could deliver them, and checks the invariants after every
// step: released inputs were blocked, nothing stays blocked without an
// alignment, no checkpoint is snapshotted twice, and in exactly-once mode
// a snapshot of n comes only after barrier n on every input not ended.
func TestAlignerRandom(t *testing.T) {
	t.Parallel()
	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, 7))
		n := 1 + rng.IntN(4)
		exactlyOnce := rng.IntN(3) != 0
		// Unaligned checkpoints (exactly-once only): some barriers are
		// flagged, and notices or timeouts switch checkpoints.
		unaligned := exactlyOnce && rng.IntN(2) == 0
		h := newAlignScript(n, exactlyOnce)
		// next[i] is the next barrier id input i delivers: ids increase per
		// input, as a producer emits them.
		next := make([]int64, n)
		for i := range next {
			next[i] = 1
		}
		delivered := map[int64]int{} // barrier id -> inputs that delivered it
		var trace []string
		fail := func(format string, args ...any) {
			t.Fatalf("seed %d, %d inputs, exactly-once %v: %s\ntrace:\n%s", seed, n, exactlyOnce, fmt.Sprintf(format, args...), strings.Join(trace, "\n"))
		}
		for range 60 {
			var acts []alignAction
			i := rng.IntN(n)
			switch r := rng.IntN(10); {
			case r < 7:
				if h.blocked[i] || h.ended[i] {
					continue
				}
				id := next[i]
				next[i] += int64(rng.IntN(2)) // sometimes repeat (a duplicate)
				if rng.IntN(4) == 0 {
					next[i]++ // skip one (declined upstream)
				}
				next[i] = max(next[i], id)
				if rng.IntN(3) != 0 {
					next[i] = id + 1
				}
				trace = append(trace, fmt.Sprintf("barrier %d on %d", id, i))
				delivered[id]++
				if exactlyOnce {
					h.blocked[i] = true
				}
				acts = h.a.Barrier(i, Barrier{ID: id, Unaligned: unaligned && rng.IntN(3) == 0})
				if exactlyOnce {
					h.blocked[i] = false
					if !slices.ContainsFunc(acts, func(a alignAction) bool { return a.Op == alignBlock && a.Input == i }) {
						h.blocked[i] = true
					}
				}
			case r < 8:
				if h.blocked[i] || h.ended[i] {
					continue
				}
				trace = append(trace, fmt.Sprintf("end %d", i))
				h.ended[i] = true
				acts = h.a.End(i)
			case unaligned && r < 9:
				id := int64(1 + rng.IntN(int(slices.Max(next))+1))
				trace = append(trace, fmt.Sprintf("unaligned %d", id))
				acts = h.a.Unaligned(Barrier{ID: id})
			default:
				id := int64(1 + rng.IntN(int(slices.Max(next))+1))
				trace = append(trace, fmt.Sprintf("abort %d", id))
				acts = h.a.Abort(id)
			}
			for _, a := range acts {
				trace = append(trace, "  "+a.String())
				h.check(fail, a)
				if a.Op == alignSnapshot && exactlyOnce && !a.Barrier.Unaligned {
					live := 0
					for k := range n {
						if !h.ended[k] {
							live++
						}
					}
					if delivered[a.ID] < live {
						fail("snapshot %d after its barrier on %d inputs of %d live", a.ID, delivered[a.ID], live)
					}
				}
			}
			h.checkSettled(fail)
		}
	}
}

func indexes(b []bool) []int {
	var out []int
	for i, v := range b {
		if v {
			out = append(out, i)
		}
	}
	return out
}
