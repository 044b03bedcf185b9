package kafka

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The values of SourceConfig.StartOffsets.
const (
	// StartEarliest starts every partition at its log start offset.
	StartEarliest = "earliest"
	// StartLatest starts every partition at its end: the last stable offset
	// when reading read_committed (so that records of transactions still
	// open at start are not skipped when they commit), the high watermark
	// otherwise.
	StartLatest = "latest"
	// StartCommitted starts every partition at the offset committed to
	// SourceConfig.GroupID; partitions without one follow SourceConfig.Reset.
	StartCommitted = "committed"
	// StartTimestampPrefix prefixes a timestamp start, as in
	// "timestamp:2024-05-01T12:00:00Z" or "timestamp:1714564800000" (unix
	// milliseconds): every partition starts at its first record at or after
	// that time, or at its end when there is none.
	StartTimestampPrefix = "timestamp:"
)

// The values of SourceConfig.Reset.
const (
	// ResetEarliest resets to the log start offset.
	ResetEarliest = "earliest"
	// ResetLatest resets to the end of the partition.
	ResetLatest = "latest"
	// ResetNone fails the job with an error naming the topic and partition.
	ResetNone = "none"
)

// The values of SourceConfig.IsolationLevel.
const (
	// ReadCommitted reads only records of committed transactions (and
	// non-transactional records); it is what makes the output of an
	// exactly-once Kafka sink exactly once for its readers.
	ReadCommitted = "read_committed"
	// ReadUncommitted also reads records of open and aborted transactions.
	ReadUncommitted = "read_uncommitted"
)

// The defaults of SourceConfig.
const (
	DefaultStartOffsets      = StartEarliest
	DefaultReset             = ResetEarliest
	DefaultIsolationLevel    = ReadCommitted
	DefaultDiscoveryInterval = 10 * time.Second
	DefaultRetryBackoff      = 100 * time.Millisecond
	DefaultMaxRetryBackoff   = 5 * time.Second
	DefaultRetryTimeout      = time.Minute
	DefaultMaxPollRecords    = 2048
)

// The configuration keys of SourceConfig's fields, as Validate names them.
const (
	KeyBrokers           = "kafka.source.brokers"
	KeyTopics            = "kafka.source.topics"
	KeyTopicRegex        = "kafka.source.topic-regex"
	KeyGroupID           = "kafka.source.group-id"
	KeyStartOffsets      = "kafka.source.start-offsets"
	KeyReset             = "kafka.source.reset"
	KeyIsolationLevel    = "kafka.source.isolation-level"
	KeyDiscoveryInterval = "kafka.source.discovery-interval"
	KeyDeserializer      = "kafka.source.deserializer"
	KeyDeadLetterTopic   = "kafka.source.dead-letter-topic"
	KeyRetryBackoff      = "kafka.source.retry-backoff"
	KeyRetryTimeout      = "kafka.source.retry-timeout"
	KeyMaxPollRecords    = "kafka.source.max-poll-records"
)

