package metrics_test

import (
	"os"
	"strings"
	"testing"

	"github.com/prometheus/common/model"

	"github.com/sluicehq/sluice/metrics"
)

// TestMetricsDocumented: every metric the collector defines has a row in
// docs/metrics.md with the same type and labels, every row names a metric
// the collector defines, and every name is a valid Prometheus name that
// follows the conventions (sluice_ prefix, _total on counters only).
func TestMetricsDocumented(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	type row struct{ typ, labels string }
	doc := map[string]row{}
	for line := range strings.SplitSeq(string(b), "\n") {
		if !strings.HasPrefix(line, "| `sluice_") {
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) < 6 {
			t.Errorf("docs/metrics.md: short row %q", line)
			continue
		}
		name := strings.Trim(strings.TrimSpace(cells[1]), "`")
		if _, dup := doc[name]; dup {
			t.Errorf("docs/metrics.md: %s listed twice", name)
		}
		doc[name] = row{strings.TrimSpace(cells[2]), strings.ReplaceAll(strings.TrimSpace(cells[3]), " ", "")}
	}
	defs := metrics.Defs()
	if len(defs) == 0 {
		t.Fatal("no metric defined")
	}
	for _, d := range defs {
		if !model.IsValidLegacyMetricName(d.Name) || !strings.HasPrefix(d.Name, "sluice_") {
			t.Errorf("%s: not a valid sluice_ metric name", d.Name)
		}
		if (d.Type == "counter") != strings.HasSuffix(d.Name, "_total") {
			t.Errorf("%s: a %s; only counters end in _total", d.Name, d.Type)
		}
		for _, l := range d.Labels {
			if !model.LabelName(l).IsValidLegacy() || l == "job" || strings.HasPrefix(l, "__") {
				t.Errorf("%s: label %q not allowed", d.Name, l)
			}
		}
		r, ok := doc[d.Name]
		if !ok {
			t.Errorf("%s is not documented in docs/metrics.md", d.Name)
			continue
		}
		if r.typ != d.Type {
			t.Errorf("%s: docs say %s, the collector exports a %s", d.Name, r.typ, d.Type)
		}
		if want := strings.Join(d.Labels, ","); r.labels != want {
			t.Errorf("%s: docs list labels %s, the collector %s", d.Name, r.labels, want)
		}
		delete(doc, d.Name)
	}
	for name := range doc {
		t.Errorf("docs/metrics.md lists %s, which the collector does not export", name)
	}
}
