package queries

import (
	"fmt"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/internal/nexmark"
	"github.com/sluicehq/sluice/window"
)

// q12 counts each bidder's bids in tumbling processing-time windows of
// 10 s: a bid belongs to the window of the job clock's time when the
// window operator sees it (the suite's PROCTIME() tumble). Bidders are
// projected before the keyBy; the count is an incremental aggregate (one
// int64 per bidder and window, on the window operator's fast path). The
// result depends on wall time, so it cannot be compared across runs or
// systems, and, as in Flink, windows still open when a bounded input ends
// are not fired.
func init() {
	register(Query{Name: "q12", Build: func(env *sluice.Environment, events sluice.Stream[nexmark.Event], out *Out) {
		bidders := bidsAs(events, "q12-bidder", func(b nexmark.Bid) int64 { return b.Bidder })
		ws := sluice.Window(sluice.KeyBy(bidders, func(b int64) int64 { return b }), window.Tumbling(10*time.Second, 0).ProcessingTime())
		rows := sluice.WindowAggregateProcess(ws, "q12-count", sluice.AggregateFunction[int64, int64, int64](q12CountAgg{}), codec.Int64,
			func() sluice.ProcessWindowFunction[int64, int64, q12Row] { return q12Window{} })
		Emit(out, rows, "q12-sink", q12Row.String)
	}})
}

// q12Row is one row of q12: a bidder's count in the window [Start, End),
// in milliseconds.
type q12Row struct {
	Bidder, Count, Start, End int64
}

func (r q12Row) String() string {
	return fmt.Sprintf("%d,%d,%s,%s", r.Bidder, r.Count, tsString(r.Start), tsString(r.End))
}

// q12CountAgg counts records.
type q12CountAgg struct{}

func (q12CountAgg) CreateAccumulator() int64     { return 0 }
func (q12CountAgg) Add(_ int64, acc int64) int64 { return acc + 1 }
func (q12CountAgg) Merge(a, b int64) int64       { return a + b }
func (q12CountAgg) Result(acc int64) int64       { return acc }

// q12Window adds the window's bounds to the count.
type q12Window struct{}

func (q12Window) Process(bidder int64, counts []int64, wc *sluice.WindowContext[q12Row]) error {
	w := wc.Window()
	wc.Collect(q12Row{Bidder: bidder, Count: counts[0], Start: w.Start / int64(time.Millisecond), End: w.End / int64(time.Millisecond)})
	return nil
}
