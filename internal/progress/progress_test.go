package progress

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
)

// status is a job datagen → count → sink as Environment.Status reports it.
func status() sluice.JobStatus {
	return sluice.JobStatus{
		Restarts: 1, CheckpointsCompleted: 11, CheckpointsFailed: 1,
		Vertices: []sluice.VertexStatus{
			{Name: "datagen", UID: "datagen", RecordsOutAttempt: 580_000, RecordsOutTotal: 612_000, RecordsOutRate: 48_200, BackpressuredRatio: 0.34},
			{Name: "count", UID: "count", RecordsInTotal: 612_000, BackpressuredRatio: 0.05},
			{Name: "sink", UID: "sink", RecordsInTotal: 611_000, RecordsInRate: 48_100},
		},
		Edges: []sluice.EdgeStatus{{From: "datagen", To: "count"}, {From: "count", To: "sink"}},
		Checkpoints: &checkpoint.Stats{History: []checkpoint.CheckpointStats{
			{ID: 10, Status: checkpoint.StatusCompleted, Duration: 40 * time.Millisecond},
			{ID: 11, Status: checkpoint.StatusCompleted, Duration: 35 * time.Millisecond},
			{ID: 12, Status: checkpoint.StatusInProgress, Duration: 1200 * time.Millisecond},
		}},
		Sources: []sluice.SourceStatus{{Vertex: "datagen", Name: "datagen", RecordsLagMax: 1234}},
	}
}

