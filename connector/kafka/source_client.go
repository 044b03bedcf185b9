package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice/clock"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// newClient returns a franz-go client for the source: its seeds, retries
// bounded by RetryTimeout, franz-go's warnings logged to log (if not nil),
// then extra, then the user's ClientOpts (which win).
func newClient[T any](cfg SourceConfig[T], log *slog.Logger, extra ...kgo.Opt) (*kgo.Client, error) {
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.RetryBackoffFn(cfg.backoff),
		kgo.RetryTimeout(cfg.RetryTimeout),
	}
	if log != nil {
		opts = append(opts, kgo.WithLogger(kgoLogger{log}))
	}
	opts = append(opts, extra...)
	opts = append(opts, cfg.ClientOpts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("create kafka client: %w", err)
	}
	return cl, nil
}

// retry runs fn until it succeeds, fails with an error that is not
// retriable, or RetryTimeout has passed since the first attempt; it backs
// off between attempts as RetryBackoff says. The result names what was
// attempted.
func retry[T any](ctx context.Context, cfg SourceConfig[T], clk clock.Clock, log *slog.Logger, what string, fn func(context.Context) error) error {
	start := clk.Now()
	var last error // the last error that was not our own attempt deadline
	for attempt := 1; ; attempt++ {
		elapsed := clk.Now().Sub(start)
		// Each attempt gets the rest of the budget (at least one backoff),
		// so a broker that accepts connections but never answers cannot
		// stretch the bound.
		actx, cancel := context.WithTimeout(ctx, max(cfg.RetryTimeout-elapsed, cfg.RetryBackoff))
		err := fn(actx)
		cancel()
		if err == nil {
			return nil
		}
		if cerr := ctx.Err(); cerr != nil {
			return fmt.Errorf("%s: %w", what, cerr)
		}
		if !retriable(err) {
			return fmt.Errorf("%s: %w", what, err)
		}
		if !errors.Is(err, context.DeadlineExceeded) || last == nil {
			last = err
		}
		elapsed = clk.Now().Sub(start)
		if elapsed >= cfg.RetryTimeout {
			return fmt.Errorf("%s: %w after %v (%s %v): %w", what, ErrRetriesExhausted,
				elapsed.Round(time.Millisecond), KeyRetryTimeout, cfg.RetryTimeout, last)
		}
		wait := min(cfg.backoff(attempt), cfg.RetryTimeout-elapsed)
		if log != nil {
			log.Warn("kafka source: retrying", "what", what, "attempt", attempt, "backoff", wait, "err", err)
		}
		t := clk.NewTimer(wait)
		select {
		case <-t.C():
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w", what, ctx.Err())
		}
	}
}

// partitionID names a partition.
type partitionID struct {
	topic     string
	partition int32
}

// listPartitions lists the partitions of topics, or of every topic matching
// re, from fresh metadata (never the client's cache, which may be seconds
// old). It never creates topics. With strict, a listed topic that does not
// exist is an ErrUnknownTopic error; without, it is skipped.
func listPartitions(ctx context.Context, cl *kgo.Client, topics []string, re *regexp.Regexp, strict bool) ([]partitionID, error) {
	req := kmsg.NewPtrMetadataRequest()
	req.AllowAutoTopicCreation = false
	if re == nil {
		for _, t := range topics {
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr(t)
			req.Topics = append(req.Topics, rt)
		}
	} // else nil Topics: every topic
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, err
	}
	var out []partitionID
	var missing []string
	for _, t := range resp.Topics {
		if t.Topic == nil {
			continue
		}
		name := *t.Topic
		if re != nil && (t.IsInternal || !re.MatchString(name)) {
			continue
		}
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			if errors.Is(err, kerr.UnknownTopicOrPartition) {
				missing = append(missing, name)
				continue
			}
			// LEADER_NOT_AVAILABLE right after a topic was created is
			// retriable, authorization failures are not.
			return nil, fmt.Errorf("metadata of topic %s: %w", name, err)
		}
		for _, p := range t.Partitions {
			out = append(out, partitionID{name, p.Partition})
		}
	}
	if strict && len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("%w: %s (create it first, or fix %s)", ErrUnknownTopic, strings.Join(missing, ", "), KeyTopics)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].topic != out[j].topic {
			return out[i].topic < out[j].topic
		}
		return out[i].partition < out[j].partition
	})
	return out, nil
}