// SourceConfig configures a Kafka source. The zero value of every field but
// Brokers, Topics or TopicRegex, and Deserializer means its default.
//
// The source keeps its position (the next offset of every partition) in
// Sluice's checkpoints and never in Kafka: it consumes without group
// membership and without auto-commit (docs/design.md §6), so a restore rewinds it
// exactly to the checkpoint. Offsets are committed to GroupID only for
// monitoring, after a checkpoint completes.
type SourceConfig[T any] struct {
	// Brokers are the bootstrap brokers, host:port. Required.
	Brokers []string

	// Topics are the topics to read. Exactly one of Topics and TopicRegex
	// must be set. Every listed topic must exist when the job starts (a
	// typo would otherwise read nothing, silently); partitions added later
	// are discovered (see DiscoveryInterval).
	Topics []string
	// TopicRegex selects the topics to read by a Go regular expression
	// (RE2) matched against the whole topic name, e.g. `orders-.*`.
	// Internal topics (__consumer_offsets, __transaction_state) never
	// match. Topics created later that match are discovered.
	TopicRegex string

	// GroupID is the consumer group the source commits its checkpointed
	// offsets to after each completed checkpoint, so that standard tools
	// (kafka-consumer-groups, lag exporters) can show its lag. The source
	// never joins the group. Default "": no commits. Required with
	// StartOffsets "committed", the only case where these offsets are read
	// back. Do not share it with a consumer that joins the group: its
	// commits would be rejected (logged, not fatal).
	GroupID string

	// StartOffsets says where partitions start that have no position in a
	// restored checkpoint: "earliest", "latest", "committed" or
	// "timestamp:<RFC 3339 time or unix milliseconds>". Default earliest,
	// which reads everything the topic still has; choose latest for a job
	// that only cares about what arrives from now on, a timestamp to
	// replay from a point in time, committed to take over where another
	// consumer of GroupID stopped. Partitions discovered
	// while the job runs always start at earliest, so that no record
	// written to a new partition is skipped. A restored checkpoint always
	// wins: the option only matters on a job's first start.
	StartOffsets string
	// Reset says what happens when an offset does not exist: a committed
	// offset that is missing (StartOffsets committed), or a position that
	// is out of range when fetched (deleted by retention, or a checkpoint
	// of a topic that was recreated). "earliest", "latest" or "none".
	// Default earliest, which skips no record the partition still has.
	// "none" fails the job with an error naming the topic and partition,
	// for jobs where any gap must stop the line.
	Reset string
	// IsolationLevel is "read_committed" or "read_uncommitted". Default
	// read_committed: records of aborted transactions are never read, and
	// records of open ones only once they commit, so that the output of an
	// exactly-once producer (such as Sluice's Kafka sink) is read exactly
	// once. read_uncommitted lowers latency by the writer's transaction
	// interval and reads aborted records too.
	IsolationLevel string

	// DiscoveryInterval is how often the source looks for new partitions
	// (and, with TopicRegex, new topics), and refreshes the end offsets
	// that Status, Lag and Watermark use. Default 10s; negative disables
	// discovery (end offsets are then refreshed every 10s). Lower it when
	// partitions are added often and their first records must not wait;
	// raise it to spare a large cluster's metadata requests.
	DiscoveryInterval time.Duration

	// Deserializer turns records into values of T. Required; see Bytes,
	// String, JSON, Protobuf, Avro and Records.
	Deserializer Deserializer[T]
	// DeadLetterTopic receives the records that Deserializer rejects,
	// unchanged (key, value, headers, timestamp) plus headers naming their
	// source topic, partition and offset and the error (the HeaderDLQ*
	// constants). Default "": a rejected record fails the job with an
	// error naming its topic, partition and offset, which the restart
	// strategy then replays into the same error, so set a dead-letter
	// topic for input that may carry bad records. The topic must exist
	// (or the cluster must create topics on demand). Records are written
	// synchronously and non-transactionally before the source moves past
	// them, so none is ever dropped silently, but a record replayed after
	// a failure is written again (at least once).
	DeadLetterTopic string

	// RetryBackoff is the first wait after a failed request to Kafka; it
	// doubles per retry up to 5s. Default 100ms. franz-go uses it for
	// its own retries too (fetches, metadata). Raise it to spare a
	// struggling cluster, lower it (tests) to recover faster.
	RetryBackoff time.Duration
	// RetryTimeout bounds how long the source retries while Kafka is
	// unreachable or answers retriable errors (leader changes, timeouts,
	// coordinator moves): past it the task fails and the job restarts per
	// its restart strategy. Non-retriable errors (authorization, unknown
	// topic at start, invalid requests) fail at once. Default 1m, long
	// enough to ride out a broker restart or a leader election; lower it
	// to hand a dead cluster to the restart strategy sooner.
	RetryTimeout time.Duration

	// MaxPollRecords is the most records one poll emits before the task
	// gets back control to handle checkpoint triggers and timers. Default
	// 2048. Larger values shave a little per-record overhead; smaller
	// ones shorten the time a checkpoint barrier waits behind records.
	MaxPollRecords int

	// ClientOpts are extra franz-go options for the source's clients (the
	// consumer of each subtask, the dead-letter producer, the client that
	// lists partitions at start): TLS, SASL, fetch sizes,
	// kgo.MetadataMinAge, ... Default none. They are applied after the
	// source's own, so they win; do not set consumer-group, topic, offset
	// or isolation options here, nor record pools: they would break the
	// source's bookkeeping.
	ClientOpts []kgo.Opt
}

