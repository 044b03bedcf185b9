package checkpoint

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// This file holds a small interpreter for scripted coordinator interactions,
// in the spirit of etcd raft's rafttest and Pebble's datadriven tests: a
// script is a list of events (one per unindented line), each followed by the
// actions it must produce (the indented lines below it, in order). An event
// with no indented lines must produce nothing. '#' starts a comment.
//
// Events (times are offsets from CoordinatorOptions.Start):
//
//	tick <t>                      TickEvent
//	savepoint <t> [stop]          TriggerSavepointEvent
//	final <t>                     TriggerFinalCheckpointEvent
//	ack <id> <vertex/subtask>     AckEvent with one state, uid = vertex
//	ackall <id>                   an AckEvent from every task, in order
//	decline <id> <task> [msg...]  DeclineEvent (Err = msg, nil if none)
//	persisted <id> [msg...]       PersistedEvent (Err = msg, nil if none)
//
// Queries, whose output is checked the same way:
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

// t0 is the Start of every test coordinator.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// at returns t0+d.
func at(d time.Duration) time.Time { return t0.Add(d) }

// testOptions returns the options most tests use: two tasks, a/0 and b/0.
func testOptions() CoordinatorOptions {
	return CoordinatorOptions{
		JobName:        "job",
		MaxParallelism: 128,
		Tasks:          []TaskID{{"a", 0}, {"b", 0}},
		FirstID:        1,
		Start:          t0,
	}
}

// scriptConfig is the base Config of scripts: round numbers, so that the
// arithmetic of every expected time is easy to follow.
func scriptConfig() Config {
	return Config{Interval: 10 * time.Second, Timeout: 30 * time.Second, MinPause: 2 * time.Second}
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

// scriptStep is one event line of a script and the output it must produce.
type scriptStep struct {
	line int
	cmd  string
	want []string
}

func parseScript(t *testing.T, script string) []scriptStep {
	t.Helper()
	var steps []scriptStep
	for i, raw := range strings.Split(script, "\n") {
		text := raw
		if j := strings.Index(text, "#"); j >= 0 {
			text = text[:j]
		}
		if strings.TrimSpace(text) == "" {
			continue
		}
		if text[0] == ' ' || text[0] == '\t' {
			if len(steps) == 0 {
				t.Fatalf("script line %d: output before any event: %q", i+1, raw)
			}
			steps[len(steps)-1].want = append(steps[len(steps)-1].want, strings.TrimSpace(text))
			continue
		}
		steps = append(steps, scriptStep{line: i + 1, cmd: strings.TrimSpace(text)})
	}
	return steps
}

// runScript drives c through script and reports every step whose output
// differs from what the script expects.
func runScript(t *testing.T, c *Coordinator, script string) {
	t.Helper()
	if a := c.Ready(); len(a) != 0 {
		t.Fatalf("actions before any event: %v", a)
	}
	for _, st := range parseScript(t, script) {
		got := execScript(t, c, st)
		if strings.Join(got, "\n") != strings.Join(st.want, "\n") {
			t.Errorf("script line %d: %s\n got:\n\t%s\nwant:\n\t%s", st.line, st.cmd,
				strings.Join(got, "\n\t"), strings.Join(st.want, "\n\t"))
		}
	}
}

func execScript(t *testing.T, c *Coordinator, st scriptStep) []string {
	t.Helper()
	f := strings.Fields(st.cmd)
	fail := func(format string, args ...any) []string {
		t.Fatalf("script line %d: %s: %s", st.line, st.cmd, fmt.Sprintf(format, args...))
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
	task := func(s string) TaskID {
		v, sub, ok := strings.Cut(s, "/")
		n, err := strconv.Atoi(sub)
		if !ok || err != nil {
			fail("bad task %q, want vertex/subtask", s)
		}
		return TaskID{Vertex: v, Subtask: n}
	}
	msgErr := func(words []string) error {
		if len(words) == 0 {
			return nil
		}
		return errors.New(strings.Join(words, " "))
	}
	ackOf := func(cp int64, tk TaskID) AckEvent {
		return AckEvent{
			CheckpointID: cp, Task: tk,
			States: map[string]*SubtaskState{tk.Vertex: {Subtask: tk.Subtask}},
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
