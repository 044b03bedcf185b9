// Package datagen is a deterministic data generator source: a fixed number
// of splits, each an endless (or bounded) sequence of keyed records, where
// record (split s, seq i) is a pure function of (Seed, s, i). It is the
// input of Sluice's demo job, its exactly-once tests and its benchmarks.
//
// Because every record can be recomputed, a verifier knows the exact input
// a job consumed up to a checkpoint from the split positions stored in it
// (see Positions and Expected), and can check the job's committed output
// against it without logging the input anywhere.
//
// Splits follow docs/design.md §11 ("sources as splits"): the split count is part of
// the job, independent of the source's parallelism, and a split's state is
// the sequence number of its next record; restoring at another parallelism
// just reassigns splits (split n goes to subtask n mod parallelism).
package datagen

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/clock"
)

// Record is one generated record.
type Record struct {
	// Split is the index of the split that produced the record.
	Split int
	// Seq is the record's position in its split, from 0.
	Seq int64
	// Key is one of Config.Keys keys, "k000000" to "k000999" by default,
	// drawn from Config.Distribution.
	Key string
	// Value is uniform in [0, 1024), for jobs that sum something.
	Value int64
}

// The distributions of keys.
const (
	// Uniform draws every key with equal probability.
	Uniform = "uniform"
	// Zipf draws key rank r (k000000 is rank 0) with probability
	// proportional to 1/(r+1)^1.1: a few hot keys, a long tail. Use it to
	// test skew (one hot key group, one busy subtask).
	Zipf = "zipf"
	// Sequential cycles through the keys: record i of split s gets key
	// (i·Splits + s) mod Keys, so every key's count is known by heart.
	Sequential = "sequential"
)

// Defaults and limits of Config.
const (
	// DefaultSplits is the default number of splits.
	DefaultSplits = 4
	// DefaultKeys is the default number of distinct keys.
	DefaultKeys = 1000
	// DefaultBatchSize is the default number of records per Poll.
	DefaultBatchSize = 512
	// MaxSplits bounds Config.Splits.
	MaxSplits = 1 << 16
	// MaxKeys bounds Config.Keys: every key string is precomputed, which
	// costs about 8 bytes per key.
	MaxKeys = 10_000_000
	// MaxBatchSize bounds Config.BatchSize, so a Poll stays short and
	// checkpoint triggers are not kept waiting.
	MaxBatchSize = 1 << 20
)

// Config configures a generator. The zero value of every field means its
// default; Validate reports the fields out of range.
type Config struct {
	// Splits is the number of splits (independent sequences). Default 4.
	// It is fixed for the life of a job, like the partitions of a Kafka
	// topic: the split count, not the parallelism, decides which records
	// exist, so a job can be restored at another parallelism and still read
	// exactly the same input. Use at least as many splits as the largest
	// source parallelism you plan; extra subtasks stay idle.
	Splits int
	// RatePerSecond is the total rate over all splits. Default 0: unbounded,
	// as fast as the job takes them. Each reader gets the share of its
	// splits, so a reader with no splits produces nothing.
	RatePerSecond float64
	// RecordsPerSplit ends each split after that many records. Default 0:
	// endless. A reader reports the end of its input once all its splits
	// ended.
	RecordsPerSplit int64
	// Keys is the number of distinct keys. Default 1000, at most MaxKeys.
	Keys int
	// Distribution is Uniform (default), Zipf or Sequential.
	Distribution string
	// Seed selects the sequences; the same seed gives the same records.
	Seed uint64
	// BatchSize is the most records one Poll emits. Default 512: larger
	// batches amortise the poll overhead, smaller ones let a checkpoint
	// barrier in sooner.
	BatchSize int
	// PrefetchKeys makes a reader touch the bytes of a chunk of keys before
	// it emits them, when the key table (Keys × the key's width) is larger
	// than a core's cache. A source decoding real records hands out keys
	// it has just written, in cache; the key table's keys are not, so the
	// first reader of each (keyBy hashing it) waits for a cache miss. The
	// chunk's loads overlap instead: for jobs that read the key, datagen
	// then costs about what a real source would. A job that never reads
	// the key pays for the loads. Default false.
	PrefetchKeys bool
	// Clock paces rate-limited readers. Default the operator's clock
	// (OperatorContext.Clock), so that tests with a fake job clock pace the
	// source too.
	Clock clock.Clock
}

func (c Config) withDefaults() Config {
	if c.Splits == 0 {
		c.Splits = DefaultSplits
	}
	if c.Keys == 0 {
		c.Keys = DefaultKeys
	}
	if c.Distribution == "" {
		c.Distribution = Uniform
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	return c
}

// Validate checks the configuration after defaults and reports every field
// out of range, each prefixed with its key, joined with errors.Join, e.g.
// "datagen.keys: must be >= 1 (got -5)".
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("datagen.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.Splits < 1 || c.Splits > MaxSplits {
		bad("splits", "must be in [1, %d] (got %d)", MaxSplits, c.Splits)
	}
	if math.IsNaN(c.RatePerSecond) || math.IsInf(c.RatePerSecond, 0) || c.RatePerSecond < 0 {
		bad("rate-per-second", "must be a finite number >= 0, 0 meaning unbounded (got %v)", c.RatePerSecond)
	}
	if c.RecordsPerSplit < 0 {
		bad("records-per-split", "must be >= 0, 0 meaning endless (got %d)", c.RecordsPerSplit)
	}
	switch {
	case c.Keys < 1:
		bad("keys", "must be >= 1 (got %d)", c.Keys)
	case c.Keys > MaxKeys:
		bad("keys", "must be <= %d (got %d)", MaxKeys, c.Keys)
	}
	if c.Distribution != Uniform && c.Distribution != Zipf && c.Distribution != Sequential {
		bad("distribution", "must be %q, %q or %q (got %q)", Uniform, Zipf, Sequential, c.Distribution)
	}
	if c.BatchSize < 1 || c.BatchSize > MaxBatchSize {
		bad("batch-size", "must be in [1, %d] (got %d)", MaxBatchSize, c.BatchSize)
	}
	return errors.Join(errs...)
}

