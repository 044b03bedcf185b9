package watermark

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
)

// TestScripts replays the scripts under testdata/ (one file per scenario;
// run with -rewrite to regenerate expected output after a deliberate
// change, then review the diff). Every number is nanoseconds: timestamps,
// watermarks, processing times (now=) and durations alike. Watermarks
// print as "none" (NoWatermark) and "final" (Final).
//
// Commands:
//
//	reader strategy=bounded|monotonous|none [bound=N] [idle=N]
//	add-split id=S now=N        remove-split id=S        finish-split id=S
//	event split=S ts=N[,N...]   emit now=N               finish      splits
//	mark-active
//	inputs n=N
//	wm ch=I v=N|none|final      status ch=I idle|active  end ch=I
//	align drift=N
//	report id=S wm=N [idle]     remove id=S              update
func TestScripts(t *testing.T) {
	t.Parallel()
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		var (
			r  *Reader
			v  *Inputs
			al *Aligner
		)
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			switch d.Cmd {
			case "reader":
				var kind string
				d.ScanArgs(t, "strategy", &kind)
				var s Strategy
				switch kind {
				case "bounded":
					s = ForBoundedOutOfOrderness(time.Duration(i64(t, d, "bound")))
				case "monotonous":
					s = ForMonotonousTimestamps()
				case "none":
				default:
					d.Fatalf(t, "unknown strategy %q", kind)
				}
				if d.HasArg("idle") {
					s = s.WithIdleness(time.Duration(i64(t, d, "idle")))
				}
				r = NewReader(s)
				return ""
			case "add-split":
				if _, err := r.AddSplit(str(t, d, "id"), at(i64(t, d, "now"))); err != nil {
					return err.Error()
				}
				return ""
			case "remove-split":
				if err := r.RemoveSplit(str(t, d, "id")); err != nil {
					return err.Error()
				}
				return ""
			case "finish-split":
				if err := r.FinishSplit(str(t, d, "id")); err != nil {
					return err.Error()
				}
				return ""
			case "event":
				s := r.Split(str(t, d, "split"))
				if s == nil {
					return "no such split"
				}
				for _, ts := range strings.Split(str(t, d, "ts"), ",") {
					s.OnEvent(parseWM(t, d, ts))
				}
				return ""
			case "emit":
				return show(r.OnPeriodicEmit(at(i64(t, d, "now"))))
			case "finish":
				return show(r.Finish())
			case "mark-active":
				return show(r.MarkActive())
			case "splits":
				var b strings.Builder
				for _, s := range r.splits {
					status := "active"
					if s.Idle() {
						status = "idle"
					}
					fmt.Fprintf(&b, "%s wm=%s %s\n", s.ID(), fmtWM(s.Watermark()), status)
				}
				return b.String()
			case "inputs":
				var err error
				if v, err = NewInputs(int(i64(t, d, "n"))); err != nil {
					return err.Error()
				}
				return ""
			case "wm":
				return show(v.OnWatermark(int(i64(t, d, "ch")), parseWM(t, d, str(t, d, "v"))))
			case "status":
				return show(v.OnStatus(int(i64(t, d, "ch")), d.HasArg("idle")))
			case "end":
				return show(v.OnEndOfInput(int(i64(t, d, "ch"))))
			case "align":
				var err error
				if al, err = NewAligner(time.Duration(i64(t, d, "drift"))); err != nil {
					return err.Error()
				}
				return ""
			case "report":
				al.Report(str(t, d, "id"), parseWM(t, d, str(t, d, "wm")), d.HasArg("idle"))
				return ""
			case "remove":
				if al.Remove(str(t, d, "id")) {
					return "was paused\n"
				}
				return ""
			case "update":
				limit := al.MaxAllowed()
				pause, resume := al.Update()
				return fmt.Sprintf("max-allowed=%s pause=%v resume=%v\n", fmtWM(limit), pause, resume)
			default:
				d.Fatalf(t, "unknown command %q", d.Cmd)
				return ""
			}
		})
	})
}

func at(ns int64) time.Time { return time.Unix(0, ns) }

func str(t *testing.T, d *datadriven.TestData, key string) string {
	var s string
	d.ScanArgs(t, key, &s)
	return s
}

func i64(t *testing.T, d *datadriven.TestData, key string) int64 {
	return parseWM(t, d, str(t, d, key))
}

func parseWM(t *testing.T, d *datadriven.TestData, s string) int64 {
	switch s {
	case "none":
		return NoWatermark
	case "final":
		return Final
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		d.Fatalf(t, "bad number %q: %v", s, err)
	}
	return n
}

func fmtWM(wm int64) string {
	switch wm {
	case NoWatermark:
		return "none"
	case Final:
		return "final"
	}
	return strconv.FormatInt(wm, 10)
}

func show(o Output) string {
	var b strings.Builder
	b.WriteString("wm=" + fmtWM(o.Watermark))
	if o.Advanced {
		b.WriteString(" advanced")
	}
	if o.Idle {
		b.WriteString(" idle")
	} else {
		b.WriteString(" active")
	}
	if o.StatusChanged {
		b.WriteString(" status-changed")
	}
	b.WriteString("\n")
	return b.String()
}
