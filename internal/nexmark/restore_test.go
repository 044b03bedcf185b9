package nexmark_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/fault"
	"github.com/sluicehq/sluice/internal/nexmark"
	"github.com/sluicehq/sluice/restart"
	"github.com/sluicehq/sluice/state"
)

// collector is an Emitter that keeps what a reader emits.
type collector struct{ evs []nexmark.Event }

func (c *collector) Emit(e nexmark.Event) error {
	c.evs = append(c.evs, e)
	return nil
}

// TestReaderResumesExactly: a reader restored from another's snapshot
// continues each split at the event after the snapshot, so the two
// readers' events together are the uninterrupted stream.
func TestReaderResumesExactly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := nexmark.DefaultConfig()
	cfg.Events, cfg.Generators = 3000, 3
	src := nexmark.Source(cfg)
	splits, err := src.Splits(ctx)
	if err != nil {
		t.Fatal(err)
	}
	read := func(splits []sluice.Split, polls int) ([]nexmark.Event, []sluice.Split) {
		r, err := src.NewReader(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.AddSplits(ctx, splits); err != nil {
			t.Fatal(err)
		}
		var c collector
		for i := 0; i != polls; i++ {
			st, err := r.Poll(ctx, &c)
			if err != nil {
				t.Fatal(err)
			}
			if st == sluice.EndOfInput {
				break
			}
		}
		snap, err := r.SnapshotSplits(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		return c.evs, snap
	}
	whole, _ := read(splits, -1)
	first, snap := read(splits, 5) // 5 polls: splits cut mid-way, one ahead
	rest, _ := read(snap, -1)
	if len(first) == 0 || len(rest) == 0 {
		t.Fatalf("no cut: %d then %d events", len(first), len(rest))
	}
	key := func(e nexmark.Event) string { return fmtEv(e) }
	var a, b []string
	for _, e := range whole {
		a = append(a, key(e))
	}
	for _, e := range append(first, rest...) {
		b = append(b, key(e))
	}
	slices.Sort(a)
	slices.Sort(b)
	if len(whole) != 3000 || !slices.Equal(a, b) {
		t.Fatalf("restored reading: %d events, %v equal to the uninterrupted %d", len(first)+len(rest), slices.Equal(a, b), len(whole))
	}
}

// kindCount is a keyed running count of events per kind.
type kindCount struct{ n state.ValueState[int64] }

func (k *kindCount) Open(rc *sluice.RuntimeContext[nexmark.Kind]) error {
	var err error
	k.n, err = sluice.NewValueState(rc, "n", codec.Int64)
	return err
}

func (k *kindCount) ProcessElement(e nexmark.Event, pc *sluice.ProcessContext[nexmark.Kind, [2]int64]) error {
	n, _ := k.n.Value()
	n++
	k.n.Update(n)
	pc.Collect([2]int64{int64(e.Kind), n})
	return nil
}

// TestRestoreResumesExactly fails the job at a checkpoint barrier after
// checkpoints completed; the source resumes from the restored positions,
// so every kind's running count (exactly-once state) passes every value
// from 1 to its exact total, and 1 only once: the restore did not start
// over.
func TestRestoreResumesExactly(t *testing.T) {
	t.Parallel()
	inj := fault.New(1)
	inj.Arm(fault.Target{Point: fault.OnBarrier, UID: "count", Subtask: 0, Skip: 2})
	env := sluice.New(sluice.Config{JobName: t.Name(), Parallelism: 2, CheckpointDir: t.TempDir(),
		Checkpoint: checkpoint.Config{Interval: 10 * time.Millisecond}, Faults: inj,
		Restart: restart.FixedDelay{Attempts: 1, Delay: -1}})
	cfg := nexmark.DefaultConfig()
	cfg.Events, cfg.Generators = 300_000, 2
	keyed := sluice.KeyBy(nexmark.Events(env, cfg), func(e nexmark.Event) nexmark.Kind { return e.Kind })
	counts := sluice.Process(keyed, "count", func() sluice.KeyedProcessFunction[nexmark.Kind, nexmark.Event, [2]int64] { return &kindCount{} })
	var mu sync.Mutex
	seen := map[int64]map[int64]int{}
	sluice.Sink(counts, "out", sluice.SinkFunc[[2]int64](func(v [2]int64) error {
		mu.Lock()
		defer mu.Unlock()
		if seen[v[0]] == nil {
			seen[v[0]] = map[int64]int{}
		}
		seen[v[0]][v[1]]++
		return nil
	}))
	res, err := env.Execute(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Restarts != 1 {
		t.Fatalf("%d restarts, want 1 (the injected failure)", res.Restarts)
	}
	for kind, total := range map[nexmark.Kind]int64{nexmark.KindPerson: 6000, nexmark.KindAuction: 18000, nexmark.KindBid: 276000} {
		s := seen[int64(kind)]
		for n := int64(1); n <= total; n++ {
			if s[n] == 0 {
				t.Fatalf("kind %d: count %d never seen: events lost", kind, n)
			}
		}
		if len(s) != int(total) {
			t.Fatalf("kind %d: %d distinct counts, want %d: events read twice into state", kind, len(s), total)
		}
		if kind == nexmark.KindBid && s[1] != 1 {
			t.Fatalf("bids: count 1 seen %d times: the job restarted from the start, not from a checkpoint", s[1])
		}
	}
}
