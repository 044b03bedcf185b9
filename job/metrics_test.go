package job_test

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestMetricsOnRunningJob: run serves the job's Prometheus metrics on GET
// /metrics of its control endpoint, says so on stdout, with job_name the
// job's name, the configured checkpoint interval, and checkpoints counted
// as they complete.
func TestMetricsOnRunningJob(t *testing.T) {
	var out counts
	addr, _, stdout, _ := startJob(t, countJob(&out), "--http", "127.0.0.1:0", "--checkpoint-dir", filepath.Join(t.TempDir(), "ckpt"))
	if want := "metrics on http://" + addr + "/metrics"; !strings.Contains(stdout.String(), want) {
		t.Errorf("stdout lacks %q:\n%s", want, stdout)
	}
	scrape := func() (running, completed, interval float64) {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		p := expfmt.NewTextParser(model.UTF8Validation)
		mfs, err := p.TextToMetricFamilies(resp.Body)
		if err != nil {
			t.Fatalf("parse /metrics: %v", err)
		}
		get := func(name string) float64 {
			mf := mfs[name]
			if mf == nil || len(mf.GetMetric()) != 1 {
				t.Fatalf("%s: %v", name, mf)
			}
			m := mf.GetMetric()[0]
			if l := m.GetLabel(); len(l) != 1 || l[0].GetName() != "job_name" || l[0].GetValue() != "count-test" {
				t.Fatalf("%s labels %v, want job_name=count-test", name, l)
			}
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.GetGauge().GetValue()
		}
		return get("sluice_job_running"), get("sluice_checkpoints_completed_total"), get("sluice_checkpoint_interval_seconds")
	}
	running, _, interval := scrape()
	if running != 1 || interval != 0.05 {
		t.Errorf("running %v interval %v, want 1 and 0.05", running, interval)
	}
	waitFor(t, "two checkpoints in the metrics", func() bool {
		_, c, _ := scrape()
		return c >= 2
	})
}
