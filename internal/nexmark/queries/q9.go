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

// q9Early is a bid kept in state: the key is its auction.
type q9Early struct{ Bidder, Price, DateTime int64 }

// beats reports whether b wins over c: a higher price, or the same price
// earlier, or at the same time by a lower bidder id.
func (b q9Early) beats(c q9Early) bool {
	if b.Price != c.Price {
		return b.Price > c.Price
	}
	if b.DateTime != c.DateTime {
		return b.DateTime < c.DateTime
	}
	return b.Bidder < c.Bidder
}

// q9Open is the state of an auction that arrived (the key is its id): the
// auction's fields q9 needs and its best qualifying bid so far (HasBest
// false while there is none). One flat value per key, 64 bytes, so that
// an open auction costs one small state entry.
type q9Open struct {
	Seller, Category, DateTime, Expires int64
	Best                                q9Early
	HasBest                             bool
}

// qualifies reports whether a bid at time t was made while o was open.
func (o *q9Open) qualifies(t int64) bool { return o.DateTime <= t && t <= o.Expires }

// offer makes b the best bid if it qualifies and beats the best so far,
// and reports whether it did.
func (o *q9Open) offer(b q9Early) bool {
	if !o.qualifies(b.DateTime) || (o.HasBest && !b.beats(o.Best)) {
		return false
	}
	o.Best, o.HasBest = b, true
	return true
}

// msToNanos converts the model's milliseconds to Sluice's nanosecond
// timestamps.
func msToNanos(ms int64) int64 { return ms * int64(time.Millisecond) }

func buildQ9(env *sluice.Environment, events sluice.Stream[nexmark.Event], out *Out) {
	EmitTimed(out, winningBids(events, "q9"), "q9-sink", Winner.String, func(w Winner) int64 { return w.Expires })
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
	early state.ListState[q9Early]
}

func (f *q9Winning) Open(rc *sluice.RuntimeContext[int64]) (err error) {
	if f.open, err = sluice.NewValueState(rc, "open-auction", codec.Codec[q9Open](q9OpenCodec{})); err != nil {
		return err
	}
	f.early, err = sluice.NewListState(rc, "early-bids", codec.Codec[q9Early](q9EarlyCodec{}))
	return err
}

func (f *q9Winning) ProcessElement1(a q9Auction, pc *sluice.ProcessContext[int64, Winner]) error {
	o := q9Open{Seller: a.Seller, Category: a.Category, DateTime: a.DateTime, Expires: a.Expires}
	if early := f.early.Get(); len(early) > 0 {
		for _, b := range early {
			o.offer(b)
		}
		f.early.Clear()
	}
	f.open.Update(o)
	pc.RegisterEventTimeTimer(msToNanos(a.Expires))
	return nil
}

func (f *q9Winning) ProcessElement2(b q9Bid, pc *sluice.ProcessContext[int64, Winner]) error {
	e := q9Early{Bidder: b.Bidder, Price: b.Price, DateTime: b.DateTime}
	o, ok := f.open.Value()
	if !ok {
		// One timer per key with early bids, at the time of the first:
		// it drops the bids the watermark passed and sets the next.
		if len(f.early.Get()) == 0 {
			pc.RegisterEventTimeTimer(msToNanos(b.DateTime))
		}
		f.early.Add(e)
		return nil
	}
	if o.offer(e) {
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
		if ts < msToNanos(o.Expires) {
			return nil // an early bid's timer, from before the auction came
		}
		if o.HasBest {
			pc.Collect(Winner{Auction: pc.CurrentKey(), Seller: o.Seller, Category: o.Category, Expires: o.Expires,
				Bidder: o.Best.Bidder, Price: o.Best.Price, BidTime: o.Best.DateTime})
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
		kept := make([]q9Early, 0, keep)
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

// q9EarlyCodec encodes a q9Early as three zig-zag varints.
type q9EarlyCodec struct{}

func (q9EarlyCodec) CodecID() codec.ID { return codec.ID{Name: "nexmark.q9-early-bid", Version: 1} }

func (q9EarlyCodec) Append(dst []byte, b q9Early) []byte {
	dst = binary.AppendVarint(dst, b.Bidder)
	dst = binary.AppendVarint(dst, b.Price)
	return binary.AppendVarint(dst, b.DateTime)
}

func (q9EarlyCodec) Decode(src []byte) (b q9Early, n int, err error) {
	d := fieldDecoder{src: src}
	b.Bidder, b.Price, b.DateTime = d.varint(), d.varint(), d.varint()
	return b, d.n, d.err
}

// q9OpenCodec encodes a q9Open as the auction's four fields (zig-zag
// varints), a bool, and the best bid when there is one.
type q9OpenCodec struct{}

func (q9OpenCodec) CodecID() codec.ID { return codec.ID{Name: "nexmark.q9-open-auction", Version: 1} }

func (q9OpenCodec) Append(dst []byte, o q9Open) []byte {
	dst = binary.AppendVarint(dst, o.Seller)
	dst = binary.AppendVarint(dst, o.Category)
	dst = binary.AppendVarint(dst, o.DateTime)
	dst = binary.AppendVarint(dst, o.Expires)
	dst = codec.Bool.Append(dst, o.HasBest)
	if o.HasBest {
		dst = q9EarlyCodec{}.Append(dst, o.Best)
	}
	return dst
}

func (q9OpenCodec) Decode(src []byte) (o q9Open, n int, err error) {
	d := fieldDecoder{src: src}
	o.Seller, o.Category, o.DateTime, o.Expires = d.varint(), d.varint(), d.varint(), d.varint()
	if o.HasBest = d.bool(); o.HasBest {
		o.Best.Bidder, o.Best.Price, o.Best.DateTime = d.varint(), d.varint(), d.varint()
	}
	return o, d.n, d.err
}
