// Package progress shows a running job's progress on a terminal: one
// status line (rates, records, checkpoints, consumer lag, backpressure,
// restarts) redrawn in place while the job runs, or, when the output is not
// a terminal (a file, a pipe, a log collector), the same text as plain
// lines, one per report (docs/design.md §8).
//
// Line turns a sluice.JobStatus into the text; it is a pure function. A
// Printer draws it. What a terminal is, is decided by the function given to
// New (IsTerminal for a real stdout), so both modes can be tested.
package progress

import (
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/internal/httpapi"
)

// Level returns "OK", "LOW" or "HIGH" for a backpressured ratio: the
// REST API's rule (httpapi.BackpressureLevel), so the status line, the
// API and the dashboard never disagree.
func Level(ratio float64) string { return httpapi.BackpressureLevel(ratio) }

// Rates are records per second into the job (what its sources emit) and
// out of it (what its sinks receive).
type Rates struct {
	In, Out float64
}

// sources returns the indexes of the vertices that read the job's input:
// those named in st.Sources, else those no edge leads to, else the first.
func sources(st sluice.JobStatus) []int {
	var out []int
	if len(st.Sources) > 0 {
		for i, v := range st.Vertices {
			for _, s := range st.Sources {
				if s.Vertex == v.UID || (s.Vertex == "" && s.Name == v.Name) {
					out = append(out, i)
					break
				}
			}
		}
		if len(out) > 0 {
			return out
		}
	}
	if len(st.Edges) > 0 {
		to := map[string]bool{}
		for _, e := range st.Edges {
			to[e.To] = true
		}
		for i, v := range st.Vertices {
			if !to[v.UID] {
				out = append(out, i)
			}
		}
		if len(out) > 0 {
			return out
		}
	}
	if len(st.Vertices) > 0 {
		return []int{0}
	}
	return nil
}

// sinks returns the indexes of the vertices that end the job: those no edge
// leaves, else the last.
func sinks(st sluice.JobStatus) []int {
	var out []int
	if len(st.Edges) > 0 {
		from := map[string]bool{}
		for _, e := range st.Edges {
			from[e.From] = true
		}
		for i, v := range st.Vertices {
			if !from[v.UID] {
				out = append(out, i)
			}
		}
		if len(out) > 0 {
			return out
		}
	}
	if n := len(st.Vertices); n > 0 {
		return []int{n - 1}
	}
	return nil
}

// StatusRates returns the job's rates from the sliding-window rates of the
// status (VertexStatus.RecordsOutRate of the sources, RecordsInRate of the
// sinks). When the status has none (all zero) and prev is the status taken
// dt earlier, the rates are the change of the total counts over dt instead.
func StatusRates(st sluice.JobStatus, prev *sluice.JobStatus, dt time.Duration) Rates {
	var r Rates
	for _, i := range sources(st) {
		r.In += st.Vertices[i].RecordsOutRate
	}
	for _, i := range sinks(st) {
		r.Out += st.Vertices[i].RecordsInRate
	}
	if r.In != 0 || r.Out != 0 || prev == nil || dt <= 0 {
		return r
	}
	total := func(s sluice.JobStatus, idx []int, in bool) int64 {
		var n int64
		for _, i := range idx {
			if i >= len(s.Vertices) {
				continue
			}
			if in {
				n += s.Vertices[i].RecordsInTotal
			} else {
				n += s.Vertices[i].RecordsOutTotal
			}
		}
		return n
	}
	src, snk := sources(st), sinks(st)
	r.In = math.Max(0, float64(total(st, src, false)-total(*prev, src, false))/dt.Seconds())
	r.Out = math.Max(0, float64(total(st, snk, true)-total(*prev, snk, true))/dt.Seconds())
	return r
}

