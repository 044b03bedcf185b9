package queries

import (
	"fmt"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/internal/nexmark"
	"github.com/sluicehq/sluice/window"
)

// q17 is the suite's per-auction daily statistics: for each auction and
// UTC day, the number of bids, per price range (below $100, below
// $10,000, above), and the minimum, maximum, average (integer, as the
// SQL's AVG of a BIGINT) and sum of the prices. The SQL's GROUP BY
// updates its row with every bid; here the row is the final one, emitted
// when the watermark passes the end of the day: (auction, price) is keyed
// by auction into tumbling event-time windows of one day with an
// incremental aggregate, a value of seven integers per auction and day
// on the window operator's fast path.
func init() {
	register(Query{Name: "q17", Build: func(env *sluice.Environment, events sluice.Stream[nexmark.Event], out *Out) {
		bids := bidsAs(events, "q17-project", func(b nexmark.Bid) idPair { return idPair{b.Auction, b.Price} })
		ws := sluice.Window(sluice.KeyBy(bids, func(p idPair) int64 { return p.A }), window.Tumbling(24*time.Hour, 0))
		rows := sluice.WindowAggregateProcess(ws, "q17-stats", sluice.AggregateFunction[idPair, q17Acc, q17Acc](q17Agg{}), codec.Codec[q17Acc](q17AccCodec{}),
			func() sluice.ProcessWindowFunction[int64, q17Acc, q17Row] { return q17Window{} })
		Emit(out, rows, "q17-sink", q17Row.String)
	}})
}

// q17Acc is the running statistics of one auction and day.
type q17Acc struct {
	Bids     int64
	Rank     [3]int64
	Min, Max int64
	Sum      int64
}

// q17Agg folds (auction, price) pairs into a q17Acc.
type q17Agg struct{}

func (q17Agg) CreateAccumulator() q17Acc { return q17Acc{} }

func (q17Agg) Add(p idPair, a q17Acc) q17Acc {
	price := p.B
	if a.Bids == 0 || price < a.Min {
		a.Min = price
	}
	if a.Bids == 0 || price > a.Max {
		a.Max = price
	}
	a.Bids++
	a.Rank[priceRank(price)]++
	a.Sum += price
	return a
}

func (q17Agg) Merge(a, b q17Acc) q17Acc {
	switch {
	case a.Bids == 0:
		return b
	case b.Bids == 0:
		return a
	}
	a.Min, a.Max = min(a.Min, b.Min), max(a.Max, b.Max)
	a.Bids += b.Bids
	for i := range a.Rank {
		a.Rank[i] += b.Rank[i]
	}
	a.Sum += b.Sum
	return a
}

func (q17Agg) Result(a q17Acc) q17Acc { return a }

// q17AccCodec encodes a q17Acc as seven zig-zag varints.
type q17AccCodec struct{}

func (q17AccCodec) Append(dst []byte, a q17Acc) []byte {
	for _, v := range [...]int64{a.Bids, a.Rank[0], a.Rank[1], a.Rank[2], a.Min, a.Max, a.Sum} {
		dst = codec.Int64.Append(dst, v)
	}
	return dst
}

func (q17AccCodec) Decode(src []byte) (q17Acc, int, error) {
	var a q17Acc
	d := fieldDecoder{src: src}
	for _, p := range [...]*int64{&a.Bids, &a.Rank[0], &a.Rank[1], &a.Rank[2], &a.Min, &a.Max, &a.Sum} {
		*p = d.varint()
	}
	if d.err != nil {
		return q17Acc{}, 0, fmt.Errorf("q17 statistics: %w", d.err)
	}
	return a, d.n, nil
}

func (q17AccCodec) CodecID() codec.ID { return codec.ID{Name: "nexmark-q17-stats", Version: 1} }

// q17Row is one row of q17.
type q17Row struct {
	Auction, Day int64
	q17Acc
}

func (r q17Row) String() string {
	return fmt.Sprintf("%d,%s,%d,%d,%d,%d,%d,%d,%d,%d", r.Auction, dayString(r.Day), r.Bids, r.Rank[0], r.Rank[1], r.Rank[2],
		r.Min, r.Max, r.Sum/r.Bids, r.Sum)
}

// q17Window adds the auction and the day to the statistics.
type q17Window struct{}

func (q17Window) Process(auction int64, accs []q17Acc, wc *sluice.WindowContext[q17Row]) error {
	wc.Collect(q17Row{Auction: auction, Day: dayOf(wc.Window().Start / int64(time.Millisecond)), q17Acc: accs[0]})
	return nil
}
