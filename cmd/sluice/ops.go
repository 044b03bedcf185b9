package main

import (
	"flag"
	"io"
	"log/slog"

	"github.com/sluicehq/sluice/internal/logfmt"
	"github.com/sluicehq/sluice/internal/progress"
)

// opsFlags are the operations flags of the long-running commands:
// --log-format and --pprof.
type opsFlags struct {
	logFormat string
	pprof     bool
	// printer draws the status line on stdout: redrawn in place when
	// stdout is a terminal, else a plain line each second. Logs on stderr
	// go through it too, so that they do not run into the line.
	printer *progress.Printer
}

func (o *opsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&o.logFormat, "log-format", logfmt.Text, logfmt.Usage)
	fs.BoolVar(&o.pprof, "pprof", false, "serve Go's profiler under /debug/pprof/ on the control API (needs --http; behind --http-token when set)")
}

// check adds the problems of the flags to c; serving says whether the
// command serves a control API. It also makes the status line's printer on
// stdout, and returns the writer the command must print to from then on:
// stdout behind a lock that the printer's own writes take too, so that the
// goroutines that print (the stop, the producer) never race it.
func (o *opsFlags) check(c *flagCheck, serving bool, stdout io.Writer) io.Writer {
	if err := logfmt.Check(o.logFormat); err != nil {
		c.fail("--log-format: %v", err)
	}
	if o.pprof && !serving {
		c.fail("--pprof: the profiler is served on the control API: set --http too")
	}
	locked := &lockedWriter{w: stdout}
	o.printer = progress.New(locked, func(io.Writer) bool { return progress.IsTerminal(stdout) })
	return locked
}

// logger is the demo's logger: errors only, everything with -v.
func (f demoFlags) logger(stderr io.Writer) *slog.Logger {
	level := slog.LevelError
	if f.verbose {
		level = slog.LevelDebug
	}
	if f.printer != nil {
		stderr = f.printer.Wrap(stderr)
	}
	return logfmt.New(stderr, f.logFormat, level)
}
