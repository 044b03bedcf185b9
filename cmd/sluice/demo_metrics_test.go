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

var metricsLine = regexp.MustCompile(`metrics on (http://\S+/metrics)`)

// TestDemoMetrics: `sluice demo --http` serves the Prometheus metrics on
// GET /metrics beside the control API, under job_name "demo", and they
// count the demo's checkpoints.
func TestDemoMetrics(t *testing.T) {
	t.Parallel()
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"demo", "--pipeline", "file", "--dir", t.TempDir(), "--duration", "0", "--rate", "20000", "--keys", "100",
			"--checkpoint-interval", "50ms", "--seed", "3", "--http", "127.0.0.1:0"}, &out, &errb)
	}()
	var url, api string
	for url == "" || api == "" {
		if m := metricsLine.FindStringSubmatch(out.String()); m != nil {
			url = m[1]
		}
		if m := controlAPILine.FindStringSubmatch(out.String()); m != nil {
			api = m[1]
		}
		select {
		case code := <-done:
			t.Fatalf("demo ended: %d\n%s\n%s", code, out.String(), errb.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body := string(b)
		if !strings.Contains(body, `sluice_checkpoint_interval_seconds{job_name="demo"} 0.05`) {
			t.Fatalf("no interval of job demo in:\n%s", body)
		}
		if strings.Contains(body, `sluice_checkpoints_completed_total{job_name="demo"} `) &&
			!strings.Contains(body, `sluice_checkpoints_completed_total{job_name="demo"} 0`+"\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no completed checkpoint in the metrics:\n%s", body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var sout, serr bytes.Buffer
	if code := run([]string{"stop", "--savepoint", "--http", api}, &sout, &serr); code != 0 {
		t.Fatalf("stop: exit %d: %s", code, serr.String())
	}
	if code := <-done; code != 0 {
		t.Fatalf("demo after stop: exit %d\n%s\n%s", code, out.String(), errb.String())
	}
}
