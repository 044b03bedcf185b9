package queries

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"time"
	"unsafe"

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
// (compareBidFields), never by arrival.
//
// The state holds about half of all bids (most auctions get fewer than
// ten), so it is kept the way a checkpoint writes it: each auction's bids
// encoded (bidCodec) one after the other in one byte slice, in arrival
// order, ranked only when they are emitted. A checkpoint then copies one
// contiguous slice per auction, and the collector has no pointers to
// follow in it. The slice is append-only: a bid joins by being appended
// behind the bytes a snapshot may still hold (a frozen copy of the value
// has the old, shorter length and never sees the new bytes), and only
// replacing the lowest of ten builds a new slice. A bid that does not
// enter costs one state read and a price comparison.
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
// bids, encoded.
type q19Top struct {
	Last int64
	// N is the number of bids in Enc, at most q19N.
	N int
	// Enc holds the N bids, bidCodec-encoded back to back, in no
	// particular order. Bytes below len(Enc) are never written again.
	Enc []byte
	// Worst is the offset in Enc of the lowest-ranked bid, WorstPrice
	// its price (a bid below it is rejected without decoding).
	Worst      int
	WorstPrice int64
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
	switch {
	case t.N < q19N:
		off := len(t.Enc)
		t.Enc = bidCodec{}.Append(t.Enc, b)
		if t.N == 0 || b.Price < t.WorstPrice || b.Price == t.WorstPrice && t.worstBefore(&b) {
			t.Worst, t.WorstPrice = off, b.Price
		}
		t.N++
		changed = true
	case b.Price > t.WorstPrice || b.Price == t.WorstPrice && !t.worstBefore(&b):
		t.replaceWorst(b)
		changed = true
	}
	if changed || !ok {
		f.top.Update(t)
	}
	return nil
}

// worstBefore reports whether the lowest-ranked bid ranks before b
// (t.N > 0). Two equal bids rank neither before the other: one of them
// stays, which one does not change the output.
func (t *q19Top) worstBefore(b *nexmark.Bid) bool {
	w, _ := viewBid(t.Enc[t.Worst:])
	return q19Before(&w, b)
}

// replaceWorst builds a new Enc of the bids but the worst, and b, and
// finds the new worst (t.N == q19N).
func (t *q19Top) replaceWorst(b nexmark.Bid) {
	_, n := viewBid(t.Enc[t.Worst:])
	enc := make([]byte, 0, len(t.Enc)-n+len(b.Extra)+len(b.URL)+len(b.Channel)+40)
	enc = append(enc, t.Enc[:t.Worst]...)
	enc = append(enc, t.Enc[t.Worst+n:]...)
	enc = bidCodec{}.Append(enc, b)
	t.Enc = enc
	var worst nexmark.Bid
	for off := 0; off < len(enc); {
		c, m := viewBid(enc[off:])
		if off == 0 || q19Before(&worst, &c) {
			worst, t.Worst, t.WorstPrice = c, off, c.Price
		}
		off += m
	}
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
	var top [q19N]nexmark.Bid
	n := 0
	for off := 0; off < len(t.Enc) && n < q19N; n++ {
		b, m := viewBid(t.Enc[off:])
		off += m
		i := n
		for ; i > 0 && q19Before(&b, &top[i-1]); i-- {
			top[i] = top[i-1]
		}
		top[i] = b
	}
	for i := range n {
		pc.Collect(q19Row{Bid: top[i], Rank: int64(i + 1)})
	}
	f.top.Clear()
	return nil
}

// viewBid decodes a bid that bidCodec encoded into trusted bytes (the
// state's own, or validated by q19TopCodec.Decode) and returns its size.
// Its strings point into src, which must never change afterwards: Enc's
// bytes are written once.
func viewBid(src []byte) (nexmark.Bid, int) {
	var b nexmark.Bid
	var n, k int
	b.Auction, k = binary.Varint(src)
	n += k
	b.Bidder, k = binary.Varint(src[n:])
	n += k
	b.Price, k = binary.Varint(src[n:])
	n += k
	b.Channel, n = viewString(src, n)
	b.URL, n = viewString(src, n)
	b.DateTime, k = binary.Varint(src[n:])
	n += k
	b.Extra, n = viewString(src, n)
	return b, n
}

// viewString returns the length-prefixed string at src[n:], pointing into
// src, and the offset after it.
func viewString(src []byte, n int) (string, int) {
	l, k := binary.Uvarint(src[n:])
	n += k
	if l == 0 {
		return "", n
	}
	return unsafe.String(&src[n], int(l)), n + int(l)
}

// q19TopCodec encodes a q19Top: the latest time, the count, the bids
// (bidCodec), which is the layout of Enc itself.
type q19TopCodec struct{}

func (q19TopCodec) Append(dst []byte, t q19Top) []byte {
	dst = codec.Int64.Append(dst, t.Last)
	dst = codec.Int64.Append(dst, int64(t.N))
	return append(dst, t.Enc...)
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
	start := d.n
	var worst nexmark.Bid
	for i := range int(k) {
		b, m, err := bidCodec{}.Decode(src[d.n:])
		if err != nil {
			return q19Top{}, 0, fmt.Errorf("q19 top bids: %w", err)
		}
		if i == 0 || q19Before(&worst, &b) {
			worst, t.Worst, t.WorstPrice = b, d.n-start, b.Price
		}
		d.n += m
	}
	t.N = int(k)
	if k > 0 {
		t.Enc = bytes.Clone(src[start:d.n])
	}
	return t, d.n, nil
}

func (q19TopCodec) CodecID() codec.ID { return codec.ID{Name: "nexmark-q19-top", Version: 1} }
