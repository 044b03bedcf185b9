package kafkacount

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

var errTopicExists = kerr.TopicAlreadyExists

// Unread is a partition that a read did not reach the end of.
type Unread struct {
	Partition int32
	// Next is the offset after the last record read (or the first
	// offset asked for, if none was read).
	Next int64
	// End is the last stable offset the read was to reach.
	End int64
}

// IncompleteReadError is a ReadTopic that ctx ended before every partition
// was read to its last stable offset: typically records that
// read_committed never delivers, such as transactions aborted without a
// marker (the embedded broker's after a crash), so the read would
// otherwise wait for ever.
type IncompleteReadError struct {
	Topic  string
	Unread []Unread // by partition
	Err    error    // ctx's error
}

// Error names every partition not read to its end and how far it got.
func (e *IncompleteReadError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "read %s: %d partitions not read to their last stable offset:", e.Topic, len(e.Unread))
	for i, u := range e.Unread {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, " partition %d up to offset %d of %d", u.Partition, u.Next, u.End)
	}
	fmt.Fprintf(&b, " (read_committed delivers nothing more below the last stable offset: transactions aborted without a marker?): %v", e.Err)
	return b.String()
}

// Unwrap returns ctx's error.
func (e *IncompleteReadError) Unwrap() error { return e.Err }

// ReadTopic calls fn for every committed record of topic, from the start of
// every partition up to its last stable offset as of the call. When ctx
// ends first it returns an *IncompleteReadError naming the partitions it
// could not read to the end.
//
// Control records (transaction markers) are kept and skipped here, so that
// the read knows when it reached the last stable offset, which usually
// stands right after a commit marker.
func ReadTopic(ctx context.Context, brokers []string, topic string, fn func(*kgo.Record) error) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	adm := kadm.NewClient(cl)
	ends, err := adm.ListCommittedOffsets(ctx, topic)
	var starts kadm.ListedOffsets
	if err == nil {
		starts, err = adm.ListStartOffsets(ctx, topic)
	}
	cl.Close()
	if err != nil {
		return fmt.Errorf("list offsets of %s: %w", topic, err)
	}
	if err := ends.Error(); err != nil {
		return fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	offsets := map[int32]kgo.Offset{}
	remaining := map[int32]int64{}
	next := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			offsets[o.Partition] = kgo.NewOffset().AtStart()
			remaining[o.Partition] = o.Offset
			next[o.Partition] = 0
			if s, ok := starts.Lookup(topic, o.Partition); ok && s.Err == nil {
				next[o.Partition] = s.Offset
			}
		}
	})
	if len(remaining) == 0 {
		return nil
	}
	cl, err = kgo.NewClient(kgo.SeedBrokers(brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	if err != nil {
		return err
	}
	defer cl.Close()
	for len(remaining) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			e := &IncompleteReadError{Topic: topic, Err: err}
			for p, end := range remaining {
				e.Unread = append(e.Unread, Unread{Partition: p, Next: next[p], End: end})
			}
			slices.SortFunc(e.Unread, func(a, b Unread) int { return cmp.Compare(a.Partition, b.Partition) })
			return e
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			if ferr == nil {
				ferr = fmt.Errorf("fetch %s/%d: %w", t, p, err)
			}
		})
		if ferr != nil {
			return ferr
		}
		var cbErr error
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := remaining[r.Partition]
			if !ok || cbErr != nil || r.Offset >= end {
				return
			}
			next[r.Partition] = r.Offset + 1
			if !r.Attrs.IsControl() {
				cbErr = fn(r)
			}
			if r.Offset+1 >= end {
				delete(remaining, r.Partition)
			}
		})
		if cbErr != nil {
			return cbErr
		}
	}
	return nil
}

// WaitSettled waits until no transaction is open on topic: until every
// partition's last stable offset has reached its high watermark. A
// producer's commit returns once the transaction coordinator logged it;
// the markers that make its records readable under read_committed reach
// the partitions after that, so a read right after the writer exited can
// stop short of its last transaction. It polls every poll until ctx ends,
// and then returns the partitions still unsettled in the error.
func WaitSettled(ctx context.Context, brokers []string, topic string, poll time.Duration) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var open []string
	for {
		hw, err := adm.ListEndOffsets(ctx, topic)
		var lso kadm.ListedOffsets
		if err == nil {
			lso, err = adm.ListCommittedOffsets(ctx, topic)
		}
		if err == nil {
			err = hw.Error()
		}
		if err == nil {
			err = lso.Error()
		}
		if err == nil {
			open = open[:0]
			hw.Each(func(o kadm.ListedOffset) {
				if s, ok := lso.Lookup(topic, o.Partition); !ok || s.Offset < o.Offset {
					open = append(open, fmt.Sprintf("partition %d: last stable offset %d of %d", o.Partition, s.Offset, o.Offset))
				}
			})
			if len(open) == 0 {
				return nil
			}
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			if err != nil {
				return fmt.Errorf("wait for %s to settle: %w", topic, err)
			}
			slices.Sort(open)
			return fmt.Errorf("wait for %s to settle: transactions still open (%s): %w", topic, strings.Join(open, ", "), ctx.Err())
		case <-t.C:
		}
	}
}
