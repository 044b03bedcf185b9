package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// echo serves an echo server and returns its address.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); _ = c.Close() }()
		}
	}()
	return ln.Addr().String()
}

func start(t *testing.T) *Proxy {
	t.Helper()
	p, err := Start("127.0.0.1:0", echo(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func dial(t *testing.T, p *Proxy) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, bufio.NewReader(c)
}

// roundTrip writes a line and reads it back within d.
func roundTrip(c net.Conn, r *bufio.Reader, line string, d time.Duration) (string, error) {
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		return "", err
	}
	_ = c.SetReadDeadline(time.Now().Add(d))
	s, err := r.ReadString('\n')
	return strings.TrimSuffix(s, "\n"), err
}

func TestPass(t *testing.T) {
	p := start(t)
	c, r := dial(t, p)
	if got, err := roundTrip(c, r, "hello", 5*time.Second); err != nil || got != "hello" {
		t.Fatalf("round trip: %q, %v", got, err)
	}
}

// TestBlackholeHoldsThenReleases: while blackholed nothing gets through an
// open connection (the read times out), and the held bytes arrive once the
// link is back; a connection made during the blackhole connects only then.
func TestBlackholeHoldsThenReleases(t *testing.T) {
	p := start(t)
	c, r := dial(t, p)
	if _, err := roundTrip(c, r, "before", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.SetMode(Blackhole, 0)
	_, err := roundTrip(c, r, "held", 300*time.Millisecond)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read through a blackhole: %v, want a timeout", err)
	}
	c2, r2 := dial(t, p) // accepted by the listener, not forwarded
	if _, err := c2.Write([]byte("new\n")); err != nil {
		t.Fatal(err)
	}
	_ = c2.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := r2.ReadString('\n'); err == nil {
		t.Fatal("a new connection got through the blackhole")
	}
	p.SetMode(Pass, 0)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if s, err := r.ReadString('\n'); err != nil || s != "held\n" {
		t.Fatalf("held bytes after the blackhole: %q, %v", s, err)
	}
	_ = c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if s, err := r2.ReadString('\n'); err != nil || s != "new\n" {
		t.Fatalf("new connection after the blackhole: %q, %v", s, err)
	}
}

// TestResetClosesWithRST: open connections are reset (ECONNRESET, not a
// clean EOF) and new ones are reset at once; back in Pass, new ones work.
func TestResetClosesWithRST(t *testing.T) {
	p := start(t)
	c, r := dial(t, p)
	if _, err := roundTrip(c, r, "x", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.SetMode(Reset, 0)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := r.ReadString('\n')
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read on a reset connection: %v, want ECONNRESET", err)
	}
	// A new connection is reset at once: the dial or the first read fails.
	if c2, err := net.Dial("tcp", p.Addr()); err == nil {
		_, err = roundTrip(c2, bufio.NewReader(c2), "y", 5*time.Second)
		_ = c2.Close()
		if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("new connection while resetting: %v, want a reset or EOF", err)
		}
	}
	p.SetMode(Pass, 0)
	c3, r3 := dial(t, p)
	if got, err := roundTrip(c3, r3, "z", 5*time.Second); err != nil || got != "z" {
		t.Fatalf("after reset: %q, %v", got, err)
	}
}

func TestDelay(t *testing.T) {
	p := start(t)
	c, r := dial(t, p)
	p.SetMode(Delay, 150*time.Millisecond)
	began := time.Now()
	if got, err := roundTrip(c, r, "slow", 5*time.Second); err != nil || got != "slow" {
		t.Fatalf("round trip: %q, %v", got, err)
	}
	// Both directions wait: at least two delays.
	if took := time.Since(began); took < 300*time.Millisecond {
		t.Fatalf("round trip took %v through a 150ms delay each way", took)
	}
}

func TestCloseEndsConnections(t *testing.T) {
	p := start(t)
	c, r := dial(t, p)
	if _, err := roundTrip(c, r, "x", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.SetMode(Blackhole, 0)
	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hung on a blackholed connection")
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("connection still open after Close")
	}
}
