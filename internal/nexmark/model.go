// Package nexmark is the Nexmark benchmark: its data model (persons,
// auctions and bids), a deterministic generator, and the queries written
// with Sluice's DataStream API (docs/benchmarks.md).
package nexmark

// Kind says which of an Event's fields is set.
type Kind uint8

// The kinds of event, in the generator's 1:3:46 proportion.
const (
	KindPerson Kind = iota
	KindAuction
	KindBid
)

// Event is one Nexmark event: a value union, with only the field of its
// Kind set, so that an event moves through a pipeline without a pointer to
// allocate.
type Event struct {
	Kind    Kind
	Person  Person
	Auction Auction
	Bid     Bid
}

// DateTime returns the event's event time in milliseconds since the epoch.
func (e *Event) DateTime() int64 {
	switch e.Kind {
	case KindPerson:
		return e.Person.DateTime
	case KindAuction:
		return e.Auction.DateTime
	default:
		return e.Bid.DateTime
	}
}

// Person is a new user of the auction site.
type Person struct {
	ID           int64
	Name         string
	EmailAddress string
	CreditCard   string
	City         string
	State        string
	// DateTime is the event time, milliseconds since the epoch.
	DateTime int64
	// Extra is padding that brings the event to its average size.
	Extra string
}

// Auction is an item put up for sale.
type Auction struct {
	ID          int64
	ItemName    string
	Description string
	// InitialBid and Reserve are prices in cents.
	InitialBid int64
	Reserve    int64
	// DateTime is when the auction opens, Expires when it closes,
	// milliseconds since the epoch.
	DateTime int64
	Expires  int64
	// Seller is a person id.
	Seller   int64
	Category int64
	// Extra is padding that brings the event to its average size.
	Extra string
}

// Bid is a bid on an auction.
type Bid struct {
	// Auction is an auction id, Bidder a person id.
	Auction int64
	Bidder  int64
	// Price is in cents.
	Price   int64
	Channel string
	URL     string
	// DateTime is the event time, milliseconds since the epoch.
	DateTime int64
	// Extra is padding that brings the event to its average size.
	Extra string
}
