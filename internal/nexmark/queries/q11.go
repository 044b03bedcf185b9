package queries

import (
	"fmt"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/internal/nexmark"
	"github.com/sluicehq/sluice/window"
)

// q11 is "user sessions": the number of bids of each bidder's sessions,
// a session ending after a gap of 10 s of event time without a bid. The
// bidders of the bids are keyed by bidder and counted in event-time
// session windows (gap 10 s; an AggregateFunction whose counts merge with
// the windows); one row per bidder and session.
func init() { register(Query{Name: "q11", Build: buildQ11}) }

// Q11Row is one row of q11: Bidder made Bids bids in the session [Start,
// End), in milliseconds since the epoch (End is the last bid's time plus
// the gap).
type Q11Row struct {
	Bidder, Bids, Start, End int64
}

func (r Q11Row) String() string { return fmt.Sprintf("%d,%d,%d,%d", r.Bidder, r.Bids, r.Start, r.End) }

// q11Gap is q11's session gap.
const q11Gap = 10 * time.Second

// q11Counter counts a session's bids.
type q11Counter struct{}

func (q11Counter) CreateAccumulator() int64   { return 0 }
func (q11Counter) Add(_ int64, n int64) int64 { return n + 1 }
func (q11Counter) Merge(a, b int64) int64     { return a + b }
func (q11Counter) Result(n int64) int64       { return n }

// q11Label turns a session's count into a row.
type q11Label struct{}

func (q11Label) Process(bidder int64, counts []int64, wc *sluice.WindowContext[Q11Row]) error {
	w := wc.Window()
	wc.Collect(Q11Row{Bidder: bidder, Bids: counts[0], Start: w.Start / int64(time.Millisecond), End: w.End / int64(time.Millisecond)})
	return nil
}

func buildQ11(env *sluice.Environment, events sluice.Stream[nexmark.Event], out *Out) {
	bidders := sluice.FlatMap(events, "q11-bidders", func(ev nexmark.Event, c *sluice.Collector[int64]) error {
		if ev.Kind == nexmark.KindBid {
			c.Collect(ev.Bid.Bidder)
		}
		return nil
	})
	sessions := sluice.WindowAggregateProcess(
		sluice.Window(sluice.KeyBy(bidders, func(b int64) int64 { return b }), window.Session(q11Gap)),
		"q11-sessions", sluice.AggregateFunction[int64, int64, int64](q11Counter{}), codec.Int64,
		func() sluice.ProcessWindowFunction[int64, int64, Q11Row] { return q11Label{} })
	EmitTimed(out, sessions, "q11-sink", Q11Row.String, func(r Q11Row) int64 { return r.End - 1 })
}
