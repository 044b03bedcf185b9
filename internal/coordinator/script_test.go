package coordinator

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/sluicehq/sluice/checkpoint"
)

// TestScripts replays the scripted coordinator interactions in
// testdata, one file per case, with the datadriven format that
// etcd raft and Pebble use: each directive is an event or a query, and the
// text below its "----" line is the actions it must produce, in order (an
// event with nothing below must produce nothing). Run with -rewrite to
// regenerate the expected output after an intended change, then read the
// diff. Each file starts with the step of docs/design.md §3 it checks.
//
// Every file begins with
//
//	init [interval=<d>] [timeout=<d>] [min-pause=<d>] [max-concurrent=<n>]
//	     [tolerable-failures=<n>] [retained=<n>] [mode=<mode>]
//	     [first-id=<n>] [completed=(<id>, ...)] [tasks=(<vertex/subtask>, ...)]
//
// which makes a coordinator from scriptConfig and testOptions with those
// fields changed (tasks a/0 and b/0 unless given; Interval 10s, Timeout 30s,
// MinPause 2s, other fields at their defaults).
//
// Events (times are offsets from CoordinatorOptions.Start):
//
//	tick <t>                      TickEvent
//	savepoint <t> [stop]          TriggerSavepointEvent
//	final <t>                     TriggerFinalCheckpointEvent
//	checkpoint <t>                TriggerCheckpointEvent
//	ack <id> <vertex/subtask>     AckEvent with one state, uid = vertex
//	ackall <id>                   an AckEvent from every task, in order
//	decline <id> <task> [msg...]  DeclineEvent (Err = msg, nil if none)
//	persisted <id> [msg...]       PersistedEvent (Err = msg, nil if none)
//
// Queries:
//
//	deadline    "deadline <t>" or "deadline none"
//	pending     "pending [ids]"
//	stats       "stats completed=.. failed=.. subsumed=.. in-progress=..
//	            consecutive=.. last=.. retained=[..]"
//
// Actions print as:
//
//	trigger <id> <kind> @<t> [stop]
//	persist <id>
//	complete <id> <kind> [stop]
//	abort: <reason>
//	discard <id>
//	fail-job: <error>
func TestScripts(t *testing.T) {
	t.Parallel()
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		t.Parallel()
		var c *Coordinator
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			if d.Cmd == "init" {
				var err error
				c, err = newScriptCoordinator(t, d)
				if err != nil {
					return "error: " + err.Error()
				}
				if a := c.Ready(); len(a) != 0 {
					t.Fatalf("%s: actions before any event: %v", d.Pos, a)
				}
				return ""
			}
			if c == nil {
				t.Fatalf("%s: %s before init", d.Pos, d.Cmd)
			}
			return strings.Join(execScript(t, c, d), "\n")
		})
	})
}

// newScriptCoordinator makes the coordinator of an init directive.
func newScriptCoordinator(t *testing.T, d *datadriven.TestData) (*Coordinator, error) {
	cfg := scriptConfig()
	opts := testOptions()
	for _, a := range d.CmdArgs {
		val := func() string {
			if len(a.Vals) != 1 {
				t.Fatalf("%s: %s wants one value", d.Pos, a.Key)
			}
			return a.Vals[0]
		}
		dur := func() time.Duration {
			v, err := time.ParseDuration(val())
			if err != nil {
				t.Fatalf("%s: %s: %v", d.Pos, a.Key, err)
			}
			return v
		}
		num := func(s string) int64 {
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				t.Fatalf("%s: %s: %v", d.Pos, a.Key, err)
			}
			return v
		}
		switch a.Key {
		case "interval":
			cfg.Interval = dur()
		case "timeout":
			cfg.Timeout = dur()
		case "min-pause":
			cfg.MinPause = dur()
		case "max-concurrent":
			cfg.MaxConcurrent = int(num(val()))
		case "tolerable-failures":
			cfg.TolerableFailures = int(num(val()))
		case "retained":
			cfg.Retained = int(num(val()))
		case "mode":
			cfg.Mode = checkpoint.Mode(val())
		case "first-id":
			opts.FirstID = num(val())
		case "completed":
			opts.Completed = nil
			for _, v := range a.Vals {
				opts.Completed = append(opts.Completed, num(v))
			}
		case "tasks":
			opts.Tasks = nil
			for _, v := range a.Vals {
				opts.Tasks = append(opts.Tasks, parseTask(t, d.Pos, v))
			}
		default:
			t.Fatalf("%s: unknown init argument %q", d.Pos, a.Key)
		}
	}
	return NewCoordinator(cfg, opts)
}

func parseTask(t *testing.T, pos, s string) checkpoint.TaskID {
	t.Helper()
	v, sub, ok := strings.Cut(s, "/")
	n, err := strconv.Atoi(sub)
	if !ok || err != nil {
		t.Fatalf("%s: bad task %q, want vertex/subtask", pos, s)
	}
	return checkpoint.TaskID{Vertex: v, Subtask: n}
}

// t0 is the Start of every test coordinator.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// at returns t0+d.
func at(d time.Duration) time.Time { return t0.Add(d) }

// testOptions returns the options most tests use: two tasks, a/0 and b/0.
func testOptions() CoordinatorOptions {
	return CoordinatorOptions{
		JobName:        "job",
		MaxParallelism: 128,
		Tasks:          []checkpoint.TaskID{{Vertex: "a", Subtask: 0}, {Vertex: "b", Subtask: 0}},
		FirstID:        1,
		Start:          t0,
	}
}