// kgoLogger forwards franz-go's warnings and errors to slog.
type kgoLogger struct{ l *slog.Logger }

func (k kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lv := slog.LevelDebug
	switch level {
	case kgo.LogLevelError:
		lv = slog.LevelError
	case kgo.LogLevelWarn:
		lv = slog.LevelWarn
	case kgo.LogLevelInfo:
		lv = slog.LevelInfo
	}
	k.l.Log(context.Background(), lv, "franz-go: "+msg, keyvals...)
}

// health tracks, from franz-go's hooks, which brokers the client fails to
// reach. franz-go retries a broker it cannot reach for as long as it needs
// it, silently; health turns "failing for longer than RetryTimeout" into a
// task failure, so a dead cluster is handed to the job's restart strategy
// instead of stalling the job forever.
//
// A broker fails from its first connection or request error until a
// request to it succeeds. Seed addresses are not tracked. Failures that stop recurring (franz-go no longer
// needs the broker: it left the cluster, its partitions moved) are
// forgotten after activeWindow.
type health struct {
	clk  clock.Clock
	poke func() // wakes the monitor when a broker starts failing

	mu      sync.Mutex
	failing map[int32]*brokerFailure
}

type brokerFailure struct {
	addr  string
	since time.Time
	last  time.Time
	err   error
}

// activeWindow is how recently a broker must have failed to still count as
// failing: franz-go retries a broker it needs at least every few seconds
// (its backoff is capped at DefaultMaxRetryBackoff).
const activeWindow = 3 * DefaultMaxRetryBackoff

var (
	_ kgo.HookBrokerConnect = (*health)(nil)
	_ kgo.HookBrokerE2E     = (*health)(nil)
)

func newHealth(clk clock.Clock, poke func()) *health {
	return &health{clk: clk, poke: poke, failing: map[int32]*brokerFailure{}}
}

// OnBrokerConnect implements kgo.HookBrokerConnect.
func (h *health) OnBrokerConnect(meta kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if err != nil {
		h.failed(meta, err)
	}
}

// OnBrokerE2E implements kgo.HookBrokerE2E.
func (h *health) OnBrokerE2E(meta kgo.BrokerMetadata, _ int16, e2e kgo.BrokerE2E) {
	if err := e2e.Err(); err != nil {
		h.failed(meta, err)
		return
	}
	h.mu.Lock()
	delete(h.failing, meta.NodeID)
	h.mu.Unlock()
}

func (h *health) failed(meta kgo.BrokerMetadata, err error) {
	if errors.Is(err, context.Canceled) || errors.Is(err, kgo.ErrClientClosed) {
		return // our own doing: a cancelled request, a closing client
	}
	if meta.NodeID < 0 {
		// A seed address (franz-go numbers them from math.MinInt32):
		// one dead seed among several must not fail a job that talks to
		// the cluster's brokers fine. A cluster that cannot be reached
		// at all shows in its brokers' failures and in the source's own
		// requests, which are bounded by retry.
		return
	}
	now := h.clk.Now()
	h.mu.Lock()
	f := h.failing[meta.NodeID]
	first := f == nil
	if first {
		f = &brokerFailure{addr: net.JoinHostPort(meta.Host, fmt.Sprint(meta.Port)), since: now}
		h.failing[meta.NodeID] = f
	}
	f.last, f.err = now, err
	h.mu.Unlock()
	if first {
		h.poke()
	}
}

// check returns an ErrRetriesExhausted error if a broker has been failing
// for longer than bound, and otherwise when to check again (zero if no
// broker is failing).
func (h *health) check(bound time.Duration) (next time.Time, err error) {
	now := h.clk.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, f := range h.failing {
		if now.Sub(f.last) > activeWindow {
			delete(h.failing, id)
			continue
		}
		if d := now.Sub(f.since); d >= bound {
			return time.Time{}, fmt.Errorf("%w: broker %s unreachable or failing for %v (%s %v): %w",
				ErrRetriesExhausted, f.addr, d.Round(time.Millisecond), KeyRetryTimeout, bound, f.err)
		}
		if at := f.since.Add(bound); next.IsZero() || at.Before(next) {
			next = at
		}
	}
	return next, nil
}
