// Package advise sizes Kafka topics for a job and checks a job's
// parallelism and timeouts against what it reads and writes
// (docs/design.md §8). Its functions are pure: the engine, `sluice advise`
// and `describe` gather the numbers and print or log the results.
//
// Two rules of thumb of running Flink on Kafka are behind it. A topic needs
// enough partitions for its busier side, with room to grow: partitions =
// ceil(max(producers, consumers) × redundancy), the redundancy between 1.5
// and 2. And a source reads its partitions evenly only when its
// parallelism is a multiple or a divisor of their count; beyond the count,
// subtasks sit idle.
package advise

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// The range of the redundancy factor of Partitions, and its default.
const (
	MinRedundancy     = 1.5
	MaxRedundancy     = 2.0
	DefaultRedundancy = MinRedundancy
)

// Sizing is the partition count Partitions advises, with what it came
// from.
type Sizing struct {
	// Producers and Consumers are the concurrent writers and readers of
	// the topic (the readers: a source's parallelism).
	Producers, Consumers int
	// Redundancy is the factor of headroom, MinRedundancy to
	// MaxRedundancy.
	Redundancy float64
	// Partitions is ceil(max(Producers, Consumers) × Redundancy).
	Partitions int
	// Even is the smallest count at or above Partitions that Consumers
	// divides: with it every consumer subtask reads as many partitions as
	// any other. Equal to Partitions when Consumers divides it already.
	Even int
}

// Partitions sizes a topic written by producers concurrent producers and
// read by consumers concurrent consumers (a source's parallelism):
// ceil(max(producers, consumers) × redundancy). The errors name the flags
// of `sluice advise partitions`.
func Partitions(producers, consumers int, redundancy float64) (Sizing, error) {
	var problems []string
	if producers < 1 {
		problems = append(problems, fmt.Sprintf("--producers: must be at least 1, got %d", producers))
	}
	if consumers < 1 {
		problems = append(problems, fmt.Sprintf("--consumers: must be at least 1, got %d", consumers))
	}
	if math.IsNaN(redundancy) || redundancy < MinRedundancy || redundancy > MaxRedundancy {
		problems = append(problems, fmt.Sprintf("--redundancy: must be between %v and %v, got %v", MinRedundancy, MaxRedundancy, redundancy))
	}
	if len(problems) > 0 {
		return Sizing{}, fmt.Errorf("%s", strings.Join(problems, "\n"))
	}
	s := Sizing{Producers: producers, Consumers: consumers, Redundancy: redundancy}
	// Rounded to 1e-9 first, so that 3 × 1.5 is 4.5 and 10 × 1.7 is 17,
	// whatever the binary fractions make of them.
	s.Partitions = int(math.Ceil(math.Round(float64(max(producers, consumers))*redundancy*1e9) / 1e9))
	s.Even = (s.Partitions + consumers - 1) / consumers * consumers
	return s, nil
}

// String prints the formula with its numbers and the result, and the even
// alternative when it differs:
//
//	partitions = ceil(max(producers, consumers) × redundancy)
//	           = ceil(max(4, 6) × 1.5) = 9
//	9 partitions over 6 consumer subtasks: 3 read 2 partitions, 3 read 1; 12, a multiple of 6, spreads them evenly.
func (s Sizing) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "partitions = ceil(max(producers, consumers) × redundancy)\n")
	fmt.Fprintf(&b, "           = ceil(max(%d, %d) × %s) = %d\n", s.Producers, s.Consumers, strconv.FormatFloat(s.Redundancy, 'f', -1, 64), s.Partitions)
	if s.Even == s.Partitions {
		fmt.Fprintf(&b, "%d partitions over %d consumer subtasks: %s each.\n", s.Partitions, s.Consumers, plural(s.Partitions/s.Consumers, "partition"))
		return b.String()
	}
	lo, hi := s.Partitions/s.Consumers, s.Partitions/s.Consumers+1
	nHi := s.Partitions % s.Consumers
	fmt.Fprintf(&b, "%d partitions over %d consumer subtasks: %d read %s, %d read %d; %d, a multiple of %d, spreads them evenly.\n",
		s.Partitions, s.Consumers, nHi, plural(hi, "partition"), s.Consumers-nHi, lo, s.Even, s.Consumers)
	return b.String()
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// Source is what the advisor knows of one source of a job.
type Source struct {
	// Name is the source's operator name.
	Name string
	// Parallelism is the source's number of subtasks.
	Parallelism int
	// Partitions is the number of partitions (Kafka) or splits the
	// source reads; 0 when unknown, which skips the source.
	Partitions int
	// Unit names what Partitions counts: "partitions" (default) or
	// "splits".
	Unit string
	// PerSubtask, when known, is how many partitions each subtask reads
	// (the source's actual assignment); otherwise an even spread is
	// assumed.
	PerSubtask []int
}

