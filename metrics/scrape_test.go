package metrics_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape is one parsed /metrics answer.
type scrape map[string]*dto.MetricFamily

// get scrapes h as Prometheus would and parses the text format.
func get(t *testing.T, h http.Handler) scrape {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	return parse(t, rec.Body)
}

// getURL scrapes a running server.
func getURL(t *testing.T, url string) scrape {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return parse(t, resp.Body)
}

func parse(t *testing.T, r io.Reader) scrape {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(r)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return mfs
}

// labels renders a metric's labels as k=v,k=v sorted, for messages and
// lookups.
func labels(m *dto.Metric) string {
	var kv []string
	for _, l := range m.GetLabel() {
		kv = append(kv, l.GetName()+"="+l.GetValue())
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}

// find returns the series of name whose labels include every k=v of want
// (a comma-separated list), nil if none.
func (s scrape) find(name, want string) *dto.Metric {
	mf := s[name]
	if mf == nil {
		return nil
	}
	var ws []string
	if want != "" {
		ws = strings.Split(want, ",")
	}
	for _, m := range mf.GetMetric() {
		have := strings.Split(labels(m), ",")
		ok := true
		for _, w := range ws {
			if !slices.Contains(have, w) {
				ok = false
				break
			}
		}
		if ok {
			return m
		}
	}
	return nil
}

// value returns the value of a counter or gauge series, failing the test
// when it is absent.
func (s scrape) value(t *testing.T, name, want string) float64 {
	t.Helper()
	m := s.find(name, want)
	if m == nil {
		t.Fatalf("no series %s{%s}; have %s", name, want, s.series(name))
	}
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	t.Fatalf("%s{%s} is neither a counter nor a gauge", name, want)
	return 0
}

// hist returns the histogram series of name.
func (s scrape) hist(t *testing.T, name, want string) *dto.Histogram {
	t.Helper()
	m := s.find(name, want)
	if m == nil || m.Histogram == nil {
		t.Fatalf("no histogram %s{%s}; have %s", name, want, s.series(name))
	}
	return m.Histogram
}

// series lists the label sets of name, for messages.
func (s scrape) series(name string) string {
	mf := s[name]
	if mf == nil {
		return "nothing"
	}
	var out []string
	for _, m := range mf.GetMetric() {
		out = append(out, "{"+labels(m)+"}")
	}
	return fmt.Sprint(out)
}

// dump renders the sluice_ series of s, one per line, for messages.
func (s scrape) dump() string {
	var names []string
	for name := range s {
		if strings.HasPrefix(name, "sluice_") {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var b strings.Builder
	for _, name := range names {
		for _, m := range s[name].GetMetric() {
			v := "histogram"
			switch {
			case m.Counter != nil:
				v = fmt.Sprint(m.Counter.GetValue())
			case m.Gauge != nil:
				v = fmt.Sprint(m.Gauge.GetValue())
			case m.Histogram != nil:
				v = fmt.Sprintf("count=%d sum=%g", m.Histogram.GetSampleCount(), m.Histogram.GetSampleSum())
			}
			fmt.Fprintf(&b, "%s{%s} %s\n", name, labels(m), v)
		}
	}
	return b.String()
}
