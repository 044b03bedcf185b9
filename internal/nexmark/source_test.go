package nexmark_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/internal/nexmark"
	"github.com/sluicehq/sluice/window"
)

// testEnv returns an environment for a small job in a temporary directory.
func testEnv(t *testing.T, par int) *sluice.Environment {
	t.Helper()
	return sluice.New(sluice.Config{JobName: t.Name(), Parallelism: par, CheckpointDir: t.TempDir()})
}

type counter struct{}

func (counter) CreateAccumulator() int64           { return 0 }
func (counter) Add(_ nexmark.Event, n int64) int64 { return n + 1 }
func (counter) Merge(a, b int64) int64             { return a + b }
func (counter) Result(n int64) int64               { return n }

func bid(auction, ms int64) nexmark.Event {
	return nexmark.Event{Kind: nexmark.KindBid, Bid: nexmark.Bid{Auction: auction, DateTime: nexmark.DefaultBaseTime + ms}}
}

// TestFromEventsEventTime: the records carry their DateTime as event time,
// so 10 s tumbling windows count them by DateTime, split by split.
func TestFromEventsEventTime(t *testing.T) {
	t.Parallel()
	env := testEnv(t, 1)
	src := nexmark.FromEvents(env, [][]nexmark.Event{
		{bid(1, 0), bid(1, 1000), bid(2, 3000), bid(1, 11000)},
		{bid(1, 2000), bid(2, 9999), bid(1, 25000)},
	})
	keyed := sluice.KeyBy(src, func(e nexmark.Event) int64 { return e.Bid.Auction })
	counts := sluice.WindowAggregate(sluice.Window(keyed, window.Tumbling(10*time.Second, 0)), "count", sluice.AggregateFunction[nexmark.Event, int64, int64](counter{}), codec.Int64)
	var mu sync.Mutex
	var got []int64
	sluice.Sink(counts, "out", sluice.SinkFunc[int64](func(n int64) error {
		mu.Lock()
		got = append(got, n)
		mu.Unlock()
		return nil
	}))
	if _, err := env.Execute(context.Background()); err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	// auction 1: [0,10) 3, [10,20) 1, [20,30) 1; auction 2: [0,10) 2.
	if want := []int64{1, 1, 2, 3}; !slices.Equal(got, want) {
		t.Fatalf("window counts %v, want %v", got, want)
	}
}

// TestEventsJob runs the generator as a job at parallelism 2: every event
// arrives once, in the 1:3:46 proportion.
func TestEventsJob(t *testing.T) {
	t.Parallel()
	env := testEnv(t, 2)
	cfg := nexmark.DefaultConfig()
	cfg.Events, cfg.Generators = 10_000, 4
	var mu sync.Mutex
	kinds := map[nexmark.Kind]int{}
	sluice.Sink(nexmark.Events(env, cfg), "out", sluice.SinkFunc[nexmark.Event](func(e nexmark.Event) error {
		mu.Lock()
		kinds[e.Kind]++
		mu.Unlock()
		return nil
	}))
	if _, err := env.Execute(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(kinds), fmt.Sprint(map[nexmark.Kind]int{nexmark.KindPerson: 200, nexmark.KindAuction: 600, nexmark.KindBid: 9200}); got != want {
		t.Fatalf("kinds %s, want %s", got, want)
	}
}

func fmtEv(e nexmark.Event) string { return fmt.Sprintf("%+v", e) }