// Sink is what the advisor knows of one sink whose transactions the
// external system aborts after a timeout (the Kafka sink, exactly-once).
type Sink struct {
	// Name is the sink's operator name.
	Name string
	// TransactionTimeout is the sink's transaction timeout
	// (kafka.sink.transaction-timeout); 0 skips the sink.
	TransactionTimeout time.Duration
	// CommitRetry is how long the sink retries a commit
	// (kafka.sink.retry-timeout).
	CommitRetry time.Duration
}

// Job is what the advisor checks.
type Job struct {
	// Sources are the job's sources whose partition count is known.
	Sources []Source
	// Sinks are the job's transactional sinks.
	Sinks []Sink
	// CheckpointInterval (negative or zero: no periodic checkpoints),
	// CheckpointTimeout and MaxRestartDelay (the longest delay of the
	// restart strategy) are the job's own settings, defaults applied.
	CheckpointInterval, CheckpointTimeout, MaxRestartDelay time.Duration
}

// The kinds of Warning.
const (
	// KindUneven: a source's parallelism is neither a multiple nor a
	// divisor of its partition count.
	KindUneven = "uneven-partitions"
	// KindIdle: some of a source's subtasks read no partition.
	KindIdle = "idle-subtasks"
	// KindTransactionTimeout: a sink's transaction timeout does not
	// outlast a checkpoint, the commit retries and a restart.
	KindTransactionTimeout = "transaction-timeout"
)

// Warning is one piece of advice.
type Warning struct {
	// Kind is one of the Kind constants.
	Kind string
	// Operator names the source or sink.
	Operator string
	// Message says what is wrong, what it costs and what to change.
	Message string
}

// String returns the message.
func (w Warning) String() string { return w.Message }

// Check returns the warnings for j, sources first, in order.
func Check(j Job) []Warning {
	var out []Warning
	for _, s := range j.Sources {
		out = append(out, checkSource(s)...)
	}
	for _, s := range j.Sinks {
		if w, ok := checkSink(s, j); ok {
			out = append(out, w)
		}
	}
	return out
}

func checkSource(s Source) []Warning {
	n, p := s.Partitions, s.Parallelism
	if n <= 0 || p <= 0 {
		return nil
	}
	unit := s.Unit
	if unit == "" {
		unit = "partitions"
	}
	var out []Warning
	if p%n != 0 && n%p != 0 {
		lo, hi := n/p, (n+p-1)/p
		out = append(out, Warning{Kind: KindUneven, Operator: s.Name, Message: fmt.Sprintf(
			"source %q: parallelism %d is neither a multiple nor a divisor of its %d %s: subtasks read %d or %d each, and the busiest sets the pace; "+
				"use a parallelism of %s, or a multiple of %d", s.Name, p, n, unit, lo, hi, divisors(n), n)})
	}
	idle := p - n
	if s.PerSubtask != nil {
		idle = 0
		for _, c := range s.PerSubtask {
			if c == 0 {
				idle++
			}
		}
	}
	if idle > 0 {
		out = append(out, Warning{Kind: KindIdle, Operator: s.Name, Message: fmt.Sprintf(
			"source %q: %d of its %d subtasks will be idle, reading none of its %d %s; lower its parallelism to %d or add %s",
			s.Name, idle, p, n, unit, min(p, n), unit)})
	}
	return out
}

// divisors lists the divisors of n, "1, 2, 4".
func divisors(n int) string {
	var d []string
	for i := 1; i <= n; i++ {
		if n%i == 0 {
			d = append(d, strconv.Itoa(i))
		}
	}
	return strings.Join(d, ", ")
}

func checkSink(s Sink, j Job) (Warning, bool) {
	if s.TransactionTimeout <= 0 {
		return Warning{}, false
	}
	interval := max(j.CheckpointInterval, 0)
	need := interval + j.CheckpointTimeout + s.CommitRetry + j.MaxRestartDelay
	if s.TransactionTimeout > need {
		return Warning{}, false
	}
	return Warning{Kind: KindTransactionTimeout, Operator: s.Name, Message: fmt.Sprintf(
		"sink %q: transaction timeout %v does not exceed checkpoint.interval %v + checkpoint.timeout %v + commit retries %v + the longest restart delay %v = %v: "+
			"the broker may abort a pre-committed transaction before the job commits it, losing its records; "+
			"raise kafka.sink.transaction-timeout (and the broker's transaction.max.timeout.ms) above %v, or lower checkpoint.timeout or restart.max-backoff",
		s.Name, s.TransactionTimeout, interval, j.CheckpointTimeout, s.CommitRetry, j.MaxRestartDelay, need, need)}, true
}
