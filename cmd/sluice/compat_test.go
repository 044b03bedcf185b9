package main

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/broker"
)

// `sluice run count` on a checkpoint directory of a job that read another
// topic refuses to start, naming the source and both topics, instead of
// restoring that job's counts (issue 6, defect 2); --allow-source-change
// lets it run.
func TestRunCountRefusesForeignCheckpointDir(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, err := broker.Start(ctx, broker.Config{Ephemeral: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	dir := filepath.Join(t.TempDir(), "ckpt")
	run := func(input string, extra ...string) (string, error) {
		t.Helper()
		runCtx, stop := context.WithCancel(ctx)
		defer stop()
		var out strings.Builder
		args := append([]string{"count", "--brokers", b.Addrs()[0], "--input", input, "--output", input + "-out",
			"--checkpoint-dir", dir, "--partitions", "1", "--parallelism", "1"}, extra...)
		done := make(chan error, 1)
		pr, pw := io.Pipe()
		go func() { done <- runRun(runCtx, args, pw, pw); pw.Close() }()
		// Stop the job (a final checkpoint) once it runs, or collect its
		// refusal.
		buf := make([]byte, 4096)
		for {
			n, rerr := pr.Read(buf)
			out.Write(buf[:n])
			if strings.Contains(out.String(), "running count:") && runCtx.Err() == nil {
				stop()
			}
			if rerr != nil {
				return out.String(), <-done
			}
		}
	}
	if out, err := run("orders"); err != nil {
		t.Fatalf("first run: %v\n%s", err, out)
	}
	out, err := run("payments")
	if err == nil || !strings.Contains(err.Error(), `source "kafka-source": the checkpoint read kafka[orders], the job reads kafka[payments]`) ||
		!strings.Contains(err.Error(), "--allow-source-change") {
		t.Fatalf("foreign checkpoint dir: err = %v\n%s", err, out)
	}
	if out, err := run("payments", "--allow-source-change"); err != nil {
		t.Fatalf("with --allow-source-change: %v\n%s", err, out)
	}
}
