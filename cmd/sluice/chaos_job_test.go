package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestParseDialMap(t *testing.T) {
	m, err := parseDialMap("127.0.0.1:9092=127.0.0.1:4000, b:1=c:2")
	if err != nil || len(m) != 2 || m["127.0.0.1:9092"] != "127.0.0.1:4000" || m["b:1"] != "c:2" {
		t.Fatalf("parseDialMap = %v, %v", m, err)
	}
	for _, bad := range []string{"a", "a=", "=b"} {
		if _, err := parseDialMap(bad); err == nil {
			t.Errorf("parseDialMap(%q) accepted", bad)
		}
	}
}

// TestSteppedClock: a step moves Now by exactly the step, and a timer
// delivers the stepped clock's time, not the wall clock's.
func TestSteppedClock(t *testing.T) {
	var c steppedClock
	c.step(-time.Hour)
	if d := time.Until(c.Now()); d > -59*time.Minute || d < -61*time.Minute {
		t.Fatalf("after a step back of 1h, Now is %v from the wall clock", d)
	}
	tm := c.NewTimer(time.Millisecond)
	select {
	case at := <-tm.C():
		if d := time.Until(at); d > -59*time.Minute {
			t.Fatalf("timer delivered %v from the wall clock, want the stepped time", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("timer did not fire")
	}
	if c.NewTimer(time.Hour).Stop() != true {
		t.Fatal("Stop of a running timer reported false")
	}
}

// TestSlowStorageDelay: the delay comes from the control file, and no
// file or an empty one means none.
func TestSlowStorageDelay(t *testing.T) {
	f := filepath.Join(t.TempDir(), "slow")
	s := &slowStorage{file: f}
	if d := s.delay(); d != 0 {
		t.Fatalf("no file: delay %v", d)
	}
	if err := os.WriteFile(f, []byte("250ms\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if d := s.delay(); d != 250*time.Millisecond {
		t.Fatalf("delay %v, want 250ms", d)
	}
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if d := s.delay(); d != 0 {
		t.Fatalf("empty file: delay %v", d)
	}
}
