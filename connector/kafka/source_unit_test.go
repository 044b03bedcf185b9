package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/clock"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

func srcValidConfig() SourceConfig[string] {
	return SourceConfig[string]{Brokers: []string{"localhost:9092"}, Topics: []string{"in"}, Deserializer: String()}
}

// TestSourceConfigValidate checks that every invalid setting is reported
// with its configuration key, and that valid ones pass.
func TestSourceConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		edit func(*SourceConfig[string])
		want []string // substrings of the error; none means valid
	}{
		{"valid", func(*SourceConfig[string]) {}, nil},
		{"valid regex", func(c *SourceConfig[string]) { c.Topics, c.TopicRegex = nil, "in-.*" }, nil},
		{"valid everything", func(c *SourceConfig[string]) {
			c.GroupID, c.StartOffsets, c.Reset, c.IsolationLevel = "g", "committed", "none", "read_uncommitted"
			c.DiscoveryInterval, c.DeadLetterTopic, c.RetryBackoff, c.RetryTimeout, c.MaxPollRecords = -1, "dlq", time.Second, time.Minute, 10
		}, nil},
		{"timestamp RFC 3339", func(c *SourceConfig[string]) { c.StartOffsets = "timestamp:2024-05-01T12:00:00Z" }, nil},
		{"timestamp ms", func(c *SourceConfig[string]) { c.StartOffsets = "timestamp:1714564800000" }, nil},
		{"no brokers", func(c *SourceConfig[string]) { c.Brokers = nil }, []string{"kafka.source.brokers: at least one"}},
		{"empty broker", func(c *SourceConfig[string]) { c.Brokers = []string{" "} }, []string{"kafka.source.brokers: empty"}},
		{"no topics", func(c *SourceConfig[string]) { c.Topics = nil }, []string{"kafka.source.topics: set topics or kafka.source.topic-regex"}},
		{"both", func(c *SourceConfig[string]) { c.TopicRegex = "x" }, []string{"kafka.source.topics: set topics or kafka.source.topic-regex, not both"}},
		{"bad topic", func(c *SourceConfig[string]) { c.Topics = []string{"a b"} }, []string{`kafka.source.topics: invalid topic name "a b"`}},
		{"dup topic", func(c *SourceConfig[string]) { c.Topics = []string{"a", "a"} }, []string{`kafka.source.topics: topic "a" listed twice`}},
		{"bad regex", func(c *SourceConfig[string]) { c.Topics, c.TopicRegex = nil, "(" }, []string{"kafka.source.topic-regex: invalid regular expression"}},
		{"bad start", func(c *SourceConfig[string]) { c.StartOffsets = "newest" }, []string{`kafka.source.start-offsets: must be earliest, latest, committed or timestamp:<RFC 3339 or unix ms>, got "newest"`}},
		{"bad timestamp", func(c *SourceConfig[string]) { c.StartOffsets = "timestamp:yesterday" }, []string{`kafka.source.start-offsets: timestamp "yesterday" is neither`}},
		{"negative timestamp", func(c *SourceConfig[string]) { c.StartOffsets = "timestamp:-5" }, []string{"kafka.source.start-offsets: timestamp must not be negative"}},
		{"committed without group", func(c *SourceConfig[string]) { c.StartOffsets = "committed" }, []string{"kafka.source.group-id: required with kafka.source.start-offsets=committed"}},
		{"bad reset", func(c *SourceConfig[string]) { c.Reset = "smallest" }, []string{`kafka.source.reset: must be earliest, latest or none, got "smallest"`}},
		{"bad isolation", func(c *SourceConfig[string]) { c.IsolationLevel = "committed" }, []string{`kafka.source.isolation-level: must be read_committed or read_uncommitted, got "committed"`}},
		{"no deserializer", func(c *SourceConfig[string]) { c.Deserializer = nil }, []string{"kafka.source.deserializer: required"}},
		{"bad dlq", func(c *SourceConfig[string]) { c.DeadLetterTopic = "a/b" }, []string{`kafka.source.dead-letter-topic: invalid topic name "a/b"`}},
		{"dlq is source", func(c *SourceConfig[string]) { c.DeadLetterTopic = "in" }, []string{`kafka.source.dead-letter-topic: "in" is also a source topic`}},
		{"dlq matches regex", func(c *SourceConfig[string]) { c.Topics, c.TopicRegex, c.DeadLetterTopic = nil, "in.*", "in-dlq" }, []string{"is also a source topic"}},
		{"negative backoff", func(c *SourceConfig[string]) { c.RetryBackoff = -1 }, []string{"kafka.source.retry-backoff: must not be negative"}},
		{"negative timeout", func(c *SourceConfig[string]) { c.RetryTimeout = -1 }, []string{"kafka.source.retry-timeout: must not be negative"}},
		{"backoff over timeout", func(c *SourceConfig[string]) { c.RetryBackoff, c.RetryTimeout = time.Minute, time.Second }, []string{"kafka.source.retry-backoff: 1m0s exceeds kafka.source.retry-timeout 1s"}},
		{"negative max poll", func(c *SourceConfig[string]) { c.MaxPollRecords = -1 }, []string{"kafka.source.max-poll-records: must not be negative"}},
		{"several at once", func(c *SourceConfig[string]) { c.Brokers, c.Reset = nil, "x" }, []string{"kafka.source.brokers", "kafka.source.reset"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := srcValidConfig()
			tc.edit(&c)
			err := c.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if _, err := NewSource(c); err != nil {
					t.Fatalf("NewSource: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if _, err := NewSource(c); err == nil {
				t.Error("NewSource accepted an invalid config")
			}
		})
	}
}

