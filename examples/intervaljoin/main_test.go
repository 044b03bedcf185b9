package main

import (
	"context"
	"testing"
	"time"

	"github.com/sluicehq/sluice/connector/datagen"
)

// records returns every record of a datagen config.
func records(cfg datagen.Config) []datagen.Record {
	var out []datagen.Record
	for s := range cfg.Splits {
		for seq := range cfg.RecordsPerSplit {
			out = append(out, datagen.Record{Split: s, Seq: seq, Key: cfg.KeyOf(s, seq), Value: cfg.ValueOf(s, seq)})
		}
	}
	return out
}

// TestMatches: the job finds exactly the order/payment pairs of the same
// customer with the payment 0 to 10 minutes after the order, each once,
// with the later of the two times as its event time.
func TestMatches(t *testing.T) {
	out, err := run(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	payments := records(config(2))
	for _, o := range records(config(1)) {
		for _, p := range payments {
			d := time.Duration(paymentTime(p, 0) - orderTime(o, 0))
			if o.Key == p.Key && d >= lower && d <= upper {
				want[id("o", o)+"/"+id("p", p)] = true
			}
		}
	}
	if len(want) == 0 {
		t.Fatal("the input has no matches: the test proves nothing")
	}
	seen := map[string]bool{}
	for _, m := range out {
		k := m.Order + "/" + m.Payment
		switch {
		case seen[k]:
			t.Errorf("%s matched twice", k)
		case !want[k]:
			t.Errorf("%s matched, but is not within the bounds (%s, %s)", k, m.Ordered, m.Paid)
		case !m.At.Equal(m.Paid) && !m.At.Equal(m.Ordered) || m.At.Before(m.Paid) || m.At.Before(m.Ordered):
			t.Errorf("%s: event time %s, want the later of %s and %s", k, m.At, m.Ordered, m.Paid)
		}
		seen[k] = true
	}
	if len(seen) != len(want) {
		t.Errorf("%d matches, want %d", len(seen), len(want))
	}
}
