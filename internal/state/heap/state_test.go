package heap

import (
	"errors"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/clock"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/keygroup"
	"github.com/sluicehq/sluice/state"
)

func TestRoundTripEveryKind(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 1))
	u := universe(500)
	h, m := newHarness(t, 128, full128), newModel()
	for range 20000 {
		h.step(t, m, rng, u[rng.IntN(len(u))])
	}
	h.check(t, m, u)
	f := write(t, h.b)
	h2 := newHarness(t, 128, full128, f)
	h2.check(t, m, u)
	// A second generation: the restored backend snapshots what it restored.
	h3 := newHarness(t, 128, full128, write(t, h2.b))
	h3.check(t, m, u)
}

// Reference: docs/design.md §1 (key groups make rescaling possible) and Flink's
// KeyGroupRangeAssignment. State written by p=2 subtasks is restored at p=1,
// 3 and 4; every key must land in exactly the subtask owning its key group.
func TestRescale(t *testing.T) {
	t.Parallel()
	const maxP = 128
	rng := rand.New(rand.NewPCG(2, 2))
	u := universe(3000)
	m := newModel()
	old := []*harness{
		newHarness(t, maxP, keygroup.RangeFor(0, 2, maxP)),
		newHarness(t, maxP, keygroup.RangeFor(1, 2, maxP)),
	}
	for range 30000 {
		k := u[rng.IntN(len(u))]
		owner := keygroup.SubtaskFor(keygroup.Of(codec.String.Hash(k), maxP), 2, maxP)
		old[owner].step(t, m, rng, k)
	}
	files := []RestoreFile{write(t, old[0].b), write(t, old[1].b)}
	totalKeys := len(keySetUnion(m.sum, m.events, m.counts, m.max))
	for _, p := range []int{1, 2, 3, 4} {
		keys, timers := 0, 0
		for i := range p {
			r := keygroup.RangeFor(i, p, maxP)
			// Hand every subtask all files, in either order: Restore must
			// pick its own key groups out of them.
			fs := slices.Clone(files)
			if i%2 == 1 {
				slices.Reverse(fs)
			}
			h := newHarness(t, maxP, r, fs...)
			h.check(t, m.owned(r, maxP), u)
			keys += h.b.NumKeys()
			timers += h.b.NumTimers()
		}
		if keys != totalKeys || timers != countTimers(m) {
			t.Fatalf("p=%d: %d keys and %d timers across subtasks, want %d and %d", p, keys, timers, totalKeys, countTimers(m))
		}
	}
}

// A backend given only some of the files that cover its range must not
// invent state, and a key group offered by two files is corrupt.
func TestRestoreOverlappingFiles(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 128, full128)
	h.b.SetCurrentKey("a")
	h.sum.Update(1)
	f := write(t, h.b)
	b := NewHeapBackend(codec.String, 128, full128, nil)
	if err := b.Restore([]RestoreFile{f, f}); !errors.Is(err, state.ErrCorrupt) || !strings.Contains(err.Error(), "two files") {
		t.Fatalf("Restore of a key group twice: %v", err)
	}
}

// Reference: docs/design.md §11, "a short synchronous snapshot of heap state". The
// task keeps mutating (updates, clears, new keys, timers, nested maps, list
// appends) while another goroutine writes the snapshot; the written
// snapshot must be the state at snapshot time exactly. Run with -race.
func TestCopyOnWriteConcurrentMutation(t *testing.T) {
	t.Parallel()
	for name, opts := range map[string][]state.Option{
		"no TTL": nil,
		// The fake clock never reaches the TTL, so the model needs no
		// expiry, but every write also goes to the expiry-time tables.
		"TTL": {state.WithTTL(time.Hour)},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(3, 3))
			u := universe(4000)
			h, m := newHarnessWith(t, 128, full128, opts), newModel()
			for range 40000 {
				h.step(t, m, rng, u[rng.IntN(2000)]) // half the universe: later steps add keys
			}
			snap := h.b.Snapshot(7)
			want := m.clone()
			done := asyncWrite(snap, true)
			for range 40000 {
				h.step(t, m, rng, u[rng.IntN(len(u))])
			}
			f := (<-done).file(t)
			newHarnessWith(t, 128, full128, opts, f).check(t, want, u)
			h.check(t, m, u)
			if snap.CheckpointID() != 7 {
				t.Fatalf("CheckpointID = %d", snap.CheckpointID())
			}
		})
	}
}

