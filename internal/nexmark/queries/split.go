package queries

import (
	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/nexmark"
)

// Bids splits the bids off the event stream, in an operator named "bids"
// chained to the source.
func Bids(events sluice.Stream[nexmark.Event]) sluice.Stream[nexmark.Bid] {
	return sluice.FlatMap(events, "bids", func(e nexmark.Event, c *sluice.Collector[nexmark.Bid]) error {
		if e.Kind == nexmark.KindBid {
			c.Collect(e.Bid)
		}
		return nil
	})
}

// Auctions splits the auctions off the event stream ("auctions").
func Auctions(events sluice.Stream[nexmark.Event]) sluice.Stream[nexmark.Auction] {
	return sluice.FlatMap(events, "auctions", func(e nexmark.Event, c *sluice.Collector[nexmark.Auction]) error {
		if e.Kind == nexmark.KindAuction {
			c.Collect(e.Auction)
		}
		return nil
	})
}

// Persons splits the persons off the event stream ("persons").
func Persons(events sluice.Stream[nexmark.Event]) sluice.Stream[nexmark.Person] {
	return sluice.FlatMap(events, "persons", func(e nexmark.Event, c *sluice.Collector[nexmark.Person]) error {
		if e.Kind == nexmark.KindPerson {
			c.Collect(e.Person)
		}
		return nil
	})
}
