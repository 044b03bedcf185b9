package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/connector/kafka"
	"github.com/sluicehq/sluice/internal/testsrc"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestSourceReadsEveryRecordOnce reads 4 partitions with 2 subtasks from
// earliest: every record once, in offset order per partition.
//
// With parallelism 5 one reader has no partition: it must idle, checkpoint
// and stop like the others.
func TestSourceReadsEveryRecordOnce(t *testing.T) {
	t.Parallel()
	c := srcCluster(t, 4, "in")
	srcProduce(t, srcProducer(t, c), "in", 4, 0, 250)
	for _, par := range []int{2, 5} {
		j := srcNewJob(t, srcConfig(c, kafka.Records(), "in"), t.TempDir(), par, 1000)
		if _, err := j.run(t, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		srcCheckExactlyOnce(t, j.records(), "in", 4, 0, 250)
	}
}

// TestSourceRestoreResumesExactly stops a job in the middle of its input
// (with small polls, so the stop falls inside fetched batches), produces
// more, and runs the job again from its checkpoint, also at another
// parallelism: the two runs together read every record exactly once.
func TestSourceRestoreResumesExactly(t *testing.T) {
	t.Parallel()
	for _, par := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("restore at parallelism %d", par), func(t *testing.T) {
			t.Parallel()
			c := srcCluster(t, 4, "in")
			prod := srcProducer(t, c)
			srcProduce(t, prod, "in", 4, 0, 500)
			dir := t.TempDir()
			cfg := srcConfig(c, kafka.Records(), "in")
			cfg.MaxPollRecords = 7

			// The first run reads 150 records per reader and no more:
			// its only checkpoint is the final one of the stop (a
			// periodic one would open the gate again), so it cannot
			// read everything however slowly the stop arrives.
			gate := func(s sluice.Source[kafka.Record]) sluice.Source[kafka.Record] { return testsrc.Gated(s, 150) }
			first := srcNewJobWrapped(t, cfg, dir, 2, 300, gate, func(c *sluice.Config) { c.Checkpoint.Interval = time.Hour })
			if _, err := first.run(t, 30*time.Second); err != nil {
				t.Fatal(err)
			}
			got1 := first.records()
			if len(got1) >= 2000 {
				t.Fatalf("the first run read everything (%d records): the test proves nothing", len(got1))
			}
			srcProduce(t, prod, "in", 4, 500, 100)

			second := srcNewJob(t, cfg, dir, par, 2400-len(got1))
			if _, err := second.run(t, 30*time.Second); err != nil {
				t.Fatal(err)
			}
			got2 := second.records()
			t.Logf("first run %d records, second run %d", len(got1), len(got2))
			srcCheckExactlyOnce(t, append(got1, got2...), "in", 4, 0, 600)
		})
	}
}

