package queries

import (
	"context"
	"slices"
	"testing"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/nexmark"
)

// runQuery runs query name over splits of hand-built events at
// parallelism par and returns its rows, sorted.
func runQuery(t *testing.T, name string, par int, splits [][]nexmark.Event) []string {
	t.Helper()
	return runQueryWith(t, name, par, splits, &Out{Collect: true, FilesDir: t.TempDir()})
}

// runQueryWith is runQuery with the given output (Collect must be set).
func runQueryWith(t *testing.T, name string, par int, splits [][]nexmark.Event, out *Out) []string {
	t.Helper()
	q, ok := Lookup(name)
	if !ok {
		t.Fatalf("query %s not registered", name)
	}
	env := sluice.New(sluice.Config{JobName: t.Name(), Parallelism: par, CheckpointDir: t.TempDir()})
	q.Build(env, nexmark.FromEvents(env, splits), out)
	if _, err := env.Execute(context.Background()); err != nil {
		t.Fatal(err)
	}
	if out.Count() != int64(len(out.Rows())) {
		t.Fatalf("count %d, rows %d", out.Count(), len(out.Rows()))
	}
	return out.Rows()
}

const t0 = nexmark.DefaultBaseTime

func person(id, ms int64) nexmark.Event {
	return nexmark.Event{Kind: nexmark.KindPerson, Person: nexmark.Person{ID: id, Name: "Kate Smith", State: "OR", City: "Bend", DateTime: t0 + ms}}
}

func auction(id, seller, ms int64) nexmark.Event {
	return nexmark.Event{Kind: nexmark.KindAuction, Auction: nexmark.Auction{ID: id, Seller: seller, Category: 10, DateTime: t0 + ms, Expires: t0 + ms + 5}}
}

func bid(auction, bidder, price, ms int64) nexmark.Event {
	return nexmark.Event{Kind: nexmark.KindBid, Bid: nexmark.Bid{Auction: auction, Bidder: bidder, Price: price, Channel: "Apple",
		URL: "https://www.nexmark.com/apple/item.htm?query=1", DateTime: t0 + ms, Extra: "xyz"}}
}

// smallInput has two splits mixing persons, auctions and bids.
func smallInput() [][]nexmark.Event {
	return [][]nexmark.Event{
		{person(1000, 0), auction(1000, 1000, 1), bid(1000, 1000, 1000, 2), bid(1230, 1001, 1001, 3)},
		{auction(1230, 1000, 0), bid(1230, 1002, 555, 1), bid(246, 1003, 7, 4), person(1001, 5)},
	}
}

func TestQ0(t *testing.T) {
	t.Parallel()
	got := runQuery(t, "q0", 2, smallInput())
	want := []string{
		"1000,1000,1000,Apple,https://www.nexmark.com/apple/item.htm?query=1,1767225600002,xyz",
		"1230,1001,1001,Apple,https://www.nexmark.com/apple/item.htm?query=1,1767225600003,xyz",
		"1230,1002,555,Apple,https://www.nexmark.com/apple/item.htm?query=1,1767225600001,xyz",
		"246,1003,7,Apple,https://www.nexmark.com/apple/item.htm?query=1,1767225600004,xyz",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("q0 rows\n%q\nwant\n%q", got, want)
	}
}

func TestQ1(t *testing.T) {
	t.Parallel()
	got := runQuery(t, "q1", 2, smallInput())
	// 1000·0.908 = 908; 1001·0.908 = 908.908 → 909; 555·0.908 = 503.94 → 504; 7·0.908 = 6.356 → 6.
	want := []string{
		"1000,1000,908,Apple,https://www.nexmark.com/apple/item.htm?query=1,1767225600002,xyz",
		"1230,1001,909,Apple,https://www.nexmark.com/apple/item.htm?query=1,1767225600003,xyz",
		"1230,1002,504,Apple,https://www.nexmark.com/apple/item.htm?query=1,1767225600001,xyz",
		"246,1003,6,Apple,https://www.nexmark.com/apple/item.htm?query=1,1767225600004,xyz",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("q1 rows\n%q\nwant\n%q", got, want)
	}
}

func TestQ2(t *testing.T) {
	t.Parallel()
	got := runQuery(t, "q2", 2, smallInput())
	// 1230 and 246 are multiples of 123, 1000 is not.
	want := []string{"1230,1001", "1230,555", "246,7"}
	if !slices.Equal(got, want) {
		t.Fatalf("q2 rows %q, want %q", got, want)
	}
}

// TestQ0to2Counts: on generated input the counts are what plain logic over
// the same events gives.
func TestQ0to2Counts(t *testing.T) {
	t.Parallel()
	cfg := nexmark.DefaultConfig()
	cfg.Events, cfg.Generators = 20_000, 2
	var bids, sel int64
	var ev nexmark.Event
	for g := range cfg.Generators {
		gen := nexmark.NewGenerator(cfg, g)
		for gen.Next(&ev) {
			if ev.Kind == nexmark.KindBid {
				bids++
				if ev.Bid.Auction%123 == 0 {
					sel++
				}
			}
		}
	}
	for name, want := range map[string]int64{"q0": bids, "q1": bids, "q2": sel} {
		q, _ := Lookup(name)
		env := sluice.New(sluice.Config{JobName: name, Parallelism: 2, CheckpointDir: t.TempDir()})
		out := &Out{}
		q.Build(env, nexmark.Events(env, cfg), out)
		if _, err := env.Execute(context.Background()); err != nil {
			t.Fatal(err)
		}
		if out.Count() != want {
			t.Errorf("%s: %d rows, want %d", name, out.Count(), want)
		}
	}
	if sel == 0 {
		t.Fatal("no bid selected by q2: the input is too small to test it")
	}
}