// scriptConfig is the base Config of scripts: round numbers, so that the
// arithmetic of every expected time is easy to follow.
func scriptConfig() checkpoint.Config {
	return checkpoint.Config{Interval: 10 * time.Second, Timeout: 30 * time.Second, MinPause: 2 * time.Second}
}

// formatAction renders an action in script form.
func formatAction(a Action) string {
	stop := func(s bool) string {
		if s {
			return " stop"
		}
		return ""
	}
	switch a := a.(type) {
	case TriggerAction:
		return fmt.Sprintf("trigger %d %s @%v%s", a.CheckpointID, a.Kind, a.Timestamp.Sub(t0), stop(a.Stop))
	case PersistAction:
		return fmt.Sprintf("persist %d", a.Metadata.CheckpointID)
	case CompleteAction:
		if a.Metadata == nil || a.Metadata.CheckpointID != a.CheckpointID || a.Metadata.Kind != a.Kind {
			return fmt.Sprintf("BAD complete %d: metadata %+v", a.CheckpointID, a.Metadata)
		}
		return fmt.Sprintf("complete %d %s%s", a.CheckpointID, a.Kind, stop(a.Stop))
	case AbortAction:
		var ae *AbortError
		if !errors.As(a.Reason, &ae) || ae.CheckpointID != a.CheckpointID || ae.Kind != a.Kind {
			return fmt.Sprintf("BAD abort %d %s: reason %#v", a.CheckpointID, a.Kind, a.Reason)
		}
		return "abort: " + a.Reason.Error()
	case DiscardAction:
		return fmt.Sprintf("discard %d", a.CheckpointID)
	case FailJobAction:
		return "fail-job: " + a.Err.Error()
	}
	return fmt.Sprintf("BAD action %#v", a)
}

// execScript carries out one directive and returns its output lines.
func execScript(t *testing.T, c *Coordinator, d *datadriven.TestData) []string {
	t.Helper()
	f := []string{d.Cmd}
	for _, a := range d.CmdArgs {
		if len(a.Vals) != 0 {
			t.Fatalf("%s: %s: arguments of events are words, not key=value", d.Pos, a.Key)
		}
		f = append(f, a.Key)
	}
	fail := func(format string, args ...any) []string {
		t.Fatalf("%s: %s: %s", d.Pos, d.Cmd, fmt.Sprintf(format, args...))
		return nil
	}
	dur := func(s string) time.Duration {
		d, err := time.ParseDuration(s)
		if err != nil {
			fail("bad duration %q", s)
		}
		return d
	}
	id := func(s string) int64 {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			fail("bad id %q", s)
		}
		return n
	}
	task := func(s string) checkpoint.TaskID { return parseTask(t, d.Pos, s) }
	msgErr := func(words []string) error {
		if len(words) == 0 {
			return nil
		}
		return errors.New(strings.Join(words, " "))
	}
	ackOf := func(cp int64, tk checkpoint.TaskID) AckEvent {
		return AckEvent{
			CheckpointID: cp, Task: tk,
			States: map[string]*checkpoint.SubtaskState{tk.Vertex: {Subtask: tk.Subtask}},
		}
	}
	argc := func(n int) {
		if len(f) < n {
			fail("want at least %d arguments", n-1)
		}
	}

	switch f[0] {
	case "tick":
		argc(2)
		c.Step(TickEvent{Now: at(dur(f[1]))})
	case "savepoint":
		argc(2)
		c.Step(TriggerSavepointEvent{Now: at(dur(f[1])), Stop: len(f) > 2 && f[2] == "stop"})
	case "final":
		argc(2)
		c.Step(TriggerFinalCheckpointEvent{Now: at(dur(f[1]))})
	case "checkpoint":
		argc(2)
		c.Step(TriggerCheckpointEvent{Now: at(dur(f[1]))})
	case "ack":
		argc(3)
		c.Step(ackOf(id(f[1]), task(f[2])))
	case "ackall":
		argc(2)
		for _, tk := range c.opts.Tasks {
			c.Step(ackOf(id(f[1]), tk))
		}
	case "decline":
		argc(3)
		c.Step(DeclineEvent{CheckpointID: id(f[1]), Task: task(f[2]), Err: msgErr(f[3:])})
	case "persisted":
		argc(2)
		c.Step(PersistedEvent{CheckpointID: id(f[1]), Err: msgErr(f[2:])})

	case "deadline":
		d, ok := c.NextDeadline()
		if !ok {
			return []string{"deadline none"}
		}
		return []string{fmt.Sprintf("deadline %v", d.Sub(t0))}
	case "pending":
		return []string{fmt.Sprintf("pending %v", c.Pending())}
	case "stats":
		s := c.Stats()
		return []string{fmt.Sprintf("stats completed=%d failed=%d subsumed=%d in-progress=%d consecutive=%d last=%d retained=%v",
			s.Completed, s.Failed, s.Subsumed, s.InProgress, s.ConsecutiveFailures, s.LastCompletedID, s.Retained)}
	default:
		return fail("unknown command")
	}
	var out []string
	for _, a := range c.Ready() {
		out = append(out, formatAction(a))
	}
	return out
}
