package window

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
)

// TestScripts replays the scripts under testdata/ (one file per scenario;
// -rewrite regenerates expected output, review the diff). All numbers are
// nanoseconds. A window is written s,e for [s,e); several are separated by
// ";".
//
// Commands:
//
//	assigner tumbling|sliding|session|global [size=N] [slide=N] [offset=N] [gap=N] [processing]
//	assign ts=N[,N...]
//	set                         add w=s,e          remove w=s,e
//	windows                     snapshot           restore
//	trigger event-time|processing-time|count|continuous|never [n=N] [interval=N] [purging]
//	element ts=N w=s,e [wm=N] [now=N]
//	event-timer t=N w=s,e       proc-timer t=N w=s,e    clear w=s,e
//	merge-trigger into=s,e from=s,e[;s,e...] [wm=N] [now=N]
//	late w=s,e lateness=N wm=N
func TestScripts(t *testing.T) {
	t.Parallel()
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		var (
			a      Assigner
			set    *MergingSet
			snap   []byte
			trig   Trigger
			states map[Window]*State
		)
		state := func(w Window) *State {
			st := states[w]
			if st == nil {
				st = &State{}
				states[w] = st
			}
			return st
		}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			switch d.Cmd {
			case "assigner":
				kind := d.CmdArgs[0].Key
				switch kind {
				case "tumbling":
					a = Tumbling(dur(t, d, "size"), dur(t, d, "offset"))
				case "sliding":
					a = Sliding(dur(t, d, "size"), dur(t, d, "slide"), dur(t, d, "offset"))
				case "session":
					a = Session(dur(t, d, "gap"))
				case "global":
					a = Global()
				default:
					d.Fatalf(t, "unknown assigner %q", kind)
				}
				if d.HasArg("processing") {
					a = a.ProcessingTime()
				}
				if err := a.Validate(); err != nil {
					return err.Error()
				}
				return fmt.Sprintf("%s merging=%t default-trigger=%s\n", a.Domain(), a.IsMerging(), trigName(a.DefaultTrigger()))
			case "assign":
				var b strings.Builder
				var ws []Window
				for _, s := range strings.Split(str(t, d, "ts"), ",") {
					ws = a.Assign(num(t, d, s), ws[:0])
					fmt.Fprintf(&b, "%s: %s\n", s, fmtWindows(ws))
				}
				return b.String()
			case "set":
				set = &MergingSet{}
				return ""
			case "add":
				actual, m, merged := set.Add(win(t, d, str(t, d, "w")))
				st, _ := set.StateWindow(actual)
				if !merged {
					return fmt.Sprintf("actual=%v state=%v\n", actual, st)
				}
				if st != m.StateWindow || actual != m.Result {
					d.Fatalf(t, "merge %+v disagrees with actual %v state %v", m, actual, st)
				}
				return fmt.Sprintf("actual=%v state=%v merged=%s merged-state=%s\n",
					actual, st, fmtWindows(m.Merged), fmtWindows(m.MergedStateWindows))
			case "remove":
				st, err := set.Remove(win(t, d, str(t, d, "w")))
				if err != nil {
					return err.Error()
				}
				return fmt.Sprintf("state=%v\n", st)
			case "windows":
				var b strings.Builder
				for _, w := range set.Windows(nil) {
					st, _ := set.StateWindow(w)
					fmt.Fprintf(&b, "%v state=%v\n", w, st)
				}
				return b.String()
			case "snapshot":
				var err error
				if snap, err = set.MarshalBinary(); err != nil {
					return err.Error()
				}
				return fmt.Sprintf("%d bytes\n", len(snap))
			case "restore":
				set = &MergingSet{}
				if err := set.UnmarshalBinary(snap); err != nil {
					return err.Error()
				}
				return ""
			case "trigger":
				switch kind := d.CmdArgs[0].Key; kind {
				case "event-time":
					trig = EventTimeTrigger()
				case "processing-time":
					trig = ProcessingTimeTrigger()
				case "count":
					trig = CountTrigger(i64(t, d, "n"))
				case "continuous":
					trig = ContinuousEventTimeTrigger(dur(t, d, "interval"))
				case "never":
					trig = NeverTrigger()
				default:
					d.Fatalf(t, "unknown trigger %q", kind)
				}
				if d.HasArg("purging") {
					trig = trig.Purging()
				}
				states = map[Window]*State{}
				if err := trig.Validate(); err != nil {
					return err.Error()
				}
				return ""
			case "element":
				w := win(t, d, str(t, d, "w"))
				st := state(w)
				r, ts := trig.OnElement(i64(t, d, "ts"), w, now(t, d), st)
				return decision(r, ts, "register", st)
			case "event-timer":
				w := win(t, d, str(t, d, "w"))
				st := state(w)
				r, ts := trig.OnEventTime(i64(t, d, "t"), w, st)
				return decision(r, ts, "register", st)
			case "proc-timer":
				w := win(t, d, str(t, d, "w"))
				st := state(w)
				r, ts := trig.OnProcessingTime(i64(t, d, "t"), w, st)
				return decision(r, ts, "register", st)
			case "clear":
				w := win(t, d, str(t, d, "w"))
				st := state(w)
				ts := trig.Clear(w, st)
				delete(states, w)
				return decision(Continue, ts, "delete", st)
			case "merge-trigger":
				into := win(t, d, str(t, d, "into"))
				st := state(into)
				var b strings.Builder
				var from []Window
				for _, s := range strings.Split(str(t, d, "from"), ";") {
					from = append(from, win(t, d, s))
				}
				for _, w := range from {
					trig.MergeState(st, *state(w))
				}
				ts := trig.OnMerge(into, now(t, d), st)
				b.WriteString("merge " + decision(Continue, ts, "register", st))
				for _, w := range from {
					ts := trig.Clear(w, state(w))
					delete(states, w)
					fmt.Fprintf(&b, "clear %v ", w)
					b.WriteString(decision(Continue, ts, "delete", &State{}))
				}
				return b.String()
			case "late":
				w := win(t, d, str(t, d, "w"))
				l := dur(t, d, "lateness")
				return fmt.Sprintf("late=%t cleanup=%s processing-cleanup=%s\n", IsLate(w, l, i64(t, d, "wm")),
					fmtNum(CleanupTime(w, EventTime, l)), fmtNum(CleanupTime(w, ProcessingTime, l)))
			default:
				d.Fatalf(t, "unknown command %q", d.Cmd)
				return ""
			}
		})
	})
}

