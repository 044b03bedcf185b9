package kafka_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/connector/kafka"
)

// TestSourceLagInJobStatus: the Kafka source reports its partitions to the
// job's status (sluice.SplitReporter): a burst the job cannot take (its
// sink is held) shows as consumer lag per partition and records_lag_max,
// against the last stable offset; once the sink is released the lag
// drains to zero and the partitions turn idle. The bytes read are counted.
func TestSourceLagInJobStatus(t *testing.T) {
	t.Parallel()
	const parts, burst = 2, 500
	c := srcCluster(t, parts, "in")
	prod := srcProducer(t, c)
	cfg := srcConfig(c, kafka.Records(), "in")
	cfg.MaxPollRecords = 10
	gate := make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(gate) }) }
	t.Cleanup(open)
	j := gatedJob(t, cfg, gate)
	done := make(chan error, 1)
	go func() { _, err := j.run(t, 60*time.Second); done <- err }()

	srcProduce(t, prod, "in", parts, 0, burst)
	var st sluice.JobStatus
	srcWait(t, "the burst to show as lag", 20*time.Second, func() bool {
		st = j.env.Status()
		if len(st.Sources) != 1 || len(st.Sources[0].Splits) != parts {
			return false
		}
		for _, sp := range st.Sources[0].Splits {
			if sp.Lag < burst/2 {
				return false
			}
		}
		return true
	})
	s := st.Sources[0]
	if s.RecordsLagMax < burst/2 {
		t.Fatalf("records lag max %d under the burst", s.RecordsLagMax)
	}
	if s.Vertex != "kafka" || s.Name != "kafka" || len(s.Splits) != parts {
		t.Fatalf("source status %+v, want vertex kafka with %d splits", s, parts)
	}
	for i, sp := range s.Splits {
		if sp.Split != fmt.Sprintf("in/%d", i) || sp.Topic != "in" || sp.Partition != int32(i) || sp.Subtask != 0 {
			t.Fatalf("split %d: %+v", i, sp)
		}
		if sp.End != burst || sp.Lag > int64(burst) || sp.Lag != sp.End-max(sp.Next, 0) || sp.Idle {
			t.Fatalf("split %+v under the burst: want a known, positive lag", sp)
		}
	}
	open()
	srcWait(t, "the lag to drain", 20*time.Second, func() bool {
		st = j.env.Status()
		s := st.Sources[0]
		return s.RecordsLagMax == 0 && s.IdleSplits == parts
	})
	for _, sp := range st.Sources[0].Splits {
		if sp.Next != burst || sp.End != burst || sp.Lag != 0 || !sp.Idle {
			t.Fatalf("drained split %+v, want next = end = %d, lag 0, idle", sp, burst)
		}
		if sp.Watermark.IsZero() {
			t.Fatalf("split %s has no watermark after reading %d records", sp.Split, burst)
		}
		// The records carry the time they were produced (franz-go's
		// default): the split's watermark is within this test's run, in
		// the right unit.
		if d := time.Since(sp.Watermark); d < -time.Minute || d > 10*time.Minute {
			t.Fatalf("split %s watermark %v is %v from now", sp.Split, sp.Watermark, d)
		}
	}
	var v sluice.VertexStatus
	for _, x := range st.Vertices {
		if x.Name == "kafka" {
			v = x
		}
	}
	// Each value is "in/<p>/<i>": sum their lengths.
	var want int64
	for p := range parts {
		for i := range burst {
			want += int64(len(fmt.Sprintf("in/%d/%d", p, i)))
		}
	}
	if v.BytesInTotal != want {
		t.Fatalf("source bytes in %d, want %d (keys and values read)", v.BytesInTotal, want)
	}
	j.env.Stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// gatedJob is the source job of srcNewJob with a map before the sink that
// waits for gate to be closed.
func gatedJob(t *testing.T, cfg kafka.SourceConfig[kafka.Record], gate <-chan struct{}) *srcJob[kafka.Record] {
	t.Helper()
	src, err := kafka.NewSource(cfg)
	if err != nil {
		t.Fatal(err)
	}
	j := &srcJob[kafka.Record]{src: src, seen: make(chan struct{})}
	j.env = sluice.New(sluice.Config{
		JobName: "kafka-lag-test", Parallelism: 1, CheckpointDir: t.TempDir(),
		BufferTimeout: sluice.FlushAlways, Logger: srcLogger(),
	})
	in := sluice.FromSource(j.env, "kafka", src)
	held := sluice.Map(in, "hold", func(r kafka.Record) kafka.Record { <-gate; return r })
	sluice.Sink(held, "collect", sluice.SinkFunc[kafka.Record](func(r kafka.Record) error {
		j.mu.Lock()
		j.got = append(j.got, r)
		j.mu.Unlock()
		return nil
	}))
	return j
}