// topicNameRe is what Kafka accepts as a topic name.
var topicNameRe = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

// Validate checks c and reports every problem, each prefixed with its
// configuration key, e.g.
//
//	kafka.source.start-offsets: must be earliest, latest, committed or timestamp:<RFC 3339 or unix ms>, got "newest"
//
// The errors are joined with errors.Join.
func (c SourceConfig[T]) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
	}
	if len(c.Brokers) == 0 {
		bad(KeyBrokers, "at least one host:port is required")
	}
	for _, b := range c.Brokers {
		if strings.TrimSpace(b) == "" {
			bad(KeyBrokers, "empty broker address in %q", c.Brokers)
			break
		}
	}
	switch {
	case len(c.Topics) == 0 && c.TopicRegex == "":
		bad(KeyTopics, "set topics or %s", KeyTopicRegex)
	case len(c.Topics) > 0 && c.TopicRegex != "":
		bad(KeyTopics, "set topics or %s, not both", KeyTopicRegex)
	}
	seen := map[string]bool{}
	for _, t := range c.Topics {
		if !topicNameRe.MatchString(t) || t == "." || t == ".." {
			bad(KeyTopics, "invalid topic name %q (1 to 249 of [a-zA-Z0-9._-])", t)
		}
		if seen[t] {
			bad(KeyTopics, "topic %q listed twice", t)
		}
		seen[t] = true
	}
	var re *regexp.Regexp
	if c.TopicRegex != "" {
		var err error
		if re, err = compileTopicRegex(c.TopicRegex); err != nil {
			bad(KeyTopicRegex, "%v", err)
		}
	}
	start, err := parseStart(c.StartOffsets)
	if err != nil {
		bad(KeyStartOffsets, "%v", err)
	} else if start.kind == startCommitted && c.GroupID == "" {
		bad(KeyGroupID, "required with %s=%s", KeyStartOffsets, StartCommitted)
	}
	switch c.Reset {
	case "", ResetEarliest, ResetLatest, ResetNone:
	default:
		bad(KeyReset, "must be %s, %s or %s, got %q", ResetEarliest, ResetLatest, ResetNone, c.Reset)
	}
	switch c.IsolationLevel {
	case "", ReadCommitted, ReadUncommitted:
	default:
		bad(KeyIsolationLevel, "must be %s or %s, got %q", ReadCommitted, ReadUncommitted, c.IsolationLevel)
	}
	if c.Deserializer == nil {
		bad(KeyDeserializer, "required (e.g. kafka.Bytes(), kafka.String(), kafka.JSON[T]())")
	}
	if c.DeadLetterTopic != "" {
		switch {
		case !topicNameRe.MatchString(c.DeadLetterTopic):
			bad(KeyDeadLetterTopic, "invalid topic name %q (1 to 249 of [a-zA-Z0-9._-])", c.DeadLetterTopic)
		case seen[c.DeadLetterTopic] || (re != nil && re.MatchString(c.DeadLetterTopic)):
			bad(KeyDeadLetterTopic, "%q is also a source topic: bad records would be read again forever", c.DeadLetterTopic)
		}
	}
	if c.RetryBackoff < 0 {
		bad(KeyRetryBackoff, "must not be negative, got %v", c.RetryBackoff)
	}
	if c.RetryTimeout < 0 {
		bad(KeyRetryTimeout, "must not be negative, got %v", c.RetryTimeout)
	}
	if c.RetryBackoff > 0 && c.RetryTimeout > 0 && c.RetryBackoff > c.RetryTimeout {
		bad(KeyRetryBackoff, "%v exceeds %s %v: nothing would be retried", c.RetryBackoff, KeyRetryTimeout, c.RetryTimeout)
	}
	if c.MaxPollRecords < 0 {
		bad(KeyMaxPollRecords, "must not be negative, got %d", c.MaxPollRecords)
	}
	return errors.Join(errs...)
}

