package kafka

import (
	"testing"

	"github.com/sluicehq/sluice/connector/datagen"
)

// TestSinkStatusCounters: the exactly-once Kafka sink's transactions show
// in the job's status (sluice.SinkStatus): every committed transaction is
// counted, once per commit call, none aborted in a run without failures;
// the sink vertex's bytes out are the keys and values it wrote, which is
// what a read_committed reader finds in the topic.
func TestSinkStatusCounters(t *testing.T) {
	t.Parallel()
	_, addrs := sinkBroker(t)
	sinkCreateTopic(t, addrs, "out", 2)
	gen := datagen.Config{Splits: 2, RecordsPerSplit: 2000, Keys: 20, Seed: 5, BatchSize: 64}
	res := e2eJob{gen: gen, parallelism: 1, delivery: DeliveryExactlyOnce}.run(t, addrs, "out", "status", t.TempDir())
	recs := sinkReadCommitted(t, addrs, "out", 2)
	e2eCheck(t, gen, recs, false)
	var want int64
	for _, r := range recs {
		want += int64(len(r.Key) + len(r.Value))
	}
	st := res.Status
	if len(st.Sinks) != 1 {
		t.Fatalf("sinks %+v, want one", st.Sinks)
	}
	k := st.Sinks[0]
	if k.Name != e2eSinkUID || k.TransactionsCommitted < 1 || k.Commits < 1 || k.Commits > k.TransactionsCommitted || k.TransactionsAborted != 0 {
		t.Fatalf("sink status %+v, want committed transactions and none aborted", k)
	}
	if k.CommitLatencySum < k.LastCommitLatency {
		t.Fatalf("commit latency sum %v below the last one %v", k.CommitLatencySum, k.LastCommitLatency)
	}
	var out int64
	for _, v := range st.Vertices {
		out += v.BytesOutTotal
	}
	if out != want {
		t.Fatalf("bytes out %d, want %d (the keys and values in the topic)", out, want)
	}
}
