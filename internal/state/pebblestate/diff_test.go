package pebblestate_test

import (
	"bytes"
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/clock"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/internal/state/heap"
	"github.com/sluicehq/sluice/internal/state/pebblestate"
	"github.com/sluicehq/sluice/keygroup"
	"github.com/sluicehq/sluice/state"
)

var epoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// kb is what the tests need of both backends.
type kb interface {
	SetCurrentKey(string) error
	RegisterTimer(time.Time)
	DeleteTimer(time.Time)
	NextTimer() (time.Time, bool)
	PopDueTimer(time.Time) (string, time.Time, bool)
	RegisterEventTimer(int64)
	DeleteEventTimer(int64)
	PopEventTimer(int64) (string, int64, bool)
	NumTimers() int
	NumEventTimers() int
	NumKeys() int
	KeysOf(string) ([]string, error)
	Unregistered() []string
}

// side is one backend with a state of every kind.
type side struct {
	name string
	b    kb
	snap func(id int64) (data []byte, offsets []int64)
	v    state.ValueState[int64]
	l    state.ListState[string]
	m    state.MapState[string, int64]
	r    state.ReducingState[int64]
}

func sum(a, b int64) int64 { return a + b }

func newHeapSide(t testing.TB, maxP int, r checkpoint.KeyGroupRange, clk clock.Clock, ttl time.Duration, files []heap.RestoreFile) *side {
	t.Helper()
	b := heap.NewHeapBackend(codec.String, maxP, r, clk)
	if len(files) > 0 {
		if err := b.Restore(files); err != nil {
			t.Fatalf("heap Restore: %v", err)
		}
	}
	s := &side{name: "heap", b: b}
	s.snap = func(id int64) ([]byte, []int64) {
		sn := b.Snapshot(id)
		defer sn.Release()
		var buf bytes.Buffer
		offs, err := sn.WriteKeyGroups(&buf)
		if err != nil {
			t.Fatalf("heap WriteKeyGroups: %v", err)
		}
		return buf.Bytes(), offs
	}
	var opts []state.Option
	if ttl > 0 {
		opts = append(opts, state.WithTTL(ttl))
	}
	var err error
	must := func(e error) {
		if e != nil && err == nil {
			err = e
		}
	}
	var e error
	s.v, e = heap.Value(b, "v", codec.Int64, opts...)
	must(e)
	s.l, e = heap.List(b, "l", codec.String, opts...)
	must(e)
	s.m, e = heap.Map(b, "m", codec.String, codec.Int64, opts...)
	must(e)
	s.r, e = heap.Reducing(b, "r", codec.Int64, sum, opts...)
	must(e)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newPebbleSide(t testing.TB, maxP int, r checkpoint.KeyGroupRange, clk clock.Clock, ttl time.Duration, files []heap.RestoreFile) *side {
	t.Helper()
	b, err := pebblestate.New(codec.String, maxP, r, clk, pebblestate.Options{Dir: t.TempDir() + "/db"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if len(files) > 0 {
		if err := b.Restore(files); err != nil {
			t.Fatalf("pebble Restore: %v", err)
		}
	}
	s := &side{name: "pebble", b: b}
	s.snap = func(id int64) ([]byte, []int64) {
		sn := b.Snapshot(id)
		defer sn.Release()
		var buf bytes.Buffer
		offs, err := sn.WriteKeyGroups(&buf)
		if err != nil {
			t.Fatalf("pebble WriteKeyGroups: %v", err)
		}
		return buf.Bytes(), offs
	}
	var opts []state.Option
	if ttl > 0 {
		opts = append(opts, state.WithTTL(ttl))
	}
	must := func(e error) {
		if e != nil {
			t.Fatal(e)
		}
	}
	var e error
	s.v, e = pebblestate.Value(b, "v", codec.Int64, opts...)
	must(e)
	s.l, e = pebblestate.List(b, "l", codec.String, opts...)
	must(e)
	s.m, e = pebblestate.Map(b, "m", codec.String, codec.Int64, opts...)
	must(e)
	s.r, e = pebblestate.Reducing(b, "r", codec.Int64, sum, opts...)
	must(e)
	return s
}

type timerHit struct {
	k string
	t int64
}

// step applies one random operation to s and returns what it read, as a
// string both backends must agree on.
func step(t testing.TB, s *side, op, key int, arg int64, now time.Time) string {
	t.Helper()
	k := fmt.Sprintf("k%d", key)
	if err := s.b.SetCurrentKey(k); err != nil {
		t.Fatalf("%s: SetCurrentKey: %v", s.name, err)
	}
	switch op {
	case 0:
		s.v.Update(arg)
	case 1:
		v, ok := s.v.Value()
		return fmt.Sprint(v, ok)
	case 2:
		s.v.Clear()
	case 3:
		s.l.Add(fmt.Sprint("e", arg))
	case 4:
		return fmt.Sprint(s.l.Get())
	case 5:
		if arg%3 == 0 {
			s.l.Update(nil)
		} else {
			s.l.Update([]string{fmt.Sprint("u", arg), fmt.Sprint("w", arg)})
		}
	case 6:
		s.l.Clear()
	case 7:
		s.m.Put(fmt.Sprint("u", arg%5), arg)
	case 8:
		v, ok := s.m.Get(fmt.Sprint("u", arg%5))
		return fmt.Sprint(v, ok)
	case 9:
		s.m.Remove(fmt.Sprint("u", arg%5))
	case 10:
		return fmt.Sprint(s.m.Contains(fmt.Sprint("u", arg%5)), s.m.Len())
	case 11:
		var es []string
		for uk, uv := range s.m.All() {
			es = append(es, fmt.Sprint(uk, "=", uv))
		}
		slices.Sort(es)
		return fmt.Sprint(es)
	case 12:
		s.m.Clear()
	case 13:
		s.r.Add(arg)
	case 14:
		v, ok := s.r.Get()
		return fmt.Sprint(v, ok)
	case 15:
		s.r.Clear()
	case 16:
		s.b.RegisterTimer(now.Add(time.Duration(arg%7) * time.Second))
	case 17:
		s.b.DeleteTimer(now.Add(time.Duration(arg%7) * time.Second))
	case 18:
		var hits []timerHit
		for {
			k, at, ok := s.b.PopDueTimer(now)
			if !ok {
				break
			}
			hits = append(hits, timerHit{k, at.UnixNano()})
		}
		slices.SortFunc(hits, func(a, b timerHit) int { return cmp.Or(cmp.Compare(a.t, b.t), cmp.Compare(a.k, b.k)) })
		nt, ok := s.b.NextTimer()
		return fmt.Sprint(hits, nt.UnixNano(), ok, s.b.NumTimers())
	case 19:
		s.b.RegisterEventTimer(arg % 50)
	case 20:
		s.b.DeleteEventTimer(arg % 50)
	case 21:
		var hits []timerHit
		for {
			k, at, ok := s.b.PopEventTimer(arg % 60)
			if !ok {
				break
			}
			hits = append(hits, timerHit{k, at})
		}
		slices.SortFunc(hits, func(a, b timerHit) int { return cmp.Or(cmp.Compare(a.t, b.t), cmp.Compare(a.k, b.k)) })
		return fmt.Sprint(hits, s.b.NumEventTimers())
	}
	return ""
}

const numOps = 22

// TestDifferentialHeapPebble runs the same random operation sequence
// against the heap and the Pebble backend and compares every read: values,
// lists, maps, reductions, both kinds of timers, with and without a TTL on a
// fake clock. Every few hundred operations both sides are snapshotted and
// restored crosswise (the heap's file into a new Pebble backend and the
// Pebble file into a new heap backend), which must change nothing.
func TestDifferentialHeapPebble(t *testing.T) {
	for _, ttl := range []time.Duration{0, 5 * time.Second} {
		for seed := range uint64(3) {
			t.Run(fmt.Sprintf("ttl=%v/seed=%d", ttl, seed), func(t *testing.T) {
				const maxP = 16
				r := checkpoint.KeyGroupRange{Start: 0, End: maxP - 1}
				clk := clock.NewFake(epoch)
				h := newHeapSide(t, maxP, r, clk, ttl, nil)
				p := newPebbleSide(t, maxP, r, clk, ttl, nil)
				rng := rand.New(rand.NewPCG(seed, 42))
				for i := range 3000 {
					op, key, arg := rng.IntN(numOps), rng.IntN(40), rng.Int64N(1000)
					if rng.IntN(20) == 0 {
						clk.Advance(time.Duration(rng.IntN(3000)) * time.Millisecond)
					}
					now := clk.Now()
					got, want := step(t, p, op, key, arg, now), step(t, h, op, key, arg, now)
					if got != want {
						t.Fatalf("op %d (%d on k%d, arg %d): pebble %q, heap %q", i, op, key, arg, got, want)
					}
					if ttl == 0 && i%97 == 0 {
						if a, b := p.b.NumKeys(), h.b.NumKeys(); a != b {
							t.Fatalf("op %d: NumKeys pebble %d, heap %d", i, a, b)
						}
						for _, name := range []string{"v", "l", "m", "r"} {
							a, err1 := p.b.KeysOf(name)
							b, err2 := h.b.KeysOf(name)
							if err1 != nil || err2 != nil || !slices.Equal(a, b) {
								t.Fatalf("op %d: KeysOf(%s): pebble %v %v, heap %v %v", i, name, a, err1, b, err2)
							}
						}
					}
					if a, b := p.b.NumTimers(), h.b.NumTimers(); a != b {
						t.Fatalf("op %d: NumTimers pebble %d, heap %d", i, a, b)
					}
					if a, b := p.b.NumEventTimers(), h.b.NumEventTimers(); a != b {
						t.Fatalf("op %d: NumEventTimers pebble %d, heap %d", i, a, b)
					}
					if i%700 == 699 {
						hd, ho := h.snap(int64(i))
						pd, po := p.snap(int64(i))
						p = newPebbleSide(t, maxP, r, clk, ttl, []heap.RestoreFile{{Data: hd, Range: r, Offsets: ho}})
						h = newHeapSide(t, maxP, r, clk, ttl, []heap.RestoreFile{{Data: pd, Range: r, Offsets: po}})
					}
				}
			})
		}
	}
}

// keysIn returns n keys whose key groups lie in r.
func keysIn(n, maxP int, r checkpoint.KeyGroupRange) []string {
	var out []string
	for i := 0; len(out) < n; i++ {
		k := fmt.Sprintf("key-%d", i)
		if r.Contains(keygroup.Of(codec.String.Hash(k), maxP)) {
			out = append(out, k)
		}
	}
	return out
}
