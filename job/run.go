package job

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/dashboard"
	"github.com/sluicehq/sluice/internal/httpapi"
	"github.com/sluicehq/sluice/internal/progress"
	"github.com/sluicehq/sluice/metrics"
)

// shutdownTimeout bounds the wait for the control API's calls in progress
// when the job ended (the answer of a stop is written before Run returns).
const shutdownTimeout = 30 * time.Second

// run is the run subcommand: builds the job and executes it, serving the
// control API, until it ends, is stopped with a savepoint, or ctx is
// cancelled (a clean stop with a final checkpoint).
func (c *cmd) run(ctx context.Context, args []string) error {
	doc := c.j.Doc
	if doc != "" && !strings.HasSuffix(doc, "\n") {
		doc += "\n"
	}
	usage := c.j.Usage
	if usage == "" {
		usage = fmt.Sprintf(`Usage: %s run [flags]

%sRuns the job. It resumes from the latest checkpoint in --checkpoint-dir, or
restores --from-savepoint. Ctrl-C or SIGTERM stops it with a final
checkpoint; '%[1]s stop --savepoint' stops it with a savepoint. Every flag
can also be set as %[3]sKEY in the environment or as key: in the --config file
(the command line wins over the environment, the environment over the file).

Flags:
`, c.program(), doc, c.j.EnvPrefix)
	}
	fs, err := c.flags("run", usage)
	if err != nil {
		return err
	}
	if err := c.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(c.stderr, "unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return ErrUsage
	}
	// The live status line, when stdout is a terminal; logs and other
	// output erase it and draw it again (docs/design.md §8).
	isTerminal := c.j.IsTerminal
	if isTerminal == nil {
		isTerminal = progress.IsTerminal
	}
	pr := progress.New(c.stdout, isTerminal)
	c.stdout, c.stderr = pr.Wrap(c.stdout), pr.Wrap(c.stderr)
	defer pr.Done()
	cfg, err := c.engineConfig(true)
	if err != nil {
		return err
	}
	if c.j.Setup != nil {
		if err := c.j.Setup(ctx, cfg); err != nil {
			return err
		}
	}
	env, err := c.j.Build(cfg)
	if err != nil {
		return err
	}
	var srv *httpapi.Server
	var col *metrics.Collector
	if c.httpAddr != "off" {
		srv, err = httpapi.New(httpapi.Config{Addr: c.httpAddr, Token: c.httpToken, Logger: cfg.Logger, Clock: cfg.Clock})
		if err != nil {
			return fmt.Errorf("%s: %s", c.source("http"), strings.TrimPrefix(err.Error(), "http: "))
		}
		if c.pprof {
			httpapi.MountPprof(srv)
		}
		dashboard.Mount(srv)
		// The metrics are mounted before the server starts (its mux is
		// built then) and registered before Execute, so that the
		// checkpoint histogram sees every checkpoint.
		info := metrics.Info(env.Config())
		info.Name = c.j.Name
		if col, err = mountMetrics(srv, env, info, cfg.Logger); err != nil {
			return err
		}
		if err := srv.Start(); err != nil {
			return fmt.Errorf("%s: %s", c.source("http"), strings.TrimPrefix(err.Error(), "http: "))
		}
		srv.Add(env, c.j.Name)
		fmt.Fprintf(c.stdout, "control API on http://%s/api/v1/ (job %s)\n", srv.Addr(), env.JobID())
		fmt.Fprintf(c.stdout, "dashboard on http://%s/\n", srv.Addr())
		fmt.Fprintf(c.stdout, "metrics on http://%s/metrics\n", srv.Addr())
		if c.pprof {
			fmt.Fprintf(c.stdout, "profiler on http://%s%s\n", srv.Addr(), httpapi.PprofPrefix)
		}
	}
	if c.j.Started != nil {
		c.j.Started(env, c.stdout)
	}
	done := make(chan error, 1)
	// The job runs on its own context: ctx asks for a clean stop, which
	// must not cancel the final checkpoint.
	runCtx, hardCancel := context.WithCancel(context.Background())
	defer hardCancel()
	go func() {
		_, err := env.Execute(runCtx)
		done <- err
	}()
	interval := c.j.ReportInterval
	switch {
	case interval > 0:
	case pr.Live() && c.j.Report == nil:
		interval = time.Second // the live line
	default:
		interval = 5 * time.Second
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	start := time.Now()
	var meter progress.Meter
	for {
		select {
		case runErr := <-done:
			pr.Done()
			// Wait for the calls in progress: a stop's savepoint path is
			// known, and answered, once its handler returned.
			if col != nil {
				col.SetRunning(env.JobID(), false)
			}
			if srv != nil {
				status := httpapi.StatusFinished
				switch {
				case errors.Is(runErr, sluice.ErrCancelled):
					status = httpapi.StatusCancelled
				case runErr != nil:
					status = httpapi.StatusFailed
				}
				srv.SetStatus(env.JobID(), status)
				sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
				_ = srv.Shutdown(sctx)
				cancel()
			}
			if errors.Is(runErr, sluice.ErrCancelled) {
				cfg.Logger.Warn("job cancelled", "job", c.j.Name, "err", runErr)
				return fmt.Errorf("job cancelled: %w", runErr)
			}
			if runErr != nil {
				cfg.Logger.Error("job failed", "job", c.j.Name, "err", runErr)
				return fmt.Errorf("job failed: %w", runErr)
			}
			var path string
			if srv != nil {
				path = srv.StoppedWith(env.JobID())
			}
			if path != "" {
				fmt.Fprintf(c.stdout, "stopped with savepoint %s\n", path)
			}
			if c.j.Done != nil {
				return c.j.Done(env, path, c.stdout)
			}
			return nil
		case <-ctx.Done():
			fmt.Fprintln(c.stdout, "stopping with a final checkpoint...")
			env.Stop()
			ctx = context.Background()
		case now := <-tick.C:
			if c.j.Report != nil {
				c.j.Report(env, c.stdout)
				continue
			}
			st := env.Status()
			rates := meter.Rates(st, now)
			if pr.Live() {
				pr.Update(progress.Line(st, rates, now.Sub(start)))
			} else {
				cfg.Logger.Info("progress", append([]any{"job", c.j.Name}, progress.Attrs(st, rates, now.Sub(start))...)...)
			}
		}
	}
}

// mountMetrics serves the Prometheus metrics of env on GET /metrics of srv
// (docs/metrics.md): a collector over env on a registry of its own, with
// the Go and process collectors.
func mountMetrics(srv *httpapi.Server, env *sluice.Environment, info metrics.JobInfo, log *slog.Logger) (*metrics.Collector, error) {
	col := metrics.NewCollector()
	if err := col.Add(env, info); err != nil {
		return nil, err
	}
	reg, err := metrics.NewRegistry(col)
	if err != nil {
		return nil, err
	}
	srv.Handle("GET /metrics", metrics.Handler(reg, log))
	return col, nil
}