func trigName(t Trigger) string {
	return map[tkind]string{eventTimeTrigger: "event-time", processingTimeTrigger: "processing-time",
		countTrigger: "count", continuousEventTimeTrigger: "continuous", neverTrigger: "never"}[t.kind]
}

func decision(r Result, ts Timers, verb string, st *State) string {
	var b strings.Builder
	b.WriteString(r.String())
	if ts.Len() > 0 {
		b.WriteString(" " + verb + "=[")
		for i := range ts.Len() {
			if i > 0 {
				b.WriteString(" ")
			}
			tm := ts.At(i)
			fmt.Fprintf(&b, "%s@%s", tm.Domain, fmtNum(tm.Time))
		}
		b.WriteString("]")
	}
	if st.Count != 0 {
		fmt.Fprintf(&b, " count=%d", st.Count)
	}
	if st.HasNext {
		fmt.Fprintf(&b, " next=%d", st.NextFire)
	}
	b.WriteString("\n")
	return b.String()
}

func now(t *testing.T, d *datadriven.TestData) Now {
	n := Now{Watermark: math.MinInt64, Processing: math.MinInt64}
	if d.HasArg("wm") {
		n.Watermark = i64(t, d, "wm")
	}
	if d.HasArg("now") {
		n.Processing = i64(t, d, "now")
	}
	return n
}

func fmtWindows(ws []Window) string {
	s := make([]string, len(ws))
	for i, w := range ws {
		s[i] = w.String()
	}
	return "[" + strings.Join(s, " ") + "]"
}

func fmtNum(n int64) string {
	switch n {
	case math.MinInt64:
		return "min"
	case math.MaxInt64:
		return "max"
	}
	return strconv.FormatInt(n, 10)
}

func str(t *testing.T, d *datadriven.TestData, key string) string {
	var s string
	d.ScanArgs(t, key, &s)
	return s
}

func num(t *testing.T, d *datadriven.TestData, s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		d.Fatalf(t, "bad number %q: %v", s, err)
	}
	return n
}

func i64(t *testing.T, d *datadriven.TestData, key string) int64 { return num(t, d, str(t, d, key)) }

func dur(t *testing.T, d *datadriven.TestData, key string) time.Duration {
	if !d.HasArg(key) {
		return 0
	}
	return time.Duration(i64(t, d, key))
}

func win(t *testing.T, d *datadriven.TestData, s string) Window {
	a, b, ok := strings.Cut(s, ",")
	if !ok {
		d.Fatalf(t, "bad window %q, want s,e", s)
	}
	return Window{Start: num(t, d, a), End: num(t, d, b)}
}
