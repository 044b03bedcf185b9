package nexmark

import (
	"fmt"
	"hash/fnv"
	"math"
	"runtime"
	"slices"
	"syscall"
	"testing"
)

// stats are the measured properties of a generated stream.
type stats struct {
	persons, auctions, bids                  int64
	hotAuction, hotBidder, hotSeller, future int64
	category10, westStates, hotChannel       int64
	personBytes, auctionBytes, bidBytes      int64
	auctionLen                               int64
	prices                                   []int64
	decreasing                               int // DateTime going backwards within a generator
}

func measure(cfg GeneratorConfig) *stats {
	s := &stats{}
	var ev Event
	for g := range cfg.Generators {
		gen := NewGenerator(cfg, g)
		last := int64(math.MinInt64)
		for gen.Next(&ev) {
			id := gen.first + gen.n - 1
			if t := ev.DateTime(); t < last {
				s.decreasing++
			} else {
				last = t
			}
			switch ev.Kind {
			case KindPerson:
				s.persons++
				s.personBytes += int64(Size(&ev))
				switch ev.Person.State {
				case "OR", "ID", "CA":
					s.westStates++
				}
			case KindAuction:
				a := &ev.Auction
				s.auctions++
				s.auctionBytes += int64(Size(&ev))
				if a.Seller == lastPerson(id)/100*100+1000 {
					s.hotSeller++
				}
				if a.Category == 10 {
					s.category10++
				}
				s.auctionLen += a.Expires - a.DateTime
			default:
				b := &ev.Bid
				s.bids++
				s.bidBytes += int64(Size(&ev))
				last := lastAuction(id)
				if b.Auction == last/100*100+1000 {
					s.hotAuction++
				}
				if b.Auction-1000 > last {
					s.future++
				}
				if b.Bidder == lastPerson(id)/100*100+1+1000 {
					s.hotBidder++
				}
				if b.URL == hotURLs[0] || b.URL == hotURLs[1] || b.URL == hotURLs[2] || b.URL == hotURLs[3] {
					s.hotChannel++
				}
				s.prices = append(s.prices, b.Price)
			}
		}
	}
	slices.Sort(s.prices)
	return s
}

// TestComparisonProportions checks the stream's measured properties on 1M
// events from 2 generators against the comparison profile's.
func TestComparisonProportions(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.Events, cfg.Generators = 1_000_000, 2
	if raceEnabled {
		cfg.Events = 200_000 // single-threaded: nothing for the race detector
	}
	s := measure(cfg)
	if n := cfg.Events / 50; s.persons != n || s.auctions != 3*n || s.bids != 46*n {
		t.Errorf("persons/auctions/bids %d/%d/%d, want 1:3:46 of %d", s.persons, s.auctions, s.bids, cfg.Events)
	}
	share := func(n, of int64) float64 { return float64(n) / float64(of) }
	for _, c := range []struct {
		name      string
		got, want float64
		tol       float64
	}{
		{"hot auction share of bids", share(s.hotAuction, s.bids), 0.504, 0.005},
		{"hot bidder share", share(s.hotBidder, s.bids), 0.750, 0.005},
		{"hot seller share", share(s.hotSeller, s.auctions), 0.750, 0.01},
		{"bids on future auctions", share(s.future, s.bids), 0.045, 0.003},
		{"category 10 share", share(s.category10, s.auctions), 0.200, 0.01},
		{"OR/ID/CA share", share(s.westStates, s.persons), 0.5, 0.015},
		{"hot channel share", share(s.hotChannel, s.bids), 0.500, 0.005},
		{"average person size", share(s.personBytes, s.persons), 207, 3},
		{"average auction size", share(s.auctionBytes, s.auctions), 508, 3},
		{"average bid size", share(s.bidBytes, s.bids), 100, 1},
		{"average auction length (ms)", share(s.auctionLen, s.auctions), 1.17, 0.02},
		{"median bid price ($)", float64(s.prices[len(s.prices)/2]) / 100, 1000, 50},
	} {
		if math.Abs(c.got-c.want) > c.tol {
			t.Errorf("%s: %.4f, want %.4f ± %.4f", c.name, c.got, c.want, c.tol)
		} else {
			t.Logf("%s: %.4f (want %.4f)", c.name, c.got, c.want)
		}
	}
	if s.decreasing > 0 {
		t.Errorf("DateTime decreased %d times within a generator", s.decreasing)
	}
}

// fmtEvent formats every field of an event.
func fmtEvent(e *Event) string {
	switch e.Kind {
	case KindPerson:
		return fmt.Sprintf("P%+v", e.Person)
	case KindAuction:
		return fmt.Sprintf("A%+v", e.Auction)
	default:
		return fmt.Sprintf("B%+v", e.Bid)
	}
}

