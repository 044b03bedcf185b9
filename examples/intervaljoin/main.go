// Command intervaljoin joins orders with the payments of the same customer
// made up to ten minutes after the order, in event time (Flink's
// intervalJoin(..).between(0, 10 min)). Both inputs arrive out of order, by
// up to 20 seconds; a bounded-out-of-orderness watermark of 30 seconds says
// when an order can no longer be matched, and the join then drops it from
// its keyed state. The pairs found do not depend on how fast the input
// arrives, on the parallelism, or on restores. Run it with
// `go run ./examples/intervaljoin`.
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/connector/datagen"
	"github.com/sluicehq/sluice/restart"
	"github.com/sluicehq/sluice/watermark"
)

// The join's bounds: a payment joins an order of its customer made between
// 0 and 10 minutes before it.
const (
	lower = 0
	upper = 10 * time.Minute
)

// epoch is the event time of the first order.
var epoch = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC).UnixNano()

// orderTime gives the orders of a split one second apart, each shifted
// back by up to 18 s: the input is out of order.
func orderTime(r datagen.Record, _ int64) int64 {
	return epoch + r.Seq*int64(time.Second) - (r.Seq%7)*3*int64(time.Second)
}

// paymentTime gives the payments of a split one second apart, starting two
// minutes after the first order, each shifted back by up to 16 s.
func paymentTime(r datagen.Record, _ int64) int64 {
	return epoch + 2*int64(time.Minute) + r.Seq*int64(time.Second) - (r.Seq%5)*4*int64(time.Second)
}

// recordCodec encodes a datagen record in the join's state.
var recordCodec = func() codec.Codec[datagen.Record] {
	c, err := codec.Struct("datagen.Record",
		codec.FieldOf("split", func(r *datagen.Record) *int { return &r.Split }, codec.Codec[int](codec.Int)),
		codec.FieldOf("seq", func(r *datagen.Record) *int64 { return &r.Seq }, codec.Codec[int64](codec.Int64)),
		codec.FieldOf("key", func(r *datagen.Record) *string { return &r.Key }, codec.Codec[string](codec.String)),
		codec.FieldOf("value", func(r *datagen.Record) *int64 { return &r.Value }, codec.Codec[int64](codec.Int64)))
	if err != nil {
		panic(err)
	}
	return c
}()

// Match is an order and a payment of the same customer within the bounds.
type Match struct {
	Customer string
	Order    string // "o<split>-<seq>"
	Payment  string // "p<split>-<seq>"
	Ordered  time.Time
	Paid     time.Time
	// At is the match's event time as the job carries it downstream: the
	// later of the two.
	At time.Time
}

func id(prefix string, r datagen.Record) string {
	return fmt.Sprintf("%s%d-%d", prefix, r.Split, r.Seq)
}

// matcher is the join function: one Match per pair.
func matcher() sluice.ProcessJoinFunction[string, datagen.Record, datagen.Record, Match] {
	return sluice.ProcessJoinFunc[string, datagen.Record, datagen.Record, Match](
		func(o, p datagen.Record, jc *sluice.JoinContext[string, Match]) error {
			jc.Collect(Match{
				Customer: jc.CurrentKey(), Order: id("o", o), Payment: id("p", p),
				Ordered: time.Unix(0, jc.LeftTimestamp()).UTC(), Paid: time.Unix(0, jc.RightTimestamp()).UTC(),
				At: time.Unix(0, jc.Timestamp()).UTC(),
			})
			return nil
		})
}

// config is the input: 2 splits of 1500 orders and of 1500 payments, over
// 200 customers.
func config(seed uint64) datagen.Config {
	return datagen.Config{Splits: 2, Keys: 200, RecordsPerSplit: 1500, Seed: seed}
}

func run(ctx context.Context, dir string) ([]Match, error) {
	env := sluice.New(sluice.Config{
		JobName:       "intervaljoin",
		Parallelism:   2,
		CheckpointDir: dir,
		Restart:       restart.None{},
	})
	bound := watermark.ForBoundedOutOfOrderness(30 * time.Second)
	orders := sluice.FromSourceWithWatermarks(env, "orders", datagen.New(config(1)), bound,
		[]sluice.WatermarkOption[datagen.Record]{sluice.WithTimestampAssigner(orderTime)})
	payments := sluice.FromSourceWithWatermarks(env, "payments", datagen.New(config(2)), bound,
		[]sluice.WatermarkOption[datagen.Record]{sluice.WithTimestampAssigner(paymentTime)})
	customer := func(r datagen.Record) string { return r.Key }
	join := sluice.IntervalJoin(sluice.KeyBy(orders, customer), sluice.KeyBy(payments, customer), lower, upper)
	matches := sluice.IntervalJoinProcess(join, "match", matcher, recordCodec, recordCodec)

	var mu sync.Mutex
	var out []Match
	sluice.Sink(matches, "collect", sluice.SinkFunc[Match](func(m Match) error {
		mu.Lock()
		defer mu.Unlock()
		out = append(out, m)
		return nil
	}))
	if _, err := env.Execute(ctx); err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Order != out[j].Order {
			return out[i].Order < out[j].Order
		}
		return out[i].Payment < out[j].Payment
	})
	return out, nil
}

func main() {
	dir, err := os.MkdirTemp("", "sluice-intervaljoin-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	out, err := run(context.Background(), dir)
	if err != nil {
		log.Fatal(err)
	}
	for i, m := range out {
		if i == 10 {
			fmt.Println("...")
			break
		}
		fmt.Printf("%s order %s at %s, payment %s at %s\n", m.Customer, m.Order, m.Ordered.Format(time.TimeOnly), m.Payment, m.Paid.Format(time.TimeOnly))
	}
	fmt.Printf("%d matches\n", len(out))
}