// withDefaults returns c with zero fields set to their defaults. It assumes
// c is valid.
func (c SourceConfig[T]) withDefaults() SourceConfig[T] {
	if c.StartOffsets == "" {
		c.StartOffsets = DefaultStartOffsets
	}
	if c.Reset == "" {
		c.Reset = DefaultReset
	}
	if c.IsolationLevel == "" {
		c.IsolationLevel = DefaultIsolationLevel
	}
	if c.DiscoveryInterval == 0 {
		c.DiscoveryInterval = DefaultDiscoveryInterval
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = DefaultRetryBackoff
	}
	if c.RetryTimeout == 0 {
		c.RetryTimeout = DefaultRetryTimeout
	}
	if c.MaxPollRecords == 0 {
		c.MaxPollRecords = DefaultMaxPollRecords
	}
	return c
}

// compileTopicRegex anchors the expression: a pattern is meant to match a
// whole topic name (as in Flink's topic pattern), not any substring.
func compileTopicRegex(expr string) (*regexp.Regexp, error) {
	re, err := regexp.Compile(`^(?:` + expr + `)$`)
	if err != nil {
		return nil, fmt.Errorf("invalid regular expression %q: %w", expr, err)
	}
	return re, nil
}

type startKind uint8

const (
	startEarliest startKind = iota
	startLatest
	startCommitted
	startTimestamp
)

// startSpec is a parsed StartOffsets.
type startSpec struct {
	kind   startKind
	millis int64 // startTimestamp
}

func parseStart(s string) (startSpec, error) {
	switch s {
	case "", StartEarliest:
		return startSpec{kind: startEarliest}, nil
	case StartLatest:
		return startSpec{kind: startLatest}, nil
	case StartCommitted:
		return startSpec{kind: startCommitted}, nil
	}
	if ts, ok := strings.CutPrefix(s, StartTimestampPrefix); ok {
		if ms, err := strconv.ParseInt(ts, 10, 64); err == nil {
			if ms < 0 {
				return startSpec{}, fmt.Errorf("timestamp must not be negative, got %d", ms)
			}
			return startSpec{kind: startTimestamp, millis: ms}, nil
		}
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			return startSpec{}, fmt.Errorf("timestamp %q is neither RFC 3339 (2006-01-02T15:04:05Z07:00) nor unix milliseconds", ts)
		}
		if t.UnixMilli() < 0 {
			return startSpec{}, fmt.Errorf("timestamp %q is before 1970", ts)
		}
		return startSpec{kind: startTimestamp, millis: t.UnixMilli()}, nil
	}
	return startSpec{}, fmt.Errorf("must be %s, %s, %s or %s<RFC 3339 or unix ms>, got %q",
		StartEarliest, StartLatest, StartCommitted, StartTimestampPrefix, s)
}

// backoff returns the wait before retry n (1-based): RetryBackoff doubling
// up to DefaultMaxRetryBackoff.
func (c SourceConfig[T]) backoff(n int) time.Duration {
	d := c.RetryBackoff
	for i := 1; i < n && d < DefaultMaxRetryBackoff; i++ {
		d *= 2
	}
	return min(d, DefaultMaxRetryBackoff)
}