// KeyOf returns the key of record seq of split: what a reader emits there,
// computed without a reader. The configuration must be valid and split in
// [0, Splits); KeyOf panics otherwise, like an index out of range.
func (c Config) KeyOf(split int, seq int64) string {
	c = c.withDefaults()
	if err := c.Validate(); err != nil {
		panic(fmt.Sprintf("datagen: KeyOf on an invalid config: %v", err))
	}
	if split < 0 || split >= c.Splits {
		panic(fmt.Sprintf("datagen: KeyOf: split %d out of range [0, %d)", split, c.Splits))
	}
	z := draw(splitBase(c.Seed, split), seq)
	var i uint64
	switch c.Distribution {
	case Zipf:
		i = zipfTable(c.Keys).sample(z)
	case Sequential:
		i = sequentialIndex(split, seq, c.Splits, c.Keys)
	default:
		i = uniformIndex(z, uint64(c.Keys))
	}
	return string(appendKey(nil, int(i), keyDigits(c.Keys)))
}

// ValueOf returns the Value of record seq of split (any split index works:
// it only selects a sequence).
func (c Config) ValueOf(split int, seq int64) int64 {
	return valueOf(draw(splitBase(c.Seed, split), seq))
}

// Expected returns how many records of each key the splits produced before
// the given positions: positions maps a split index to the sequence number
// of its next record (what a checkpoint stores, see Positions), so the
// result is the input a job consumed up to that checkpoint. Splits missing
// from positions count as not read at all; keys with no records are absent;
// positions past RecordsPerSplit count as its end.
//
// cfg must be the (valid) configuration the job ran with, and every split
// index in [0, Splits) with a position >= 0: Expected panics otherwise,
// because a verification against the wrong input would be meaningless.
// Positions never returns such positions for a checkpoint the source
// accepted.
func Expected(cfg Config, positions map[int]int64) map[string]int64 {
	if err := cfg.Validate(); err != nil {
		panic(fmt.Sprintf("datagen: Expected on an invalid config: %v", err))
	}
	cfg = cfg.withDefaults()
	g := newGenerator(cfg)
	counts := make([]int64, cfg.Keys)
	for s, pos := range positions {
		if s < 0 || s >= cfg.Splits {
			panic(fmt.Sprintf("datagen: Expected: split %d out of range [0, %d)", s, cfg.Splits))
		}
		if pos < 0 {
			panic(fmt.Sprintf("datagen: Expected: split %d: negative position %d", s, pos))
		}
		if cfg.RecordsPerSplit > 0 {
			pos = min(pos, cfg.RecordsPerSplit)
		}
		for seq := range pos {
			counts[g.keyIndex(s, seq)]++
		}
	}
	out := make(map[string]int64)
	for i, n := range counts {
		if n > 0 {
			out[g.keys.key(uint64(i))] = n
		}
	}
	return out
}

// SplitID returns the id of split n: "datagen-<n>".
func SplitID(n int) string { return "datagen-" + strconv.Itoa(n) }

// ParseSplitID returns n of a split id "datagen-<n>".
func ParseSplitID(id string) (int, error) {
	rest, ok := strings.CutPrefix(id, "datagen-")
	if !ok {
		return 0, fmt.Errorf("datagen: split id %q: want datagen-<n>", id)
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 || strconv.Itoa(n) != rest {
		return 0, fmt.Errorf("datagen: split id %q: want datagen-<n> with n a non-negative integer", id)
	}
	return n, nil
}

var errSplitState = errors.New("datagen: corrupt split state (want a uvarint sequence number)")

// decodePosition decodes a split's state: the uvarint sequence number of
// its next record; nil means the start.
func decodePosition(state []byte) (int64, error) {
	if len(state) == 0 {
		return 0, nil
	}
	v, n := binary.Uvarint(state)
	if n <= 0 || n != len(state) || v > math.MaxInt64 {
		return 0, errSplitState
	}
	return int64(v), nil
}

func encodePosition(next int64) []byte { return binary.AppendUvarint(nil, uint64(next)) }

// Positions decodes the splits of a datagen source, as stored in a
// checkpoint, into the position (next sequence number) of each split index:
// the input of Expected.
func Positions(splits []sluice.Split) (map[int]int64, error) {
	out := make(map[int]int64, len(splits))
	for _, s := range splits {
		n, err := ParseSplitID(s.ID)
		if err != nil {
			return nil, err
		}
		pos, err := decodePosition(s.State)
		if err != nil {
			return nil, fmt.Errorf("split %s: %w", s.ID, err)
		}
		if _, dup := out[n]; dup {
			return nil, fmt.Errorf("datagen: split %s listed twice", s.ID)
		}
		out[n] = pos
	}
	return out, nil
}
