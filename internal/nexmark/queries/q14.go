package queries

import (
	"fmt"
	"strings"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/nexmark"
)

// q14 is the suite's calculation query: bids whose converted price 0.908 ×
// price lies strictly between 1,000,000 and 50,000,000, with the converted
// price, the time of day the bid was made (dayTime for hours 8–18,
// nightTime for hours up to 6 and from 20, otherTime else, in UTC), and
// count_char(extra, 'c'), the suite's user-defined function counting the
// 'c' bytes of the padding. The SQL's DECIMAL(23, 3) price is kept exact
// as an integer of thousandths (price × 908). One chained operator, no
// state, no allocation per record.
func init() {
	register(Query{Name: "q14", Build: func(env *sluice.Environment, events sluice.Stream[nexmark.Event], out *Out) {
		rows := sluice.FlatMap(events, "q14-calc", func(e nexmark.Event, c *sluice.Collector[q14Row]) error {
			if e.Kind != nexmark.KindBid {
				return nil
			}
			b := &e.Bid
			p := b.Price * 908 // 0.908 × price, in thousandths
			if p <= 1_000_000*1000 || p >= 50_000_000*1000 {
				return nil
			}
			c.Collect(q14Row{
				Auction: b.Auction, Bidder: b.Bidder, PriceMilli: p,
				TimeType: bidTimeType(b.DateTime), DateTime: b.DateTime, Extra: b.Extra,
				CCount: countChar(b.Extra, "c"),
			})
			return nil
		})
		EmitTimed(out, rows, "q14-sink", q14Row.String, func(r q14Row) int64 { return r.DateTime })
	}})
}

// q14Row is one row of q14.
type q14Row struct {
	Auction, Bidder int64
	// PriceMilli is 0.908 × price in thousandths of a cent.
	PriceMilli int64
	TimeType   string
	DateTime   int64
	Extra      string
	CCount     int64
}

func (r q14Row) String() string {
	return fmt.Sprintf("%d,%d,%d.%03d,%s,%s,%d", r.Auction, r.Bidder, r.PriceMilli/1000, r.PriceMilli%1000,
		r.TimeType, tsString(r.DateTime), r.CCount)
}

// bidTimeType is the SQL's CASE on HOUR(dateTime).
func bidTimeType(ms int64) string {
	h := (ms - dayOf(ms)*msPerDay) / (60 * 60 * 1000)
	switch {
	case h >= 8 && h <= 18:
		return "dayTime"
	case h <= 6 || h >= 20:
		return "nightTime"
	}
	return "otherTime"
}

// countChar is the suite's count_char user function: the number of bytes
// of s equal to the first byte of c (strings.Count of one byte is
// vectorised).
func countChar(s, c string) int64 {
	return int64(strings.Count(s, c[:1]))
}
