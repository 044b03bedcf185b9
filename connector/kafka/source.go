package kafka

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/clock"
)

// Source is a Kafka source: a sluice.Source[T] and a sluice.SplitAssigner.
// Make one with NewSource. One Source may serve one job at a time (its
// status accessors report the readers of that job in this process).
//
// The source has Flink's FLIP-27 shape (docs/design.md §11): a split is one topic
// partition, with id "topic/partition"; its state is the offset of the next
// record to read. Partitions are assigned to subtasks deterministically, as
// Flink's KafkaSourceEnumerator does, and each subtask reads its partitions
// with one franz-go client that consumes them directly: no consumer group
// membership and no auto-commit, because the checkpoint is the source of
// truth. A restore, after a failure or with a new parallelism, rewinds every
// partition to exactly the offset the checkpoint recorded.
//
//	src, err := kafka.NewSource(kafka.SourceConfig[string]{
//		Brokers:      []string{"localhost:9092"},
//		Topics:       []string{"orders"},
//		GroupID:      "orders-job", // for lag monitoring only
//		Deserializer: kafka.String(),
//	})
//	orders := sluice.FromSource(env, "orders", src)
type Source[T any] struct {
	cfg   SourceConfig[T] // with defaults
	re    *regexp.Regexp  // TopicRegex, anchored
	start startSpec

	mu      sync.Mutex
	readers map[int]*reader[T] // by subtask, for the status accessors
	// started remembers the start offsets resolved for fresh splits (by
	// split id), so that an attempt restarted without a checkpoint starts
	// where the first attempt did: "latest" or a timestamp resolved anew
	// would skip what arrived in between.
	started map[string]int64

	// Every subtask calls Splits when it opens; listMu makes them share
	// one listing (splitsCacheTTL), which spares the cluster and gives
	// every subtask the same view.
	listMu   sync.Mutex
	listed   []sluice.Split
	listedAt time.Time
}

// splitsCacheTTL is how long the subtasks of a starting job share one
// partition listing.
const splitsCacheTTL = time.Second

var (
	_ sluice.Source[int]       = (*Source[int])(nil)
	_ sluice.SplitAssigner     = (*Source[int])(nil)
	_ sluice.SourceReader[int] = (*reader[int])(nil)
	_ sluice.PausableSource    = (*Source[int])(nil)
	_ sluice.SplitPauser       = (*reader[int])(nil)
)

// NewSource validates cfg and returns the source it describes.
func NewSource[T any](cfg SourceConfig[T]) (*Source[T], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Source[T]{cfg: cfg, readers: map[int]*reader[T]{}, started: map[string]int64{}}
	if cfg.TopicRegex != "" {
		s.re, _ = compileTopicRegex(cfg.TopicRegex) // checked by Validate
	}
	s.start, _ = parseStart(cfg.StartOffsets)
	return s, nil
}

// ReadersPauseSplits marks the source as one whose readers pause
// partitions (sluice.PausableSource), so it can take part in watermark
// alignment.
func (s *Source[T]) ReadersPauseSplits() {}

// Config returns the source's configuration with defaults filled in.
func (s *Source[T]) Config() SourceConfig[T] { return s.cfg }

// matches reports whether topic is one the source reads.
func (s *Source[T]) matches(topic string) bool {
	if s.re != nil {
		return s.re.MatchString(topic)
	}
	for _, t := range s.cfg.Topics {
		if t == topic {
			return true
		}
	}
	return false
}

