package queries

import (
	"encoding/binary"
	"fmt"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/internal/nexmark"
	"github.com/sluicehq/sluice/state"
)

// q3 is "local item suggestion": the auctions of category 10 whose
// seller lives in Oregon, Idaho or California, joined with the seller's
// name, city and state. Persons and auctions are filtered and projected
// right after the source, connected keyed by person id and seller, and
// joined in a keyed two-input process function: the person waits in
// ValueState; an auction that comes first waits, as its id, in ListState
// until its person arrives. Person ids are unique, so once a person is
// there nothing else can match the auctions that waited for it, and they
// are emitted and cleared. The rows are those of the SQL inner join.
func init() { register(Query{Name: "q3", Build: buildQ3}) }

// Q3Row is one row of q3.
type Q3Row struct {
	Name, City, State string
	Auction           int64
	// at is the row's event time (ms): the later of the person's and
	// the auction's, for the latency samples.
	at int64
}

func (r Q3Row) String() string {
	return fmt.Sprintf("%s,%s,%s,%d", r.Name, r.City, r.State, r.Auction)
}

// q3Person is the projection of a person q3 keeps.
type q3Person struct {
	ID, DateTime      int64
	Name, City, State string
}

// q3Auction is the projection of an auction q3 joins.
type q3Auction struct{ ID, Seller, DateTime int64 }

// q3State reports whether q3 selects persons of state s.
func q3State(s string) bool { return s == "OR" || s == "ID" || s == "CA" }

func buildQ3(env *sluice.Environment, events sluice.Stream[nexmark.Event], out *Out) {
	persons := sluice.FlatMap(events, "q3-persons", func(ev nexmark.Event, c *sluice.Collector[q3Person]) error {
		if p := &ev.Person; ev.Kind == nexmark.KindPerson && q3State(p.State) {
			c.Collect(q3Person{ID: p.ID, DateTime: p.DateTime, Name: p.Name, City: p.City, State: p.State})
		}
		return nil
	})
	auctions := sluice.FlatMap(events, "q3-auctions", func(ev nexmark.Event, c *sluice.Collector[q3Auction]) error {
		if a := &ev.Auction; ev.Kind == nexmark.KindAuction && a.Category == 10 {
			c.Collect(q3Auction{ID: a.ID, Seller: a.Seller, DateTime: a.DateTime})
		}
		return nil
	})
	joined := sluice.CoProcess(sluice.Connect(
		sluice.KeyBy(persons, func(p q3Person) int64 { return p.ID }),
		sluice.KeyBy(auctions, func(a q3Auction) int64 { return a.Seller })),
		"q3-join", func() sluice.KeyedCoProcessFunction[int64, q3Person, q3Auction, Q3Row] { return &q3Join{} })
	EmitTimed(out, joined, "q3-sink", Q3Row.String, func(r Q3Row) int64 { return r.at })
}

// q3Join is q3's keyed two-input process function.
type q3Join struct {
	person  state.ValueState[q3Person]
	waiting state.ListState[q3Waiting]
}

// q3Waiting is an auction waiting for its seller: its id and time.
type q3Waiting struct{ ID, DateTime int64 }

func (j *q3Join) Open(rc *sluice.RuntimeContext[int64]) (err error) {
	if j.person, err = sluice.NewValueState(rc, "person", codec.Codec[q3Person](q3PersonCodec{})); err != nil {
		return err
	}
	j.waiting, err = sluice.NewListState(rc, "waiting-auctions", codec.Codec[q3Waiting](q3WaitingCodec{}))
	return err
}

func (j *q3Join) ProcessElement1(p q3Person, pc *sluice.ProcessContext[int64, Q3Row]) error {
	j.person.Update(p)
	if ws := j.waiting.Get(); len(ws) > 0 {
		for _, w := range ws {
			pc.Collect(Q3Row{Name: p.Name, City: p.City, State: p.State, Auction: w.ID, at: max(p.DateTime, w.DateTime)})
		}
		j.waiting.Clear()
	}
	return nil
}

func (j *q3Join) ProcessElement2(a q3Auction, pc *sluice.ProcessContext[int64, Q3Row]) error {
	if p, ok := j.person.Value(); ok {
		pc.Collect(Q3Row{Name: p.Name, City: p.City, State: p.State, Auction: a.ID, at: max(p.DateTime, a.DateTime)})
		return nil
	}
	j.waiting.Add(q3Waiting{ID: a.ID, DateTime: a.DateTime})
	return nil
}

// q3PersonCodec encodes a q3Person as its id and time (zig-zag varints)
// and three length-prefixed strings.
type q3PersonCodec struct{}

func (q3PersonCodec) CodecID() codec.ID { return codec.ID{Name: "nexmark.q3-person", Version: 1} }

func (q3PersonCodec) Append(dst []byte, p q3Person) []byte {
	dst = binary.AppendVarint(dst, p.ID)
	dst = binary.AppendVarint(dst, p.DateTime)
	dst = codec.String.Append(dst, p.Name)
	dst = codec.String.Append(dst, p.City)
	return codec.String.Append(dst, p.State)
}

func (q3PersonCodec) Decode(src []byte) (p q3Person, n int, err error) {
	var d fieldDecoder
	d.src = src
	p.ID, p.DateTime = d.varint(), d.varint()
	p.Name, p.City, p.State = d.string(), d.string(), d.string()
	return p, d.n, d.err
}

// q3WaitingCodec encodes a q3Waiting as two zig-zag varints.
type q3WaitingCodec struct{}

func (q3WaitingCodec) CodecID() codec.ID {
	return codec.ID{Name: "nexmark.q3-waiting-auction", Version: 1}
}

func (q3WaitingCodec) Append(dst []byte, w q3Waiting) []byte {
	return binary.AppendVarint(binary.AppendVarint(dst, w.ID), w.DateTime)
}

func (q3WaitingCodec) Decode(src []byte) (w q3Waiting, n int, err error) {
	d := fieldDecoder{src: src}
	w.ID, w.DateTime = d.varint(), d.varint()
	return w, d.n, d.err
}