// Line is the status line of a job: elapsed is the time since it started,
// rates its input and output rates (see StatusRates). For example:
//
//	12s  in 48.2k/s out 48.1k/s  records 580k (612k with replays)  checkpoints 11, 1 failed, last 35ms  lag 1.2k  backpressure HIGH count 34%  restarts 1
//
// Parts the status does not know are left out: lag without a source that
// reports it, the checkpoint duration before the first checkpoint. The
// backpressure part names the most backpressured task.
func Line(st sluice.JobStatus, rates Rates, elapsed time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%5s  in %s/s out %s/s", Duration(elapsed.Truncate(time.Second)), Count(rates.In), Count(rates.Out))
	var attempt, total int64
	for _, i := range sources(st) {
		attempt += st.Vertices[i].RecordsOutAttempt
		total += st.Vertices[i].RecordsOutTotal
	}
	fmt.Fprintf(&b, "  records %s", Count(float64(attempt)))
	if total != attempt {
		fmt.Fprintf(&b, " (%s with replays)", Count(float64(total)))
	}
	fmt.Fprintf(&b, "  checkpoints %d", st.CheckpointsCompleted)
	if st.CheckpointsFailed > 0 {
		fmt.Fprintf(&b, ", %d failed", st.CheckpointsFailed)
	}
	last, inProgress := lastCheckpoint(st.Checkpoints)
	if last != nil {
		fmt.Fprintf(&b, ", last %s", Duration(last.Duration))
	}
	if inProgress != nil {
		fmt.Fprintf(&b, ", #%d for %s", inProgress.ID, Duration(inProgress.Duration))
	}
	lag := int64(-1)
	for _, s := range st.Sources {
		lag = max(lag, s.RecordsLagMax)
	}
	if lag >= 0 {
		fmt.Fprintf(&b, "  lag %s", Count(float64(lag)))
	}
	worst := -1
	for i, v := range st.Vertices {
		if worst < 0 || v.BackpressuredRatio > st.Vertices[worst].BackpressuredRatio {
			worst = i
		}
	}
	if worst >= 0 {
		v := st.Vertices[worst]
		if Level(v.BackpressuredRatio) == "OK" {
			b.WriteString("  backpressure OK")
		} else {
			fmt.Fprintf(&b, "  backpressure %s %s %.0f%%", Level(v.BackpressuredRatio), v.Name, 100*v.BackpressuredRatio)
		}
	}
	fmt.Fprintf(&b, "  restarts %d", st.Restarts)
	return b.String()
}

// lastCheckpoint returns the newest completed checkpoint of the history and
// the newest one in progress, nil when there is none.
func lastCheckpoint(s *checkpoint.Stats) (last, inProgress *checkpoint.CheckpointStats) {
	if s == nil {
		return nil, nil
	}
	for i := len(s.History) - 1; i >= 0; i-- {
		c := &s.History[i]
		switch {
		case c.Status == checkpoint.StatusCompleted && last == nil:
			last = c
		case c.Status == checkpoint.StatusInProgress && inProgress == nil && last == nil:
			inProgress = c
		}
	}
	return last, inProgress
}

// Count formats n briefly: 950, 48.2k, 1.3M, 2.1G.
func Count(n float64) string {
	a := math.Abs(n)
	switch {
	case a >= 1e9:
		return fmt.Sprintf("%.1fG", n/1e9)
	case a >= 1e6:
		return fmt.Sprintf("%.1fM", n/1e6)
	case a >= 1e4:
		return fmt.Sprintf("%.0fk", n/1e3)
	case a >= 1e3:
		return fmt.Sprintf("%.1fk", n/1e3)
	}
	return fmt.Sprintf("%.0f", n)
}

