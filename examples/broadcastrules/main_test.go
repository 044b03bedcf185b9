package main

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sluicehq/sluice/connector/datagen"
)

// TestAlerts: the alerts are exactly the transactions above the threshold
// of the rule of their category in force at their event time, each once,
// at parallelism 1 and 3, although the rules reach the subtasks at
// different points of their input.
func TestAlerts(t *testing.T) {
	var want []string
	perRule := map[string]int{}
	for split := range txnGen.Splits {
		for seq := range txnGen.RecordsPerSplit {
			r := datagen.Record{Split: split, Seq: seq, Key: txnGen.KeyOf(split, seq), Value: txnGen.ValueOf(split, seq)}
			tx, ts := txnOf(r), txnTime(r, 0)
			var rule Rule
			for _, ru := range rules { // in order of From: the last one not after ts holds
				if ru.Category == tx.Category && ru.From <= ts {
					rule = ru
				}
			}
			if tx.Amount > rule.Threshold {
				want = append(want, line(Alert{tx.Account, tx.Category, tx.Amount, rule.ID, time.Unix(0, ts).UTC()}))
				perRule[rule.ID]++
			}
		}
	}
	slices.Sort(want)
	for _, r := range rules {
		if r.Threshold < 1023 && perRule[r.ID] == 0 {
			t.Fatalf("rule %s raises no alert in the expected output: the test would not notice it missing", r.ID)
		}
	}
	for _, par := range []int{1, 3} {
		out, err := run(context.Background(), t.TempDir(), par)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]string, len(out))
		for i, a := range out {
			got[i] = line(a)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("parallelism %d: %d alerts, want %d; first difference at %d", par, len(got), len(want), firstDiff(got, want))
		}
	}
}

func line(a Alert) string {
	return fmt.Sprintf("%s %s %s %d %s", a.At.Format(time.RFC3339Nano), a.Account, a.Category, a.Amount, a.Rule)
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
