package queries

import (
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/nexmark"
	"github.com/sluicehq/sluice/state"
)

// q18 is the suite's deduplication: the last bid (latest dateTime) of
// every (bidder, auction). The SQL's ROW_NUMBER() … <= 1 retracts the
// previous last bid whenever a later one arrives; here each key keeps
// its latest bid in a ValueState and emits it once it has stayed the
// latest for idleGap (10 s) of event time, by an event-time timer that is
// re-armed lazily (one timer per key, moved only when it fires early).
// At the default rate the whole input spans 2 s, so every key emits once,
// at the end: exactly the SQL's final table. A key that bids again after
// emitting starts over and emits again. Ties on dateTime are broken on
// the other fields (compareBidFields), not by arrival order.
func init() {
	register(Query{Name: "q18", Build: func(env *sluice.Environment, events sluice.Stream[nexmark.Event], out *Out) {
		bids := Bids(events)
		keyed := sluice.KeyBy(bids, func(b nexmark.Bid) idPair { return idPair{b.Bidder, b.Auction} }, sluice.WithKeyCodec[idPair](idPairCodec{}))
		rows := sluice.Process(keyed, "q18-last", func() sluice.KeyedProcessFunction[idPair, nexmark.Bid, nexmark.Bid] { return &q18Fn{} })
		EmitTimed(out, rows, "q18-sink", formatBid, func(b nexmark.Bid) int64 { return b.DateTime })
	}})
}

// q18Fn keeps the latest bid of each (bidder, auction).
type q18Fn struct {
	last state.ValueState[nexmark.Bid]
}

func (f *q18Fn) Open(rc *sluice.RuntimeContext[idPair]) (err error) {
	f.last, err = sluice.NewValueState(rc, "last", bidCodec{})
	return err
}

func (f *q18Fn) ProcessElement(b nexmark.Bid, pc *sluice.ProcessContext[idPair, nexmark.Bid]) error {
	cur, ok := f.last.Value()
	switch {
	case !ok:
		pc.RegisterEventTimeTimer(nanos(b.DateTime) + int64(idleGap))
	case b.DateTime < cur.DateTime || b.DateTime == cur.DateTime && compareBidFields(&b, &cur) <= 0:
		return nil
	}
	f.last.Update(ownBid(b))
	return nil
}

func (f *q18Fn) OnTimer(at time.Time, pc *sluice.ProcessContext[idPair, nexmark.Bid]) error {
	cur, ok := f.last.Value()
	if !ok {
		return nil
	}
	if due := nanos(cur.DateTime) + int64(idleGap); due > at.UnixNano() {
		pc.RegisterEventTimeTimer(due)
		return nil
	}
	pc.Collect(cur)
	f.last.Clear()
	return nil
}
