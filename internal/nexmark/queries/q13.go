package queries

import (
	"fmt"
	"strconv"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/connector/datagen"
	"github.com/sluicehq/sluice/internal/nexmark"
	"github.com/sluicehq/sluice/state"
)

// q13SideRows is the size of q13's side table, rows (k, "k") for k in
// [0, q13SideRows), as the suite's side-input file holds them.
const q13SideRows = 10_000

// q13 is the suite's bounded side-input join: every bid joined with the
// row of a small side table whose key is auction mod 10,000 (the SQL's
// lookup join on a file). The side table comes from a tiny bounded
// source and is broadcast to every subtask into broadcast state (the
// broadcast state pattern, docs/design.md §4). A bid must not depend on
// how far the side input has got when it arrives, so bids wait, in keyed
// ListState (checkpointed), until the table is complete: it is complete
// when it holds all q13SideRows keys, and the broadcast record that
// completes it replays the waiting bids (ApplyToKeyedState). After that a
// bid costs one map lookup. The bids are keyed by the join key, which
// spreads them and gives the waiting ones a checkpointed home.
func init() {
	register(Query{Name: "q13", Build: func(env *sluice.Environment, events sluice.Stream[nexmark.Event], out *Out) {
		side := sluice.Map(sluice.FromSource(env, "q13-side-input",
			datagen.New(datagen.Config{Splits: 1, RecordsPerSplit: q13SideRows, Keys: 1}), sluice.Parallelism(1)),
			"q13-side-row", func(r datagen.Record) q13Side { return q13Side{Key: r.Seq, Value: strconv.FormatInt(r.Seq, 10)} })
		bids := bidsAs(events, "q13-project", func(b nexmark.Bid) q13Bid {
			return q13Bid{Auction: b.Auction, Bidder: b.Bidder, Price: b.Price, DateTime: b.DateTime}
		})
		keyed := sluice.KeyBy(bids, func(b q13Bid) int64 { return b.Auction % q13SideRows })
		rows := sluice.ProcessKeyedBroadcast(sluice.ConnectKeyedBroadcast(keyed, sluice.BroadcastWith(side, q13Table)), "q13-join",
			func() sluice.KeyedBroadcastProcessFunction[int64, q13Bid, q13Side, q13Row] { return &q13Fn{} })
		EmitTimed(out, rows, "q13-sink", q13Row.String, func(r q13Row) int64 { return r.DateTime })
	}})
}

// q13Table is the broadcast state holding the side table.
var q13Table = sluice.NewBroadcastStateDescriptor("side-input", codec.Int64, codec.Codec[string](codec.String))

// q13Side is a row of the side table.
type q13Side struct {
	Key   int64
	Value string
}

// q13Bid is what q13 needs of a bid.
type q13Bid struct {
	Auction, Bidder, Price, DateTime int64
}

// q13Row is one row of q13.
type q13Row struct {
	q13Bid
	Value string
}

func (r q13Row) String() string {
	return fmt.Sprintf("%d,%d,%d,%s,%s", r.Auction, r.Bidder, r.Price, tsString(r.DateTime), r.Value)
}

// q13Fn joins bids with the side table, holding them back until it is
// complete.
type q13Fn struct {
	waiting state.ListState[q13Bid]
}

// q13Waiting names the keyed state of the bids that wait for the table.
const q13Waiting = "waiting"

func (f *q13Fn) Open(rc *sluice.RuntimeContext[int64]) (err error) {
	f.waiting, err = sluice.NewListState(rc, q13Waiting, codec.Codec[q13Bid](q13BidCodec{}))
	return err
}

func (f *q13Fn) ProcessElement(b q13Bid, pc *sluice.ProcessContext[int64, q13Row]) error {
	table, err := sluice.ReadOnlyBroadcastStateFor(pc, q13Table)
	if err != nil {
		return err
	}
	if table.Len() < q13SideRows {
		f.waiting.Add(b)
		return nil
	}
	if v, ok := table.Get(pc.CurrentKey()); ok {
		pc.Collect(q13Row{q13Bid: b, Value: v})
	}
	return nil
}

func (f *q13Fn) ProcessBroadcastElement(s q13Side, bc *sluice.KeyedBroadcastContext[int64, q13Row]) error {
	w, err := sluice.BroadcastStateFor(bc, q13Table)
	if err != nil {
		return err
	}
	w.Put(s.Key, s.Value)
	table, err := sluice.ReadOnlyBroadcastStateFor(bc, q13Table)
	if err != nil || table.Len() != q13SideRows {
		return err
	}
	// The table is complete: join the bids that waited for it.
	return bc.ApplyToKeyedState(q13Waiting, func(key int64) error {
		v, ok := table.Get(key)
		for _, b := range f.waiting.Get() {
			if ok {
				bc.Collect(q13Row{q13Bid: b, Value: v})
			}
		}
		f.waiting.Clear()
		return nil
	})
}

// q13BidCodec encodes a q13Bid as four zig-zag varints.
type q13BidCodec struct{}

func (q13BidCodec) Append(dst []byte, b q13Bid) []byte {
	for _, v := range [...]int64{b.Auction, b.Bidder, b.Price, b.DateTime} {
		dst = codec.Int64.Append(dst, v)
	}
	return dst
}

func (q13BidCodec) Decode(src []byte) (q13Bid, int, error) {
	var b q13Bid
	d := fieldDecoder{src: src}
	b.Auction = d.varint()
	b.Bidder = d.varint()
	b.Price = d.varint()
	b.DateTime = d.varint()
	if d.err != nil {
		return q13Bid{}, 0, fmt.Errorf("q13 bid: %w", d.err)
	}
	return b, d.n, nil
}

func (q13BidCodec) CodecID() codec.ID { return codec.ID{Name: "nexmark-q13-bid", Version: 1} }