func TestSourceConfigDefaults(t *testing.T) {
	t.Parallel()
	s, err := NewSource(srcValidConfig())
	if err != nil {
		t.Fatal(err)
	}
	c := s.Config()
	if c.StartOffsets != StartEarliest || c.Reset != ResetEarliest || c.IsolationLevel != ReadCommitted ||
		c.DiscoveryInterval != 10*time.Second || c.RetryBackoff != 100*time.Millisecond ||
		c.RetryTimeout != time.Minute || c.MaxPollRecords != 2048 {
		t.Fatalf("defaults: %+v", c)
	}
	// Backoff doubles up to 5s.
	for n, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 7: 5 * time.Second, 100: 5 * time.Second} {
		if got := c.backoff(n); got != want {
			t.Errorf("backoff(%d) = %v, want %v", n, got, want)
		}
	}
}

func TestSourceParseStart(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]startSpec{
		"":                                      {kind: startEarliest},
		"earliest":                              {kind: startEarliest},
		"latest":                                {kind: startLatest},
		"committed":                             {kind: startCommitted},
		"timestamp:0":                           {kind: startTimestamp, millis: 0},
		"timestamp:1714564800123":               {kind: startTimestamp, millis: 1714564800123},
		"timestamp:2024-05-01T12:00:00Z":        {kind: startTimestamp, millis: 1714564800000},
		"timestamp:2024-05-01T14:00:00.5+02:00": {kind: startTimestamp, millis: 1714564800500},
	} {
		got, err := parseStart(in)
		if err != nil || got != want {
			t.Errorf("parseStart(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
}

// TestSourceAssignSplit pins the assignment (it decides which subtask reads
// which partition after a restore, so it must never change) and checks that
// it spreads a topic's partitions evenly.
func TestSourceAssignSplit(t *testing.T) {
	t.Parallel()
	s, err := NewSource(srcValidConfig())
	if err != nil {
		t.Fatal(err)
	}
	// Golden values: fnv32a("payments") % 4 == 2, % 3 == 0.
	for _, tc := range []struct {
		id   string
		par  int
		want int
	}{
		{"payments/0", 4, 2}, {"payments/1", 4, 3}, {"payments/2", 4, 0}, {"payments/5", 4, 3},
		{"payments/0", 3, 0}, {"payments/4", 3, 1}, {"orders/0", 4, 0}, {"orders/6", 4, 2},
		{"orders/0", 1, 0}, {"orders/7", 1, 0},
		{"not-a-split", 4, 0}, {"orders/x", 4, 0}, {"orders/-1", 4, 0},
	} {
		if got := s.AssignSplit(tc.id, tc.par); got != tc.want {
			t.Errorf("AssignSplit(%q, %d) = %d, want %d", tc.id, tc.par, got, tc.want)
		}
	}
	for _, par := range []int{1, 2, 3, 4, 7} {
		counts := make([]int, par)
		for p := range int32(21) {
			sub := s.AssignSplit(SplitID("orders", p), par)
			if sub != s.AssignSplit(SplitID("orders", p), par) {
				t.Fatal("not deterministic")
			}
			counts[sub]++
		}
		for sub, n := range counts {
			if n < 21/par || n > 21/par+1 {
				t.Errorf("parallelism %d: subtask %d reads %d of 21 partitions", par, sub, n)
			}
		}
	}
}

func TestSourceSplitID(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		topic string
		part  int32
	}{{"a", 0}, {"orders.v2", 17}, {"x_y-z", 2147483647}} {
		id := SplitID(tc.topic, tc.part)
		topic, part, err := ParseSplitID(id)
		if err != nil || topic != tc.topic || part != tc.part {
			t.Errorf("ParseSplitID(%q) = %q, %d, %v", id, topic, part, err)
		}
	}
	for _, bad := range []string{"", "a", "/1", "a/", "a/b", "a/-1", "a/2147483648", "datagen-0"} {
		if _, _, err := ParseSplitID(bad); !errors.Is(err, ErrBadSplit) {
			t.Errorf("ParseSplitID(%q): err %v, want ErrBadSplit", bad, err)
		}
	}
}

func TestSourceSplitState(t *testing.T) {
	t.Parallel()
	for _, p := range []position{{earliest: true}, {next: 0}, {next: 1}, {next: 127}, {next: 128}, {next: 1 << 40}} {
		got, err := decodeState(encodeState(p))
		if err != nil || got != p {
			t.Errorf("round trip of %+v: %+v, %v", p, got, err)
		}
	}
	// The encoding is part of the checkpoint format: pin it.
	if got := fmt.Sprintf("%x", encodeState(position{next: 300})); got != "01ac02" {
		t.Errorf("encoding of offset 300 = %s, want 01ac02", got)
	}
	if got := fmt.Sprintf("%x", encodeState(position{earliest: true})); got != "02" {
		t.Errorf("encoding of earliest = %s, want 02", got)
	}
	for _, bad := range [][]byte{{}, {0}, {3}, {1}, {1, 0x80}, {1, 1, 1}, {2, 0}, {1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}} {
		if _, err := decodeState(bad); !errors.Is(err, ErrBadSplit) {
			t.Errorf("decodeState(%x): err %v, want ErrBadSplit", bad, err)
		}
	}
}

func TestSourceRetriable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{kerr.NotLeaderForPartition, true},
		{kerr.RequestTimedOut, true},
		{fmt.Errorf("wrapped: %w", kerr.LeaderNotAvailable), true},
		{kerr.TopicAuthorizationFailed, false},
		{kerr.InvalidRequest, false},
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, true},
		{io.EOF, true},
		{io.ErrUnexpectedEOF, true},
		{context.DeadlineExceeded, true},
		{context.Canceled, false},
		{kgo.ErrClientClosed, false},
		{errors.New("something else"), false},
		{&kadm.ShardErrors{Errs: []kadm.ShardError{{Err: kerr.NotCoordinator}, {Err: io.EOF}}}, true},
		{&kadm.ShardErrors{Errs: []kadm.ShardError{{Err: kerr.NotCoordinator}, {Err: kerr.ClusterAuthorizationFailed}}}, false},
		{&kadm.AuthError{Err: kerr.GroupAuthorizationFailed}, false},
		{&PartitionError{Topic: "t", Err: kerr.UnknownTopicOrPartition}, true},
	} {
		if got := retriable(tc.err); got != tc.want {
			t.Errorf("retriable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestSourceRetry checks the retry loop on a fake clock: retriable errors
// are retried with backoff until RetryTimeout, others fail at once.
func TestSourceRetry(t *testing.T) {
	t.Parallel()
	cfg := srcValidConfig()
	cfg.RetryBackoff, cfg.RetryTimeout = 100*time.Millisecond, time.Second
	cfg = cfg.withDefaults()

	t.Run("fatal at once", func(t *testing.T) {
		calls := 0
		err := retry(context.Background(), cfg, clock.NewFake(time.Unix(0, 0)), nil, "thing", func(context.Context) error {
			calls++
			return kerr.TopicAuthorizationFailed
		})
		if calls != 1 || !errors.Is(err, kerr.TopicAuthorizationFailed) || !strings.HasPrefix(err.Error(), "thing: ") {
			t.Fatalf("calls %d, err %v", calls, err)
		}
	})
	t.Run("succeeds after retries", func(t *testing.T) {
		clk := clock.NewFake(time.Unix(0, 0))
		calls := 0
		done := make(chan error, 1)
		go func() {
			done <- retry(context.Background(), cfg, clk, nil, "thing", func(context.Context) error {
				calls++
				if calls < 3 {
					return kerr.NotLeaderForPartition
				}
				return nil
			})
		}()
		srcAdvanceUntil(t, clk, done, 50*time.Millisecond)
	})
	t.Run("gives up after the timeout", func(t *testing.T) {
		clk := clock.NewFake(time.Unix(0, 0))
		done := make(chan error, 1)
		go func() {
			done <- retry(context.Background(), cfg, clk, nil, "thing", func(context.Context) error { return io.EOF })
		}()
		err := srcAdvanceUntil(t, clk, done, 50*time.Millisecond)
		if !errors.Is(err, ErrRetriesExhausted) || !errors.Is(err, io.EOF) || !strings.Contains(err.Error(), "kafka.source.retry-timeout 1s") {
			t.Fatalf("err %v", err)
		}
		if now := clk.Now().Sub(time.Unix(0, 0)); now < time.Second || now > 2*time.Second {
			t.Fatalf("gave up after %v, want about 1s", now)
		}
	})
}

// srcAdvanceUntil advances the fake clock in steps until done delivers.
func srcAdvanceUntil(t *testing.T, clk *clock.Fake, done <-chan error, step time.Duration) error {
	t.Helper()
	// Bounded by wall time, not by a number of yields: under -race on a
	// loaded machine the goroutine may take many yields to reach its timer.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			return err
		default:
		}
		if clk.Pending() > 0 {
			clk.Advance(step)
		} else {
			runtime.Gosched() // let the goroutine reach its timer
		}
	}
	t.Fatal("retry did not return")
	return nil
}

// TestSourceHealth checks the broker health tracker on a fake clock.
func TestSourceHealth(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(time.Unix(0, 0))
	pokes := 0
	h := newHealth(clk, func() { pokes++ })
	b0 := kgo.BrokerMetadata{NodeID: 0, Host: "127.0.0.1", Port: 9092}
	b1 := kgo.BrokerMetadata{NodeID: 1, Host: "127.0.0.1", Port: 9093}
	bound := 10 * time.Second

	if next, err := h.check(bound); err != nil || !next.IsZero() {
		t.Fatalf("healthy: %v %v", next, err)
	}
	refused := &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}
	h.OnBrokerConnect(b0, 0, nil, refused)
	if pokes != 1 {
		t.Fatalf("pokes %d after the first failure", pokes)
	}
	h.OnBrokerConnect(b0, 0, nil, refused)
	if pokes != 1 {
		t.Fatal("poked again for a broker already failing")
	}
	next, err := h.check(bound)
	if err != nil || !next.Equal(time.Unix(10, 0)) {
		t.Fatalf("check: %v %v", next, err)
	}
	// Cancellations are ours, not the broker's; seeds are not tracked.
	h.OnBrokerE2E(b1, 1, kgo.BrokerE2E{ReadErr: context.Canceled})
	h.OnBrokerConnect(kgo.BrokerMetadata{NodeID: -2147483648, Host: "seed", Port: 1}, 0, nil, refused)
	// A success clears the broker.
	clk.Advance(5 * time.Second)
	h.OnBrokerE2E(b0, 1, kgo.BrokerE2E{})
	if next, err := h.check(bound); err != nil || !next.IsZero() {
		t.Fatalf("after success: %v %v", next, err)
	}
	// Failing past the bound, still being tried: fatal, naming the broker.
	h.OnBrokerE2E(b1, 1, kgo.BrokerE2E{WriteErr: io.EOF})
	for range 11 {
		clk.Advance(time.Second)
		h.OnBrokerConnect(b1, 0, nil, refused)
	}
	_, err = h.check(bound)
	if !errors.Is(err, ErrRetriesExhausted) || !strings.Contains(err.Error(), "127.0.0.1:9093") || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("err %v", err)
	}
	// A broker no longer tried (franz-go stopped needing it) is forgotten.
	clk.Advance(activeWindow + time.Second)
	if _, err := h.check(bound); err != nil {
		t.Fatalf("stale failure still counted: %v", err)
	}
}

func TestSourceWatermark(t *testing.T) {
	t.Parallel()
	ts := func(s int64) time.Time { return time.Unix(s, 0) }
	for _, tc := range []struct {
		name  string
		parts []PartitionStatus
		want  time.Time
		ok    bool
	}{
		{"none", nil, time.Time{}, false},
		{"min over partitions", []PartitionStatus{{MaxTimestamp: ts(5)}, {MaxTimestamp: ts(3)}, {MaxTimestamp: ts(9)}}, ts(3), true},
		{"idle excluded", []PartitionStatus{{MaxTimestamp: ts(5)}, {MaxTimestamp: ts(3), Idle: true}}, ts(5), true},
		{"idle without records excluded", []PartitionStatus{{MaxTimestamp: ts(5)}, {Idle: true}}, ts(5), true},
		{"unread partition holds back", []PartitionStatus{{MaxTimestamp: ts(5)}, {}}, time.Time{}, false},
		{"all idle", []PartitionStatus{{MaxTimestamp: ts(5), Idle: true}}, time.Time{}, false},
	} {
		got, ok := watermark(tc.parts)
		if ok != tc.ok || !got.Equal(tc.want) {
			t.Errorf("%s: %v %v, want %v %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}
