package verify

import (
	"fmt"
	"iter"
)

// OverlapReport compares the committed output of a green deployment of a
// job with the blue one's it is to replace (docs/upgrades.md): green was
// restored from a savepoint of blue and reads the same input, so for every
// key green's outputs must be blue's from the savepoint on, in the same
// order, for as long as both have output.
//
// Green's outputs of a key are aligned with blue's at the first blue output
// of that key equal to green's first one, so the job's outputs of a key must
// not repeat a value (the count job's n, a sequence number, a running total
// of positive amounts). Both topics hold only committed records, read in
// offset order; a key's records must stay in one partition of each topic.
type OverlapReport struct {
	// Keys is the number of keys green has output for.
	Keys int `json:"keys"`
	// BlueOnlyKeys is the number of keys only blue has output for: keys
	// whose input all came before the savepoint, or output green lost
	// (which only a check of green against the input, such as Counts,
	// finds).
	BlueOnlyKeys int `json:"blue_only_keys"`
	// Compared counts green's outputs equal to blue's at their aligned
	// position: the overlap.
	Compared int64 `json:"compared"`
	// Mismatched counts green's outputs that differ from blue's at their
	// aligned position: a different result, or a record lost or doubled by
	// one of the two.
	Mismatched int64 `json:"mismatched"`
	// Unaligned counts green's outputs of keys whose first green output blue
	// does not have (yet): blue is behind, or green's output is wrong from
	// its start.
	Unaligned int64 `json:"unaligned"`
	// GreenAhead counts green's outputs past the end of blue's for their
	// key: blue is behind.
	GreenAhead int64 `json:"green_ahead"`
	// BlueAhead counts blue's outputs past the end of green's for their key
	// (of the keys green has output for): green is behind, or lost the end.
	BlueAhead int64 `json:"blue_ahead"`
	// Examples describes up to MaxExamples differences, for humans.
	Examples []string `json:"examples,omitempty"`
}

// Agree reports whether green's output agrees with blue's over the overlap:
// nothing mismatched or unaligned. With complete, it also requires both to
// end at the same output for every key green has output for, as they do
// once both have processed the same input to its end.
func (r OverlapReport) Agree(complete bool) bool {
	if r.Mismatched > 0 || r.Unaligned > 0 {
		return false
	}
	return !complete || (r.GreenAhead == 0 && r.BlueAhead == 0)
}

// Overlap compares green's outputs (key, value) with blue's, each sequence
// in the order its topic holds them. It keeps blue's outputs in memory.
func Overlap(blue, green iter.Seq2[string, string]) OverlapReport {
	var r OverlapReport
	blues := map[string][]string{}
	for k, v := range blue {
		blues[k] = append(blues[k], v)
	}
	example := func(format string, args ...any) {
		if len(r.Examples) < MaxExamples {
			r.Examples = append(r.Examples, fmt.Sprintf(format, args...))
		}
	}
	// pos is the index in blues[k] of green's next output of k; -1 for a
	// key that could not be aligned.
	pos := map[string]int{}
	for k, v := range green {
		b := blues[k]
		i, seen := pos[k]
		if !seen {
			r.Keys++
			i = -1
			for j, bv := range b {
				if bv == v {
					i = j
					break
				}
			}
			if i < 0 {
				example("key %q: green's first output %q is not among blue's %d outputs of the key", k, v, len(b))
			}
		}
		switch {
		case i < 0:
			r.Unaligned++
		case i >= len(b):
			r.GreenAhead++
			i++
		case b[i] == v:
			r.Compared++
			i++
		default:
			r.Mismatched++
			example("key %q: green's output %q where blue's is %q (blue's output %d of the key)", k, v, b[i], i+1)
			i++
		}
		pos[k] = i
	}
	for k, b := range blues {
		i, ok := pos[k]
		switch {
		case !ok:
			r.BlueOnlyKeys++
		case i >= 0 && i < len(b):
			r.BlueAhead += int64(len(b) - i)
		}
	}
	return r
}
