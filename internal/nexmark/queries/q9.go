package queries

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/internal/nexmark"
	"github.com/sluicehq/sluice/state"
)

// q9 is "winning bids": for every auction, the highest bid made while it
// was open (auction.DateTime ≤ bid.DateTime ≤ auction.Expires; on equal
// prices the earliest, then the lowest bidder id). Auctions and bids are
// projected after the source and connected keyed by auction id in a keyed
// two-input process function. The result is final once the watermark
// passes the auction's expiry (an event-time timer), when the one row of
// an auction that had a qualifying bid is emitted and the key's state
// dropped: not the SQL job's continuously updated result. A bid that comes
// before its auction waits in ListState until the auction arrives, or is
// dropped once the watermark passes its time (an auction that opened
// before it would have arrived by then: every split is in event-time
// order and the watermark trails it).
func init() { register(Query{Name: "q9", Build: buildQ9}) }

// Winner is the winning bid of an auction: a row of q9 and q4's input.
// Times are milliseconds since the epoch.
type Winner struct {
	Auction, Seller, Category, Expires int64
	Bidder, Price, BidTime             int64
}

func (w Winner) String() string {
	return fmt.Sprintf("%d,%d,%d,%d,%d,%d,%d", w.Auction, w.Seller, w.Category, w.Expires, w.Bidder, w.Price, w.BidTime)
}

// q9Auction is the projection of an auction q9 keeps.
type q9Auction struct{ ID, Seller, Category, DateTime, Expires int64 }

// q9Bid is the projection of a bid q9 keeps.
type q9Bid struct{ Auction, Bidder, Price, DateTime int64 }

// beats reports whether b wins over c: a higher price, or the same price
// earlier, or at the same time by a lower bidder id.
func (b q9Bid) beats(c q9Bid) bool {
	if b.Price != c.Price {
		return b.Price > c.Price
	}
	if b.DateTime != c.DateTime {
		return b.DateTime < c.DateTime
	}
	return b.Bidder < c.Bidder
}

// q9Open is the state of an auction that arrived: the auction and its
// best qualifying bid so far (HasBest false while there is none). One
// value per key, so an open auction costs one state entry.
type q9Open struct {
	Auction q9Auction
	HasBest bool
	Best    q9Bid
}

// msToNanos converts the model's milliseconds to Sluice's nanosecond
// timestamps.
func msToNanos(ms int64) int64 { return ms * int64(time.Millisecond) }

func buildQ9(env *sluice.Environment, events sluice.Stream[nexmark.Event], out *Out) {
	Emit(out, winningBids(events, "q9"), "q9-sink", Winner.String)
}

// winningBids is q9's pipeline, also q4's first stage; operator names
// start with prefix.
func winningBids(events sluice.Stream[nexmark.Event], prefix string) sluice.Stream[Winner] {
	auctions := sluice.FlatMap(events, prefix+"-auctions", func(ev nexmark.Event, c *sluice.Collector[q9Auction]) error {
		if a := &ev.Auction; ev.Kind == nexmark.KindAuction {
			c.Collect(q9Auction{ID: a.ID, Seller: a.Seller, Category: a.Category, DateTime: a.DateTime, Expires: a.Expires})
		}
		return nil
	})
	bids := sluice.FlatMap(events, prefix+"-bids", func(ev nexmark.Event, c *sluice.Collector[q9Bid]) error {
		if b := &ev.Bid; ev.Kind == nexmark.KindBid {
			c.Collect(q9Bid{Auction: b.Auction, Bidder: b.Bidder, Price: b.Price, DateTime: b.DateTime})
		}
		return nil
	})
	return sluice.CoProcess(sluice.Connect(
		sluice.KeyBy(auctions, func(a q9Auction) int64 { return a.ID }),
		sluice.KeyBy(bids, func(b q9Bid) int64 { return b.Auction })),
		prefix+"-winning-bids", func() sluice.KeyedCoProcessFunction[int64, q9Auction, q9Bid, Winner] { return &q9Winning{} })
}

// q9Winning is q9's keyed two-input process function. A key has an
// event-time timer at its auction's expiry and, while bids wait for the
// auction, one at the earliest waiting bid's time (a bid kept past its
// time is harmless: an auction that could still arrive opened after it).
type q9Winning struct {
	open  state.ValueState[q9Open]
	early state.ListState[q9Bid]
}

func (f *q9Winning) Open(rc *sluice.RuntimeContext[int64]) (err error) {
	if f.open, err = sluice.NewValueState(rc, "open-auction", codec.Codec[q9Open](q9OpenCodec{})); err != nil {
		return err
	}
	f.early, err = sluice.NewListState(rc, "early-bids", codec.Codec[q9Bid](q9BidCodec{}))
	return err
}

// qualifies reports whether b was made while a was open.
func (a *q9Auction) qualifies(b *q9Bid) bool {
	return a.DateTime <= b.DateTime && b.DateTime <= a.Expires
}

