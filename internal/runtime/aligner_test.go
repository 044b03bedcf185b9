package runtime

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestAlignerScripts replays the scripts in testdata/aligner (datadriven
// format, as the coordinator's in package checkpoint). Directives:
//
//	init inputs=<n> [mode=exactly-once|at-least-once]
//	barrier input=<i> id=<n>   the reader of input i delivered barrier n
//	end input=<i>              input i ended
//	abort id=<n>               the job master aborted checkpoint n
//	state                      "aligning <n> blocked [..] ended [..]"
//
// Each event's output is the aligner's actions, one a line. The harness
// models the input readers: in exactly-once mode a reader that delivered a
// barrier is blocked until released, so a script that delivers on a blocked
// input is rejected, and an action that releases an input that is not
// blocked, blocks one twice, or snapshots a checkpoint twice fails the test
// (the invariants of aligner's doc comment).
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
				h = &alignScript{a: newAligner(n, mode == "exactly-once"), blocked: make([]bool, n), ended: make([]bool, n), snapshotted: map[int64]bool{}}
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
	snapshotted map[int64]bool
	snapshot    int64 // snapshotted, barrier not yet emitted
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
		acts = h.a.Barrier(i, Barrier{ID: id})
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
	case "state":
		n, _ := h.a.Aligning()
		return fmt.Sprintf("aligning %d blocked %v ended %v", n, indexes(h.blocked), indexes(h.ended))
	default:
		d.Fatalf(t, "unknown directive %q", d.Cmd)
	}
	var out []string
	for _, a := range acts {
		h.check(t, d, a)
		out = append(out, a.String())
	}
	if h.snapshot != 0 {
		d.Fatalf(t, "snapshot %d without its barrier emitted", h.snapshot)
	}
	return strings.Join(out, "\n")
}

// check enforces the aligner's invariants on one action.
func (h *alignScript) check(t *testing.T, d *datadriven.TestData, a alignAction) {
	switch a.Op {
	case alignBlock:
		if h.blocked[a.Input] {
			d.Fatalf(t, "%v: input %d already blocked", a, a.Input)
		}
		h.blocked[a.Input] = true
	case alignRelease:
		if !h.blocked[a.Input] {
			d.Fatalf(t, "%v: input %d is not blocked (a stale gate token would break the next alignment)", a, a.Input)
		}
		if h.snapshot != 0 {
			d.Fatalf(t, "%v: input released between snapshot %d and its barrier", a, h.snapshot)
		}
		h.blocked[a.Input] = false
	case alignSnapshot:
		if h.snapshotted[a.ID] {
			d.Fatalf(t, "%v: checkpoint %d snapshotted twice", a, a.ID)
		}
		h.snapshotted[a.ID] = true
		h.snapshot = a.ID
	case alignEmit:
		if h.snapshot != a.ID {
			d.Fatalf(t, "%v: barrier emitted before its snapshot", a)
		}
		h.snapshot = 0
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
