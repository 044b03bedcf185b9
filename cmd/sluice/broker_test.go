package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// lineWriter collects output and signals each complete line on lines.
type lineWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines chan string
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for {
		line, err := w.buf.ReadString('\n')
		if err != nil {
			w.buf.WriteString(line) // incomplete: keep it for the next write
			return len(p), nil
		}
		w.lines <- strings.TrimSuffix(line, "\n")
	}
}

func TestRunBrokerServesUntilCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stdout := &lineWriter{lines: make(chan string, 10)}
	var stderr bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- runBroker(ctx, []string{"--ephemeral", "--port", "0", "--log-level", "warn"}, stdout, &stderr)
	}()

	var ready string
	select {
	case ready = <-stdout.lines:
	case err := <-done:
		t.Fatalf("runBroker returned before it was ready: %v\n%s", err, stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("no ready line within 30s")
	}
	addr, ok := strings.CutPrefix(ready, "broker listening on ")
	if !ok || !strings.HasSuffix(addr, " (ephemeral: in memory, nothing is kept)") {
		t.Fatalf("ready line = %q", ready)
	}
	addr = strings.Fields(addr)[0]
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	conn.Close()

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("runBroker after cancel: %v\n%s", err, stderr.String())
	}
	if got := <-stdout.lines; got != "broker stopped cleanly" {
		t.Errorf("last line = %q, want %q", got, "broker stopped cleanly")
	}
}

func TestRunBrokerDataDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	stdout := &lineWriter{lines: make(chan string, 10)}
	done := make(chan error, 1)
	go func() {
		done <- runBroker(ctx, []string{"--port=0", "--data-dir", dir, "--partitions=2", "--txn-max-timeout=2h", "--sync-writes", "--log-level=warn"}, stdout, io.Discard)
	}()
	select {
	case line := <-stdout.lines:
		if !strings.HasSuffix(line, "(data dir "+dir+")") {
			t.Errorf("ready line = %q", line)
		}
	case err := <-done:
		t.Fatalf("runBroker: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := <-stdout.lines; got != "broker stopped cleanly (data dir "+dir+" saved)" {
		t.Errorf("last line = %q", got)
	}
}

func TestRunBrokerHelp(t *testing.T) {
	t.Parallel()
	var stdout bytes.Buffer
	err := runBroker(t.Context(), []string{"--help"}, &stdout, io.Discard)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("runBroker(--help) = %v, want flag.ErrHelp", err)
	}
	out := stdout.String()
	for _, want := range []string{
		"Usage: sluice broker",
		"-port port", "(default 9092)",
		"-host address", `(default "127.0.0.1")`,
		"-data-dir directory", `(default "./data/broker")`,
		"-partitions count", "(default 4)",
		"-sync-writes",
		"-txn-max-timeout", "(default 1h0m0s)",
		"-ephemeral",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("--help output lacks %q:\n%s", want, out)
		}
	}
}

func TestRunBrokerBadFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--port", "70000"}, "broker.port: must be 0..65535, got 70000"},
		{[]string{"--ephemeral", "--data-dir", "x"}, "broker.data-dir: must be empty when broker.ephemeral is set"},
		{[]string{"--host", "0.0.0.0"}, "broker.host:"},
		{[]string{"--log-level", "loud"}, "broker.log-level:"},
		{[]string{"extra"}, "unexpected arguments: extra"},
		{[]string{"--nope"}, "flag provided but not defined"},
	} {
		var stderr strings.Builder
		err := runBroker(t.Context(), tc.args, io.Discard, &stderr)
		// Flag errors are printed by the flag package and returned as
		// errUsage (exit 2); configuration errors are returned.
		if err == nil || !strings.Contains(err.Error()+stderr.String(), tc.want) {
			t.Errorf("runBroker(%q) = %v (stderr %q), want an error containing %q", tc.args, err, stderr.String(), tc.want)
		}
	}
}

func TestRunBrokerCancelledBeforeStart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := runBroker(ctx, []string{"--ephemeral", "--port=0"}, io.Discard, io.Discard); !errors.Is(err, context.Canceled) {
		t.Fatalf("runBroker(cancelled) = %v, want context.Canceled", err)
	}
}