func (f *q9Winning) ProcessElement1(a q9Auction, pc *sluice.ProcessContext[int64, Winner]) error {
	o := q9Open{Auction: a}
	if early := f.early.Get(); len(early) > 0 {
		for i := range early {
			if b := &early[i]; a.qualifies(b) && (!o.HasBest || b.beats(o.Best)) {
				o.HasBest, o.Best = true, *b
			}
		}
		f.early.Clear()
	}
	f.open.Update(o)
	pc.RegisterEventTimeTimer(msToNanos(a.Expires))
	return nil
}

func (f *q9Winning) ProcessElement2(b q9Bid, pc *sluice.ProcessContext[int64, Winner]) error {
	o, ok := f.open.Value()
	if !ok {
		// One timer per key with early bids, at the time of the first:
		// it drops the bids the watermark passed and sets the next.
		if len(f.early.Get()) == 0 {
			pc.RegisterEventTimeTimer(msToNanos(b.DateTime))
		}
		f.early.Add(b)
		return nil
	}
	if o.Auction.qualifies(&b) && (!o.HasBest || b.beats(o.Best)) {
		o.HasBest, o.Best = true, b
		f.open.Update(o)
	}
	return nil
}

// OnTimer closes the auction at its expiry, or drops the early bids the
// watermark passed while the auction is still unknown.
func (f *q9Winning) OnTimer(at time.Time, pc *sluice.ProcessContext[int64, Winner]) error {
	ts := at.UnixNano()
	o, ok := f.open.Value()
	if ok {
		if ts < msToNanos(o.Auction.Expires) {
			return nil // an early bid's timer, from before the auction came
		}
		if o.HasBest {
			a, b := &o.Auction, &o.Best
			pc.Collect(Winner{Auction: a.ID, Seller: a.Seller, Category: a.Category, Expires: a.Expires,
				Bidder: b.Bidder, Price: b.Price, BidTime: b.DateTime})
		}
		f.open.Clear()
		return nil
	}
	early := f.early.Get()
	keep, next := 0, int64(math.MaxInt64)
	for i := range early {
		if t := msToNanos(early[i].DateTime); t > ts {
			keep++
			next = min(next, t)
		}
	}
	switch {
	case keep == 0:
		f.early.Clear()
		return nil
	case keep < len(early):
		kept := make([]q9Bid, 0, keep)
		for _, b := range early {
			if msToNanos(b.DateTime) > ts {
				kept = append(kept, b)
			}
		}
		f.early.Update(kept)
	}
	pc.RegisterEventTimeTimer(next)
	return nil
}

// q9BidCodec encodes a q9Bid as four zig-zag varints.
type q9BidCodec struct{}

func (q9BidCodec) CodecID() codec.ID { return codec.ID{Name: "nexmark.q9-bid", Version: 1} }

func (q9BidCodec) Append(dst []byte, b q9Bid) []byte {
	dst = binary.AppendVarint(dst, b.Auction)
	dst = binary.AppendVarint(dst, b.Bidder)
	dst = binary.AppendVarint(dst, b.Price)
	return binary.AppendVarint(dst, b.DateTime)
}

func (q9BidCodec) Decode(src []byte) (b q9Bid, n int, err error) {
	d := fieldDecoder{src: src}
	b.Auction, b.Bidder, b.Price, b.DateTime = d.varint(), d.varint(), d.varint(), d.varint()
	return b, d.n, d.err
}

// q9OpenCodec encodes a q9Open as the auction's five varints, a bool, and
// the best bid when there is one. The auction id and the bid's auction
// are the key; they are kept anyway, a few bytes, for a self-contained
// value.
type q9OpenCodec struct{}

func (q9OpenCodec) CodecID() codec.ID { return codec.ID{Name: "nexmark.q9-open-auction", Version: 1} }

func (q9OpenCodec) Append(dst []byte, o q9Open) []byte {
	a := &o.Auction
	dst = binary.AppendVarint(dst, a.ID)
	dst = binary.AppendVarint(dst, a.Seller)
	dst = binary.AppendVarint(dst, a.Category)
	dst = binary.AppendVarint(dst, a.DateTime)
	dst = binary.AppendVarint(dst, a.Expires)
	dst = codec.Bool.Append(dst, o.HasBest)
	if o.HasBest {
		dst = q9BidCodec{}.Append(dst, o.Best)
	}
	return dst
}

func (q9OpenCodec) Decode(src []byte) (o q9Open, n int, err error) {
	d := fieldDecoder{src: src}
	a := &o.Auction
	a.ID, a.Seller, a.Category, a.DateTime, a.Expires = d.varint(), d.varint(), d.varint(), d.varint(), d.varint()
	if o.HasBest = d.bool(); o.HasBest {
		b := &o.Best
		b.Auction, b.Bidder, b.Price, b.DateTime = d.varint(), d.varint(), d.varint(), d.varint()
	}
	return o, d.n, d.err
}
