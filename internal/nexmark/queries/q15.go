package queries

import (
	"fmt"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/nexmark"
)

// q15 is the suite's daily statistics: per UTC day, the number of bids,
// of distinct bidders and of distinct auctions, each in total and per
// price range (below $100, below $10,000, above). The SQL's GROUP BY
// updates its one row per day with every bid (a retracting result);
// here the row is the final one, emitted by an event-time timer when the
// watermark passes the end of the day (dailyFn: counters in a
// ValueState, the distinct bidders and auctions in MapStates). Bids are
// projected to four integers and keyed by day, so one day's work runs on
// one subtask, as in the SQL job without its split-distinct rewrite.
func init() {
	register(Query{Name: "q15", Build: func(env *sluice.Environment, events sluice.Stream[nexmark.Event], out *Out) {
		bids := bidsAs(events, "q15-project", func(b nexmark.Bid) dailyBid {
			return dailyBid{Bidder: b.Bidder, Auction: b.Auction, Price: b.Price, DateTime: b.DateTime}
		})
		rows := sluice.Process(sluice.KeyBy(bids, func(b dailyBid) int64 { return dayOf(b.DateTime) }), "q15-daily",
			func() sluice.KeyedProcessFunction[int64, dailyBid, dailyRow[int64]] {
				return &dailyFn[int64]{day: func(d int64) int64 { return d }}
			})
		EmitTimed(out, rows, "q15-sink", func(r dailyRow[int64]) string {
			return fmt.Sprintf("%s,%s", dayString(r.Day), formatDaily(r.dailyStats))
		}, dailyRow[int64].latest)
	}})
}
