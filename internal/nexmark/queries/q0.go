package queries

import (
	"fmt"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/nexmark"
)

// q0, pass-through: every bid, unchanged. It measures the cost of moving
// events through the system (generator, source, one operator, sink).
func init() {
	register(Query{Name: "q0", Build: func(env *sluice.Environment, events sluice.Stream[nexmark.Event], out *Out) {
		EmitTimed(out, Bids(events), "q0", formatBid, bidTime)
	}})
}

// formatBid formats the columns of the suite's bid table.
func formatBid(b nexmark.Bid) string {
	return fmt.Sprintf("%d,%d,%d,%s,%s,%d,%s", b.Auction, b.Bidder, b.Price, b.Channel, b.URL, b.DateTime, b.Extra)
}

// bidTime is a bid's event time.
func bidTime(b nexmark.Bid) int64 { return b.DateTime }