// TestSourceStartOffsets checks where a first start begins: latest,
// committed (and its reset), and timestamp.
func TestSourceStartOffsets(t *testing.T) {
	t.Parallel()
	t.Run("latest", func(t *testing.T) {
		t.Parallel()
		c := srcCluster(t, 2, "in")
		prod := srcProducer(t, c)
		srcProduce(t, prod, "in", 2, 0, 50)
		cfg := srcConfig(c, kafka.Records(), "in")
		cfg.StartOffsets = kafka.StartLatest
		j := srcNewJob(t, cfg, t.TempDir(), 2, 60)
		done := make(chan error, 1)
		go func() { _, err := j.run(t, 30*time.Second); done <- err }()
		// Produce once both readers have resolved "latest".
		srcWait(t, "readers at latest", 10*time.Second, func() bool {
			st := j.src.Status()
			return len(st) == 2 && st[0].Next == 50 && st[1].Next == 50
		})
		srcProduce(t, prod, "in", 2, 50, 30)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		srcCheckExactlyOnce(t, j.records(), "in", 2, 50, 80)
	})
	t.Run("committed", func(t *testing.T) {
		t.Parallel()
		c := srcCluster(t, 3, "in")
		srcProduce(t, srcProducer(t, c), "in", 3, 0, 40)
		adm := srcAdmin(t, c)
		for _, tc := range []struct {
			reset string
			want  int // records of partition 2, which has no commit
		}{{kafka.ResetEarliest, 40}, {kafka.ResetLatest, 0}} {
			// A group per run: the job commits its own offsets there.
			group := "grp-" + tc.reset
			var offs kadm.Offsets
			offs.AddOffset("in", 0, 10, -1)
			offs.AddOffset("in", 1, 40, -1)
			if err := adm.CommitAllOffsets(context.Background(), group, offs); err != nil {
				t.Fatal(err)
			}
			cfg := srcConfig(c, kafka.Records(), "in")
			cfg.StartOffsets, cfg.GroupID, cfg.Reset = kafka.StartCommitted, group, tc.reset
			j := srcNewJob(t, cfg, t.TempDir(), 1, 30+tc.want)
			if _, err := j.run(t, 30*time.Second); err != nil {
				t.Fatal(err)
			}
			per := map[int32]int{}
			for _, r := range j.records() {
				per[r.Partition]++
				if r.Partition == 0 && r.Offset < 10 {
					t.Errorf("reset %s: read offset %d of partition 0, committed at 10", tc.reset, r.Offset)
				}
			}
			if per[0] != 30 || per[1] != 0 || per[2] != tc.want {
				t.Errorf("reset %s: records per partition %v, want 30, 0, %d", tc.reset, per, tc.want)
			}
		}
	})
	t.Run("committed reset none", func(t *testing.T) {
		t.Parallel()
		c := srcCluster(t, 2, "in")
		srcProduce(t, srcProducer(t, c), "in", 2, 0, 5)
		var offs kadm.Offsets
		offs.AddOffset("in", 0, 1, -1)
		if err := srcAdmin(t, c).CommitAllOffsets(context.Background(), "grp", offs); err != nil {
			t.Fatal(err)
		}
		cfg := srcConfig(c, kafka.Records(), "in")
		cfg.StartOffsets, cfg.GroupID, cfg.Reset = kafka.StartCommitted, "grp", kafka.ResetNone
		j := srcNewJob(t, cfg, t.TempDir(), 1, 0)
		_, err := j.run(t, 30*time.Second)
		if !errors.Is(err, kafka.ErrNoOffset) {
			t.Fatalf("err %v, want ErrNoOffset", err)
		}
		var pe *kafka.PartitionError
		if !errors.As(err, &pe) || pe.Topic != "in" || pe.Partition != 1 || !strings.Contains(err.Error(), "topic in partition 1") {
			t.Fatalf("error does not name topic in partition 1: %v", err)
		}
		if len(j.records()) != 0 {
			t.Errorf("read %d records before failing", len(j.records()))
		}
	})
	t.Run("timestamp", func(t *testing.T) {
		t.Parallel()
		c := srcCluster(t, 2, "in")
		prod := srcProducer(t, c)
		t0 := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
		var recs []*kgo.Record
		for p := range int32(2) {
			for i := range 20 {
				recs = append(recs, &kgo.Record{Topic: "in", Partition: p, Value: fmt.Appendf(nil, "in/%d/%d", p, i), Timestamp: t0.Add(time.Duration(i) * time.Minute)})
			}
		}
		if err := prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		for _, start := range []string{"timestamp:2024-05-01T12:12:00Z", fmt.Sprintf("timestamp:%d", t0.Add(12*time.Minute).UnixMilli())} {
			cfg := srcConfig(c, kafka.Records(), "in")
			cfg.StartOffsets = start
			j := srcNewJob(t, cfg, t.TempDir(), 1, 16)
			if _, err := j.run(t, 30*time.Second); err != nil {
				t.Fatal(err)
			}
			srcCheckExactlyOnce(t, j.records(), "in", 2, 12, 20)
		}
	})
}