// Splits lists every partition of the source's topics, each a split "not
// started yet" (nil state). It fails if a listed topic does not exist, and
// retries while the cluster is unreachable for up to RetryTimeout.
func (s *Source[T]) Splits(ctx context.Context) ([]sluice.Split, error) {
	s.listMu.Lock()
	defer s.listMu.Unlock()
	if s.listed != nil && time.Since(s.listedAt) < splitsCacheTTL {
		return append([]sluice.Split(nil), s.listed...), nil
	}
	cl, err := newClient(s.cfg, nil)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var parts []partitionID
	err = retry(ctx, s.cfg, clock.Real{}, nil, "list partitions", func(ctx context.Context) error {
		var err error
		parts, err = listPartitions(ctx, cl, s.cfg.Topics, s.re, true)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("kafka source: %w", err)
	}
	out := make([]sluice.Split, len(parts))
	for i, p := range parts {
		out[i] = sluice.Split{ID: SplitID(p.topic, p.partition)}
	}
	s.listed, s.listedAt = out, time.Now()
	return append([]sluice.Split(nil), out...), nil
}

// PartitionCount returns how many partitions the source reads now (it
// lists them like Splits, which caches the answer briefly), for the
// advisor's check of the source's parallelism (sluice.PartitionCounter).
func (s *Source[T]) PartitionCount(ctx context.Context) (int, error) {
	splits, err := s.Splits(ctx)
	if err != nil {
		return 0, err
	}
	return len(splits), nil
}

// AssignSplit assigns partition p of topic t to subtask
// (fnv32a(t) mod parallelism + p) mod parallelism: the partitions of a
// topic go round-robin from a start that depends on the topic, as in
// Flink's KafkaSourceEnumerator, so several topics spread over the subtasks
// evenly and a topic's new partitions continue the round. An id that is not
// a Kafka split goes to subtask 0, whose AddSplits rejects it loudly.
func (s *Source[T]) AssignSplit(id string, parallelism int) int {
	topic, part, err := ParseSplitID(id)
	if err != nil || parallelism <= 0 {
		return 0
	}
	return assign(topic, part, parallelism)
}

func assign(topic string, partition int32, parallelism int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(topic))
	start := int(h.Sum32() % uint32(parallelism))
	return (start + int(partition)%parallelism) % parallelism
}

// NewReader returns the reader of one subtask.
func (s *Source[T]) NewReader(_ context.Context, oc *sluice.OperatorContext) (sluice.SourceReader[T], error) {
	r, err := newReader(s, oc)
	if err != nil {
		return nil, fmt.Errorf("kafka source: %w", err)
	}
	s.mu.Lock()
	s.readers[r.subtask] = r
	s.mu.Unlock()
	return r, nil
}

func (s *Source[T]) unregister(r *reader[T]) {
	s.mu.Lock()
	if s.readers[r.subtask] == r {
		delete(s.readers, r.subtask)
	}
	s.mu.Unlock()
}

func (s *Source[T]) rememberStart(id string, offset int64) {
	s.mu.Lock()
	s.started[id] = offset
	s.mu.Unlock()
}

func (s *Source[T]) rememberedStart(id string) (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.started[id]
	return o, ok
}

// PartitionStatus is a point-in-time view of one partition a reader reads.
type PartitionStatus struct {
	Topic     string // the partition's topic
	Partition int32  // the partition
	// Subtask is the subtask reading the partition.
	Subtask int
	// Next is the offset of the next record the reader emits (what the
	// next checkpoint records), -1 while the partition starts at its
	// earliest offset and nothing has been read yet.
	Next int64
	// End is the partition's end offset at the reader's last look (from
	// the latest fetch or the periodic probe): the last stable offset when
	// reading read_committed, the high watermark otherwise; -1 if unknown.
	End int64
	// Lag is End - Next, at least 0, or -1 if unknown. Read committed, a
	// partition whose newest records are aborted or control records shows
	// a small lag that never drains (the reader cannot see past them).
	Lag int64
	// MaxTimestamp is the largest timestamp of a record emitted, zero if
	// none: the partition's watermark (without an out-of-orderness bound).
	MaxTimestamp time.Time
	// Idle says the partition had nothing left to read at the last look.
	Idle bool
	// Paused says watermark alignment paused the partition because its
	// watermark ran ahead of its group's (docs/design.md §14): the reader
	// does not fetch it, so its Lag grows until it is resumed.
	Paused bool
}

