package metrics_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/benchjob"
	"github.com/sluicehq/sluice/metrics"
)

// The cost of the metrics on the core benchmarks (docs/metrics.md "Cost"):
// the same pipeline as internal/benchjob's, with and without a scraper
// fetching /metrics every second over HTTP, as Prometheus would. Run them
// interleaved, several times, and compare the medians of records/s:
//
//	go test -run '^$' -bench 'PipelineKeyedSum' -benchtime 2000000x ./metrics/
//	go test -run '^$' -bench 'PipelineStateless' -benchtime 50000000x ./metrics/
//
// (scripts/bench-metrics.sh runs them interleaved.) Each reports records/s and
// the process's CPU time per record.
func BenchmarkPipelineKeyedSum(b *testing.B) { benchScraped(b, benchjob.KeyedSum, 1_000_000, 0) }
func BenchmarkPipelineKeyedSumScraped(b *testing.B) {
	benchScraped(b, benchjob.KeyedSum, 1_000_000, time.Second)
}
func BenchmarkPipelineStateless(b *testing.B) { benchScraped(b, benchjob.Stateless, 1, 0) }
func BenchmarkPipelineStatelessScraped(b *testing.B) {
	benchScraped(b, benchjob.Stateless, 1, time.Second)
}

func benchScraped(b *testing.B, pipeline string, keys int, every time.Duration) {
	var scrapes int
	o := benchjob.Options{
		Pipeline: pipeline, Records: int64(max(b.N, 4)), Keys: keys, Parallelism: 2,
		CheckpointInterval: time.Second, Dir: b.TempDir(),
	}
	if every > 0 {
		o.Attach = func(env *sluice.Environment) func() {
			col := metrics.NewCollector()
			if err := col.Add(env, metrics.JobInfo{Name: "bench"}); err != nil {
				b.Fatal(err)
			}
			reg, err := metrics.NewRegistry(col)
			if err != nil {
				b.Fatal(err)
			}
			srv := httptest.NewServer(metrics.Handler(reg, nil))
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() {
				tick := time.NewTicker(every)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
						resp, err := http.Get(srv.URL)
						if err != nil {
							b.Error(err)
							return
						}
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						scrapes++
					}
				}
			})
			return func() {
				close(stop)
				wg.Wait()
				srv.Close()
			}
		}
	}
	cpu0 := cpuTime()
	r, err := benchjob.Run(context.Background(), o)
	if err != nil {
		b.Fatal(err)
	}
	// CPU time per record (user + system, the whole process: the job, the
	// scraper and the server): less sensitive than records/s to other
	// processes on a shared machine.
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(o.Records), "cpu-ns/record")
	b.ReportMetric(r.RecordsPerSec, "records/s")
	if every > 0 {
		b.ReportMetric(float64(scrapes), "scrapes")
	}
}

// BenchmarkScrape is one scrape of a job of 4 tasks of parallelism 8, a
// Kafka source of 32 partitions and a sink: the Status copy, the
// constant metrics, and the text encoding (without the Go and process
// collectors, whose cost is client_golang's).
func BenchmarkScrape(b *testing.B) {
	st := fullStatus()
	st.Vertices = nil
	for v := range 4 {
		vs := sluice.VertexStatus{Name: fmt.Sprintf("task-%d", v), UID: fmt.Sprint(v), Parallelism: 8}
		for i := range 8 {
			vs.Subtasks = append(vs.Subtasks, sluice.SubtaskStatus{Index: i, RecordsInTotal: 1e9, BusyRatio: 0.5, Watermark: t0})
		}
		st.Vertices = append(st.Vertices, vs)
	}
	st.Sources[0].Splits = nil
	for p := range 32 {
		st.Sources[0].Splits = append(st.Sources[0].Splits, sluice.SplitStatus{Split: "in-" + strconv.Itoa(p), Topic: "in", Partition: int32(p), Lag: 5})
	}
	j := &fakeJob{id: "j", st: st}
	col := metrics.NewCollector()
	if err := col.Add(j, metrics.JobInfo{Name: "bench"}); err != nil {
		b.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(col)
	h := metrics.Handler(reg, nil)
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
	}
	// CPU time, not wall time: on a shared machine the wall time per
	// scrape mostly measures the other processes.
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/scrape")
}
