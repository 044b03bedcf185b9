package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestAdvisePartitionsCommand(t *testing.T) {
	t.Parallel()
	var out, errb bytes.Buffer
	if code := run([]string{"advise", "partitions", "--producers", "4", "--consumers", "6"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	want := "partitions = ceil(max(producers, consumers) × redundancy)\n" +
		"           = ceil(max(4, 6) × 1.5) = 9\n" +
		"9 partitions over 6 consumer subtasks: 3 read 2 partitions, 3 read 1; 12, a multiple of 6, spreads them evenly.\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
	out.Reset()
	if code := run([]string{"advise", "partitions", "--producers", "8", "--consumers", "4", "--redundancy", "2"}, &out, &errb); code != 0 ||
		!strings.Contains(out.String(), "= ceil(max(8, 4) × 2) = 16\n16 partitions over 4 consumer subtasks: 4 partitions each.\n") {
		t.Errorf("exit %d:\n%s", code, out.String())
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"advise", "partitions", "--consumers", "2"}, "--producers: must be at least 1, got 0"},
		{[]string{"advise", "partitions", "--producers", "2", "--consumers", "2", "--redundancy", "3"}, "--redundancy: must be between 1.5 and 2, got 3"},
		{[]string{"advise", "topics"}, "Usage: sluice advise partitions"},
		{[]string{"advise", "partitions", "--producers", "x"}, `invalid value "x" for flag -producers`},
	} {
		var out, errb bytes.Buffer
		if code := run(tc.args, &out, &errb); code != 2 || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q", tc.args, code, errb.String())
		}
	}
}
