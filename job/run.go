package job

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/httpapi"
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
		srv, err = httpapi.New(httpapi.Config{Addr: c.httpAddr, Token: c.httpToken, Logger: cfg.Logger})
		if err != nil {
			return fmt.Errorf("%s: %s", c.source("http"), strings.TrimPrefix(err.Error(), "http: "))
		}
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
		fmt.Fprintf(c.stdout, "metrics on http://%s/metrics\n", srv.Addr())
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
	if interval <= 0 {
		interval = 5 * time.Second
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case runErr := <-done:
			// Wait for the calls in progress: a stop's savepoint path is
			// known, and answered, once its handler returned.
			if col != nil {
				col.SetRunning(env.JobID(), false)
			}
			if srv != nil {
				status := httpapi.StatusFinished
				if runErr != nil {
					status = httpapi.StatusFailed
				}
				srv.SetStatus(env.JobID(), status)
				sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
				_ = srv.Shutdown(sctx)
				cancel()
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
		case <-tick.C:
			if c.j.Report != nil {
				c.j.Report(env, c.stdout)
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
