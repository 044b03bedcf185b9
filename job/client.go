package job

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/sluicehq/sluice/internal/httpapi"
)

// clientFlags adds the flags of the subcommands that call the control API.
func clientFlags(fs *flag.FlagSet) (jobID *string, timeout *time.Duration) {
	jobID = fs.String("job-id", "", "id of the job (GET /api/v1/jobs); default the one running job")
	timeout = fs.Duration("timeout", 10*time.Minute, "give up waiting for the answer (a savepoint, a checkpoint) after this long")
	return jobID, timeout
}

// client returns a client of the control API at --http (default
// DefaultHTTPAddr).
func (c *cmd) client() (*httpapi.Client, error) {
	addr := c.httpAddr
	if addr == "" || addr == "off" {
		addr = DefaultHTTPAddr // the job's default may be off; the client's is not
	}
	return &httpapi.Client{Addr: addr, Token: c.httpToken}, nil
}

// pickJob returns id, or the id of the one running job of the process.
func pickJob(ctx context.Context, cl *httpapi.Client, id string) (string, error) {
	if id != "" {
		return id, nil
	}
	jobs, err := cl.Jobs(ctx)
	if err != nil {
		return "", err
	}
	var running []string
	for _, j := range jobs {
		if j.Status == httpapi.StatusRunning {
			running = append(running, j.ID)
		}
	}
	switch len(running) {
	case 0:
		return "", fmt.Errorf("no running job at %s (%d jobs listed)", cl.Addr, len(jobs))
	case 1:
		return running[0], nil
	}
	return "", fmt.Errorf("%d running jobs at %s (%s): give --job-id", len(running), cl.Addr, strings.Join(running, ", "))
}

// savepoint is the savepoint subcommand: POST /api/v1/jobs/{id}/savepoints;
// prints the savepoint's path.
func (c *cmd) savepoint(ctx context.Context, args []string) error {
	fs, err := c.flags("savepoint", fmt.Sprintf(`Usage: %s savepoint [--http ADDR] [--job-id ID]

Takes a savepoint of the running job through its control API and prints
the savepoint's directory once it is complete. The job keeps running.

Flags:
`, c.program()))
	if err != nil {
		return err
	}
	jobID, timeout := clientFlags(fs)
	if err := c.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(c.stderr, "unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return ErrUsage
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	id, err := pickJob(ctx, cl, *jobID)
	if err != nil {
		return err
	}
	path, err := cl.Savepoint(ctx, id)
	if err != nil {
		return fmt.Errorf("savepoint of job %s: %w", id, err)
	}
	fmt.Fprintln(c.stdout, path)
	return nil
}

// stop is the stop subcommand: POST /api/v1/jobs/{id}/stop; prints the
// savepoint's path. The job's process then exits 0.
func (c *cmd) stop(ctx context.Context, args []string) error {
	fs, err := c.flags("stop", fmt.Sprintf(`Usage: %s stop --savepoint [--drain] [--http ADDR] [--job-id ID]

Stops the running job with a savepoint through its control API: sources
stop, the savepoint's transactions commit, the job's process exits 0, and
this prints the savepoint's directory. --drain first advances event time to
the end (every window and timer fires): for a job that is retired rather
than upgraded. If the savepoint fails, the job keeps running.

Flags:
`, c.program()))
	if err != nil {
		return err
	}
	jobID, timeout := clientFlags(fs)
	withSavepoint := fs.Bool("savepoint", false, "stop with a savepoint (required; to stop with a final checkpoint instead, send the process SIGTERM)")
	drain := fs.Bool("drain", false, "emit the final watermark before the savepoint (fires every event-time window and timer)")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(c.stderr, "unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return ErrUsage
	}
	if !*withSavepoint {
		fmt.Fprintln(c.stderr, "stop needs --savepoint (to stop with a final checkpoint instead, send the job's process SIGTERM)")
		return ErrUsage
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	id, err := pickJob(ctx, cl, *jobID)
	if err != nil {
		return err
	}
	path, err := cl.Stop(ctx, id, *drain)
	if err != nil {
		return fmt.Errorf("stop of job %s: %w", id, err)
	}
	fmt.Fprintln(c.stdout, path)
	return nil
}

// clientCommand parses the flags of a subcommand that makes one call to
// the control API for the one running job (or --job-id), and makes it.
func (c *cmd) clientCommand(ctx context.Context, name, usage string, args []string, call func(ctx context.Context, cl *httpapi.Client, id string) error) error {
	fs, err := c.flags(name, usage)
	if err != nil {
		return err
	}
	jobID, timeout := clientFlags(fs)
	if err := c.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(c.stderr, "unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return ErrUsage
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	id, err := pickJob(ctx, cl, *jobID)
	if err != nil {
		return err
	}
	return call(ctx, cl, id)
}

// checkpoint is the checkpoint subcommand: POST
// /api/v1/jobs/{id}/checkpoints; prints the checkpoint's id.
func (c *cmd) checkpoint(ctx context.Context, args []string) error {
	return c.clientCommand(ctx, "checkpoint", fmt.Sprintf(`Usage: %s checkpoint [--http ADDR] [--job-id ID]

Takes a checkpoint of the running job now, through its control API, and
prints its id once it is complete (its transactions then commit). The job
keeps running; the periodic schedule is unchanged.

Flags:
`, c.program()), args, func(ctx context.Context, cl *httpapi.Client, id string) error {
		cid, err := cl.TriggerCheckpoint(ctx, id)
		if err != nil {
			return fmt.Errorf("checkpoint of job %s: %w", id, err)
		}
		fmt.Fprintln(c.stdout, cid)
		return nil
	})
}

// cancel is the cancel subcommand: POST /api/v1/jobs/{id}/cancel.
func (c *cmd) cancel(ctx context.Context, args []string) error {
	return c.clientCommand(ctx, "cancel", fmt.Sprintf(`Usage: %s cancel [--http ADDR] [--job-id ID]

Cancels the running job at once through its control API: no final
checkpoint, nothing more is committed; the job's process exits 1 ("job
cancelled"). Started again, the job resumes from its latest checkpoint. To
stop cleanly, send the process SIGTERM or use 'stop --savepoint'.

Flags:
`, c.program()), args, func(ctx context.Context, cl *httpapi.Client, id string) error {
		if err := cl.Cancel(ctx, id); err != nil {
			return fmt.Errorf("cancel of job %s: %w", id, err)
		}
		fmt.Fprintf(c.stdout, "cancelling job %s\n", id)
		return nil
	})
}
