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

// q5 is "hot items": per sliding window of 10 s every 2 s of event time,
// the auctions with the most bids. The bids' auction ids are keyed by
// auction and counted in sliding event-time windows (an AggregateFunction:
// one count per auction and 2 s pane); each window's counts, carrying the
// window's end, are keyed by that end, and a keyed process function keeps
// the highest count and the auctions that reach it, and emits them when
// the watermark passes the window's end. Ties are all emitted, as the SQL
// join on num >= max(num) does.
func init() { register(Query{Name: "q5", Build: buildQ5}) }

// Q5Row is one row of q5: Auction had Count bids in the window ending at
// WindowEnd (ms since the epoch), the most of any auction.
type Q5Row struct {
	Auction, Count, WindowEnd int64
}

func (r Q5Row) String() string { return fmt.Sprintf("%d,%d,%d", r.Auction, r.Count, r.WindowEnd) }

// q5Count is one auction's count in the window ending at End (ns).
type q5Count struct{ Auction, Count, End int64 }

// q5Counter counts a window's bids.
type q5Counter struct{}

func (q5Counter) CreateAccumulator() int64   { return 0 }
func (q5Counter) Add(_ int64, n int64) int64 { return n + 1 }
func (q5Counter) Merge(a, b int64) int64     { return a + b }
func (q5Counter) Result(n int64) int64       { return n }

// q5Label attaches the auction and the window's end to a count.
type q5Label struct{}

func (q5Label) Process(auction int64, counts []int64, wc *sluice.WindowContext[q5Count]) error {
	wc.Collect(q5Count{Auction: auction, Count: counts[0], End: wc.Window().End})
	return nil
}

func buildQ5(env *sluice.Environment, events sluice.Stream[nexmark.Event], out *Out) {
	auctions := sluice.FlatMap(events, "q5-bids", func(ev nexmark.Event, c *sluice.Collector[int64]) error {
		if ev.Kind == nexmark.KindBid {
			c.Collect(ev.Bid.Auction)
		}
		return nil
	})
	counts := sluice.WindowAggregateProcess(
		sluice.Window(sluice.KeyBy(auctions, func(a int64) int64 { return a }), window.Sliding(10*time.Second, 2*time.Second, 0)),
		"q5-count", sluice.AggregateFunction[int64, int64, int64](q5Counter{}), codec.Int64,
		func() sluice.ProcessWindowFunction[int64, int64, q5Count] { return q5Label{} })
	hot := sluice.Process(sluice.KeyBy(counts, func(c q5Count) int64 { return c.End }),
		"q5-hottest", func() sluice.KeyedProcessFunction[int64, q5Count, Q5Row] { return &q5Hottest{} })
	EmitTimed(out, hot, "q5-sink", Q5Row.String, func(r Q5Row) int64 { return r.WindowEnd - 1 })
}

// q5Max is a window's highest count and the auctions that have it.
type q5Max struct {
	Count    int64
	Auctions []int64
}

// q5Hottest is q5's second stage, keyed by window end.
type q5Hottest struct{ max state.ValueState[q5Max] }

func (f *q5Hottest) Open(rc *sluice.RuntimeContext[int64]) (err error) {
	f.max, err = sluice.NewValueState(rc, "max", codec.Codec[q5Max](q5MaxCodec{}))
	return err
}

func (f *q5Hottest) ProcessElement(c q5Count, pc *sluice.ProcessContext[int64, Q5Row]) error {
	m, ok := f.max.Value()
	switch {
	case !ok:
		pc.RegisterEventTimeTimer(c.End - 1)
		f.max.Update(q5Max{Count: c.Count, Auctions: []int64{c.Auction}})
	case c.Count > m.Count:
		// A new slice: a snapshot may still be reading the stored one.
		f.max.Update(q5Max{Count: c.Count, Auctions: []int64{c.Auction}})
	case c.Count == m.Count:
		// Appending writes past the stored slice's length only, which a
		// snapshot of it does not read.
		m.Auctions = append(m.Auctions, c.Auction)
		f.max.Update(m)
	}
	return nil
}

// OnTimer emits the window's hottest auctions once the watermark passed
// its end.
func (f *q5Hottest) OnTimer(_ time.Time, pc *sluice.ProcessContext[int64, Q5Row]) error {
	m, ok := f.max.Value()
	if !ok {
		return nil
	}
	end := pc.CurrentKey() / int64(time.Millisecond)
	for _, a := range m.Auctions {
		pc.Collect(Q5Row{Auction: a, Count: m.Count, WindowEnd: end})
	}
	f.max.Clear()
	return nil
}

// q5MaxCodec encodes a q5Max as its count and the list of auction ids,
// zig-zag varints.
type q5MaxCodec struct{}

func (q5MaxCodec) CodecID() codec.ID { return codec.ID{Name: "nexmark.q5-max", Version: 1} }

func (q5MaxCodec) Append(dst []byte, m q5Max) []byte {
	dst = binary.AppendVarint(dst, m.Count)
	dst = binary.AppendUvarint(dst, uint64(len(m.Auctions)))
	for _, a := range m.Auctions {
		dst = binary.AppendVarint(dst, a)
	}
	return dst
}

func (q5MaxCodec) Decode(src []byte) (m q5Max, n int, err error) {
	d := fieldDecoder{src: src}
	m.Count = d.varint()
	if k := d.count(1); k > 0 {
		m.Auctions = make([]int64, k)
		for i := range m.Auctions {
			m.Auctions[i] = d.varint()
		}
	}
	return m, d.n, d.err
}