// TestSourceOutOfRange restores a job whose position was deleted by
// retention (DeleteRecords): reset none fails naming the partition, reset
// earliest continues at the new log start.
func TestSourceOutOfRange(t *testing.T) {
	t.Parallel()
	c := srcCluster(t, 1, "in")
	prod := srcProducer(t, c)
	srcProduce(t, prod, "in", 1, 0, 10)
	dir := t.TempDir()
	cfg := srcConfig(c, kafka.Records(), "in")
	first := srcNewJob(t, cfg, dir, 1, 10)
	if _, err := first.run(t, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	srcProduce(t, prod, "in", 1, 10, 90)
	var offs kadm.Offsets
	offs.AddOffset("in", 0, 50, -1)
	if _, err := srcAdmin(t, c).DeleteRecords(context.Background(), offs); err != nil {
		t.Fatal(err)
	}

	cfg.Reset = kafka.ResetNone
	none := srcNewJob(t, cfg, dir, 1, 0)
	_, err := none.run(t, 30*time.Second)
	var pe *kafka.PartitionError
	if !errors.Is(err, kafka.ErrNoOffset) || !errors.As(err, &pe) || pe.Topic != "in" || pe.Partition != 0 {
		t.Fatalf("reset none: %v", err)
	}
	if !strings.Contains(err.Error(), "topic in partition 0 offset 10") {
		t.Errorf("error does not name the position: %v", err)
	}

	cfg.Reset = kafka.ResetEarliest
	earliest := srcNewJob(t, cfg, dir, 1, 50)
	if _, err := earliest.run(t, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	srcCheckExactlyOnce(t, earliest.records(), "in", 1, 50, 100)
}

// TestSourceIsolationLevel reads transactional input: read_committed skips
// the aborted transaction and waits for the open one to commit;
// read_uncommitted reads them all.
func TestSourceIsolationLevel(t *testing.T) {
	t.Parallel()
	c := srcCluster(t, 1, "in")
	txn := srcProducer(t, c, kgo.TransactionalID("src-txn"))
	write := func(from, to int, commit bool) {
		t.Helper()
		ctx := context.Background()
		if err := txn.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		var recs []*kgo.Record
		for i := from; i < to; i++ {
			recs = append(recs, &kgo.Record{Topic: "in", Value: fmt.Appendf(nil, "in/0/%d", i)})
		}
		if err := txn.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := txn.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	write(0, 10, true)
	write(100, 110, false) // aborted
	write(10, 20, true)

	cfg := srcConfig(c, kafka.Records(), "in")
	j := srcNewJob(t, cfg, t.TempDir(), 1, 30)
	done := make(chan error, 1)
	go func() { _, err := j.run(t, 30*time.Second); done <- err }()
	srcWait(t, "committed records", 10*time.Second, func() bool { return len(j.records()) == 20 })
	// An open transaction is invisible until it commits.
	if err := txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for i := 20; i < 30; i++ {
		recs = append(recs, &kgo.Record{Topic: "in", Value: fmt.Appendf(nil, "in/0/%d", i)})
	}
	if err := txn.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// Let the reader fetch a few times past the open transaction.
	fetches := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Fetch}, Observe: true, Count: -1})
	wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := fetches.Wait(wctx, 3); err != nil {
		t.Fatal(err)
	}
	fetches.Remove()
	if n := len(j.records()); n != 20 {
		t.Fatalf("read %d records of an open transaction", n-20)
	}
	if err := txn.EndTransaction(context.Background(), kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	srcCheckExactlyOnce(t, j.records(), "in", 1, 0, 30)

	cfg.IsolationLevel = kafka.ReadUncommitted
	u := srcNewJob(t, cfg, t.TempDir(), 1, 40)
	if _, err := u.run(t, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	aborted := 0
	for _, r := range u.records() {
		if strings.HasPrefix(string(r.Value), "in/0/10") && len(r.Value) == len("in/0/100") {
			aborted++
		}
	}
	if len(u.records()) != 40 || aborted != 10 {
		t.Errorf("read_uncommitted read %d records, %d of the aborted transaction; want 40 and 10", len(u.records()), aborted)
	}
}

// TestSourcePartitionDiscovery adds partitions to a topic, and a topic
// matching the regex, while the job runs: their records are read from the
// start, once.
func TestSourcePartitionDiscovery(t *testing.T) {
	t.Parallel()
	c := srcCluster(t, 2, "re-a", "other")
	prod := srcProducer(t, c)
	srcProduce(t, prod, "re-a", 2, 0, 10)
	srcProduce(t, prod, "other", 2, 0, 10)
	cfg := srcConfig(c, kafka.Records())
	cfg.TopicRegex = "re-.*"
	cfg.StartOffsets = kafka.StartLatest // discovered partitions start at earliest all the same
	j := srcNewJob(t, cfg, t.TempDir(), 2, 4*10+3*7)
	done := make(chan error, 1)
	go func() { _, err := j.run(t, 30*time.Second); done <- err }()
	srcWait(t, "readers started", 10*time.Second, func() bool { return len(j.src.Status()) == 2 })

	adm := srcAdmin(t, c)
	ctx := context.Background()
	if _, err := adm.CreatePartitions(ctx, 2, "re-a"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, 3, 1, nil, "re-b"); err != nil {
		t.Fatal(err)
	}
	// Written before the readers discover the partitions: earliest must
	// include them. A new producer knows the new partitions at once.
	prod = srcProducer(t, c)
	for p := int32(2); p < 4; p++ {
		var recs []*kgo.Record
		for i := range 10 {
			recs = append(recs, &kgo.Record{Topic: "re-a", Partition: p, Value: fmt.Appendf(nil, "re-a/%d/%d", p, i)})
		}
		if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	srcProduce(t, prod, "re-b", 3, 0, 7)
	srcProduce(t, prod, "re-a", 2, 0, 10) // partitions 0 and 1 (started at latest)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := j.records()
	srcCheckExactlyOnce(t, got, "re-a", 4, 0, 10)
	srcCheckExactlyOnce(t, got, "re-b", 3, 0, 7)
	for _, r := range got {
		if r.Topic == "other" {
			t.Fatalf("read topic %s, which does not match", r.Topic)
		}
	}
	if n := len(j.src.Status()); n != 0 {
		t.Errorf("%d partitions still reported after the job ended", n)
	}
}

// TestSourceUnknownTopic fails the job when a listed topic does not exist.
func TestSourceUnknownTopic(t *testing.T) {
	t.Parallel()
	c := srcCluster(t, 1, "in")
	j := srcNewJob(t, srcConfig(c, kafka.Records(), "in", "missing"), t.TempDir(), 1, 0)
	_, err := j.run(t, 30*time.Second)
	if !errors.Is(err, kafka.ErrUnknownTopic) || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("err %v, want ErrUnknownTopic naming the topic", err)
	}
}

// TestSourceGroupOffsetsAndStatus checks that completed checkpoints commit
// their offsets to the group, and what Status, Lag and Watermark report.
func TestSourceGroupOffsetsAndStatus(t *testing.T) {
	t.Parallel()
	c := srcCluster(t, 2, "in")
	prod := srcProducer(t, c)
	ts := time.UnixMilli(1714564800000)
	var recs []*kgo.Record
	for p := range int32(2) {
		for i := range 25 {
			recs = append(recs, &kgo.Record{Topic: "in", Partition: p, Value: fmt.Appendf(nil, "in/%d/%d", p, i), Timestamp: ts.Add(time.Duration(int(p)*100+i) * time.Second)})
		}
	}
	if err := prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cfg := srcConfig(c, kafka.Records(), "in")
	cfg.GroupID = "monitor"
	j := srcNewJob(t, cfg, t.TempDir(), 1, 0) // runs until stopped
	done := make(chan error, 1)
	go func() { _, err := j.run(t, 30*time.Second); done <- err }()
	adm := srcAdmin(t, c)
	srcWait(t, "offsets committed to the group", 10*time.Second, func() bool {
		o, err := adm.FetchOffsets(context.Background(), "monitor")
		if err != nil {
			return false
		}
		o0, _ := o.Lookup("in", 0)
		o1, _ := o.Lookup("in", 1)
		return o0.At == 25 && o1.At == 25
	})
	srcWait(t, "end offsets known", 10*time.Second, func() bool {
		st := j.src.Status()
		return len(st) == 2 && st[0].End == 25 && st[1].End == 25
	})
	st := j.src.Status()
	for _, p := range st {
		if p.Next != 25 || p.Lag != 0 || !p.Idle || p.Subtask != 0 {
			t.Errorf("status %+v", p)
		}
	}
	if want := ts.Add(24 * time.Second); !st[0].MaxTimestamp.Equal(want) {
		t.Errorf("partition 0 max timestamp %v, want %v", st[0].MaxTimestamp, want)
	}
	if lag := j.src.Lag(); len(lag) != 2 || lag["in/0"] != 0 || lag["in/1"] != 0 {
		t.Errorf("lag %v", lag)
	}
	if _, ok := j.src.Watermark(0); ok {
		t.Error("a watermark while every partition is idle")
	}
	// New records in partition 0 are read, and their offsets committed.
	srcProduce(t, prod, "in", 1, 25, 5)
	srcWait(t, "new records read", 10*time.Second, func() bool { return len(j.records()) == 55 })
	srcWait(t, "new offsets committed", 10*time.Second, func() bool {
		o, err := adm.FetchOffsets(context.Background(), "monitor")
		if err != nil {
			return false
		}
		o0, _ := o.Lookup("in", 0)
		return o0.At == 30
	})
	j.env.Stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestSourceDeadLetter routes malformed records to the dead-letter topic
// with headers naming where they came from; without a dead-letter topic the
// job fails naming the record.
func TestSourceDeadLetter(t *testing.T) {
	t.Parallel()
	c := srcCluster(t, 1, "in", "dlq")
	prod := srcProducer(t, c)
	var recs []*kgo.Record
	for i := range 10 {
		v := fmt.Sprintf(`{"id":"o%d","amount":%d}`, i, i)
		if i == 3 || i == 7 {
			v = `{"id":` // malformed
		}
		recs = append(recs, &kgo.Record{Topic: "in", Key: fmt.Appendf(nil, "k%d", i), Value: []byte(v), Headers: []kgo.RecordHeader{{Key: "trace", Value: []byte("t1")}}})
	}
	if err := prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	t.Run("without dead-letter topic", func(t *testing.T) {
		cfg := srcConfig(c, kafka.JSON[srcOrder](), "in")
		j := srcNewOrderJob(t, cfg, 0)
		_, err := j.run(t, 30*time.Second)
		var de *kafka.DeserializeError
		if !errors.As(err, &de) || de.Topic != "in" || de.Partition != 0 || de.Offset != 3 ||
			!strings.Contains(err.Error(), "topic in partition 0 offset 3") || !strings.Contains(err.Error(), "kafka.source.dead-letter-topic") {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("with dead-letter topic", func(t *testing.T) {
		cfg := srcConfig(c, kafka.JSON[srcOrder](), "in")
		cfg.DeadLetterTopic = "dlq"
		j := srcNewOrderJob(t, cfg, 8)
		if _, err := j.run(t, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		if got := j.values(); len(got) != 8 || got[3].ID != "o4" {
			t.Fatalf("got %+v", got)
		}
		dead := srcReadAll(t, c, "dlq", 2)
		for k, r := range dead {
			want := map[string]string{"trace": "t1", kafka.HeaderDLQTopic: "in", kafka.HeaderDLQPartition: "0", kafka.HeaderDLQOffset: fmt.Sprint([]int{3, 7}[k])}
			h := map[string]string{}
			for _, x := range r.Headers {
				h[x.Key] = string(x.Value)
			}
			for key, v := range want {
				if h[key] != v {
					t.Errorf("dead letter %d: header %s = %q, want %q", k, key, h[key], v)
				}
			}
			if !strings.Contains(h[kafka.HeaderDLQError], "json") || string(r.Value) != `{"id":` || string(r.Key) != fmt.Sprintf("k%d", []int{3, 7}[k]) {
				t.Errorf("dead letter %d: %q %q %q", k, r.Key, r.Value, h[kafka.HeaderDLQError])
			}
		}
	})
	t.Run("dead-letter topic unwritable", func(t *testing.T) {
		cfg := srcConfig(c, kafka.JSON[srcOrder](), "in")
		cfg.DeadLetterTopic = "no-such-topic"
		cfg.RetryTimeout = time.Second
		j := srcNewOrderJob(t, cfg, 0)
		_, err := j.run(t, 30*time.Second)
		if err == nil || !strings.Contains(err.Error(), "dead-letter topic no-such-topic") || !strings.Contains(err.Error(), "offset 3") {
			t.Fatalf("err %v", err)
		}
	})
}

// srcReadAll reads n records of topic with a plain consumer.
func srcReadAll(t testing.TB, c interface{ ListenAddrs() []string }, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, srcClientOpts()...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %d of %d records of %s", len(out), n, topic)
		}
		out = append(out, fs.Records()...)
	}
	return out
}
