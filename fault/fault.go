// Package fault is Sluice's failure injector (docs/design.md §11): a seeded
// injector that makes a chosen operator fail at a chosen point. The engine
// calls Hit at every point; when nothing is armed that costs one atomic load.
// `sluice demo --fail-every` and the exactly-once property tests both use it.
package fault

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
)

// Point is a place in the engine where a failure can be injected.
type Point string

// The injection points.
const (
	// OnRecord fails while an operator processes a record.
	OnRecord Point = "record"
	// OnBarrier fails when a task handles a checkpoint barrier, before its
	// snapshot.
	OnBarrier Point = "barrier"
	// AfterPreCommit fails in a two-phase-commit sink right after it
	// pre-committed a transaction.
	AfterPreCommit Point = "after-pre-commit"
	// BeforeCommit fails in a two-phase-commit sink right before it commits
	// on checkpoint completion.
	BeforeCommit Point = "before-commit"
	// InSnapshotWrite fails in the asynchronous part of a snapshot.
	InSnapshotWrite Point = "snapshot-write"
)

// Points lists every injection point.
var Points = []Point{OnRecord, OnBarrier, AfterPreCommit, BeforeCommit, InSnapshotWrite}

// Injected is the panic value of an injected failure.
type Injected struct {
	Point   Point
	UID     string
	Subtask int
}

func (e *Injected) Error() string {
	return fmt.Sprintf("injected failure at %s in %s/%d", e.Point, e.UID, e.Subtask)
}

// Target says where the next failure strikes. Empty UID, Subtask -1 and
// empty Point match anything; Skip hits are let pass first.
type Target struct {
	Point   Point
	UID     string
	Subtask int
	Skip    int
}

// Injector fails operators on demand. A nil *Injector never fails.
type Injector struct {
	seed   uint64
	mu     sync.Mutex
	rng    *rand.Rand
	queue  []Target
	armed  atomic.Pointer[armed]
	fired  atomic.Int64
	onFire atomic.Pointer[func(Injected)]
}

type armed struct {
	t    Target
	left atomic.Int64
}

// New returns an injector whose random choices derive from seed.
func New(seed uint64) *Injector {
	return &Injector{seed: seed, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Seed returns the random seed the injector was made with.
func (i *Injector) Seed() uint64 { return i.seed }

// Arm sets the next failure; it replaces any armed one.
func (i *Injector) Arm(t Target) {
	a := &armed{t: t}
	a.left.Store(int64(t.Skip))
	i.armed.Store(a)
}

// ArmRandom arms a failure at a random point of a random operator among
// uids, after a random number of matching hits (below maxSkip for records),
// and returns the target.
func (i *Injector) ArmRandom(uids []string, maxSkip int) Target {
	i.mu.Lock()
	t := i.randomTarget(uids, maxSkip)
	i.mu.Unlock()
	i.Arm(t)
	return t
}

// randomTarget picks a point and an operator. Record hits are frequent, so
// they skip up to maxSkip; the other points come once per checkpoint and
// skip at most two.
func (i *Injector) randomTarget(uids []string, maxSkip int) Target {
	t := Target{Point: Points[i.rng.IntN(len(Points))], UID: uids[i.rng.IntN(len(uids))], Subtask: -1}
	if t.Point == AfterPreCommit || t.Point == BeforeCommit {
		// Only two-phase-commit sinks have these points: any of them.
		t.UID = ""
	}
	switch {
	case t.Point == OnRecord && maxSkip > 0:
		t.Skip = i.rng.IntN(maxSkip)
	case t.Point != OnRecord:
		t.Skip = i.rng.IntN(3)
	}
	return t
}

// Schedule arms the first of ts now and each next one as soon as the
// previous one fired, so a test injects a series of failures without
// watching the job.
func (i *Injector) Schedule(ts []Target) {
	if len(ts) == 0 {
		return
	}
	i.mu.Lock()
	i.queue = append([]Target(nil), ts[1:]...)
	i.mu.Unlock()
	i.Arm(ts[0])
}

// RandomTargets returns n random targets among uids (see ArmRandom).
func (i *Injector) RandomTargets(uids []string, n, maxSkip int) []Target {
	i.mu.Lock()
	defer i.mu.Unlock()
	ts := make([]Target, n)
	for k := range ts {
		ts[k] = i.randomTarget(uids, maxSkip)
	}
	return ts
}

// Disarm removes any armed failure and the scheduled ones.
func (i *Injector) Disarm() {
	i.mu.Lock()
	i.queue = nil
	i.mu.Unlock()
	i.armed.Store(nil)
}

// Pending returns how many scheduled failures have not fired yet.
func (i *Injector) Pending() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	n := len(i.queue)
	if i.armed.Load() != nil {
		n++
	}
	return n
}

func (i *Injector) armNext() {
	i.mu.Lock()
	defer i.mu.Unlock()
	if len(i.queue) > 0 && i.armed.Load() == nil {
		t := i.queue[0]
		i.queue = i.queue[1:]
		a := &armed{t: t}
		a.left.Store(int64(t.Skip))
		i.armed.Store(a)
	}
}

// Armed reports whether a failure is armed.
func (i *Injector) Armed() bool { return i != nil && i.armed.Load() != nil }

// Fired returns how many failures were injected.
func (i *Injector) Fired() int64 {
	if i == nil {
		return 0
	}
	return i.fired.Load()
}

// OnFire sets a function that Hit calls, on the goroutine that hit the
// point, right before it panics with an injected failure: a test uses it to
// act at that exact moment (kill a broker between a pre-commit and its
// commit, say). nil removes it.
func (i *Injector) OnFire(f func(Injected)) {
	if f == nil {
		i.onFire.Store(nil)
		return
	}
	i.onFire.Store(&f)
}

// Hit panics with *Injected when an armed target matches; otherwise it
// returns at the cost of one atomic load.
func (i *Injector) Hit(p Point, uid string, subtask int) {
	if i == nil {
		return
	}
	a := i.armed.Load()
	if a == nil {
		return
	}
	if (a.t.Point != "" && a.t.Point != p) || (a.t.UID != "" && a.t.UID != uid) ||
		(a.t.Subtask >= 0 && a.t.Subtask != subtask) {
		return
	}
	if a.left.Add(-1) >= 0 {
		return
	}
	if !i.armed.CompareAndSwap(a, nil) {
		return
	}
	i.fired.Add(1)
	i.armNext()
	inj := &Injected{Point: p, UID: uid, Subtask: subtask}
	if f := i.onFire.Load(); f != nil {
		(*f)(*inj)
	}
	panic(inj)
}
