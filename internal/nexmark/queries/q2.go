package queries

import (
	"strconv"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/nexmark"
)

// AuctionPrice is a row of q2: a bid's auction and price, and its event
// time (not a column of the query: it is what the benchmark measures
// latency by).
type AuctionPrice struct {
	Auction  int64
	Price    int64
	DateTime int64
}

// q2, selection: (auction, price) of the bids on every 123rd auction.
func init() {
	register(Query{Name: "q2", Build: func(env *sluice.Environment, events sluice.Stream[nexmark.Event], out *Out) {
		sel := sluice.FlatMap(events, "q2-select", func(e nexmark.Event, c *sluice.Collector[AuctionPrice]) error {
			if e.Kind == nexmark.KindBid && e.Bid.Auction%123 == 0 {
				c.Collect(AuctionPrice{Auction: e.Bid.Auction, Price: e.Bid.Price, DateTime: e.Bid.DateTime})
			}
			return nil
		})
		EmitTimed(out, sel, "q2", func(r AuctionPrice) string {
			return strconv.FormatInt(r.Auction, 10) + "," + strconv.FormatInt(r.Price, 10)
		}, func(r AuctionPrice) int64 { return r.DateTime })
	}})
}
