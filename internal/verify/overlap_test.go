package verify

import (
	"iter"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// kvs turns "a:1 a:2 b:1" into a sequence of outputs.
func kvs(s string) iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		for _, f := range strings.Fields(s) {
			k, v, _ := strings.Cut(f, ":")
			if !yield(k, v) {
				return
			}
		}
	}
}

// counts is "k:from k:from+1 … k:to".
func counts(k string, from, to int) string {
	var b strings.Builder
	for i := from; i <= to; i++ {
		b.WriteString(" " + k + ":" + strconv.Itoa(i))
	}
	return b.String()
}

func TestOverlap(t *testing.T) {
	// Blue counted a to 5, b to 3, c to 2 (c had no input after the
	// savepoint); outputs of different keys interleave.
	blue := "a:1 b:1 a:2 c:1 a:3 b:2 c:2 a:4 b:3 a:5"
	for _, tc := range []struct {
		name                 string
		green                string
		want                 OverlapReport
		agree, agreeComplete bool
	}{
		{name: "suffix", green: "a:3 b:2 a:4 a:5 b:3",
			want:  OverlapReport{Keys: 2, BlueOnlyKeys: 1, Compared: 5},
			agree: true, agreeComplete: true},
		{name: "green behind", green: "a:3 b:2 a:4",
			want:  OverlapReport{Keys: 2, BlueOnlyKeys: 1, Compared: 3, BlueAhead: 2},
			agree: true},
		{name: "blue behind", green: "a:3 a:4 a:5 a:6 a:7 b:2 b:3",
			want:  OverlapReport{Keys: 2, BlueOnlyKeys: 1, Compared: 5, GreenAhead: 2},
			agree: true},
		{name: "green lost a record", green: "a:3 a:5 b:2 b:3",
			want: OverlapReport{Keys: 2, BlueOnlyKeys: 1, Compared: 3, Mismatched: 1, BlueAhead: 1}},
		{name: "green doubled a record", green: "a:3 a:3 a:4 a:5 b:2 b:3",
			want: OverlapReport{Keys: 2, BlueOnlyKeys: 1, Compared: 3, Mismatched: 2, GreenAhead: 1}},
		{name: "green's output wrong from its start", green: "a:9 a:10 b:2 b:3",
			want: OverlapReport{Keys: 2, BlueOnlyKeys: 1, Compared: 2, Unaligned: 2}},
		{name: "green restored without its state", green: "a:1 a:2 b:1",
			// Aligned at blue's first outputs: only the complete
			// comparison, once both caught up, tells it from a green
			// that is behind.
			want:  OverlapReport{Keys: 2, BlueOnlyKeys: 1, Compared: 3, BlueAhead: 5},
			agree: true},
		{name: "green has a key blue has not", green: "a:3 a:4 a:5 b:2 b:3 d:1",
			want: OverlapReport{Keys: 3, BlueOnlyKeys: 1, Compared: 5, Unaligned: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Overlap(kvs(blue), kvs(tc.green))
			ex := got.Examples
			got.Examples = nil
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Overlap = %+v, want %+v", got, tc.want)
			}
			if got.Agree(false) != tc.agree || got.Agree(true) != tc.agreeComplete {
				t.Errorf("Agree(false), Agree(true) = %v, %v; want %v, %v", got.Agree(false), got.Agree(true), tc.agree, tc.agreeComplete)
			}
			if (got.Mismatched > 0 || got.Unaligned > 0) && len(ex) == 0 {
				t.Errorf("no examples for a disagreement")
			}
		})
	}
}

func TestOverlapExamplesBounded(t *testing.T) {
	var blue, green strings.Builder
	for k := range 50 {
		key := "k" + strconv.Itoa(k)
		blue.WriteString(counts(key, 1, 10))
		green.WriteString(counts(key, 100, 101))
	}
	r := Overlap(kvs(blue.String()), kvs(green.String()))
	if r.Unaligned != 100 || len(r.Examples) != MaxExamples {
		t.Fatalf("unaligned %d, %d examples; want 100, %d", r.Unaligned, len(r.Examples), MaxExamples)
	}
}
