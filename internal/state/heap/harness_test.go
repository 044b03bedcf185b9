package heap

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/clock"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/keygroup"
	"github.com/sluicehq/sluice/state"
)

// harness is a backend with one state of every kind, driven in lockstep with
// a model made of plain maps.
type harness struct {
	b      *HeapBackend[string]
	sum    state.ValueState[int64]
	events state.ListState[string]
	counts state.MapState[string, int64]
	max    state.ReducingState[int64]
}

var epoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func newHarness(t testing.TB, maxP int, r checkpoint.KeyGroupRange, files ...RestoreFile) *harness {
	t.Helper()
	return newHarnessWith(t, maxP, r, nil, files...)
}

// newHarnessWith registers the states with opts, such as a TTL that the
// fake clock never reaches, which exercises the expiry-time tables.
func newHarnessWith(t testing.TB, maxP int, r checkpoint.KeyGroupRange, opts []state.Option, files ...RestoreFile) *harness {
	t.Helper()
	b := NewHeapBackend(codec.String, maxP, r, clock.NewFake(epoch))
	if len(files) > 0 {
		if err := b.Restore(files); err != nil {
			t.Fatalf("Restore: %v", err)
		}
	}
	h, err := register(b, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func register(b *HeapBackend[string], opts ...state.Option) (*harness, error) {
	h := &harness{b: b}
	var err error
	if h.sum, err = Value(b, "sum", codec.Int64, opts...); err != nil {
		return nil, err
	}
	if h.events, err = List(b, "events", codec.String, opts...); err != nil {
		return nil, err
	}
	if h.counts, err = Map(b, "counts", codec.String, codec.Int64, opts...); err != nil {
		return nil, err
	}
	if h.max, err = Reducing(b, "max", codec.Int64, func(a, b int64) int64 { return max(a, b) }, opts...); err != nil {
		return nil, err
	}
	return h, nil
}

type model struct {
	sum    map[string]int64
	events map[string][]string
	counts map[string]map[string]int64
	max    map[string]int64
	timers map[string]map[int64]bool
}

func newModel() *model {
	return &model{
		sum:    map[string]int64{},
		events: map[string][]string{},
		counts: map[string]map[string]int64{},
		max:    map[string]int64{},
		timers: map[string]map[int64]bool{},
	}
}

func (m *model) clone() *model {
	c := newModel()
	maps.Copy(c.sum, m.sum)
	maps.Copy(c.max, m.max)
	for k, v := range m.events {
		c.events[k] = slices.Clone(v)
	}
	for k, v := range m.counts {
		c.counts[k] = maps.Clone(v)
	}
	for k, v := range m.timers {
		c.timers[k] = maps.Clone(v)
	}
	return c
}

// keys returns every key with any state or timer in the model.
func (m *model) keys() map[string]bool {
	all := map[string]bool{}
	for _, mm := range []map[string]bool{keySet(m.sum), keySet(m.events), keySet(m.counts), keySet(m.max), keySet(m.timers)} {
		maps.Copy(all, mm)
	}
	return all
}

func keySet[V any](m map[string]V) map[string]bool {
	s := make(map[string]bool, len(m))
	for k := range m {
		s[k] = true
	}
	return s
}

func timeAt(i int64) time.Time { return epoch.Add(time.Duration(i) * time.Second) }

// step applies one random operation on key k to the harness and the model.
func (h *harness) step(t testing.TB, m *model, rng *rand.Rand, k string) {
	t.Helper()
	if err := h.b.SetCurrentKey(k); err != nil {
		t.Fatal(err)
	}
	switch op := rng.IntN(15); op {
	case 0, 1, 2:
		v, _ := h.sum.Value()
		x := rng.Int64N(1000) - 100
		h.sum.Update(v + x)
		m.sum[k] += x
	case 3:
		h.sum.Clear()
		delete(m.sum, k)
	case 4, 5:
		e := fmt.Sprintf("e%d", rng.IntN(100))
		h.events.Add(e)
		m.events[k] = append(m.events[k], e)
	case 6:
		vs := make([]string, rng.IntN(3))
		for i := range vs {
			vs[i] = fmt.Sprintf("u%d", rng.IntN(100))
		}
		h.events.Update(vs)
		if len(vs) == 0 {
			delete(m.events, k)
		} else {
			m.events[k] = slices.Clone(vs)
		}
	case 7:
		h.events.Clear()
		delete(m.events, k)
	case 8, 9:
		uk := fmt.Sprintf("uk%d", rng.IntN(8))
		v := rng.Int64N(50)
		h.counts.Put(uk, v)
		if m.counts[k] == nil {
			m.counts[k] = map[string]int64{}
		}
		m.counts[k][uk] = v
	case 10:
		uk := fmt.Sprintf("uk%d", rng.IntN(8))
		h.counts.Remove(uk)
		if delete(m.counts[k], uk); len(m.counts[k]) == 0 {
			delete(m.counts, k)
		}
	case 11:
		if rng.IntN(3) == 0 {
			h.counts.Clear()
			delete(m.counts, k)
		} else {
			h.max.Clear()
			delete(m.max, k)
		}
	case 12:
		v := rng.Int64N(1000)
		h.max.Add(v)
		if old, ok := m.max[k]; !ok || v > old {
			m.max[k] = v
		}
	case 13:
		at := rng.Int64N(20)
		h.b.RegisterTimer(timeAt(at))
		if m.timers[k] == nil {
			m.timers[k] = map[int64]bool{}
		}
		m.timers[k][timeAt(at).UnixNano()] = true
	case 14:
		at := rng.Int64N(20)
		h.b.DeleteTimer(timeAt(at))
		if delete(m.timers[k], timeAt(at).UnixNano()); len(m.timers[k]) == 0 {
			delete(m.timers, k)
		}
	}
}

// owned returns the model restricted to the keys of key-group range r.
func (m *model) owned(r checkpoint.KeyGroupRange, maxP int) *model {
	c := m.clone()
	for k := range m.keys() {
		if !r.Contains(keygroup.Of(codec.String.Hash(k), maxP)) {
			delete(c.sum, k)
			delete(c.events, k)
			delete(c.counts, k)
			delete(c.max, k)
			delete(c.timers, k)
		}
	}
	return c
}

// check compares the harness with the model, which must be restricted to
// the harness's key groups. It reads through the public API for states and
// through the timer sets for timers (popping would consume them).
func (h *harness) check(t testing.TB, m *model, universe []string) {
	t.Helper()
	for _, k := range universe {
		if err := h.b.SetCurrentKey(k); err != nil {
			if _, ok := m.keys()[k]; ok {
				t.Fatalf("key %q: %v", k, err)
			}
			continue
		}
		if v, ok := h.sum.Value(); ok != hasKey(m.sum, k) || v != m.sum[k] {
			t.Fatalf("key %q sum = %d, %v; want %d, %v", k, v, ok, m.sum[k], hasKey(m.sum, k))
		}
		if got := h.events.Get(); !slices.Equal(got, m.events[k]) {
			t.Fatalf("key %q events = %q, want %q", k, got, m.events[k])
		}
		got := maps.Collect(h.counts.All())
		if len(got) == 0 {
			got = nil
		}
		if !maps.Equal(got, m.counts[k]) || h.counts.Len() != len(m.counts[k]) {
			t.Fatalf("key %q counts = %v (len %d), want %v", k, got, h.counts.Len(), m.counts[k])
		}
		if v, ok := h.max.Get(); ok != hasKey(m.max, k) || v != m.max[k] {
			t.Fatalf("key %q max = %d, %v; want %d, %v", k, v, ok, m.max[k], hasKey(m.max, k))
		}
	}
	gotTimers := map[string]map[int64]bool{}
	for _, tm := range h.b.timers.t.maps {
		for tk := range tm {
			if gotTimers[tk.key] == nil {
				gotTimers[tk.key] = map[int64]bool{}
			}
			gotTimers[tk.key][tk.t] = true
		}
	}
	if !maps.EqualFunc(gotTimers, m.timers, maps.Equal) {
		t.Fatalf("timers = %v, want %v", gotTimers, m.timers)
	}
	if n := h.b.NumTimers(); n != countTimers(m) {
		t.Fatalf("NumTimers = %d, want %d", n, countTimers(m))
	}
	want := len(keySetUnion(m.sum, m.events, m.counts, m.max))
	if n := h.b.NumKeys(); n != want {
		t.Fatalf("NumKeys = %d, want %d", n, want)
	}
}

func hasKey[V any](m map[string]V, k string) bool { _, ok := m[k]; return ok }

func countTimers(m *model) int {
	n := 0
	for _, ts := range m.timers {
		n += len(ts)
	}
	return n
}

func keySetUnion(a map[string]int64, b map[string][]string, c map[string]map[string]int64, d map[string]int64) map[string]bool {
	all := keySet(a)
	maps.Copy(all, keySet(b))
	maps.Copy(all, keySet(c))
	maps.Copy(all, keySet(d))
	return all
}

// write snapshots b, writes the snapshot and releases it.
func write(t testing.TB, b *HeapBackend[string]) RestoreFile {
	t.Helper()
	s := b.Snapshot(1)
	defer s.Release()
	return writeSnap(t, s)
}

func writeSnap(t testing.TB, s *Snapshot) RestoreFile {
	t.Helper()
	var buf bytes.Buffer
	offs, err := s.WriteKeyGroups(&buf)
	if err != nil {
		t.Fatalf("WriteKeyGroups: %v", err)
	}
	if len(offs) != s.KeyGroupRange().Len() {
		t.Fatalf("%d offsets for %d key groups", len(offs), s.KeyGroupRange().Len())
	}
	return RestoreFile{Data: buf.Bytes(), Range: s.KeyGroupRange(), Offsets: offs}
}

// asyncWrite writes s on another goroutine, as the runtime's snapshot
// writer does, and releases it if release is set. The result must be
// checked on the test goroutine: t.Fatal is not allowed on others.
func asyncWrite(s *Snapshot, release bool) <-chan asyncResult {
	done := make(chan asyncResult, 1)
	go func() {
		var buf bytes.Buffer
		offs, err := s.WriteKeyGroups(&buf)
		if release {
			s.Release()
		}
		done <- asyncResult{RestoreFile{Data: buf.Bytes(), Range: s.KeyGroupRange(), Offsets: offs}, err}
	}()
	return done
}

type asyncResult struct {
	f   RestoreFile
	err error
}

func (r asyncResult) file(t testing.TB) RestoreFile {
	t.Helper()
	if r.err != nil {
		t.Fatalf("WriteKeyGroups: %v", r.err)
	}
	return r.f
}

func universe(n int) []string {
	u := make([]string, n)
	for i := range u {
		u[i] = fmt.Sprintf("key-%d", i)
	}
	return u
}

var full128 = checkpoint.KeyGroupRange{Start: 0, End: 127}