func TestTwoSnapshotsInFlight(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(4, 4))
	u := universe(3000)
	h, m := newHarness(t, 128, full128), newModel()
	for range 20000 {
		h.step(t, m, rng, u[rng.IntN(len(u))])
	}
	s1, want1 := h.b.Snapshot(1), m.clone()
	for range 20000 {
		h.step(t, m, rng, u[rng.IntN(len(u))])
	}
	s2, want2 := h.b.Snapshot(2), m.clone()
	done1, done2 := asyncWrite(s1, false), asyncWrite(s2, false)
	for range 20000 {
		h.step(t, m, rng, u[rng.IntN(len(u))])
	}
	f1, f2 := (<-done1).file(t), (<-done2).file(t)
	// Release out of order: s2 first.
	s2.Release()
	s1.Release()
	for range 20000 {
		h.step(t, m, rng, u[rng.IntN(len(u))])
	}
	newHarness(t, 128, full128, f1).check(t, want1, u)
	newHarness(t, 128, full128, f2).check(t, want2, u)
	h.check(t, m, u)
}

// The release watermark: a map is written in place again only once every
// snapshot that may hold it is released, whatever the release order.
func TestReleaseWatermark(t *testing.T) {
	t.Parallel()
	b := NewHeapBackend(codec.Int64, 4, checkpoint.KeyGroupRange{Start: 0, End: 3}, nil)
	v, _ := Value(b, "v", codec.Int64)
	var keys [4]int64 // one key per key group
	for k := int64(0); ; k++ {
		keys[keygroup.Of(uint64(k), 4)] = k + 1
		if !slices.Contains(keys[:], 0) {
			break
		}
	}
	touchAll := func() {
		for _, k := range keys {
			b.SetCurrentKey(k - 1)
			v.Update(k)
		}
	}
	touchAll()
	clones := func() int64 { return b.CopyOnWriteClones() }
	s1 := b.Snapshot(1)
	s2 := b.Snapshot(2)
	s2.Release() // out of order: s1 still holds the maps
	touchAll()
	if clones() != 4 {
		t.Fatalf("clones = %d after writes under s1, want 4", clones())
	}
	touchAll()
	if clones() != 4 {
		t.Fatalf("clones = %d after rewriting clones, want 4", clones())
	}
	s1.Release()
	s3 := b.Snapshot(3)
	s3.Release()
	s3.Release() // idempotent
	touchAll()
	if clones() != 4 {
		t.Fatalf("clones = %d after writes to released maps, want 4", clones())
	}
	if _, err := s3.WriteKeyGroups(&countingWriter{}); !errors.Is(err, ErrReleased) {
		t.Fatalf("WriteKeyGroups after Release: %v", err)
	}
}

