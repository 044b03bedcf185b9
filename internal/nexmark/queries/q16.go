package queries

import (
	"encoding/binary"
	"fmt"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/internal/nexmark"
)

// q16 is q15 per channel: per (channel, UTC day), the bid, distinct bidder
// and distinct auction counts in total and per price range, and the
// latest minute of the day with a bid (max of DATE_FORMAT(dateTime,
// 'HH:mm')). As in q15 the final row is emitted when the watermark passes
// the end of the day, not the SQL's row updated with every bid. The key
// is the pair (channel, day), so the groups spread over the subtasks.
func init() {
	register(Query{Name: "q16", Build: func(env *sluice.Environment, events sluice.Stream[nexmark.Event], out *Out) {
		bids := bidsAs(events, "q16-project", func(b nexmark.Bid) q16Bid {
			return q16Bid{Channel: b.Channel, dailyBid: dailyBid{Bidder: b.Bidder, Auction: b.Auction, Price: b.Price, DateTime: b.DateTime}}
		})
		keyed := sluice.KeyBy(bids, func(b q16Bid) channelDay { return channelDay{b.Channel, dayOf(b.DateTime)} },
			sluice.WithKeyCodec[channelDay](channelDayCodec{}))
		rows := sluice.Process(keyed, "q16-daily", func() sluice.KeyedProcessFunction[channelDay, q16Bid, dailyRow[channelDay]] {
			return q16Fn{&dailyFn[channelDay]{day: func(k channelDay) int64 { return k.Day }}}
		})
		EmitTimed(out, rows, "q16-sink", func(r dailyRow[channelDay]) string {
			return fmt.Sprintf("%s,%s,%s,%s", r.Key.Channel, dayString(r.Day), appendHM(nil, r.MaxTime), formatDaily(r.dailyStats))
		}, dailyRow[channelDay].latest)
	}})
}

// q16Bid is a bid's channel (for the key) and what dailyFn needs.
type q16Bid struct {
	Channel string
	dailyBid
}

// q16Fn feeds dailyFn the statistics part of a q16Bid.
type q16Fn struct{ *dailyFn[channelDay] }

func (f q16Fn) ProcessElement(b q16Bid, pc *sluice.ProcessContext[channelDay, dailyRow[channelDay]]) error {
	return f.dailyFn.ProcessElement(b.dailyBid, pc)
}

// channelDay is q16's key.
type channelDay struct {
	Channel string
	Day     int64
}

// channelDayCodec encodes a channelDay as a string and a zig-zag varint
// and hashes it stably.
type channelDayCodec struct{}

var _ codec.KeyCodec[channelDay] = channelDayCodec{}

func (channelDayCodec) Append(dst []byte, k channelDay) []byte {
	return binary.AppendVarint(codec.String.Append(dst, k.Channel), k.Day)
}

func (channelDayCodec) Decode(src []byte) (channelDay, int, error) {
	d := fieldDecoder{src: src}
	k := channelDay{Channel: d.string()}
	k.Day = d.varint()
	if d.err != nil {
		return channelDay{}, 0, fmt.Errorf("channel and day: %w", d.err)
	}
	return k, d.n, nil
}

func (channelDayCodec) Hash(k channelDay) uint64 {
	return codec.HashString(k.Channel)*0x9e3779b97f4a7c15 ^ uint64(k.Day)
}

func (channelDayCodec) CodecID() codec.ID {
	return codec.ID{Name: "nexmark-channel-day(string,zigzag-varint)", Version: 1}
}
