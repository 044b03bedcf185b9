package queries

import (
	"math"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/nexmark"
)

// q1, currency conversion: every bid with its price converted from dollars
// to euros at 0.908, rounded to the nearest cent.
func init() {
	register(Query{Name: "q1", Build: func(env *sluice.Environment, events sluice.Stream[nexmark.Event], out *Out) {
		euros := sluice.FlatMap(events, "q1-convert", func(e nexmark.Event, c *sluice.Collector[nexmark.Bid]) error {
			if e.Kind == nexmark.KindBid {
				b := e.Bid
				b.Price = toEuros(b.Price)
				c.Collect(b)
			}
			return nil
		})
		EmitTimed(out, euros, "q1", formatBid, bidTime)
	}})
}

// toEuros converts a price in dollar cents to euro cents.
func toEuros(cents int64) int64 { return int64(math.Round(float64(cents) * 0.908)) }
