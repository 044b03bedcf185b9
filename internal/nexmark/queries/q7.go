package queries

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/internal/nexmark"
	"github.com/sluicehq/sluice/state"
	"github.com/sluicehq/sluice/window"
)

// q7 is "highest bid": the bid(s) at the highest price of each tumbling
// window of 10 s of event time. The bids are projected, keyed by one of 64
// groups of a hash of the price (so the work spreads over the subtasks
// while every group's candidates stay few), and a tumbling event-time
// window keeps each group's highest price and the bids at it (an
// AggregateFunction). The groups' results, carrying the window's end, are
// keyed by that end and merged in a keyed process function, which emits
// the bids at the overall maximum when the watermark passes the end. The
// SQL job joins every bid back against the maximum and keeps them all in
// join state; this keeps only the candidates.
func init() { register(Query{Name: "q7", Build: buildQ7}) }

// Q7Row is one row of q7: a bid at the highest price of the window ending
// at WindowEnd. Times are milliseconds since the epoch.
type Q7Row struct {
	Auction, Bidder, Price, DateTime, WindowEnd int64
}

func (r Q7Row) String() string {
	return fmt.Sprintf("%d,%d,%d,%d,%d", r.Auction, r.Bidder, r.Price, r.DateTime, r.WindowEnd)
}

// q7Bid is the projection of a bid q7 keeps.
type q7Bid struct{ Auction, Bidder, Price, DateTime int64 }

// q7Max is the highest price of a group (or a window) and its bids; End
// is the window's end (ns), set on a group's result.
type q7Max struct {
	Price, End int64
	Bids       []q7Bid
}

// q7Groups is the number of price-hash groups.
const q7Groups = 64

// q7Group returns the price-hash group of a price: the top 6 bits of a
// Fibonacci hash.
func q7Group(price int64) int64 { return int64((uint64(price) * 0x9e3779b97f4a7c15) >> 58) }

// q7Highest keeps the highest price and the bids at it.
type q7Highest struct{}

func (q7Highest) CreateAccumulator() q7Max { return q7Max{Price: -1} }

func (q7Highest) Add(b q7Bid, m q7Max) q7Max {
	switch {
	case b.Price > m.Price:
		// A new slice: a snapshot may still be reading the stored one.
		return q7Max{Price: b.Price, Bids: []q7Bid{b}}
	case b.Price == m.Price:
		// Appending writes past the stored slice's length only.
		m.Bids = append(m.Bids, b)
	}
	return m
}

func (q7Highest) Merge(a, b q7Max) q7Max { return q7Merge(a, b) }

func (q7Highest) Result(m q7Max) q7Max { return m }

// q7Merge combines two maxima (with fresh storage for ties).
func q7Merge(a, b q7Max) q7Max {
	switch {
	case a.Price > b.Price:
		return a
	case b.Price > a.Price:
		return b
	}
	bids := make([]q7Bid, 0, len(a.Bids)+len(b.Bids))
	return q7Max{Price: a.Price, End: max(a.End, b.End), Bids: append(append(bids, a.Bids...), b.Bids...)}
}

// q7Label attaches the window's end to a group's maximum.
type q7Label struct{}

func (q7Label) Process(_ int64, ms []q7Max, wc *sluice.WindowContext[q7Max]) error {
	m := ms[0]
	m.End = wc.Window().End
	wc.Collect(m)
	return nil
}

func buildQ7(env *sluice.Environment, events sluice.Stream[nexmark.Event], out *Out) {
	bids := sluice.FlatMap(events, "q7-bids", func(ev nexmark.Event, c *sluice.Collector[q7Bid]) error {
		if b := &ev.Bid; ev.Kind == nexmark.KindBid {
			c.Collect(q7Bid{Auction: b.Auction, Bidder: b.Bidder, Price: b.Price, DateTime: b.DateTime})
		}
		return nil
	})
	groups := sluice.WindowAggregateProcess(
		sluice.Window(sluice.KeyBy(bids, func(b q7Bid) int64 { return q7Group(b.Price) }), window.Tumbling(10*time.Second, 0)),
		"q7-group-max", sluice.AggregateFunction[q7Bid, q7Max, q7Max](q7Highest{}), codec.Codec[q7Max](q7MaxCodec{}),
		func() sluice.ProcessWindowFunction[int64, q7Max, q7Max] { return q7Label{} })
	highest := sluice.Process(sluice.KeyBy(groups, func(m q7Max) int64 { return m.End }),
		"q7-max", func() sluice.KeyedProcessFunction[int64, q7Max, Q7Row] { return &q7Window{} })
	EmitTimed(out, highest, "q7-sink", Q7Row.String, func(r Q7Row) int64 { return r.WindowEnd - 1 })
}

// q7Window merges the groups' maxima of a window (keyed by its end).
type q7Window struct{ max state.ValueState[q7Max] }

func (f *q7Window) Open(rc *sluice.RuntimeContext[int64]) (err error) {
	f.max, err = sluice.NewValueState(rc, "max", codec.Codec[q7Max](q7MaxCodec{}))
	return err
}

func (f *q7Window) ProcessElement(m q7Max, pc *sluice.ProcessContext[int64, Q7Row]) error {
	cur, ok := f.max.Value()
	if !ok {
		pc.RegisterEventTimeTimer(m.End - 1)
		f.max.Update(m)
		return nil
	}
	if m.Price >= cur.Price {
		f.max.Update(q7Merge(cur, m))
	}
	return nil
}

// OnTimer emits the window's highest bids once the watermark passed its
// end.
func (f *q7Window) OnTimer(_ time.Time, pc *sluice.ProcessContext[int64, Q7Row]) error {
	m, ok := f.max.Value()
	if !ok {
		return nil
	}
	end := pc.CurrentKey() / int64(time.Millisecond)
	for _, b := range m.Bids {
		pc.Collect(Q7Row{Auction: b.Auction, Bidder: b.Bidder, Price: b.Price, DateTime: b.DateTime, WindowEnd: end})
	}
	f.max.Clear()
	return nil
}

// q7MaxCodec encodes a q7Max as its price, end and bids, zig-zag varints.
type q7MaxCodec struct{}

func (q7MaxCodec) CodecID() codec.ID { return codec.ID{Name: "nexmark.q7-max", Version: 1} }

func (q7MaxCodec) Append(dst []byte, m q7Max) []byte {
	dst = binary.AppendVarint(dst, m.Price)
	dst = binary.AppendVarint(dst, m.End)
	dst = binary.AppendUvarint(dst, uint64(len(m.Bids)))
	for _, b := range m.Bids {
		dst = binary.AppendVarint(dst, b.Auction)
		dst = binary.AppendVarint(dst, b.Bidder)
		dst = binary.AppendVarint(dst, b.Price)
		dst = binary.AppendVarint(dst, b.DateTime)
	}
	return dst
}

func (q7MaxCodec) Decode(src []byte) (m q7Max, n int, err error) {
	d := fieldDecoder{src: src}
	m.Price, m.End = d.varint(), d.varint()
	if k := d.count(4); k > 0 {
		m.Bids = make([]q7Bid, k)
		for i := range m.Bids {
			b := &m.Bids[i]
			b.Auction, b.Bidder, b.Price, b.DateTime = d.varint(), d.varint(), d.varint(), d.varint()
		}
	}
	return m, d.n, d.err
}