func TestTimers(t *testing.T) {
	t.Parallel()
	b := NewHeapBackend(codec.String, 128, full128, nil)
	if _, ok := b.NextTimer(); ok {
		t.Fatal("NextTimer on empty backend")
	}
	rng := rand.New(rand.NewPCG(5, 5))
	type timer struct {
		key string
		at  int64
	}
	want := map[timer]bool{}
	for range 2000 {
		k := universe(300)[rng.IntN(300)]
		at := rng.Int64N(500)
		b.SetCurrentKey(k)
		b.RegisterTimer(timeAt(at))
		want[timer{k, at}] = true
		if rng.IntN(3) == 0 { // delete some, possibly re-registering later
			b.DeleteTimer(timeAt(at))
			delete(want, timer{k, at})
		}
	}
	b.SetCurrentKey("dup")
	b.RegisterTimer(timeAt(42))
	b.RegisterTimer(timeAt(42)) // deduplicated
	want[timer{"dup", 42}] = true
	if b.NumTimers() != len(want) {
		t.Fatalf("NumTimers = %d, want %d", b.NumTimers(), len(want))
	}
	// Restore into a fresh backend and pop everything in time order.
	f := write(t, b)
	b2 := NewHeapBackend(codec.String, 128, full128, nil)
	if err := b2.Restore([]RestoreFile{f}); err != nil {
		t.Fatal(err)
	}
	for _, be := range []*HeapBackend[string]{b, b2} {
		got := map[timer]bool{}
		last := int64(-1)
		for at := int64(0); at <= 500; at += 50 {
			if next, ok := be.NextTimer(); ok && next.Before(timeAt(last)) {
				t.Fatalf("NextTimer %v before last popped %v", next, timeAt(last))
			}
			for {
				k, tm, ok := be.PopDueTimer(timeAt(at))
				if !ok {
					break
				}
				sec := int64(tm.Sub(epoch) / time.Second)
				if sec > at || sec < last {
					t.Fatalf("popped %v at now=%d after %d", sec, at, last)
				}
				last = sec
				if got[timer{k, sec}] {
					t.Fatalf("timer %v popped twice", timer{k, sec})
				}
				got[timer{k, sec}] = true
			}
		}
		if !maps.Equal(got, want) {
			t.Fatalf("popped %d timers, want %d", len(got), len(want))
		}
		if _, ok := be.NextTimer(); ok || be.NumTimers() != 0 {
			t.Fatalf("timers left: %d", be.NumTimers())
		}
	}
}

// A timer re-registered from within its own firing, and one deleted and
// registered again, each fire once per registration.
func TestTimerReRegistration(t *testing.T) {
	t.Parallel()
	b := NewHeapBackend(codec.String, 128, full128, nil)
	b.SetCurrentKey("k")
	b.RegisterTimer(timeAt(1))
	b.DeleteTimer(timeAt(1))
	b.RegisterTimer(timeAt(1))
	if at, ok := b.NextTimer(); !ok || !at.Equal(timeAt(1)) {
		t.Fatalf("NextTimer = %v, %v", at, ok)
	}
	k, _, ok := b.PopDueTimer(timeAt(1))
	if !ok || k != "k" {
		t.Fatalf("PopDueTimer = %q, %v", k, ok)
	}
	b.SetCurrentKey(k)
	b.RegisterTimer(timeAt(1)) // from "OnTimer"
	if _, _, ok := b.PopDueTimer(timeAt(1)); !ok {
		t.Fatal("re-registered timer did not fire")
	}
	if _, _, ok := b.PopDueTimer(timeAt(1)); ok {
		t.Fatal("timer fired twice")
	}
	// Many deletions trigger heap rebuilds without losing live timers.
	for i := range 1000 {
		b.RegisterTimer(timeAt(int64(i)))
	}
	for i := range 990 {
		b.DeleteTimer(timeAt(int64(i)))
	}
	if len(b.timers.heap) > 2*b.NumTimers()+64 {
		t.Fatalf("heap has %d entries for %d timers", len(b.timers.heap), b.NumTimers())
	}
	if at, _ := b.NextTimer(); !at.Equal(timeAt(990)) {
		t.Fatalf("NextTimer = %v after deletions", at)
	}
}

