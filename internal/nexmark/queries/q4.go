package queries

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/internal/nexmark"
	"github.com/sluicehq/sluice/state"
)

// q4 is "average price per category": the running average of the winning
// prices of the closed auctions of each category. q9's winners (each final
// once the watermark passed its auction's expiry) are keyed by category;
// a keyed process function keeps the running sum and count in ValueState
// and emits one (category, average) row per winner, the average in whole
// cents (as SQL's AVG of a BIGINT). So that the rows do not depend on how
// the winners of the upstream subtasks interleave, a winner is applied
// when the watermark passes its expiry (the timestamp it carries), the
// winners of one expiry in auction-id order: they wait in ListState until
// then, one event-time timer per expiry.
func init() { register(Query{Name: "q4", Build: buildQ4}) }

// Q4Row is one row of q4: the average winning price of Category after N
// closed auctions.
type Q4Row struct {
	Category, N, Average int64
	// expires is the closing time of the winner's auction (ms), for the
	// latency samples.
	expires int64
}

func (r Q4Row) String() string { return fmt.Sprintf("%d,%d,%d", r.Category, r.N, r.Average) }

// q4Winner is the projection of a winner q4 keeps.
type q4Winner struct{ Category, Auction, Expires, Price int64 }

// q4Sum is a category's running sum and count.
type q4Sum struct{ Sum, N int64 }

func buildQ4(env *sluice.Environment, events sluice.Stream[nexmark.Event], out *Out) {
	winners := sluice.Map(winningBids(events, "q4"), "q4-project", func(w Winner) q4Winner {
		return q4Winner{Category: w.Category, Auction: w.Auction, Expires: w.Expires, Price: w.Price}
	})
	avg := sluice.Process(sluice.KeyBy(winners, func(w q4Winner) int64 { return w.Category }),
		"q4-average", func() sluice.KeyedProcessFunction[int64, q4Winner, Q4Row] { return &q4Average{} })
	EmitTimed(out, avg, "q4-sink", Q4Row.String, func(r Q4Row) int64 { return r.expires })
}

// q4Average is q4's keyed process function.
type q4Average struct {
	sum state.ValueState[q4Sum]
	// pending holds the winners not applied yet, by expiry (ms).
	pending state.MapState[int64, []q4Winner]
	// due is scratch for the winners a timer applies.
	due []q4Winner
}

func (f *q4Average) Open(rc *sluice.RuntimeContext[int64]) (err error) {
	if f.sum, err = sluice.NewValueState(rc, "sum", codec.Codec[q4Sum](q4SumCodec{})); err != nil {
		return err
	}
	f.pending, err = sluice.NewMapState(rc, "pending-winners", codec.Int64, codec.List(codec.Codec[q4Winner](q4WinnerCodec{})))
	return err
}

func (f *q4Average) ProcessElement(w q4Winner, pc *sluice.ProcessContext[int64, Q4Row]) error {
	ws, _ := f.pending.Get(w.Expires)
	// Appending writes past the stored slice's length only, which a
	// snapshot of it does not read.
	f.pending.Put(w.Expires, append(ws, w))
	pc.RegisterEventTimeTimer(msToNanos(w.Expires))
	return nil
}

// OnTimer applies the winners of the expiry at, in auction-id order.
func (f *q4Average) OnTimer(at time.Time, pc *sluice.ProcessContext[int64, Q4Row]) error {
	expires := at.UnixNano() / int64(time.Millisecond)
	due, ok := f.pending.Get(expires)
	if !ok {
		return nil
	}
	f.pending.Remove(expires)
	// Sort a copy: a snapshot may still be reading the stored slice.
	due = append(f.due[:0], due...)
	f.due = due
	slices.SortFunc(due, func(a, b q4Winner) int { return cmp.Compare(a.Auction, b.Auction) })
	s, _ := f.sum.Value()
	for _, w := range due {
		s.Sum += w.Price
		s.N++
		pc.Collect(Q4Row{Category: w.Category, N: s.N, Average: s.Sum / s.N, expires: w.Expires})
	}
	f.sum.Update(s)
	return nil
}

// q4SumCodec encodes a q4Sum as two zig-zag varints.
type q4SumCodec struct{}

func (q4SumCodec) CodecID() codec.ID { return codec.ID{Name: "nexmark.q4-sum", Version: 1} }

func (q4SumCodec) Append(dst []byte, s q4Sum) []byte {
	return binary.AppendVarint(binary.AppendVarint(dst, s.Sum), s.N)
}

func (q4SumCodec) Decode(src []byte) (s q4Sum, n int, err error) {
	d := fieldDecoder{src: src}
	s.Sum, s.N = d.varint(), d.varint()
	return s, d.n, d.err
}

// q4WinnerCodec encodes a q4Winner as four zig-zag varints.
type q4WinnerCodec struct{}

func (q4WinnerCodec) CodecID() codec.ID { return codec.ID{Name: "nexmark.q4-winner", Version: 1} }

func (q4WinnerCodec) Append(dst []byte, w q4Winner) []byte {
	dst = binary.AppendVarint(dst, w.Category)
	dst = binary.AppendVarint(dst, w.Auction)
	dst = binary.AppendVarint(dst, w.Expires)
	return binary.AppendVarint(dst, w.Price)
}

func (q4WinnerCodec) Decode(src []byte) (w q4Winner, n int, err error) {
	d := fieldDecoder{src: src}
	w.Category, w.Auction, w.Expires, w.Price = d.varint(), d.varint(), d.varint(), d.varint()
	return w, d.n, d.err
}
