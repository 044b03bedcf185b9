package queries

import (
	"errors"
	"reflect"
	"testing"

	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/internal/nexmark"
)

// roundTrip checks that c decodes what it encodes, consuming it all, and
// that every truncation of the encoding is an error, never a panic.
func roundTrip[T any](t *testing.T, name string, c codec.Codec[T], v T) {
	t.Helper()
	b := c.Append([]byte{0xff}, v)[1:]
	got, n, err := c.Decode(b)
	if err != nil || n != len(b) || !reflect.DeepEqual(got, v) {
		t.Errorf("%s: decoded %+v, %d of %d bytes, %v; want %+v", name, got, n, len(b), err, v)
	}
	for i := range len(b) {
		if _, _, err := c.Decode(b[:i]); !errors.Is(err, codec.ErrTruncated) {
			t.Errorf("%s: %d of %d bytes: err %v, want ErrTruncated", name, i, len(b), err)
		}
	}
	if id := codec.IDOf(c); !id.Declared() {
		t.Errorf("%s: codec declares no ID", name)
	}
}

func TestStateCodecs(t *testing.T) {
	t.Parallel()
	b := nexmark.Bid{Auction: 1000, Bidder: -7, Price: 1 << 40, Channel: "channel-9", URL: "https://x/y", DateTime: t0, Extra: "pad"}
	roundTrip(t, "bid", codec.Codec[nexmark.Bid](bidCodec{}), b)
	roundTrip(t, "auction", codec.Codec[nexmark.Auction](auctionCodec{}), nexmark.Auction{ID: 1, ItemName: "i", Description: "d",
		InitialBid: 2, Reserve: 3, DateTime: t0, Expires: t0 + 1, Seller: 4, Category: 10, Extra: "e"})
	roundTrip(t, "id pair", codec.Codec[idPair](idPairCodec{}), idPair{-1, 1 << 62})
	roundTrip(t, "channel day", codec.Codec[channelDay](channelDayCodec{}), channelDay{"Apple", 20454})
	roundTrip(t, "q13 bid", codec.Codec[q13Bid](q13BidCodec{}), q13Bid{1, 2, 3, 4})
	roundTrip(t, "q17 stats", codec.Codec[q17Acc](q17AccCodec{}), q17Acc{Bids: 5, Rank: [3]int64{1, 2, 2}, Min: 3, Max: 9, Sum: 30})
	roundTrip(t, "daily stats", codec.Codec[dailyStats](dailyStatsCodec{}), dailyStats{Bids: 1, Bidders: 2, Auctions: 3,
		RankBids: [3]int64{4, 5, 6}, RankBidders: [3]int64{7, 8, 9}, RankAuctions: [3]int64{10, 11, 12}, MaxTime: t0})
	roundTrip(t, "q19 top", codec.Codec[q19Top](q19TopCodec{}), q19Top{Last: t0, N: 2, Enc: bidCodec{}.Append(bidCodec{}.Append(nil, b), b), WorstPrice: b.Price})
	roundTrip(t, "q19 top, empty", codec.Codec[q19Top](q19TopCodec{}), q19Top{Last: t0})
	if _, _, err := (q19TopCodec{}).Decode(codec.Int64.Append(codec.Int64.Append(nil, 1), 11)); !errors.Is(err, codec.ErrCorrupt) {
		t.Errorf("q19 top of 11 bids: err %v, want ErrCorrupt", err)
	}
}

// TestQ17MergeAgreesWithAdd: q17's Merge (used for merged windows, never
// for its tumbling days) gives what adding every price to one
// accumulator gives.
func TestQ17MergeAgreesWithAdd(t *testing.T) {
	t.Parallel()
	prices := []int64{50, 20_000, 60, 2_000_000, 9_999, 10_000, 999_999, 1_000_000}
	var agg q17Agg
	for cut := range len(prices) + 1 {
		all, a, b := agg.CreateAccumulator(), agg.CreateAccumulator(), agg.CreateAccumulator()
		for i, p := range prices {
			all = agg.Add(idPair{1, p}, all)
			if i < cut {
				a = agg.Add(idPair{1, p}, a)
			} else {
				b = agg.Add(idPair{1, p}, b)
			}
		}
		if m := agg.Merge(a, b); m != all {
			t.Errorf("cut %d: Merge = %+v, Add gives %+v", cut, m, all)
		}
	}
}