// Reference: Flink StateTtlConfig, OnCreateAndWrite, NeverReturnExpired.
func TestTTL(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(epoch)
	b := NewHeapBackend(codec.String, 128, full128, clk)
	ttl := state.WithTTL(10 * time.Second)
	v, _ := Value(b, "v", codec.Int64, ttl)
	l, _ := List(b, "l", codec.Int64, ttl)
	m, _ := Map(b, "m", codec.String, codec.Int64, ttl)
	r, _ := Reducing(b, "r", codec.Int64, func(a, b int64) int64 { return a + b }, ttl)
	b.SetCurrentKey("a")
	v.Update(1)
	l.Add(1)
	m.Put("x", 1)
	r.Add(1)
	clk.Advance(6 * time.Second)
	m.Put("y", 2) // y lives until 16s, x until 10s
	l.Add(2)      // refreshes the whole list
	if x, ok := v.Value(); !ok || x != 1 {
		t.Fatalf("value before expiry = %d, %v", x, ok)
	}
	clk.Advance(4 * time.Second) // t = 10s
	if _, ok := v.Value(); ok {
		t.Fatal("expired value returned")
	}
	if _, ok := r.Get(); ok {
		t.Fatal("expired reducing value returned")
	}
	if got := l.Get(); !slices.Equal(got, []int64{1, 2}) {
		t.Fatalf("list = %v, want [1 2] (refreshed at 6s)", got)
	}
	if _, ok := m.Get("x"); ok || m.Contains("x") {
		t.Fatal("expired map entry returned")
	}
	if got := maps.Collect(m.All()); !maps.Equal(got, map[string]int64{"y": 2}) || m.Len() != 1 {
		t.Fatalf("map = %v, len %d", got, m.Len())
	}
	if got := m.(*mapState[string, string, int64]).AppendKeys([]string{"before"}); !slices.Equal(got, []string{"before", "y"}) {
		t.Fatalf("AppendKeys = %v, want [before y]", got)
	}
	// Reads do not extend the TTL; expired values were cleaned on access.
	r.Add(5) // expired: starts over
	if x, _ := r.Get(); x != 5 {
		t.Fatalf("reduce after expiry = %d, want 5", x)
	}
	if n := v.(*valueState[string, int64]).numKeys(); n != 0 {
		t.Fatalf("expired value not cleaned on access: %d entries", n)
	}
	// Snapshots leave expired entries out and keep expiry times.
	b.SetCurrentKey("b")
	v.Update(7) // expires at 20s
	f := write(t, b)
	clk.Advance(5 * time.Second) // 15s: list (16s), y (16s), r (20s), b's value (20s) alive
	b2 := NewHeapBackend(codec.String, 128, full128, clk)
	if err := b2.Restore([]RestoreFile{f}); err != nil {
		t.Fatal(err)
	}
	v2, _ := Value(b2, "v", codec.Int64, ttl)
	l2, _ := List(b2, "l", codec.Int64, ttl)
	m2, _ := Map(b2, "m", codec.String, codec.Int64, ttl)
	if b2.SetCurrentKey("b"); !has(v2.Value()) {
		t.Fatal("live value lost in snapshot")
	}
	b2.SetCurrentKey("a")
	if has(v2.Value()) || len(l2.Get()) != 2 || m2.Len() != 1 {
		t.Fatalf("restored: value %v, list %v, map len %d", has(v2.Value()), l2.Get(), m2.Len())
	}
	clk.Advance(time.Second) // 16s: list and y expire at their original times
	if len(l2.Get()) != 0 || m2.Len() != 0 {
		t.Fatal("restored entries did not keep their expiry times")
	}
	// TTL turned on at restore: entries get a full TTL from the restore;
	// turned off: live entries are kept without expiry.
	plain := NewHeapBackend(codec.String, 128, full128, clk)
	pv, _ := Value(plain, "v", codec.Int64)
	plain.SetCurrentKey("p")
	pv.Update(3)
	pf := write(t, plain)
	b3 := NewHeapBackend(codec.String, 128, full128, clk)
	b3.Restore([]RestoreFile{pf})
	v3, _ := Value(b3, "v", codec.Int64, state.WithTTL(time.Second))
	b3.SetCurrentKey("p")
	if !has(v3.Value()) {
		t.Fatal("TTL-less entry lost when TTL was enabled")
	}
	clk.Advance(time.Second)
	if has(v3.Value()) {
		t.Fatal("entry restored into a TTL state did not expire")
	}
	b4 := NewHeapBackend(codec.String, 128, full128, clk)
	b4.Restore([]RestoreFile{write(t, b2)})
	v4, _ := Value(b4, "v", codec.Int64)
	b4.SetCurrentKey("b")
	clk.Advance(time.Hour)
	if !has(v4.Value()) {
		t.Fatal("entry restored without TTL expired")
	}
}

func has[V any](_ V, ok bool) bool { return ok }

