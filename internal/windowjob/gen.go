// Package windowjob is the event-time job behind `sluice demo --pipeline
// windows` and its exactly-once property tests: a deterministic stream of
// orders, out of order by up to Disorder → key by account → revenue per
// account in 1-minute tumbling event-time windows with AllowedLateness →
// sink, with the records later than the allowed lateness on the window
// operator's late side output, committed by the same sink.
//
// Its contract: the committed output is exactly the Results and the late
// Orders that Expected computes from the configuration alone, each once,
// whatever failures and restores happened. That only holds because the
// input is built so that which records are on time, which are late but
// within the allowed lateness, and which are later than that is the same
// in every run (see Source).
package windowjob

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
)

// The event-time layout of the input, fixed so that the expected results
// are a pure function of Config.
const (
	// Size is the window size: 1-minute tumbling windows.
	Size = time.Minute
	// AllowedLateness is how long a fired window keeps its state: a record
	// arriving within it fires the window again with the updated result.
	AllowedLateness = 5 * time.Second
	// Disorder bounds how far an on-time record may be behind the largest
	// timestamp before it; it is the watermark's out-of-orderness bound.
	Disorder = 2 * time.Second
	// Step is how far event time advances per record: record seq's base
	// time is Epoch + seq·Step.
	Step = 50 * time.Millisecond
	// TooLateBehind is how far behind its base time a record later than
	// the allowed lateness is: ten windows, far more than Disorder +
	// AllowedLateness, so that it is late in every run.
	TooLateBehind = 10 * time.Minute
	// TooLateEvery: about one record in TooLateEvery is later than the
	// allowed lateness.
	TooLateEvery = 200
	// InLatenessEvery: about one in InLatenessEvery of the records that can
	// be late within the allowed lateness (those a few seconds after a
	// window's end, see Config.Kind) is.
	InLatenessEvery = 8
	// margin keeps the late records clear of the boundaries of lateness.
	margin = int64(100 * time.Millisecond)
)

// Epoch is the base time of record 0: 2026-12-01T00:00:00Z, in nanoseconds
// since the Unix epoch (a multiple of Size, so windows start at whole
// minutes).
var Epoch = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).UnixNano()

// Kind is how late a record is.
type Kind uint8

// The kinds of records.
const (
	// OnTime records are at most Disorder behind the largest timestamp
	// before them: the watermark never passes them.
	OnTime Kind = iota
	// InLateness records belong to a window that has fired but whose
	// allowed lateness has not passed: each fires its window again.
	InLateness
	// TooLate records belong to a window whose allowed lateness has
	// passed: they go to the late side output.
	TooLate
)

