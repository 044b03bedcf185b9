package queries

import (
	"cmp"
	"fmt"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/internal/nexmark"
	"github.com/sluicehq/sluice/state"
)

// q19 is the suite's top-N: the 10 highest bids of every auction, with
// their rank (1 to 10). The SQL's ROW_NUMBER() … <= 10 retracts and
// re-ranks as bids arrive; here each auction keeps its current top 10 in
// a ValueState and emits them once the auction has had no bid for idleGap
// (10 s) of event time (a lazily re-armed event-time timer, as in q18).
// At the default rate the input spans 2 s, so every auction emits once,
// at the end: the SQL's final table. Bids are ordered by price, highest
// first, then earliest dateTime, then the other fields
// (compareBidFields), never by arrival. The list is replaced, not
// changed in place, when a bid enters it (a snapshot may still hold the
// old one); a bid below the tenth costs one state read.
func init() {
	register(Query{Name: "q19", Build: func(env *sluice.Environment, events sluice.Stream[nexmark.Event], out *Out) {
		bids := Bids(events)
		keyed := sluice.KeyBy(bids, func(b nexmark.Bid) int64 { return b.Auction })
		rows := sluice.Process(keyed, "q19-top10", func() sluice.KeyedProcessFunction[int64, nexmark.Bid, q19Row] { return &q19Fn{} })
		EmitTimed(out, rows, "q19-sink", func(r q19Row) string { return fmt.Sprintf("%s,%d", formatBid(r.Bid), r.Rank) },
			func(r q19Row) int64 { return r.DateTime })
	}})
}

// q19N is how many bids per auction q19 ranks.
const q19N = 10

// q19Row is a bid and its rank in its auction.
type q19Row struct {
	nexmark.Bid
	Rank int64
}

// q19Top is an auction's state: the latest bid time seen and the top
// bids, best first.
type q19Top struct {
	Last int64
	Top  []nexmark.Bid
}

// q19Before reports whether a ranks before b.
func q19Before(a, b *nexmark.Bid) bool {
	if c := cmp.Compare(a.Price, b.Price); c != 0 {
		return c > 0
	}
	if c := cmp.Compare(a.DateTime, b.DateTime); c != 0 {
		return c < 0
	}
	return compareBidFields(a, b) < 0
}

// q19Fn keeps each auction's top bids.
type q19Fn struct {
	top state.ValueState[q19Top]
}

func (f *q19Fn) Open(rc *sluice.RuntimeContext[int64]) (err error) {
	f.top, err = sluice.NewValueState(rc, "top", codec.Codec[q19Top](q19TopCodec{}))
	return err
}

func (f *q19Fn) ProcessElement(b nexmark.Bid, pc *sluice.ProcessContext[int64, q19Row]) error {
	t, ok := f.top.Value()
	if !ok {
		pc.RegisterEventTimeTimer(nanos(b.DateTime) + int64(idleGap))
	}
	changed := b.DateTime > t.Last
	t.Last = max(t.Last, b.DateTime)
	if len(t.Top) < q19N || q19Before(&b, &t.Top[len(t.Top)-1]) {
		i := 0
		for i < len(t.Top) && q19Before(&t.Top[i], &b) {
			i++
		}
		n := min(len(t.Top)+1, q19N)
		top := make([]nexmark.Bid, n)
		copy(top, t.Top[:i])
		top[i] = ownBid(b)
		copy(top[i+1:], t.Top[i:])
		t.Top = top
		changed = true
	}
	if changed || !ok {
		f.top.Update(t)
	}
	return nil
}

func (f *q19Fn) OnTimer(at time.Time, pc *sluice.ProcessContext[int64, q19Row]) error {
	t, ok := f.top.Value()
	if !ok {
		return nil
	}
	if due := nanos(t.Last) + int64(idleGap); due > at.UnixNano() {
		pc.RegisterEventTimeTimer(due)
		return nil
	}
	for i := range t.Top {
		pc.Collect(q19Row{Bid: t.Top[i], Rank: int64(i + 1)})
	}
	f.top.Clear()
	return nil
}

// q19TopCodec encodes a q19Top: the latest time, the count, the bids.
type q19TopCodec struct{}

func (q19TopCodec) Append(dst []byte, t q19Top) []byte {
	dst = codec.Int64.Append(dst, t.Last)
	dst = codec.Int64.Append(dst, int64(len(t.Top)))
	for i := range t.Top {
		dst = bidCodec{}.Append(dst, t.Top[i])
	}
	return dst
}

func (q19TopCodec) Decode(src []byte) (q19Top, int, error) {
	var t q19Top
	d := fieldDecoder{src: src}
	t.Last = d.varint()
	k := d.varint()
	if d.err == nil && (k < 0 || k > q19N) {
		d.err = fmt.Errorf("%w: %d bids", codec.ErrCorrupt, k)
	}
	if d.err != nil {
		return q19Top{}, 0, fmt.Errorf("q19 top bids: %w", d.err)
	}
	t.Top = make([]nexmark.Bid, k)
	for i := range t.Top {
		b, m, err := bidCodec{}.Decode(src[d.n:])
		if err != nil {
			return q19Top{}, 0, fmt.Errorf("q19 top bids: %w", err)
		}
		t.Top[i], d.n = b, d.n+m
	}
	return t, d.n, nil
}

func (q19TopCodec) CodecID() codec.ID { return codec.ID{Name: "nexmark-q19-top", Version: 1} }