func TestRegistrationErrors(t *testing.T) {
	t.Parallel()
	b := NewHeapBackend(codec.String, 128, full128, nil)
	v1, err := Value(b, "counter", codec.Int64)
	if err != nil {
		t.Fatal(err)
	}
	if v2, err := Value(b, "counter", codec.Int64); err != nil || v2 != v1 {
		t.Fatalf("re-registration returned %v, %v; want the same state", v2, err)
	}
	for name, err := range map[string]error{
		"other kind":  second(List(b, "counter", codec.Int64)),
		"other type":  second(Value(b, "counter", codec.String)),
		"other ttl":   second(Value(b, "counter", codec.Int64, state.WithTTL(time.Second))),
		"reducing":    second(Reducing(b, "counter", codec.Int64, func(a, b int64) int64 { return a })),
		"map":         second(Map(b, "counter", codec.String, codec.Int64)),
		"negative":    second(Value(b, "neg", codec.Int64, state.WithTTL(-1))),
		"nil codec":   second(Value[string, int64](b, "nilc", nil)),
		"nil reduce":  second(Reducing(b, "nilr", codec.Int64, nil)),
		"nil map key": second(Map[string, string, int64](b, "nilm", nil, codec.Int64)),
	} {
		if !errors.Is(err, state.ErrIncompatible) {
			t.Errorf("%s: err = %v, want ErrIncompatible", name, err)
			continue
		}
		if !strings.Contains(err.Error(), `"`) {
			t.Errorf("%s: error does not name the state: %v", name, err)
		}
	}
	if _, err := Value(b, "", codec.Int64); !errors.Is(err, state.ErrIncompatible) {
		t.Errorf("empty name: %v", err)
	}
	// Restored as one kind, registered as another.
	b.SetCurrentKey("k")
	v1.Update(1)
	f := write(t, b)
	b2 := NewHeapBackend(codec.String, 128, full128, nil)
	if err := b2.Restore([]RestoreFile{f}); err != nil {
		t.Fatal(err)
	}
	if _, err := List(b2, "counter", codec.Int64); !errors.Is(err, state.ErrIncompatible) || !strings.Contains(err.Error(), `"counter"`) {
		t.Fatalf("kind mismatch on restore: %v", err)
	}
	if err := b2.Restore([]RestoreFile{f}); err == nil {
		t.Fatal("second Restore succeeded")
	}
}

func second[A any](_ A, err error) error { return err }

func TestSetCurrentKeyOutOfRange(t *testing.T) {
	t.Parallel()
	r := keygroup.RangeFor(0, 2, 128)
	b := NewHeapBackend(codec.String, 128, r, nil)
	var in, out string
	for _, k := range universe(100) {
		if r.Contains(keygroup.Of(codec.String.Hash(k), 128)) {
			in = k
		} else {
			out = k
		}
	}
	if err := b.SetCurrentKey(in); err != nil {
		t.Fatal(err)
	}
	err := b.SetCurrentKey(out)
	if !errors.Is(err, ErrKeyGroupOutOfRange) || !strings.Contains(err.Error(), out) {
		t.Fatalf("SetCurrentKey(%q) = %v", out, err)
	}
	if b.CurrentKey() != in || b.CurrentKeyGroup() != keygroup.Of(codec.String.Hash(in), 128) {
		t.Fatal("failed SetCurrentKey changed the current key")
	}
}

// Restored state that no operator registers survives further checkpoints
// unchanged (Flink keeps it too), and is decoded once registered.
func TestUnregisteredStateSurvives(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(6, 6))
	u := universe(300)
	h, m := newHarness(t, 128, full128), newModel()
	for range 3000 {
		h.step(t, m, rng, u[rng.IntN(len(u))])
	}
	b := NewHeapBackend(codec.String, 128, full128, clock.NewFake(epoch))
	if err := b.Restore([]RestoreFile{write(t, h.b)}); err != nil {
		t.Fatal(err)
	}
	if _, err := Value(b, "sum", codec.Int64); err != nil { // only one of four
		t.Fatal(err)
	}
	newHarness(t, 128, full128, write(t, b)).check(t, m, u)
}

