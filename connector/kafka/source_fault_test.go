package kafka_test

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/connector/kafka"
	"github.com/sluicehq/sluice/fault"
	"github.com/sluicehq/sluice/restart"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestSourceBrokerFaults reads while the broker fails fetches (retriable
// errors, request timeouts whose reply is lost, dropped connections),
// offset listings and metadata requests: franz-go and the source retry, and
// every record is still read exactly once.
func TestSourceBrokerFaults(t *testing.T) {
	t.Parallel()
	c := srcCluster(t, 4, "in")
	prod := srcProducer(t, c)
	srcProduce(t, prod, "in", 4, 0, 300)
	faults := []*kfake.FaultHandle{
		c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Fetch}, Err: kerr.NotLeaderForPartition, Count: 5}),
		c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Fetch}, Topic: "in", Partitions: []int32{2}, Err: kerr.UnknownLeaderEpoch, Count: 3}),
		c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Fetch}, Err: kerr.RequestTimedOut, Count: 3}),
		c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.ListOffsets}, Err: kerr.NotLeaderForPartition, Count: 3}),
		c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Metadata}, Err: kerr.LeaderNotAvailable, Count: 2}),
	}
	// Drop the connection instead of answering a few fetches.
	var dropped atomic.Int32
	c.ControlKey(int16(kmsg.Fetch), func(kmsg.Request) (kmsg.Response, error, bool) {
		if dropped.Add(1) >= 4 {
			c.DropControl()
			return nil, nil, false
		}
		c.KeepControl()
		return nil, errors.New("dropped by the test"), true
	})

	cfg := srcConfig(c, kafka.Records(), "in")
	cfg.MaxPollRecords = 50
	j := srcNewJob(t, cfg, t.TempDir(), 2, 4*400)
	done := make(chan error, 1)
	go func() { _, err := j.run(t, 60*time.Second); done <- err }()
	srcWait(t, "records to flow", 20*time.Second, func() bool { return len(j.records()) > 0 })
	// More faults while running, and more input.
	more := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Fetch}, Err: kerr.NotLeaderForPartition, Count: 5})
	srcProduce(t, prod, "in", 4, 300, 100)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	srcCheckExactlyOnce(t, j.records(), "in", 4, 0, 400)
	for i, h := range append(faults, more) {
		if h.Hits() == 0 {
			t.Errorf("fault %d was never hit: the test proves less than it claims", i)
		}
	}
	if dropped.Load() < 4 {
		t.Errorf("only %d fetch connections dropped", dropped.Load())
	}
}

// TestSourceBrokerUnreachable checks the bound on retries: a cluster that
// cannot be reached at start, or that goes away while the job runs, fails
// the task after RetryTimeout with an error naming the cause.
func TestSourceBrokerUnreachable(t *testing.T) {
	t.Parallel()
	t.Run("at start", func(t *testing.T) {
		t.Parallel()
		cfg := kafka.SourceConfig[kafka.Record]{
			Brokers: []string{"127.0.0.1:1"}, Topics: []string{"in"}, Deserializer: kafka.Records(),
			RetryBackoff: 20 * time.Millisecond, RetryTimeout: 500 * time.Millisecond, ClientOpts: srcClientOpts(),
		}
		j := srcNewJob(t, cfg, t.TempDir(), 1, 0)
		start := time.Now()
		_, err := j.run(t, 30*time.Second)
		if !errors.Is(err, kafka.ErrRetriesExhausted) || !strings.Contains(err.Error(), "list partitions") ||
			!strings.Contains(err.Error(), "kafka.source.retry-timeout 500ms") {
			t.Fatalf("err %v", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("gave up after %v, bound 500ms", d)
		}
	})
	t.Run("while running", func(t *testing.T) {
		t.Parallel()
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "in"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		srcProduce(t, srcProducer(t, c), "in", 2, 0, 10)
		cfg := srcConfig(c, kafka.Records(), "in")
		cfg.RetryTimeout = time.Second
		j := srcNewJob(t, cfg, t.TempDir(), 1, 0)
		done := make(chan error, 1)
		go func() { _, err := j.run(t, 60*time.Second); done <- err }()
		srcWait(t, "records read", 10*time.Second, func() bool { return len(j.records()) == 20 })
		c.Close()
		start := time.Now()
		err = <-done
		if !errors.Is(err, kafka.ErrRetriesExhausted) || !strings.Contains(err.Error(), "kafka source") {
			t.Fatalf("err %v", err)
		}
		if d := time.Since(start); d > 20*time.Second {
			t.Errorf("failed %v after the broker went away, bound 1s", d)
		}
		t.Logf("failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
	})
}

// TestSourceRestartKeepsStartOffsets fails a job before its first
// checkpoint: the restarted attempt must start where the first one did,
// not at a "latest" resolved anew (which would skip what arrived in
// between).
func TestSourceRestartKeepsStartOffsets(t *testing.T) {
	t.Parallel()
	c := srcCluster(t, 2, "in")
	prod := srcProducer(t, c)
	srcProduce(t, prod, "in", 2, 0, 10)
	cfg := srcConfig(c, kafka.Records(), "in")
	cfg.StartOffsets = kafka.StartLatest
	inj := fault.New(1)
	inj.Arm(fault.Target{Point: fault.OnRecord, UID: "collect", Subtask: -1, Skip: 5})
	var got atomic.Int32
	j := srcNewJob(t, cfg, t.TempDir(), 1, 0, func(jc *sluice.Config) {
		jc.Faults = inj
		jc.Checkpoint = checkpoint.Config{Interval: time.Hour}
		jc.Restart = restart.FixedDelay{Attempts: 3, Delay: time.Millisecond}
	})
	done := make(chan error, 1)
	go func() { _, err := j.run(t, 30*time.Second); done <- err }()
	srcWait(t, "reader at latest", 10*time.Second, func() bool {
		st := j.src.Status()
		return len(st) == 2 && st[0].Next == 10 && st[1].Next == 10
	})
	srcProduce(t, prod, "in", 2, 10, 20)
	// Everything after the restart: 40 records from offset 10.
	srcWait(t, "the restarted attempt to read everything", 20*time.Second, func() bool {
		n := 0
		for _, r := range j.records() {
			if r.Offset >= 10 {
				n++
			}
		}
		got.Store(int32(n))
		return j.env.Status().Restarts == 1 && n >= 5+40
	})
	j.env.Stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if inj.Fired() != 1 {
		t.Fatalf("%d failures injected, want 1", inj.Fired())
	}
	// The first attempt emitted 5 records before failing; the second
	// replays from the start it resolved.
	recs := j.records()
	srcCheckExactlyOnce(t, recs[len(recs)-40:], "in", 2, 10, 30)
	t.Logf("%d records in all, %d from offset 10", len(recs), got.Load())
}