// Duration formats d briefly: 35ms, 1.2s, 12s, 3m05s, 2h03m.
func Duration(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < 10*time.Second:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

// IsTerminal reports whether w is a terminal: an *os.File on a character
// device (a tty), not a file or a pipe, or a writer that says so itself
// with a method IsTerminal() bool (a test's, or a wrapper around a
// terminal).
func IsTerminal(w io.Writer) bool {
	if t, ok := w.(interface{ IsTerminal() bool }); ok {
		return t.IsTerminal()
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// clearLine returns the cursor to the start of the line and erases it
// (carriage return, then ANSI "erase in line").
const clearLine = "\r\x1b[K"

// Printer draws status lines on w: redrawn in place when w is a terminal,
// else one plain line each. Other output written through Wrap's writers
// does not mix with the status line: the line is erased first and drawn
// again after. A Printer is safe for concurrent use.
type Printer struct {
	mu   sync.Mutex
	w    io.Writer
	live bool
	// line is the status line drawn now ("" when none is drawn).
	line string
	// width bounds a live line (a wider one would wrap and not be
	// erased); 0 means no bound.
	width int
}

// New returns a printer on w; isTerminal(w) decides whether it redraws in
// place (pass IsTerminal; tests pass a constant).
func New(w io.Writer, isTerminal func(io.Writer) bool) *Printer {
	p := &Printer{w: w, live: isTerminal != nil && isTerminal(w)}
	if p.live {
		p.width = terminalWidth()
	}
	return p
}

// terminalWidth is $COLUMNS, or 0 (no bound) when it is not set.
func terminalWidth() int {
	var n int
	if _, err := fmt.Sscan(os.Getenv("COLUMNS"), &n); err == nil && n > 0 {
		return n
	}
	return 0
}

// Live reports whether the printer redraws one line in place.
func (p *Printer) Live() bool { return p.live }

// Update shows line: in place of the previous status line on a terminal,
// as a line of its own otherwise.
func (p *Printer) Update(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.live {
		_, _ = io.WriteString(p.w, line+"\n")
		return
	}
	if p.width > 1 && len([]rune(line)) >= p.width {
		line = string([]rune(line)[:p.width-1])
	}
	_, _ = io.WriteString(p.w, clearLine+line)
	p.line = line
}

// Done ends the live status line, leaving its last state on screen, so
// that what is printed next starts on a line of its own. A no-op when not
// live.
func (p *Printer) Done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.live && p.line != "" {
		_, _ = io.WriteString(p.w, "\n")
		p.line = ""
	}
}

// Wrap returns a writer to w (the printer's own writer, or another one on
// the same terminal such as stderr) whose writes erase the live status line
// first and draw it again after a write that ends a line. When not live it
// returns w.
func (p *Printer) Wrap(w io.Writer) io.Writer {
	if !p.live {
		return w
	}
	return &wrapped{p: p, w: w}
}

type wrapped struct {
	p *Printer
	w io.Writer
}

func (x *wrapped) Write(b []byte) (int, error) {
	p := x.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.line != "" {
		_, _ = io.WriteString(p.w, clearLine)
	}
	n, err := x.w.Write(b)
	if p.line != "" && len(b) > 0 && b[len(b)-1] == '\n' {
		_, _ = io.WriteString(p.w, p.line)
	}
	return n, err
}

// Attrs are the parts of Line as slog attributes, for the plain log line a
// job writes instead of the live line when its output is not a terminal:
// elapsed_s, records_in_per_second, records_out_per_second, records,
// records_with_replays, checkpoints, checkpoints_failed,
// last_checkpoint_ms (once one completed), lag_max (when a source reports
// it), backpressure (OK, LOW or HIGH) with backpressured_task and
// backpressured_ratio when not OK, and restarts.
func Attrs(st sluice.JobStatus, rates Rates, elapsed time.Duration) []any {
	var attempt, total int64
	for _, i := range sources(st) {
		attempt += st.Vertices[i].RecordsOutAttempt
		total += st.Vertices[i].RecordsOutTotal
	}
	round := func(f float64) float64 { return math.Round(f*10) / 10 }
	out := []any{
		"elapsed_s", int64(elapsed.Seconds()),
		"records_in_per_second", round(rates.In), "records_out_per_second", round(rates.Out),
		"records", attempt, "records_with_replays", total,
		"checkpoints", st.CheckpointsCompleted, "checkpoints_failed", st.CheckpointsFailed,
	}
	if last, _ := lastCheckpoint(st.Checkpoints); last != nil {
		out = append(out, "last_checkpoint_ms", last.Duration.Milliseconds())
	}
	lag := int64(-1)
	for _, s := range st.Sources {
		lag = max(lag, s.RecordsLagMax)
	}
	if lag >= 0 {
		out = append(out, "lag_max", lag)
	}
	worst := -1
	for i, v := range st.Vertices {
		if worst < 0 || v.BackpressuredRatio > st.Vertices[worst].BackpressuredRatio {
			worst = i
		}
	}
	if worst >= 0 {
		v := st.Vertices[worst]
		out = append(out, "backpressure", Level(v.BackpressuredRatio))
		if Level(v.BackpressuredRatio) != "OK" {
			out = append(out, "backpressured_task", v.Name, "backpressured_ratio", math.Round(v.BackpressuredRatio*100)/100)
		}
	}
	return append(out, "restarts", st.Restarts)
}

// Meter computes a job's rates from successive statuses (see StatusRates).
// The zero value is ready.
type Meter struct {
	prev   *sluice.JobStatus
	prevAt time.Time
}

// Rates returns the job's rates in st, read at now, falling back to the
// change since the previous call's status when st carries no rates.
func (m *Meter) Rates(st sluice.JobStatus, now time.Time) Rates {
	r := StatusRates(st, m.prev, now.Sub(m.prevAt))
	m.prev, m.prevAt = &st, now
	return r
}