func TestLine(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*sluice.JobStatus)
		want string
	}{
		{"everything", func(*sluice.JobStatus) {},
			"  12s  in 48k/s out 48k/s  records 580k (612k with replays)  checkpoints 11, 1 failed, last 35ms, #12 for 1.2s  lag 1.2k  backpressure HIGH datagen 34%  restarts 1"},
		{"fresh job", func(st *sluice.JobStatus) {
			*st = sluice.JobStatus{Vertices: []sluice.VertexStatus{{Name: "src"}, {Name: "sink"}}}
		}, "  12s  in 0/s out 0/s  records 0  checkpoints 0  backpressure OK  restarts 0"},
		{"no lag known, low backpressure", func(st *sluice.JobStatus) {
			st.Sources[0].RecordsLagMax = -1
			st.Vertices[0].BackpressuredRatio = 0.1
			st.Checkpoints.History = st.Checkpoints.History[:2]
		}, "  12s  in 48k/s out 48k/s  records 580k (612k with replays)  checkpoints 11, 1 failed, last 35ms  backpressure LOW datagen 10%  restarts 1"},
		{"first checkpoint in progress", func(st *sluice.JobStatus) {
			st.Checkpoints.History = st.Checkpoints.History[2:]
			st.CheckpointsCompleted, st.CheckpointsFailed = 0, 0
		}, "  12s  in 48k/s out 48k/s  records 580k (612k with replays)  checkpoints 0, #12 for 1.2s  lag 1.2k  backpressure HIGH datagen 34%  restarts 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := status()
			tc.edit(&st)
			if got := Line(st, StatusRates(st, nil, 0), 12500*time.Millisecond); got != tc.want {
				t.Errorf("Line:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestStatusRates(t *testing.T) {
	st := status()
	if got := StatusRates(st, nil, 0); got != (Rates{48_200, 48_100}) {
		t.Errorf("from the status' rates: %+v", got)
	}
	// Without rates in the status, from the totals' change.
	prev := status()
	for i := range st.Vertices {
		st.Vertices[i].RecordsOutRate, st.Vertices[i].RecordsInRate = 0, 0
	}
	prev.Vertices[0].RecordsOutTotal -= 20_000
	prev.Vertices[2].RecordsInTotal -= 10_000
	if got := StatusRates(st, &prev, 2*time.Second); got != (Rates{10_000, 5_000}) {
		t.Errorf("from the totals: %+v", got)
	}
	// Without edges, the first vertex is the source and the last the sink.
	st.Edges, st.Sources = nil, nil
	if got := StatusRates(st, &prev, time.Second); got != (Rates{20_000, 10_000}) {
		t.Errorf("without edges: %+v", got)
	}
	// A restart may make totals of the previous status larger: never negative.
	for i := range prev.Vertices {
		prev.Vertices[i].RecordsOutRate, prev.Vertices[i].RecordsInRate = 0, 0
	}
	prev.Edges, prev.Sources = nil, nil
	if got := StatusRates(prev, &st, time.Second); got != (Rates{}) {
		t.Errorf("after a reset: %+v", got)
	}
}

func TestFormats(t *testing.T) {
	for ratio, want := range map[float64]string{0: "OK", 0.099: "OK", 0.1: "LOW", 0.299: "LOW", 0.3: "HIGH", 1: "HIGH"} {
		if got := Level(ratio); got != want {
			t.Errorf("Level(%v) = %s, want %s", ratio, got, want)
		}
	}
	for n, want := range map[float64]string{0: "0", 950: "950", 1234: "1.2k", 48_200: "48k", 1_300_000: "1.3M", 2.1e9: "2.1G"} {
		if got := Count(n); got != want {
			t.Errorf("Count(%v) = %s, want %s", n, got, want)
		}
	}
	for d, want := range map[time.Duration]string{35 * time.Millisecond: "35ms", 1200 * time.Millisecond: "1.2s", 12 * time.Second: "12s",
		185 * time.Second: "3m05s", 2*time.Hour + 3*time.Minute: "2h03m"} {
		if got := Duration(d); got != want {
			t.Errorf("Duration(%v) = %s, want %s", d, got, want)
		}
	}
}

func TestPrinterPlain(t *testing.T) {
	var b bytes.Buffer
	p := New(&b, func(io.Writer) bool { return false })
	if p.Live() {
		t.Fatal("live on a buffer")
	}
	p.Update("one")
	p.Update("two")
	if w := p.Wrap(&b); w != io.Writer(&b) {
		t.Error("Wrap changed the writer of a plain printer")
	}
	io.WriteString(p.Wrap(&b), "a log line\n")
	p.Done()
	if got, want := b.String(), "one\ntwo\na log line\n"; got != want {
		t.Errorf("plain: %q, want %q", got, want)
	}
	// The real detector: a buffer is no terminal.
	if IsTerminal(&b) || New(&b, IsTerminal).Live() {
		t.Error("IsTerminal(buffer)")
	}
}

func TestPrinterLive(t *testing.T) {
	t.Setenv("COLUMNS", "12")
	var out, errs bytes.Buffer
	p := New(&out, func(w io.Writer) bool { return w == &out })
	if !p.Live() {
		t.Fatal("not live on a terminal")
	}
	p.Update("one")
	p.Update("two is longer than the terminal")
	// A log line on the same terminal erases the status line and draws it
	// again after; a line of the program's own output the same.
	io.WriteString(p.Wrap(&errs), "WARN x\n")
	io.WriteString(p.Wrap(&out), "stopping\n")
	p.Done()
	io.WriteString(p.Wrap(&out), "summary\n")
	want := "\r\x1b[Kone" + "\r\x1b[Ktwo is long" + // cut to COLUMNS-1
		"\r\x1b[K" + "two is long" + // around the WARN (written to errs)
		"\r\x1b[Kstopping\ntwo is long" + "\n" + "summary\n"
	if got := out.String(); got != want {
		t.Errorf("live:\n got %q\nwant %q", got, want)
	}
	if errs.String() != "WARN x\n" {
		t.Errorf("stderr %q", errs.String())
	}
	if !strings.HasSuffix(out.String(), "\nsummary\n") {
		t.Error("output after Done does not start on its own line")
	}
}

func TestAttrs(t *testing.T) {
	var b bytes.Buffer
	log := slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
	st := status()
	log.Info("progress", Attrs(st, StatusRates(st, nil, 0), 12500*time.Millisecond)...)
	st = sluice.JobStatus{Vertices: []sluice.VertexStatus{{Name: "src"}}}
	log.Info("progress", Attrs(st, Rates{}, time.Second)...)
	want := "level=INFO msg=progress elapsed_s=12 records_in_per_second=48200 records_out_per_second=48100 records=580000 records_with_replays=612000 " +
		"checkpoints=11 checkpoints_failed=1 last_checkpoint_ms=35 lag_max=1234 backpressure=HIGH backpressured_task=datagen backpressured_ratio=0.34 restarts=1\n" +
		"level=INFO msg=progress elapsed_s=1 records_in_per_second=0 records_out_per_second=0 records=0 records_with_replays=0 checkpoints=0 checkpoints_failed=0 backpressure=OK restarts=0\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestMeter(t *testing.T) {
	var m Meter
	st := sluice.JobStatus{Vertices: []sluice.VertexStatus{{Name: "src", RecordsOutTotal: 100}, {Name: "sink", RecordsInTotal: 50}}}
	t0 := time.Unix(1000, 0)
	if got := m.Rates(st, t0); got != (Rates{}) {
		t.Errorf("first call: %+v", got)
	}
	st2 := sluice.JobStatus{Vertices: []sluice.VertexStatus{{Name: "src", RecordsOutTotal: 300}, {Name: "sink", RecordsInTotal: 250}}}
	if got := m.Rates(st2, t0.Add(2*time.Second)); got != (Rates{100, 100}) {
		t.Errorf("second call: %+v", got)
	}
}

type fakeTerminal struct{ bytes.Buffer }

func (*fakeTerminal) IsTerminal() bool { return true }

func TestIsTerminal(t *testing.T) {
	if !IsTerminal(&fakeTerminal{}) {
		t.Error("a writer that says it is a terminal")
	}
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if IsTerminal(f) {
		t.Error("a regular file is a terminal")
	}
	if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
		defer tty.Close()
		if !IsTerminal(tty) {
			t.Error("/dev/tty is not a terminal")
		}
	}
}
