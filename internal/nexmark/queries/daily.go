package queries

// The daily statistics of q15 and q16: one keyed process function, keyed
// by day (q15) or by (channel, day) (q16).

import (
	"fmt"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/state"
)

// dailyBid is what the daily statistics need of a bid.
type dailyBid struct {
	Bidder, Auction, Price, DateTime int64
}

// dailyStats is the running statistics of one group and day: bids,
// distinct bidders and distinct auctions, each in total and per price
// range (priceRank), and the latest bid time (q16's max minute).
type dailyStats struct {
	Bids, Bidders, Auctions             int64
	RankBids, RankBidders, RankAuctions [3]int64
	MaxTime                             int64
}

// dailyRow is the final statistics of one group and day.
type dailyRow[K any] struct {
	Key K
	Day int64
	dailyStats
}

// latest is the time of the row's latest bid, from which the benchmark
// measures its latency.
func (r dailyRow[K]) latest() int64 { return r.MaxTime }

// dailyFn computes the statistics of each key (a group and a day): a
// ValueState of counters, and per distinct column a MapState of bit
// blocks: entry id/16 holds, in 4 bits per id (3 used), the price ranges
// (priceRank) seen with each of 16 consecutive ids, so that a bidder or
// auction is counted once in total and once per range. Ids are dense
// (persons and auctions are numbered in order), so a block replaces up
// to 16 map entries: a hot channel's day sees most bidders and auctions,
// and its maps are what a checkpoint writes and what the first write
// after a checkpoint copies (copy-on-write). An event-time timer at the
// end of the day emits the final row and drops the key's state.
type dailyFn[K comparable] struct {
	day      func(K) int64
	stats    state.ValueState[dailyStats]
	bidders  state.MapState[int64, uint64]
	auctions state.MapState[int64, uint64]
	oc       *sluice.OperatorContext
	late     int64
}

func (f *dailyFn[K]) Open(rc *sluice.RuntimeContext[K]) (err error) {
	f.oc = rc.Operator()
	if f.stats, err = sluice.NewValueState(rc, "stats", codec.Codec[dailyStats](dailyStatsCodec{})); err != nil {
		return err
	}
	if f.bidders, err = sluice.NewMapState(rc, "bidder-blocks", codec.Int64, codec.Codec[uint64](codec.Uint64)); err != nil {
		return err
	}
	f.auctions, err = sluice.NewMapState(rc, "auction-blocks", codec.Int64, codec.Codec[uint64](codec.Uint64))
	return err
}

func (f *dailyFn[K]) ProcessElement(b dailyBid, pc *sluice.ProcessContext[K, dailyRow[K]]) error {
	end := dayEndNanos(f.day(pc.CurrentKey()))
	if end <= pc.CurrentWatermark() {
		// The day's row was emitted already: count it and say so once,
		// as the window operator does with late records.
		if f.late++; f.late == 1 {
			f.oc.Logger.Warn("late bid dropped: its day's statistics were already emitted", "operator", f.oc.UID, "dateTime", b.DateTime)
		}
		return nil
	}
	s, ok := f.stats.Value()
	if !ok {
		pc.RegisterEventTimeTimer(end)
	}
	r := priceRank(b.Price)
	s.Bids++
	s.RankBids[r]++
	s.MaxTime = max(s.MaxTime, b.DateTime)
	if first, newRank := markSeen(f.bidders, b.Bidder, r); newRank {
		if first {
			s.Bidders++
		}
		s.RankBidders[r]++
	}
	if first, newRank := markSeen(f.auctions, b.Auction, r); newRank {
		if first {
			s.Auctions++
		}
		s.RankAuctions[r]++
	}
	f.stats.Update(s)
	return nil
}

// markSeen records that id was seen with price range r in blocks (see
// dailyFn) and reports whether id is new to the key (first) and new to
// the range (newRank).
func markSeen(blocks state.MapState[int64, uint64], id int64, r int) (first, newRank bool) {
	shift := uint(id&15) * 4
	m, _ := blocks.Get(id >> 4)
	seen := m >> shift & 7
	if seen&(1<<r) != 0 {
		return false, false
	}
	blocks.Put(id>>4, m|1<<(shift+uint(r)))
	return seen == 0, true
}

func (f *dailyFn[K]) OnTimer(_ time.Time, pc *sluice.ProcessContext[K, dailyRow[K]]) error {
	k := pc.CurrentKey()
	if s, ok := f.stats.Value(); ok {
		pc.Collect(dailyRow[K]{Key: k, Day: f.day(k), dailyStats: s})
	}
	f.stats.Clear()
	f.bidders.Clear()
	f.auctions.Clear()
	return nil
}

// dailyStatsCodec encodes dailyStats as 13 zig-zag varints.
type dailyStatsCodec struct{}

func (dailyStatsCodec) Append(dst []byte, s dailyStats) []byte {
	for _, v := range [...]int64{s.Bids, s.Bidders, s.Auctions, s.MaxTime} {
		dst = codec.Int64.Append(dst, v)
	}
	for i := range 3 {
		dst = codec.Int64.Append(dst, s.RankBids[i])
		dst = codec.Int64.Append(dst, s.RankBidders[i])
		dst = codec.Int64.Append(dst, s.RankAuctions[i])
	}
	return dst
}

func (dailyStatsCodec) Decode(src []byte) (dailyStats, int, error) {
	var s dailyStats
	d := fieldDecoder{src: src}
	s.Bids = d.varint()
	s.Bidders = d.varint()
	s.Auctions = d.varint()
	s.MaxTime = d.varint()
	for i := range 3 {
		s.RankBids[i] = d.varint()
		s.RankBidders[i] = d.varint()
		s.RankAuctions[i] = d.varint()
	}
	if d.err != nil {
		return dailyStats{}, 0, fmt.Errorf("daily statistics: %w", d.err)
	}
	return s, d.n, nil
}

func (dailyStatsCodec) CodecID() codec.ID { return codec.ID{Name: "nexmark-daily-stats", Version: 1} }

// formatDaily formats the statistics columns of q15 and q16.
func formatDaily(s dailyStats) string {
	return fmt.Sprintf("%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d", s.Bids, s.RankBids[0], s.RankBids[1], s.RankBids[2],
		s.Bidders, s.RankBidders[0], s.RankBidders[1], s.RankBidders[2],
		s.Auctions, s.RankAuctions[0], s.RankAuctions[1], s.RankAuctions[2])
}
