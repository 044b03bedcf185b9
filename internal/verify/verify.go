// Package verify checks the committed output of Sluice's count job (package
// internal/countjob, `sluice demo`) for exactly-once delivery.
//
// The job's contract: for every input record it emits one output "key,n",
// where n is how many records of that key it has seen so far. So with
// expected[k] input records of key k, exactly-once holds if and only if
// the committed outputs of k are exactly 1, 2, …, expected[k], each once.
// A lost record leaves a number missing; a record processed twice (a
// replay whose first output was committed too) shows up as an extra
// occurrence, or, once the state is counted twice, as a number beyond
// expected[k]. Counts classifies the difference between the two multisets
// and ReadDir reads the committed output of a file sink.
package verify

import (
	"cmp"
	"fmt"
	"iter"
	"slices"
	"strconv"
	"strings"
)

// MaxExamples is the most examples a Report carries.
const MaxExamples = 10

// maxDupExamples keeps room for lost examples when a run both duplicates a
// lot (reported first, in output order) and loses some.
const maxDupExamples = MaxExamples / 2

// Report compares a job's committed outputs with its input.
//
// Committed = Produced - Lost + Duplicated always holds: Lost counts the
// expected outputs that are missing, Duplicated every committed output
// beyond the expected multiset, whatever the reason.
type Report struct {
	// Produced is the number of outputs an exactly-once run commits: one per
	// input record, the sum of the expected counts.
	Produced int64 `json:"produced"`
	// Committed is the number of outputs read.
	Committed int64 `json:"committed"`
	// Lost counts expected outputs (key k, n in 1..expected[k]) that were
	// not committed.
	Lost int64 `json:"lost"`
	// Duplicated counts committed outputs beyond the expected multiset:
	// second and later occurrences of an expected output, and every
	// Unexpected output.
	Duplicated int64 `json:"duplicated"`
	// Keys is the number of keys with at least one expected output.
	Keys int `json:"keys"`
	// Unexpected counts the outputs no input explains: a key with no input,
	// or n outside 1..expected[k]. They are a subset of Duplicated (n past
	// the expected count is what a record counted twice into state
	// produces), broken out because they also point at corrupted state or
	// at a verification against the wrong input.
	Unexpected int64 `json:"unexpected"`
	// Examples describes up to MaxExamples problems, for humans.
	Examples []string `json:"examples,omitempty"`
}

// ExactlyOnce reports whether every expected output was committed exactly
// once and nothing else was.
func (r Report) ExactlyOnce() bool { return r.Lost == 0 && r.Duplicated == 0 }

// keyState tracks which of the outputs 1..want of one key were seen.
type keyState struct {
	want int64
	seen []uint64 // bit n-1 set once output n was seen
	got  int64    // distinct outputs in 1..want seen
}

// Counts checks outputs (key, n) against expected, the number of input
// records per key (keys absent or with a count <= 0 expect no output). It
// needs one bit per expected output and reads outputs once, in one pass.
func Counts(expected map[string]int64, outputs iter.Seq2[string, int64]) Report {
	var r Report
	for _, n := range expected {
		if n > 0 {
			r.Produced += n
			r.Keys++
		}
	}
	state := make(map[string]*keyState)
	example := func(format string, args ...any) {
		if len(r.Examples) < maxDupExamples {
			r.Examples = append(r.Examples, fmt.Sprintf(format, args...))
		}
	}
	for k, n := range outputs {
		r.Committed++
		ks := state[k]
		if ks == nil {
			want := max(expected[k], 0)
			// Allocate the bitset lazily: keys that never show up cost
			// nothing but their line in the lost examples.
			ks = &keyState{want: want, seen: make([]uint64, (want+63)/64)}
			state[k] = ks
		}
		if n < 1 || n > ks.want {
			r.Unexpected++
			r.Duplicated++
			if ks.want == 0 {
				example("key %q: output n=%d, but the input has no record of this key", k, n)
			} else {
				example("key %q: output n=%d outside 1..%d (the input has %d records of this key)", k, n, ks.want, ks.want)
			}
			continue
		}
		w, b := (n-1)/64, uint64(1)<<((n-1)%64)
		if ks.seen[w]&b != 0 {
			r.Duplicated++
			example("key %q: output n=%d committed more than once", k, n)
			continue
		}
		ks.seen[w] |= b
		ks.got++
	}

	type lostKey struct {
		key  string
		lost int64
		ks   *keyState
	}
	var lost []lostKey
	for k, want := range expected {
		if want <= 0 {
			continue
		}
		ks := state[k]
		if ks == nil {
			ks = &keyState{want: want}
		}
		if d := want - ks.got; d > 0 {
			r.Lost += d
			lost = append(lost, lostKey{k, d, ks})
		}
	}
	// Sorted, so that the same run always gives the same examples.
	slices.SortFunc(lost, func(a, b lostKey) int { return cmp.Compare(a.key, b.key) })
	for _, l := range lost {
		if len(r.Examples) >= MaxExamples {
			break
		}
		lo, hi := firstGap(l.ks)
		r.Examples = append(r.Examples, fmt.Sprintf("key %q: outputs n=%s missing (%d of %d lost)", l.key, span(lo, hi), l.lost, l.ks.want))
	}
	return r
}

// firstGap returns the first run lo..hi of outputs of a key not seen; the
// key must have one. It scans linearly, which is fine for the few keys
// that make examples.
func firstGap(ks *keyState) (lo, hi int64) {
	seen := func(n int64) bool {
		w := (n - 1) / 64
		return w < int64(len(ks.seen)) && ks.seen[w]>>((n-1)%64)&1 == 1
	}
	n := int64(1)
	for n <= ks.want && seen(n) {
		n++
	}
	lo = n
	for n <= ks.want && !seen(n) {
		n++
	}
	return lo, n - 1
}

func span(lo, hi int64) string {
	if lo == hi {
		return strconv.FormatInt(lo, 10)
	}
	return strconv.FormatInt(lo, 10) + ".." + strconv.FormatInt(hi, 10)
}

// quote is strconv.Quote limited to a readable length, for examples built
// from malformed input.
func quote(b []byte) string {
	const limit = 80
	if len(b) > limit {
		return strconv.Quote(string(b[:limit])) + "…"
	}
	return strconv.Quote(strings.TrimSuffix(string(b), "\n"))
}
