package main

import (
	"bytes"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

var dashboardLine = regexp.MustCompile(`dashboard on (http://(\S+)/)`)

// TestDemoPrintsDashboardURL: `sluice demo` serves the control API and the
// dashboard on a free loopback port without being asked (--http defaults
// to 127.0.0.1:0) and prints the dashboard's URL, which answers the page;
// --http off serves nothing.
func TestDemoPrintsDashboardURL(t *testing.T) {
	t.Parallel()
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"demo", "--pipeline", "file", "--dir", t.TempDir(), "--duration", "0", "--rate", "5000", "--keys", "50",
			"--checkpoint-interval", "100ms", "--seed", "4"}, &out, &errb)
	}()
	var url, api string
	deadline := time.After(30 * time.Second)
	for url == "" {
		if m := dashboardLine.FindStringSubmatch(out.String()); m != nil {
			url, api = m[1], m[2]
		}
		select {
		case code := <-done:
			t.Fatalf("demo ended: %d\n%s\n%s", code, out.String(), errb.String())
		case <-deadline:
			t.Fatalf("no dashboard URL printed in 30s:\n%s", out.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	if !strings.HasPrefix(api, "127.0.0.1:") || strings.HasSuffix(api, ":0") {
		t.Errorf("dashboard served on %s, want a free loopback port", api)
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), `<script src="/ui/app.js"`) {
		t.Errorf("GET %s: %d\n%s", url, resp.StatusCode, page)
	}
	var sout, serr bytes.Buffer
	if code := run([]string{"stop", "--savepoint", "--http", api}, &sout, &serr); code != 0 {
		t.Fatalf("stop: exit %d: %s", code, serr.String())
	}
	if code := <-done; code != 0 {
		t.Fatalf("demo after stop: exit %d\n%s\n%s", code, out.String(), errb.String())
	}

	var out2, errb2 bytes.Buffer
	if code := run([]string{"demo", "--pipeline", "file", "--dir", t.TempDir(), "--duration", "300ms", "--rate", "5000", "--keys", "50",
		"--checkpoint-interval", "100ms", "--seed", "4", "--http", "off"}, &out2, &errb2); code != 0 {
		t.Fatalf("demo --http off: exit %d\n%s\n%s", code, out2.String(), errb2.String())
	}
	if strings.Contains(out2.String(), "dashboard on") || strings.Contains(out2.String(), "control API on") {
		t.Errorf("demo --http off served:\n%s", out2.String())
	}
}