func TestListAliasing(t *testing.T) {
	t.Parallel()
	b := NewHeapBackend(codec.String, 128, full128, nil)
	l, _ := List(b, "l", codec.Int64)
	b.SetCurrentKey("k")
	in := []int64{1, 2}
	l.Update(in)
	in[0] = 99 // Update copied
	got := l.Get()
	_ = append(got, 42) // cap == len: must not write into the stored array
	l.Add(3)
	if !slices.Equal(got, []int64{1, 2}) || !slices.Equal(l.Get(), []int64{1, 2, 3}) {
		t.Fatalf("got %v, stored %v", got, l.Get())
	}
	l.Update(nil)
	if l.Get() != nil || b.NumKeys() != 0 {
		t.Fatal("Update(nil) did not clear")
	}
}

func TestMapStateIteration(t *testing.T) {
	t.Parallel()
	b := NewHeapBackend(codec.String, 128, full128, nil)
	m, _ := Map(b, "m", codec.Int64, codec.String)
	b.SetCurrentKey("k")
	for i := range int64(10) {
		m.Put(i, "v")
	}
	n := 0
	for range m.All() {
		if n++; n == 3 {
			break
		}
	}
	if n != 3 || m.Len() != 10 || !m.Contains(4) || m.Contains(11) {
		t.Fatalf("n = %d, len = %d", n, m.Len())
	}
	b.SetCurrentKey("other")
	if m.Len() != 0 || len(maps.Collect(m.All())) != 0 {
		t.Fatal("other key sees entries")
	}
	m.Remove(1) // absent: no-op
	if b.NumKeys() != 1 {
		t.Fatalf("NumKeys = %d", b.NumKeys())
	}
}

func TestNewHeapBackendPanics(t *testing.T) {
	t.Parallel()
	for name, f := range map[string]func(){
		"nil codec": func() { NewHeapBackend[string](nil, 128, full128, nil) },
		"maxP 0":    func() { NewHeapBackend(codec.String, 0, full128, nil) },
		"range":     func() { NewHeapBackend(codec.String, 64, full128, nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
	// An empty range is legal (a subtask with no key groups when p > maxP
	// is impossible, but a backend for no keys is harmless).
	b := NewHeapBackend(codec.String, 128, checkpoint.KeyGroupRange{Start: 5, End: 4}, nil)
	if f := write(t, b); len(f.Offsets) != 0 {
		t.Fatal("offsets for an empty range")
	}
}

// gatedWriter blocks its first Write until the test opens the gate.
type gatedWriter struct {
	entered chan struct{}
	gate    chan struct{}
	n       int
}

func (g *gatedWriter) Write(p []byte) (int, error) {
	if g.n == 0 {
		close(g.entered)
		<-g.gate
	}
	g.n += len(p)
	return len(p), nil
}

// Release during a write abandons it, and the backend learns of the release
// only once the writer has stopped reading the frozen maps: otherwise the
// task's next write would race with the writer's reads (for Go maps, a fatal
// "concurrent map iteration and map write").
func TestReleaseDuringWrite(t *testing.T) {
	t.Parallel()
	b := NewHeapBackend(codec.String, 128, full128, nil)
	v, _ := Value(b, "v", codec.Int64)
	for _, k := range universe(40000) { // > bufio's buffer, so Write happens mid-way
		b.SetCurrentKey(k)
		v.Update(1)
	}
	s := b.Snapshot(1)
	g := &gatedWriter{entered: make(chan struct{}), gate: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := s.WriteKeyGroups(g)
		done <- err
	}()
	<-g.entered
	if _, err := s.WriteKeyGroups(&countingWriter{}); err == nil || errors.Is(err, ErrReleased) {
		t.Fatalf("concurrent WriteKeyGroups: %v", err)
	}
	s.Release()
	if up := b.cow.rel.upTo.Load(); up != 0 {
		t.Fatalf("backend told of the release while the writer still reads (upTo %d)", up)
	}
	close(g.gate)
	if err := <-done; !errors.Is(err, ErrReleased) {
		t.Fatalf("abandoned WriteKeyGroups: %v", err)
	}
	if up := b.cow.rel.upTo.Load(); up != 1 {
		t.Fatalf("upTo = %d after the writer stopped, want 1", up)
	}
	for _, k := range universe(40000) {
		b.SetCurrentKey(k)
		v.Update(2)
	}
	if c := b.CopyOnWriteClones(); c != 0 {
		t.Fatalf("%d clones after release", c)
	}
}
