package metrics

import (
	"sort"

	"github.com/prometheus/client_golang/prometheus"
)

// Bucket upper bounds, in seconds.
var (
	// checkpointBuckets spans a fast local checkpoint (10 ms) to one near
	// the default timeout (60 s) and beyond.
	checkpointBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}
	// commitBuckets spans a local file rename (1 ms) to a slow Kafka
	// EndTxn (30 s).
	commitBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
)

// hist is a cumulative histogram the collector owns and exports as a
// constant metric at each scrape. Unlike prometheus.Histogram it can take
// several observations whose sum is known exactly but whose individual
// values are not (see addMany). Not safe for concurrent use: the
// collector's mutex guards it.
type hist struct {
	bounds []float64
	// counts[i] counts the observations in (bounds[i-1], bounds[i]]; the
	// last entry those above every bound.
	counts []uint64
	count  uint64
	sum    float64
}

func newHist(bounds []float64) *hist {
	return &hist{bounds: bounds, counts: make([]uint64, len(bounds)+1)}
}

// add observes v once.
func (h *hist) add(v float64) { h.addN(v, 1) }

// addN observes v n times.
func (h *hist) addN(v float64, n uint64) {
	if n == 0 {
		return
	}
	i := sort.SearchFloat64s(h.bounds, v) // first bound >= v: le is inclusive
	h.counts[i] += n
	h.count += n
	h.sum += v * float64(n)
}

// metric returns the histogram as a constant metric of desc.
func (h *hist) metric(desc *prometheus.Desc, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(h.bounds))
	var cum uint64
	for i, b := range h.bounds {
		cum += h.counts[i]
		buckets[b] = cum
	}
	return prometheus.MustNewConstHistogram(desc, h.count, h.sum, buckets, labels...)
}
