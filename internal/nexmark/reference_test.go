package nexmark

import (
	"math"
	"testing"
)

// TestJavaRandom pins javaRandom to java.util.Random's published outputs
// for seed 42.
func TestJavaRandom(t *testing.T) {
	t.Parallel()
	var r javaRandom
	r.setSeed(42)
	if v := r.nextInt(); v != -1170105035 {
		t.Errorf("nextInt() = %d, want -1170105035", v)
	}
	r.setSeed(42)
	if v := r.nextIntN(10); v != 0 {
		t.Errorf("nextInt(10) = %d, want 0", v)
	}
	r.setSeed(42)
	if v := r.nextDouble(); v != 0.7275636800328681 {
		t.Errorf("nextDouble() = %v, want 0.7275636800328681", v)
	}
}

// TestReferenceProportions: the reference profile has the suite's shape:
// 1:3:46, hot shares, bidder ids offset by 2000, average sizes, and
// padding made of the bytes 'H' to 'z'.
func TestReferenceProportions(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.Events, cfg.Generators, cfg.Profile = 500_000, 2, ProfileReference
	var persons, auctions, bids, hotAuction, hotBidder, hotSeller, cat10 int64
	var pBytes, aBytes, bBytes int64
	var ev Event
	for g := range cfg.Generators {
		gen := NewGenerator(cfg, g)
		for gen.Next(&ev) {
			id := gen.first + gen.n - 1
			switch ev.Kind {
			case KindPerson:
				persons++
				pBytes += int64(Size(&ev))
			case KindAuction:
				auctions++
				aBytes += int64(Size(&ev))
				if ev.Auction.Seller == lastPerson(id)/100*100+1000 {
					hotSeller++
				}
				if ev.Auction.Category == 10 {
					cat10++
				}
			default:
				bids++
				bBytes += int64(Size(&ev))
				if ev.Bid.Auction == lastAuction(id)/100*100+1000 {
					hotAuction++
				}
				if ev.Bid.Bidder == lastPerson(id)/100*100+1+2000 {
					hotBidder++
				}
				for i := range len(ev.Bid.Extra) {
					if c := ev.Bid.Extra[i]; c < 'H' || c > 'z' {
						t.Fatalf("padding byte %q", c)
					}
				}
			}
		}
	}
	if persons != 10_000 || auctions != 30_000 || bids != 460_000 {
		t.Errorf("persons/auctions/bids %d/%d/%d, want 1:3:46", persons, auctions, bids)
	}
	share := func(n, of int64) float64 { return float64(n) / float64(of) }
	for _, c := range []struct {
		name           string
		got, want, tol float64
	}{
		{"hot auction share", share(hotAuction, bids), 0.504, 0.006},
		{"hot bidder share", share(hotBidder, bids), 0.75, 0.006},
		{"hot seller share", share(hotSeller, auctions), 0.75, 0.01},
		{"category 10 share", share(cat10, auctions), 0.2, 0.01},
		{"average person size", share(pBytes, persons), 207, 3},
		{"average auction size", share(aBytes, auctions), 508, 3},
		{"average bid size", share(bBytes, bids), 100, 1},
	} {
		if math.Abs(c.got-c.want) > c.tol {
			t.Errorf("%s: %.4f, want %.4f ± %.4f", c.name, c.got, c.want, c.tol)
		}
	}
}
