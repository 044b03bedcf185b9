package queries

// Helpers shared by q10 and q12–q22: the bid projections, a key codec for
// pairs of ids, and the date formats the suite's SQL uses (DATE_FORMAT
// with 'yyyy-MM-dd' and 'HH:mm', in UTC).

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/internal/nexmark"
)

// msPerDay is one day in milliseconds.
const msPerDay = 24 * 60 * 60 * 1000

// bidsAs splits the bids off the event stream and projects each with
// project, in one chained operator: the first step of every bid query, so
// that only the fields a query needs travel on.
// The bid is passed by value: a pointer into the event would make the
// event escape to the heap, an allocation per record.
func bidsAs[T any](events sluice.Stream[nexmark.Event], name string, project func(b nexmark.Bid) T) sluice.Stream[T] {
	return sluice.FlatMap(events, name, func(e nexmark.Event, c *sluice.Collector[T]) error {
		if e.Kind == nexmark.KindBid {
			c.Collect(project(e.Bid))
		}
		return nil
	})
}

// dayOf returns the UTC day number (days since the epoch) of a time in
// milliseconds.
func dayOf(ms int64) int64 {
	d := ms / msPerDay
	if ms%msPerDay < 0 {
		d--
	}
	return d
}

// dayEndNanos returns the last nanosecond of UTC day d: the event time at
// which the day's results are final.
func dayEndNanos(d int64) int64 { return (d+1)*msPerDay*int64(time.Millisecond) - 1 }

// appendDay appends DATE_FORMAT(ms, 'yyyy-MM-dd') in UTC.
func appendDay(dst []byte, ms int64) []byte {
	return time.UnixMilli(ms).UTC().AppendFormat(dst, "2006-01-02")
}

// appendHM appends DATE_FORMAT(ms, 'HH:mm') in UTC.
func appendHM(dst []byte, ms int64) []byte {
	return time.UnixMilli(ms).UTC().AppendFormat(dst, "15:04")
}

// appendTimestamp appends a TIMESTAMP(3) as the SQL prints it,
// 'yyyy-MM-dd HH:mm:ss.SSS', in UTC.
func appendTimestamp(dst []byte, ms int64) []byte {
	return time.UnixMilli(ms).UTC().AppendFormat(dst, "2006-01-02 15:04:05.000")
}

// dayString is the 'yyyy-MM-dd' form of UTC day d.
func dayString(d int64) string { return string(appendDay(nil, d*msPerDay)) }

// tsString is the TIMESTAMP(3) form of ms.
func tsString(ms int64) string { return string(appendTimestamp(nil, ms)) }

// priceRank is the price range the daily statistics (q15–q17) count
// separately: 0 below $100 (10,000 cents), 1 below $10,000, 2 above.
func priceRank(price int64) int {
	switch {
	case price < 10_000:
		return 0
	case price < 1_000_000:
		return 1
	}
	return 2
}

// idPair is a key of two ids, such as (bidder, auction) in q18.
type idPair struct{ A, B int64 }

// idPairCodec encodes an idPair as two zig-zag varints and hashes it
// stably (the hash places keys in key groups: it must never change).
type idPairCodec struct{}

var _ codec.KeyCodec[idPair] = idPairCodec{}

func (idPairCodec) Append(dst []byte, k idPair) []byte {
	return binary.AppendVarint(binary.AppendVarint(dst, k.A), k.B)
}

func (idPairCodec) Decode(src []byte) (idPair, int, error) {
	a, n := binary.Varint(src)
	if n <= 0 {
		return idPair{}, 0, fmt.Errorf("id pair: %w", codec.ErrTruncated)
	}
	b, m := binary.Varint(src[n:])
	if m <= 0 {
		return idPair{}, 0, fmt.Errorf("id pair: %w", codec.ErrTruncated)
	}
	return idPair{a, b}, n + m, nil
}

func (idPairCodec) Hash(k idPair) uint64 {
	return uint64(k.A)*0x9e3779b97f4a7c15 ^ uint64(k.B)
}

func (idPairCodec) CodecID() codec.ID {
	return codec.ID{Name: "nexmark-id-pair(zigzag-varint,zigzag-varint)", Version: 1}
}

// bidCodec encodes a whole bid in state (q18, q19, q20): its integers as
// zig-zag varints and its strings as codec.String does, in field order.
type bidCodec struct{}

var _ codec.Codec[nexmark.Bid] = bidCodec{}

func (bidCodec) Append(dst []byte, b nexmark.Bid) []byte {
	dst = binary.AppendVarint(dst, b.Auction)
	dst = binary.AppendVarint(dst, b.Bidder)
	dst = binary.AppendVarint(dst, b.Price)
	dst = codec.String.Append(dst, b.Channel)
	dst = codec.String.Append(dst, b.URL)
	dst = binary.AppendVarint(dst, b.DateTime)
	return codec.String.Append(dst, b.Extra)
}

func (bidCodec) Decode(src []byte) (nexmark.Bid, int, error) {
	var b nexmark.Bid
	d := fieldDecoder{src: src}
	b.Auction = d.varint()
	b.Bidder = d.varint()
	b.Price = d.varint()
	b.Channel = d.string()
	b.URL = d.string()
	b.DateTime = d.varint()
	b.Extra = d.string()
	if d.err != nil {
		return nexmark.Bid{}, 0, fmt.Errorf("bid: %w", d.err)
	}
	return b, d.n, nil
}

func (bidCodec) CodecID() codec.ID { return codec.ID{Name: "nexmark-bid", Version: 1} }

// compareBidFields orders bids that tie on the column a query sorts by,
// so that its choice among them does not depend on arrival order: by
// price, auction, bidder, channel, URL, extra.
func compareBidFields(a, b *nexmark.Bid) int {
	if c := cmp.Compare(a.Price, b.Price); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Auction, b.Auction); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Bidder, b.Bidder); c != 0 {
		return c
	}
	if c := strings.Compare(a.Channel, b.Channel); c != 0 {
		return c
	}
	if c := strings.Compare(a.URL, b.URL); c != 0 {
		return c
	}
	return strings.Compare(a.Extra, b.Extra)
}

// idleGap is how long, in event time, q18 and q19 wait after a key's
// latest bid before they take its result as final.
const idleGap = 10 * time.Second

// nanos converts milliseconds to the engine's nanoseconds.
func nanos(ms int64) int64 { return ms * int64(time.Millisecond) }

// ownBid returns b with its padding copied out of the generator's string
// arena, for a bid kept in state: a kept substring would keep its whole
// arena chunk alive. Channel and URL are shared, not copied: the
// generator takes them from fixed tables.
func ownBid(b nexmark.Bid) nexmark.Bid {
	b.Extra = strings.Clone(b.Extra)
	return b
}
