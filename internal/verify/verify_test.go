package verify

import (
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type out struct {
	k string
	n int64
}

func seq(outs ...out) iter.Seq2[string, int64] {
	return func(yield func(string, int64) bool) {
		for _, o := range outs {
			if !yield(o.k, o.n) {
				return
			}
		}
	}
}

// run emits 1..n for key k.
func run(k string, n int64) []out {
	var o []out
	for i := int64(1); i <= n; i++ {
		o = append(o, out{k, i})
	}
	return o
}

func cat(parts ...[]out) []out {
	var o []out
	for _, p := range parts {
		o = append(o, p...)
	}
	return o
}

func TestCounts(t *testing.T) {
	t.Parallel()
	expected := map[string]int64{"a": 3, "b": 2, "c": 100, "zero": 0}
	clean := cat(run("a", 3), run("b", 2), run("c", 100))
	for _, tc := range []struct {
		name     string
		outs     []out
		want     Report // without Examples
		examples []string
	}{
		{"clean", clean, Report{Produced: 105, Committed: 105, Keys: 3}, nil},
		{"clean in any order", cat(run("c", 100), []out{{"a", 3}, {"b", 1}, {"a", 1}, {"b", 2}, {"a", 2}}),
			Report{Produced: 105, Committed: 105, Keys: 3}, nil},
		{"lost", cat([]out{{"a", 1}, {"a", 3}}, run("c", 50)),
			Report{Produced: 105, Committed: 52, Lost: 53, Keys: 3},
			[]string{`key "a": outputs n=2 missing (1 of 3 lost)`, `key "b": outputs n=1..2 missing (2 of 2 lost)`, `key "c": outputs n=51..100 missing (50 of 100 lost)`}},
		{"duplicated", cat(clean, []out{{"a", 2}, {"c", 64}, {"c", 64}}),
			Report{Produced: 105, Committed: 108, Duplicated: 3, Keys: 3},
			[]string{`key "a": output n=2 committed more than once`, `key "c": output n=64 committed more than once`, `key "c": output n=64 committed more than once`}},
		// A replay whose state was counted twice: b continues past its count.
		{"counted twice", cat(clean, []out{{"b", 3}, {"b", 4}}),
			Report{Produced: 105, Committed: 107, Duplicated: 2, Unexpected: 2, Keys: 3},
			[]string{`key "b": output n=3 outside 1..2 (the input has 2 records of this key)`, `key "b": output n=4 outside 1..2 (the input has 2 records of this key)`}},
		{"unknown key and bad n", cat(clean, []out{{"x", 1}, {"zero", 1}, {"a", 0}, {"a", -1}}),
			Report{Produced: 105, Committed: 109, Duplicated: 4, Unexpected: 4, Keys: 3},
			[]string{`key "x": output n=1, but the input has no record of this key`, `key "zero": output n=1, but the input has no record of this key`,
				`key "a": output n=0 outside 1..3 (the input has 3 records of this key)`, `key "a": output n=-1 outside 1..3 (the input has 3 records of this key)`}},
		{"lost and duplicated", cat(run("a", 2), run("a", 2), run("b", 2), run("c", 99), []out{{"c", 99}}),
			Report{Produced: 105, Committed: 106, Lost: 2, Duplicated: 3, Keys: 3},
			[]string{`key "a": output n=1 committed more than once`, `key "a": output n=2 committed more than once`, `key "c": output n=99 committed more than once`,
				`key "a": outputs n=3 missing (1 of 3 lost)`, `key "c": outputs n=100 missing (1 of 100 lost)`}},
		{"nothing committed", nil, Report{Produced: 105, Lost: 105, Keys: 3},
			[]string{`key "a": outputs n=1..3 missing (3 of 3 lost)`, `key "b": outputs n=1..2 missing (2 of 2 lost)`, `key "c": outputs n=1..100 missing (100 of 100 lost)`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Counts(expected, seq(tc.outs...))
			examples := got.Examples
			got.Examples = nil
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("report %+v, want %+v", got, tc.want)
			}
			if fmt.Sprintf("%q", examples) != fmt.Sprintf("%q", tc.examples) {
				t.Errorf("examples\n%q\nwant\n%q", examples, tc.examples)
			}
			if got.Committed != got.Produced-got.Lost+got.Duplicated {
				t.Errorf("committed %d != produced %d - lost %d + duplicated %d", got.Committed, got.Produced, got.Lost, got.Duplicated)
			}
			if got.ExactlyOnce() != (got.Lost == 0 && got.Duplicated == 0) {
				t.Error("ExactlyOnce disagrees with the counts")
			}
		})
	}
}

