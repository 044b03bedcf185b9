package queries

import (
	"fmt"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/internal/nexmark"
	"github.com/sluicehq/sluice/window"
)

// q8 is "monitor new users": the persons who put an auction up for sale in
// the same tumbling window of 10 s of event time in which they were
// created. Persons (id, name) and auctions (their seller) are projected
// into one stream of the same shape (one FlatMap, which is their union),
// keyed by person id, and a tumbling event-time window aggregates flags
// (created, sold) and the name; a window in which a person did both gives
// one row (id, name, window start), however many auctions the person
// opened, as the SQL's GROUP BY of each side before the join does.
func init() { register(Query{Name: "q8", Build: buildQ8}) }

// q8Size is q8's window size.
const q8Size = 10 * time.Second

// Q8Row is one row of q8; Start is the window's start, in milliseconds
// since the epoch.
type Q8Row struct {
	ID    int64
	Name  string
	Start int64
}

func (r Q8Row) String() string { return fmt.Sprintf("%d,%s,%d", r.ID, r.Name, r.Start) }

// q8Rec is a person (Person set, with its name) or an auction's seller.
type q8Rec struct {
	ID     int64
	Name   string
	Person bool
}

// q8Acc is what a window knows about a person id.
type q8Acc struct {
	Name            string
	Created, Seller bool
}

// q8Flags aggregates a window's records of one id.
type q8Flags struct{}

func (q8Flags) CreateAccumulator() q8Acc { return q8Acc{} }

func (q8Flags) Add(r q8Rec, a q8Acc) q8Acc {
	if r.Person {
		a.Name, a.Created = r.Name, true
	} else {
		a.Seller = true
	}
	return a
}

func (q8Flags) Merge(a, b q8Acc) q8Acc {
	if b.Created {
		a.Name, a.Created = b.Name, true
	}
	a.Seller = a.Seller || b.Seller
	return a
}

func (q8Flags) Result(a q8Acc) q8Acc { return a }

// q8Match emits the ids that were created and sold in the window.
type q8Match struct{}

func (q8Match) Process(id int64, accs []q8Acc, wc *sluice.WindowContext[Q8Row]) error {
	if a := accs[0]; a.Created && a.Seller {
		wc.Collect(Q8Row{ID: id, Name: a.Name, Start: wc.Window().Start / int64(time.Millisecond)})
	}
	return nil
}

func buildQ8(env *sluice.Environment, events sluice.Stream[nexmark.Event], out *Out) {
	recs := sluice.FlatMap(events, "q8-persons-sellers", func(ev nexmark.Event, c *sluice.Collector[q8Rec]) error {
		switch ev.Kind {
		case nexmark.KindPerson:
			c.Collect(q8Rec{ID: ev.Person.ID, Name: ev.Person.Name, Person: true})
		case nexmark.KindAuction:
			c.Collect(q8Rec{ID: ev.Auction.Seller})
		}
		return nil
	})
	rows := sluice.WindowAggregateProcess(
		sluice.Window(sluice.KeyBy(recs, func(r q8Rec) int64 { return r.ID }), window.Tumbling(q8Size, 0)),
		"q8-window", sluice.AggregateFunction[q8Rec, q8Acc, q8Acc](q8Flags{}), codec.Codec[q8Acc](q8AccCodec{}),
		func() sluice.ProcessWindowFunction[int64, q8Acc, Q8Row] { return q8Match{} })
	EmitTimed(out, rows, "q8-sink", Q8Row.String, func(r Q8Row) int64 { return r.Start + q8Size.Milliseconds() - 1 })
}

// q8AccCodec encodes a q8Acc as a flags byte and, for a created person,
// the name.
type q8AccCodec struct{}

func (q8AccCodec) CodecID() codec.ID { return codec.ID{Name: "nexmark.q8-flags", Version: 1} }

func (q8AccCodec) Append(dst []byte, a q8Acc) []byte {
	var f byte
	if a.Created {
		f |= 1
	}
	if a.Seller {
		f |= 2
	}
	dst = append(dst, f)
	if a.Created {
		dst = codec.String.Append(dst, a.Name)
	}
	return dst
}

func (q8AccCodec) Decode(src []byte) (a q8Acc, n int, err error) {
	if len(src) == 0 {
		return a, 0, codec.ErrTruncated
	}
	f := src[0]
	if f > 3 {
		return a, 0, fmt.Errorf("%w: q8 flags byte %d", codec.ErrCorrupt, f)
	}
	a.Created, a.Seller = f&1 != 0, f&2 != 0
	if !a.Created {
		return a, 1, nil
	}
	d := fieldDecoder{src: src, n: 1}
	a.Name = d.string()
	return a, d.n, d.err
}