// TestComparisonGolden pins the comparison profile's stream at seed 42:
// the first events of generator 0 field by field, and a hash over 620
// events of two generators that testdata/comparison.py, an independent
// implementation of the same rules, reproduces byte for byte. If it fails,
// the stream changed: results no longer compare with other systems'.
func TestComparisonGolden(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.Events, cfg.Generators = 1000, 2
	h := fnv.New64a()
	var ev Event
	var lines []string
	for g := range 2 {
		gen := NewGenerator(cfg, g)
		for k := 0; gen.Next(&ev) && (g == 0 || k < 120); k++ {
			s := fmtEvent(&ev)
			lines = append(lines, s)
			fmt.Fprintln(h, s)
		}
	}
	for i, want := range map[int]string{
		0:  `A{ID:1000 ItemName:fyedryenyhfdkj vs Description:nerzyx a yxebaypybyo ylnsubxbbjufwtydup se jebscbam lb InitialBid:1017890 Reserve:36274257 DateTime:1767225600000 Expires:1767225600001 Seller:1000 Category:10 Extra:puhmoxvlzgjaymzuskowvgtxiliiyxvfhzsjxjjbzkevrktjqhxntgwwyzlkyegozailikogieabpuzdoaxemfickadwzzcikubofdybmtjbsqxaejjxmplgrdfarcmuozabzhykwqdgptsiflecohfdpywvcpuqhkusztgdiwrakkqdxybkdkjxaicusupnskbmdocucmpmjlxyimcnwvdvtdbeteuxjxbgoynjkugdufqosoenwgmcivregvqvqtebnlbukomeuoxlsxtqpvjhzlwazxejirrkalsxdlsgrtlvncwzpznnzsapltufofuthdutikbgxossuiwhgpnnzgasmboysygkprverdgwkkdoxgwzxkealdvkxyejwkfixwmgoxaghagxns}`,
		3:  `B{Auction:1000 Bidder:1003 Price:470 Channel:channel-4799 URL:https://www.nexmark.com/yqdfi/fblup/uhabv/item.htm?query=1&channel_id=45613056 DateTime:1767225600000 Extra:uxrvhxboyqhlokhpqofirkyxlnmahkiszloahjwcnencszoiuxcitxfxkfvygkecsjedbqifo}`,
		49: `P{ID:1001 Name:Julie White EmailAddress: sygy@ipw.com CreditCard:9027 4989 3821 2155 City:Cheyenne State:WY DateTime:1767225600000 Extra:qleagwtgbrncsqbltrtcmvvyhnafoczhauhiluanabexmiyfxbvjlzjqebthezakfeppifnjyiqsqhxfrcuwrmcltepssxiaqhnloajapgubjxhxoneyigstsinmoeoormhovl}`,
	} {
		if lines[i] != want {
			t.Errorf("event id %d:\n got %s\nwant %s", i+1, lines[i], want)
		}
	}
	if got, want := h.Sum64(), uint64(0x985a89712348fc81); got != want {
		t.Errorf("hash of 620 events %#x, pinned %#x (python3 testdata/comparison.py reproduces the events)", got, want)
	}
}

// BenchmarkGenerator measures the generator alone: one op is one event.
func BenchmarkGenerator(b *testing.B) {
	for _, p := range []Profile{ProfileComparison, ProfileReference} {
		b.Run(p.String(), func(b *testing.B) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			cfg := DefaultConfig()
			cfg.Events, cfg.Profile = 1<<40, p
			gen := NewGenerator(cfg, 0)
			var ev Event
			b.ReportAllocs()
			cpu0 := threadCPU()
			for b.Loop() {
				gen.Next(&ev)
			}
			b.ReportMetric(float64(threadCPU()-cpu0)/float64(b.N), "cpu-ns/event")
		})
	}
}

// TestGeneratorAllocations: in steady state an event costs no allocation
// of its own; only the arena's chunks are allocated, one per ~1500 events.
func TestGeneratorAllocations(t *testing.T) {
	for _, p := range []Profile{ProfileComparison, ProfileReference} {
		cfg := DefaultConfig()
		cfg.Events, cfg.Profile = 1<<40, p
		gen := NewGenerator(cfg, 0)
		var ev Event
		const perRun = 10_000
		allocs := testing.AllocsPerRun(5, func() {
			for range perRun {
				gen.Next(&ev)
			}
		})
		if allocs/perRun > 0.002 {
			t.Errorf("%s: %.4f allocations per event, want < 0.002 (arena chunks only)", p, allocs/perRun)
		} else {
			t.Logf("%s: %.5f allocations per event", p, allocs/perRun)
		}
	}
}

// threadCPU returns the calling thread's CPU time in ns: under load on a
// shared machine it is a steadier measure than the wall time.
func threadCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// TestPriceFastPath: price's table-and-series path gives priceExp's
// result for every draw, including the ones near a half cent that it
// hands to priceExp.
func TestPriceFastPath(t *testing.T) {
	t.Parallel()
	var r splitmix
	r.seed(mix64(7), 1)
	n := 2_000_000
	if testing.Short() {
		n = 200_000
	}
	for range n {
		u := r.unit()
		if got, want := price(u), priceExp(u); got != want {
			t.Fatalf("price(%v) = %d, priceExp %d", u, got, want)
		}
	}
	for _, u := range []float64{0, 0x1p-53, 0.5, 1.0 / 12, 1.0 / 6, 1 - 0x1p-53} {
		if got, want := price(u), priceExp(u); got != want {
			t.Fatalf("price(%v) = %d, priceExp %d", u, got, want)
		}
	}
}

// TestAppendExact: every length gives the letters of the rule (base-26
// digits of the draw >> 4, twelve per draw, least significant first) and
// uses ceil(n/12) draws, whether b has the room or must grow.
func TestAppendExact(t *testing.T) {
	t.Parallel()
	for n := range 200 {
		var r, want splitmix
		r.seed(5, int64(n))
		want = r
		var exp []byte
		for len(exp) < n {
			v := want.next() >> 4
			for k := 0; k < 12 && len(exp) < n; k++ {
				exp = append(exp, 'a'+byte(v%26))
				v /= 26
			}
		}
		for _, room := range []int{0, exactRoom(n)} {
			r2 := r
			got := appendExact(make([]byte, 3, 3+room), &r2, n)
			if string(got[3:]) != string(exp) || r2 != want {
				t.Fatalf("n=%d room=%d: %q, want %q", n, room, got[3:], exp)
			}
		}
	}
}