func TestCountsExamplesBounded(t *testing.T) {
	t.Parallel()
	expected := map[string]int64{}
	var outs []out
	for i := range 100 {
		k := fmt.Sprintf("k%03d", i)
		expected[k] = 2
		outs = append(outs, out{k, 1}, out{k, 1}) // one duplicated, one lost per key
	}
	r := Counts(expected, seq(outs...))
	if r.Lost != 100 || r.Duplicated != 100 || len(r.Examples) != MaxExamples {
		t.Fatalf("lost %d duplicated %d with %d examples", r.Lost, r.Duplicated, len(r.Examples))
	}
	// Both kinds of problem are shown, lost ones in key order.
	if !strings.Contains(r.Examples[0], "more than once") || r.Examples[MaxExamples-1] != `key "k004": outputs n=2 missing (1 of 2 lost)` {
		t.Errorf("examples %q", r.Examples)
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func collect(s iter.Seq2[string, int64]) []string {
	var got []string
	for k, n := range s {
		got = append(got, fmt.Sprintf("%s=%d", k, n))
	}
	return got
}

func TestReadDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write(t, filepath.Join(dir, "part-sink-0-r1-000000"), "a,1\nb,1\n")
	write(t, filepath.Join(dir, "part-sink-1-r1-000000"), "a,2\nkey,with,commas,7\n")
	write(t, filepath.Join(dir, "part-sink-1-r1-000001"), "") // an empty committed file
	write(t, filepath.Join(dir, "sub", "part-x"), "c,-3\n")
	// Not output: in-progress and pre-committed files, hidden directories,
	// other files.
	write(t, filepath.Join(dir, ".part-sink-0-r2-000000.inprogress.r2"), "a,3\n")
	write(t, filepath.Join(dir, ".hidden", "part-y"), "a,4\n")
	write(t, filepath.Join(dir, "_SUCCESS"), "junk")
	s, err := ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := "[a=1 b=1 a=2 key,with,commas=7 c=-3]"
	if got := fmt.Sprint(collect(s)); got != want {
		t.Errorf("outputs %s, want %s", got, want)
	}
	// The sequence can be read again, and stopped early.
	for range s {
		break
	}
	if got := fmt.Sprint(collect(s)); got != want {
		t.Errorf("second read %s, want %s", got, want)
	}
	r := Counts(map[string]int64{"a": 2, "b": 1, "key,with,commas": 7}, s)
	if r.Lost != 6 || r.Duplicated != 1 || r.Committed != 5 {
		t.Errorf("report %+v", r)
	}
}

func TestReadDirErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		content string
		want    string
	}{
		{"a,1\nb,x\n", `part-0:2: malformed line "b,x": want key,n`},
		{"a,1\n\n", `part-0:2: malformed line ""`},
		{"a1\n", `part-0:1: malformed line "a1"`},
		{",1\n", `part-0:1: malformed line ",1"`},
		{"a,\n", `part-0:1: malformed line "a,"`},
		{"a,-\n", `part-0:1: malformed line "a,-"`},
		{"a,1\r\n", `part-0:1: malformed line "a,1\r"`},
		{"a,99999999999999999999\n", `part-0:1: malformed line`},
		{"a,9223372036854775808\n", `part-0:1: malformed line`},
		{"a,1\nb,2", `part-0:2: last line "b,2" has no newline: the file is torn`},
		{strings.Repeat("x", maxLine+10) + ",1\n", "part-0:1: line longer than"},
	} {
		dir := t.TempDir()
		write(t, filepath.Join(dir, "part-0"), tc.content)
		_, err := ReadDir(dir)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%.30q: error %v, want one containing %q", tc.content, err, tc.want)
		}
	}
	if _, err := ReadDir(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("ReadDir of a missing directory succeeded")
	}
}

func TestParseLineLimits(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in string
		n  int64
	}{
		{"k,9223372036854775807", 1<<63 - 1},
		{"k,-9223372036854775808", -1 << 63},
		{"k,0", 0},
	} {
		_, n, ok := parseLine([]byte(tc.in))
		if !ok || n != tc.n {
			t.Errorf("parseLine(%q) = %d, %v", tc.in, n, ok)
		}
	}
}

// TestReadDirChangedUnderneath: committed files are immutable; if one
// changes between ReadDir's check and the count, the count must not go on
// with other data.
func TestReadDirChangedUnderneath(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "part-0")
	write(t, path, "a,1\n")
	s, err := ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	write(t, path, "a,1\na,2\n")
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "changed") {
			t.Errorf("recovered %v, want a panic saying the output changed", r)
		}
	}()
	collect(s)
}