// String names the kind.
func (k Kind) String() string {
	switch k {
	case OnTime:
		return "on-time"
	case InLateness:
		return "in-lateness"
	case TooLate:
		return "too-late"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Order is one input record: an account's order of Amount cents at event
// time TS (nanoseconds since the Unix epoch).
type Order struct {
	Seq    int64
	Key    string
	Amount int64
	TS     int64
}

// Defaults and limits of Config.
const (
	DefaultKeys      = 1000
	DefaultBatchSize = 256
	MaxKeys          = 1_000_000
)

// Config configures the input. The zero value of a field means its
// default; Records is required.
type Config struct {
	// Records is how many orders there are in all (one split). The input
	// is bounded: its end emits the final watermark, which fires every
	// window, so the complete set of results is known.
	Records int64
	// RatePerSecond paces the source; 0 means as fast as the job takes
	// records.
	RatePerSecond float64
	// Keys is the number of accounts, "acct-000000" …. Default 1000.
	Keys int
	// Seed selects the orders.
	Seed uint64
	// BatchSize is the most records one Poll emits. Default 256.
	BatchSize int
}

func (c Config) withDefaults() Config {
	if c.Keys == 0 {
		c.Keys = DefaultKeys
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	return c
}

// Validate reports every field out of range, each prefixed with its key.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.Records < 1 {
		errs = append(errs, fmt.Errorf("windowjob.records: must be >= 1 (got %d)", c.Records))
	}
	if math.IsNaN(c.RatePerSecond) || math.IsInf(c.RatePerSecond, 0) || c.RatePerSecond < 0 {
		errs = append(errs, fmt.Errorf("windowjob.rate-per-second: must be a finite number >= 0, 0 meaning unbounded (got %v)", c.RatePerSecond))
	}
	if c.Keys < 1 || c.Keys > MaxKeys {
		errs = append(errs, fmt.Errorf("windowjob.keys: must be in [1, %d] (got %d)", MaxKeys, c.Keys))
	}
	if c.BatchSize < 1 || c.BatchSize > 1<<16 {
		errs = append(errs, fmt.Errorf("windowjob.batch-size: must be in [1, %d] (got %d)", 1<<16, c.BatchSize))
	}
	return errors.Join(errs...)
}

// splitmix64 (as package datagen): record seq's draws are a pure function
// of (Seed, seq), computable without the records before it.
const gamma = 0x9e3779b97f4a7c15

func mix(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// BaseTime returns the base event time of record seq: the least timestamp
// an on-time record at seq or after may have.
func BaseTime(seq int64) int64 { return Epoch + seq*int64(Step) }

// windowOf returns the start of the window of ts.
func windowOf(ts int64) int64 {
	size := int64(Size)
	r := ts % size
	if r < 0 {
		r += size
	}
	return ts - r
}

// record is everything about record seq; gen holds the key table.
type record struct {
	key    int
	amount int64
	ts     int64
	kind   Kind
	// gate is the watermark that must have been emitted before the record
	// may be: NoGate for on-time records.
	gate int64
}

// NoGate is the gate of an on-time record.
const NoGate = math.MinInt64

// at computes record seq of c (with defaults).
func (c Config) at(seq int64) record {
	base := mix(mix(c.Seed) + gamma)
	z := mix(base + uint64(seq+1)*gamma)
	z2 := mix(z ^ 0x5851f42d4c957f2d)
	z3 := mix(z2 ^ 0x14057b7ef767814f)
	r := record{
		key:    int(((z >> 32) * uint64(c.Keys)) >> 32),
		amount: 1 + int64(z&1023),
		gate:   NoGate,
	}
	bt := BaseTime(seq)
	jitterMS := int64(Disorder / time.Millisecond)
	r.ts = bt + int64(z2%uint64(jitterMS+1))*int64(time.Millisecond)
	switch {
	case z3%TooLateEvery == 0:
		// Ten windows back: its window's allowed lateness passed long ago.
		r.kind = TooLate
		r.ts = bt - int64(TooLateBehind) + int64(z2%uint64(Size))
		w := windowOf(r.ts)
		r.gate = w + int64(Size) - 1 + int64(AllowedLateness) + 1
	case (z3/TooLateEvery)%InLatenessEvery == 0:
		// The latest window that must have fired before this record: its
		// end is at most the watermark the records before it reach for
		// sure (base of seq-1, less the disorder, less a margin)...
		x := bt - int64(Step) - int64(Disorder) - 1 - margin
		end := windowOf(x + 1)
		// ...and it is still within the allowed lateness, whatever the
		// watermark: the watermark stays below the base of seq.
		if end-1 >= bt-int64(AllowedLateness)+margin {
			r.kind = InLateness
			r.ts = end - 1 - int64(z2%uint64(30*time.Second))
			r.gate = end // the watermark has passed end-1: the window fired
		}
	}
	return r
}

// Kind returns the kind of record seq.
func (c Config) Kind(seq int64) Kind { return c.withDefaults().at(seq).kind }

// keyName returns the name of account i: "acct-" and i, zero-padded to
// six digits.
func keyName(i int) string {
	s := strconv.Itoa(i)
	for len(s) < 6 {
		s = "0" + s
	}
	return "acct-" + s
}

// keyTable returns the names of keys accounts.
func keyTable(keys int) []string {
	t := make([]string, keys)
	for i := range t {
		t[i] = keyName(i)
	}
	return t
}

// Order returns record seq, as the source emits it.
func (c Config) Order(seq int64) Order {
	c = c.withDefaults()
	r := c.at(seq)
	return Order{Seq: seq, Key: keyName(r.key), Amount: r.amount, TS: r.ts}
}

// Result is one window firing: the revenue and number of orders of Key in
// the window [Start, Start+Size) so far. A window fires once when the
// watermark passes its end, with every on-time order, and once more for
// each order within the allowed lateness, so (Key, Start, Count)
// identifies a firing.
type Result struct {
	Key     string
	Start   int64
	Count   int64
	Revenue int64
}

// Expected returns every window firing and every late order of the input
// of c, each once: what the job must commit, whatever failed. Results are
// sorted by (Start, Key, Count), late orders by Seq.
func Expected(c Config) ([]Result, []Order, error) {
	if err := c.Validate(); err != nil {
		return nil, nil, err
	}
	c = c.withDefaults()
	keys := keyTable(c.Keys)
	type wk struct {
		start int64
		key   int
	}
	type acc struct{ n, sum int64 }
	onTime := map[wk]acc{}
	updates := map[wk][]int64{}
	var late []Order
	for seq := range c.Records {
		r := c.at(seq)
		k := wk{windowOf(r.ts), r.key}
		switch r.kind {
		case OnTime:
			a := onTime[k]
			onTime[k] = acc{a.n + 1, a.sum + r.amount}
		case InLateness:
			updates[k] = append(updates[k], r.amount)
		case TooLate:
			late = append(late, Order{Seq: seq, Key: keys[r.key], Amount: r.amount, TS: r.ts})
		}
	}
	var out []Result
	for k, a := range onTime {
		out = append(out, Result{Key: keys[k.key], Start: k.start, Count: a.n, Revenue: a.sum})
	}
	for k, us := range updates {
		a := onTime[k]
		for _, u := range us {
			a.n, a.sum = a.n+1, a.sum+u
			out = append(out, Result{Key: keys[k.key], Start: k.start, Count: a.n, Revenue: a.sum})
		}
	}
	slices.SortFunc(out, compareResults)
	return out, late, nil
}

func compareResults(a, b Result) int {
	switch {
	case a.Start != b.Start:
		return cmpInt(a.Start, b.Start)
	case a.Key != b.Key:
		if a.Key < b.Key {
			return -1
		}
		return 1
	}
	return cmpInt(a.Count, b.Count)
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
