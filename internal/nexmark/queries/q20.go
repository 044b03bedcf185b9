package queries

import (
	"fmt"
	"strings"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/internal/nexmark"
	"github.com/sluicehq/sluice/state"
)

// q20 is the suite's filtered join: every bid joined with its auction
// when the auction's category is 10 (an inner join on B.auction = A.id
// with no time condition).
//
// It is a keyed CoProcess on the auction id, not an interval join: the
// SQL's join has no time bounds, so an interval join would give the same
// rows only if its bounds covered every bid, and it keeps both sides in
// state for the whole interval — every bid, 92 % of the input — while
// the CoProcess keeps the auctions and only the few bids that arrive
// before their auction. Every auction reaches it, those of another
// category as a bare (id, category) marker, so that a bid of such an
// auction is dropped at once instead of waiting; only category-10
// auctions carry their columns.
//
// State and time: an auction (or marker) is kept for q20Keep (60 s) of
// event time after it opens, then dropped by an event-time timer; the
// generator's bids name auctions at most ~100 auctions back, far less
// than that at any rate above ~50 events/s. A bid whose auction has not
// arrived waits in ListState until it does, or until the watermark passes
// its dateTime + q20Wait (10 s), then it is dropped: the generator names
// auctions at most 10 ahead of the latest, which arrive within
// milliseconds. Bids are processed with the auction they find, so the
// result is the SQL's inner join under those bounds, one row per bid.
func init() {
	register(Query{Name: "q20", Build: func(env *sluice.Environment, events sluice.Stream[nexmark.Event], out *Out) {
		auctions := sluice.FlatMap(events, "q20-auctions", func(e nexmark.Event, c *sluice.Collector[nexmark.Auction]) error {
			if e.Kind != nexmark.KindAuction {
				return nil
			}
			a := &e.Auction
			if a.Category != 10 {
				c.Collect(nexmark.Auction{ID: a.ID, Category: a.Category, DateTime: a.DateTime})
				return nil
			}
			c.Collect(*a)
			return nil
		})
		bids := Bids(events)
		joined := sluice.Connect(sluice.KeyBy(auctions, func(a nexmark.Auction) int64 { return a.ID }),
			sluice.KeyBy(bids, func(b nexmark.Bid) int64 { return b.Auction }))
		rows := sluice.CoProcess(joined, "q20-join", func() sluice.KeyedCoProcessFunction[int64, nexmark.Auction, nexmark.Bid, q20Row] {
			return &q20Fn{}
		})
		EmitTimed(out, rows, "q20-sink", q20Row.String, func(r q20Row) int64 { return r.Bid.DateTime })
	}})
}

// q20Keep is how long, in event time after it opens, q20 keeps an
// auction; q20Wait how long a bid waits for its auction.
const (
	q20Keep = 60 * time.Second
	q20Wait = 10 * time.Second
)

// q20Row is a bid and its category-10 auction.
type q20Row struct {
	Bid     nexmark.Bid
	Auction nexmark.Auction
}

func (r q20Row) String() string {
	a := &r.Auction
	return fmt.Sprintf("%s,%s,%s,%d,%d,%s,%s,%d,%d,%s", formatBid(r.Bid), a.ItemName, a.Description, a.InitialBid, a.Reserve,
		tsString(a.DateTime), tsString(a.Expires), a.Seller, a.Category, a.Extra)
}

// q20Fn joins the bids of an auction id with its auction.
type q20Fn struct {
	auction state.ValueState[nexmark.Auction]
	waiting state.ListState[nexmark.Bid]
}

func (f *q20Fn) Open(rc *sluice.RuntimeContext[int64]) (err error) {
	if f.auction, err = sluice.NewValueState(rc, "auction", codec.Codec[nexmark.Auction](auctionCodec{})); err != nil {
		return err
	}
	f.waiting, err = sluice.NewListState(rc, "waiting", bidCodec{})
	return err
}

// ProcessElement1 keeps the auction and joins the bids that waited for
// it.
func (f *q20Fn) ProcessElement1(a nexmark.Auction, pc *sluice.ProcessContext[int64, q20Row]) error {
	if a.Category == 10 {
		// Kept for long: copy the strings out of the generator's arena.
		a.ItemName, a.Description, a.Extra = strings.Clone(a.ItemName), strings.Clone(a.Description), strings.Clone(a.Extra)
	}
	f.auction.Update(a)
	pc.RegisterEventTimeTimer(nanos(a.DateTime) + int64(q20Keep))
	waiting := f.waiting.Get()
	if len(waiting) == 0 {
		return nil
	}
	if a.Category == 10 {
		for _, b := range waiting {
			pc.Collect(q20Row{Bid: b, Auction: a})
		}
	}
	f.waiting.Clear()
	return nil
}

// ProcessElement2 joins a bid with its auction, or keeps it until the
// auction arrives.
func (f *q20Fn) ProcessElement2(b nexmark.Bid, pc *sluice.ProcessContext[int64, q20Row]) error {
	a, ok := f.auction.Value()
	switch {
	case !ok:
		f.waiting.Add(ownBid(b))
		pc.RegisterEventTimeTimer(nanos(b.DateTime) + int64(q20Wait))
	case a.Category == 10:
		pc.Collect(q20Row{Bid: b, Auction: a})
	}
	return nil
}

// OnTimer drops the auction once kept long enough, and the bids that
// waited too long.
func (f *q20Fn) OnTimer(at time.Time, pc *sluice.ProcessContext[int64, q20Row]) error {
	now := at.UnixNano()
	if a, ok := f.auction.Value(); ok && nanos(a.DateTime)+int64(q20Keep) <= now {
		f.auction.Clear()
	}
	waiting := f.waiting.Get()
	if len(waiting) == 0 {
		return nil
	}
	kept := waiting[:0:0]
	for _, b := range waiting {
		if nanos(b.DateTime)+int64(q20Wait) > now {
			kept = append(kept, b)
		}
	}
	if len(kept) == 0 {
		f.waiting.Clear()
	} else if len(kept) < len(waiting) {
		f.waiting.Update(kept)
	}
	return nil
}

// auctionCodec encodes a whole auction in state.
type auctionCodec struct{}

func (auctionCodec) Append(dst []byte, a nexmark.Auction) []byte {
	dst = codec.Int64.Append(dst, a.ID)
	dst = codec.String.Append(dst, a.ItemName)
	dst = codec.String.Append(dst, a.Description)
	for _, v := range [...]int64{a.InitialBid, a.Reserve, a.DateTime, a.Expires, a.Seller, a.Category} {
		dst = codec.Int64.Append(dst, v)
	}
	return codec.String.Append(dst, a.Extra)
}

func (auctionCodec) Decode(src []byte) (nexmark.Auction, int, error) {
	var a nexmark.Auction
	d := fieldDecoder{src: src}
	a.ID = d.varint()
	a.ItemName = d.string()
	a.Description = d.string()
	a.InitialBid = d.varint()
	a.Reserve = d.varint()
	a.DateTime = d.varint()
	a.Expires = d.varint()
	a.Seller = d.varint()
	a.Category = d.varint()
	a.Extra = d.string()
	if d.err != nil {
		return nexmark.Auction{}, 0, fmt.Errorf("auction: %w", d.err)
	}
	return a, d.n, nil
}

func (auctionCodec) CodecID() codec.ID { return codec.ID{Name: "nexmark-auction", Version: 1} }