// Status returns the state of every partition read by a reader of the
// running job in this process, by topic and partition. It is safe to call
// from any goroutine, e.g. a metrics collector.
func (s *Source[T]) Status() []PartitionStatus {
	s.mu.Lock()
	readers := make([]*reader[T], 0, len(s.readers))
	for _, r := range s.readers {
		readers = append(readers, r)
	}
	s.mu.Unlock()
	var out []PartitionStatus
	for _, r := range readers {
		out = append(out, r.status()...)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return out
}

// Lag returns the lag of every partition whose lag is known, by split id
// ("topic/partition"): the records between the reader's position and the
// partition's end (see PartitionStatus.Lag). This is Kafka's consumer lag
// (records-lag), for metrics and alerts.
func (s *Source[T]) Lag() map[string]int64 {
	out := map[string]int64{}
	for _, st := range s.Status() {
		if st.Lag >= 0 {
			out[SplitID(st.Topic, st.Partition)] = st.Lag
		}
	}
	return out
}

// Watermark returns the current watermark of a subtask's reader: the
// minimum, over its partitions that still have records to read, of the
// largest record timestamp each has emitted (per-partition watermarks, as
// Flink's Kafka source computes them, with idle partitions excluded). It
// reports false when the watermark is unknown: no reader for the subtask,
// a partition with records to read has emitted none yet, or every
// partition is idle.
//
// The engine does not propagate watermarks yet; this accessor is what an
// event-time runtime (and metrics on watermark lag) will read.
func (s *Source[T]) Watermark(subtask int) (time.Time, bool) {
	s.mu.Lock()
	r := s.readers[subtask]
	s.mu.Unlock()
	if r == nil {
		return time.Time{}, false
	}
	return watermark(r.status())
}

func watermark(parts []PartitionStatus) (time.Time, bool) {
	var wm time.Time
	found := false
	for _, p := range parts {
		if p.Idle {
			continue
		}
		if p.MaxTimestamp.IsZero() {
			return time.Time{}, false
		}
		if !found || p.MaxTimestamp.Before(wm) {
			wm, found = p.MaxTimestamp, true
		}
	}
	return wm, found
}

// SplitID returns the id of the split of a partition: "topic/partition".
func SplitID(topic string, partition int32) string {
	return topic + "/" + strconv.FormatInt(int64(partition), 10)
}

// ParseSplitID parses a split id made by SplitID. Topic names cannot
// contain '/', so the last one separates the partition.
func ParseSplitID(id string) (topic string, partition int32, err error) {
	i := strings.LastIndexByte(id, '/')
	if i <= 0 {
		return "", 0, fmt.Errorf("%w: id %q is not topic/partition", ErrBadSplit, id)
	}
	p, err := strconv.ParseInt(id[i+1:], 10, 32)
	if err != nil || p < 0 {
		return "", 0, fmt.Errorf("%w: id %q has no valid partition number", ErrBadSplit, id)
	}
	return id[:i], int32(p), nil
}

// The split state encodings. A nil state is a split not started yet; the
// first byte of any other state says what follows, so that the format can
// grow without breaking old checkpoints.
const (
	// stateOffset is followed by the uvarint offset of the next record.
	stateOffset byte = 1
	// stateEarliest marks a partition that starts at its log start offset
	// and has emitted nothing yet (a partition discovered while running):
	// its concrete position is unknown until the first record, and
	// "earliest" stays right whenever it is restored.
	stateEarliest byte = 2
)

// position is where a partition's next record is.
type position struct {
	earliest bool  // at the log start offset, not known yet
	next     int64 // the offset of the next record, unless earliest
}

func encodeState(p position) []byte {
	if p.earliest {
		return []byte{stateEarliest}
	}
	return binary.AppendUvarint([]byte{stateOffset}, uint64(p.next))
}

// decodeState decodes a non-nil split state.
func decodeState(b []byte) (position, error) {
	if len(b) == 0 {
		return position{}, fmt.Errorf("%w: empty state", ErrBadSplit)
	}
	switch b[0] {
	case stateEarliest:
		if len(b) != 1 {
			return position{}, fmt.Errorf("%w: %d trailing bytes after the earliest marker", ErrBadSplit, len(b)-1)
		}
		return position{earliest: true}, nil
	case stateOffset:
		v, n := binary.Uvarint(b[1:])
		if n <= 0 || v > math.MaxInt64 {
			return position{}, fmt.Errorf("%w: corrupt offset", ErrBadSplit)
		}
		if 1+n != len(b) {
			return position{}, fmt.Errorf("%w: %d trailing bytes after the offset", ErrBadSplit, len(b)-1-n)
		}
		return position{next: int64(v)}, nil
	default:
		return position{}, fmt.Errorf("%w: unknown state format %d (a checkpoint of a newer Sluice?)", ErrBadSplit, b[0])
	}
}
