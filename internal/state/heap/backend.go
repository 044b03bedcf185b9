package heap

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/clock"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/keygroup"
	"github.com/sluicehq/sluice/state"
)

// HeapBackend keeps one subtask's keyed state in hash tables, one per key
// group of its range and state (open addressing for value and reducing
// states, Go maps for the others). It is not safe for concurrent use: it belongs
// to the task goroutine, apart from the Snapshots it hands out (see the
// package comment).
type HeapBackend[K comparable] struct {
	kc   codec.KeyCodec[K]
	kcID codec.ID
	maxP int
	r    checkpoint.KeyGroupRange
	clk  clock.Clock

	// The current key, its key group and that group's index in r, and the
	// slot hash of its hash (slotHash), with which value states find it in
	// their hmaps without hashing it again.
	key K
	kg  int
	gi  int
	h   uint64
	// verified counts the keys SetCurrentKeyInGroup was given, for the
	// sampled check of race-detector builds (verifyKeyGroups).
	verified uint64

	cow    cow
	states map[string]registered[K]
	// raw holds restored state not yet registered, by name (Flink's lazy
	// heap restore: it cannot be decoded before its codecs are known).
	raw map[string]*rawState
	// rcodecs are the codecs the restored files recorded, by state name.
	rcodecs map[string][]codec.ID
	timers  timerService[K]
	// etimers are the event-time timers, with the same shape as timers
	// (docs/design.md §14).
	etimers  timerService[K]
	restored bool
	// inc chains the backend's snapshots for incremental writes
	// (incremental.go).
	inc *incState
	// planning is set by PlanRestore: registrations record their
	// Resolution in plan instead of decoding restored state.
	planning bool
	plan     []Resolution
	// pfs are the registered states that Prefetch warms; pfSink keeps its
	// loads from being optimized away.
	pfs    []prefetcher
	pfSink uint64
}

// prefetcher is a state whose entries Prefetch can warm.
type prefetcher interface {
	// prefetch loads the home slot of every key of a batch, given by key
	// group (start is the backend's first) and hash, and returns a sum of
	// what it loaded.
	prefetch(kgs []uint16, hs []uint64, start int) uint64
}

// Prefetch warms the slots of a batch's keys, given by key group and hash,
// in every value, reducing and list state, before the batch's records look them
// up one by one: the loads of one tight loop miss the cache together, where
// the lookups, each waiting on the last, would miss one after the other
// (docs/design.md §6). It changes nothing.
func (b *HeapBackend[K]) Prefetch(kgs []uint16, hs []uint64) {
	for _, p := range b.pfs {
		b.pfSink += p.prefetch(kgs, hs, b.r.Start)
	}
}

// registered is what the backend needs from a registered state of any kind.
type registered[K comparable] interface {
	info() *base[K]
	// freeze is the synchronous part of a snapshot for this state.
	freeze(seq int64) frozenState
	// keys calls fn for every key with an entry (expired or not).
	keys(fn func(K))
	// numKeys returns the number of keys with an entry.
	numKeys() int
}

// base is the part common to every state handle.
type base[K comparable] struct {
	b    *HeapBackend[K]
	name string
	kind kind
	ttl  int64 // nanoseconds, 0 for none
	// codecs are the identities of the state's codecs, in the order of
	// codecRoles (value; element; user key and user value), recorded in
	// snapshots and checked on restore (docs/design.md §10).
	codecs []codec.ID
}

func (s *base[K]) info() *base[K] { return s }

// expiry returns the expiry time of an entry written now.
func (s *base[K]) expiry() int64 {
	if s.ttl == 0 {
		return 0
	}
	return s.b.now() + s.ttl
}

// NewHeapBackend returns an empty backend for the subtask that owns key
// groups r of maxParallelism. kc hashes keys into key groups and encodes
// them in snapshots; clk drives TTL and defaults to the wall clock when nil.
//
// It panics if maxParallelism < 1, if r is not within [0, maxParallelism)
// or if kc is nil: these are wiring bugs that no caller can handle.
func NewHeapBackend[K comparable](kc codec.KeyCodec[K], maxParallelism int, r checkpoint.KeyGroupRange, clk clock.Clock) *HeapBackend[K] {
	switch {
	case kc == nil:
		panic("state: NewHeapBackend: nil key codec")
	case maxParallelism < 1:
		panic(fmt.Sprintf("state: NewHeapBackend: max parallelism %d < 1", maxParallelism))
	case r.Len() > 0 && (r.Start < 0 || r.End >= maxParallelism):
		panic(fmt.Sprintf("state: NewHeapBackend: key-group range [%d, %d] outside [0, %d)", r.Start, r.End, maxParallelism))
	}
	if r.Len() == 0 {
		r = checkpoint.KeyGroupRange{Start: 0, End: -1}
	}
	if clk == nil {
		clk = clock.Real{}
	}
	b := &HeapBackend[K]{
		kc:      kc,
		kcID:    codec.IDOf[K](kc),
		maxP:    maxParallelism,
		r:       r,
		clk:     clk,
		kg:      r.Start,
		cow:     cow{rel: &releaser{}, changed: make([]bool, r.Len()), ver: make([]int64, r.Len())},
		inc:     &incState{},
		states:  make(map[string]registered[K]),
		raw:     make(map[string]*rawState),
		rcodecs: make(map[string][]codec.ID),
	}
	b.timers.init(r.Len())
	b.etimers.init(r.Len())
	return b
}

// SetCurrentKey makes k the key that state handles and RegisterTimer act on.
// It hashes k once and derives its key group with keygroup.Of. A key whose
// key group lies outside the backend's range yields an error wrapping
// ErrKeyGroupOutOfRange and leaves the current key unchanged: returning an
// error (nil on the hot path, so free) lets the task fail cleanly on a
// partitioning bug instead of panicking or touching state it does not own.
func (b *HeapBackend[K]) SetCurrentKey(k K) error {
	kh := b.kc.Hash(k)
	kg := keygroup.Of(kh, b.maxP)
	if kg < b.r.Start || kg > b.r.End {
		return b.outOfRange(k, kg)
	}
	b.key, b.kg, b.gi, b.h = k, kg, kg-b.r.Start, slotHash(kh)
	return nil
}

// SetCurrentKeyInGroup is SetCurrentKey for a key whose hash kh and key
// group kg the caller already computed (the hash partitioner did,
// docs/design.md §2): it checks that kg is in the backend's range but does
// not hash k again. A kh or kg that is not k's would put k's state in the
// wrong group or slot, so builds with the race detector (the test suites)
// verify them by hashing one key in verifyEvery (and the first).
func (b *HeapBackend[K]) SetCurrentKeyInGroup(k K, kh uint64, kg int) error {
	if kg < b.r.Start || kg > b.r.End {
		return b.outOfRange(k, kg)
	}
	if verifyKeyGroups && b.verifyDue() {
		if err := b.verifyKeyGroup(k, kh, kg); err != nil {
			return err
		}
	}
	b.key, b.kg, b.gi, b.h = k, kg, kg-b.r.Start, slotHash(kh)
	return nil
}

// verifyEvery is how often (in keys) race-detector builds check a key
// group given by the caller against the key's hash: often enough to catch
// a routing bug in any test, rarely enough that a test counting hashes
// still sees one per record.
const verifyEvery = 16

// verifyDue counts a key given with its key group and reports whether
// this one is to be verified.
func (b *HeapBackend[K]) verifyDue() bool {
	b.verified++
	return b.verified%verifyEvery == 1
}

// verifyKeyGroup checks that kg is k's key group.
//
//go:noinline
func (b *HeapBackend[K]) verifyKeyGroup(k K, kh uint64, kg int) error {
	h := b.kc.Hash(k)
	if want := keygroup.Of(h, b.maxP); want != kg {
		return fmt.Errorf("%w: key %v was given key group %d, its hash says %d", ErrKeyGroupOutOfRange, k, kg, want)
	}
	if h != kh {
		return fmt.Errorf("%w: key %v was given hash %#x, its codec says %#x", ErrKeyGroupOutOfRange, k, kh, h)
	}
	return nil
}

// outOfRange builds SetCurrentKey's error out of line, keeping the hot path
// small enough to inline its callers' checks.
//
//go:noinline
func (b *HeapBackend[K]) outOfRange(k K, kg int) error {
	return fmt.Errorf("%w: key %v is in key group %d, backend owns [%d, %d]",
		ErrKeyGroupOutOfRange, k, kg, b.r.Start, b.r.End)
}

// CurrentKey returns the key set by the last successful SetCurrentKey.
func (b *HeapBackend[K]) CurrentKey() K { return b.key }

// CurrentKeyGroup returns the current key's key group.
func (b *HeapBackend[K]) CurrentKeyGroup() int { return b.kg }

// KeyGroupRange returns the key groups the backend owns.
func (b *HeapBackend[K]) KeyGroupRange() checkpoint.KeyGroupRange { return b.r }

// MaxParallelism returns the number of key groups of the job.
func (b *HeapBackend[K]) MaxParallelism() int { return b.maxP }

// NumKeys returns the number of distinct keys that have an entry in at least
// one registered state, counting entries that have expired but have not been
// cleaned up yet. Restored state that has not been registered is not
// counted. With more than one state it builds a set of the keys: it is meant
// for tests and occasional metrics, not for every record.
func (b *HeapBackend[K]) NumKeys() int {
	switch len(b.states) {
	case 0:
		return 0
	case 1:
		for _, s := range b.states {
			return s.numKeys()
		}
	}
	seen := make(map[K]struct{})
	for _, s := range b.states {
		s.keys(func(k K) { seen[k] = struct{}{} })
	}
	return len(seen)
}

// Unregistered returns, sorted, the names of restored states that have not
// been registered (yet). Their entries are kept as they were restored and
// written unchanged into every snapshot, so nothing is lost; but an operator
// that renamed a state starts the new name empty, which is why the runtime
// logs them after Open (docs/design.md §10).
func (b *HeapBackend[K]) Unregistered() []string {
	return slices.Sorted(maps.Keys(b.raw))
}

// CopyOnWriteClones returns how many key-group maps the backend has cloned
// because a snapshot still held them. Each snapshot costs at most one clone
// per key group and state that is written while it is being serialized; a
// metric of the copy-on-write overhead.
func (b *HeapBackend[K]) CopyOnWriteClones() int64 { return b.cow.clones }

func (b *HeapBackend[K]) now() int64 { return b.clk.Now().UnixNano() }

// prepare validates a registration and returns the options and the state
// already registered under name, if any.
func (b *HeapBackend[K]) prepare(name string, k kind, opts []state.Option) (state.Options, registered[K], error) {
	o := state.Settings(opts...)
	if name == "" {
		return o, nil, fmt.Errorf("%w: empty state name", state.ErrIncompatible)
	}
	if o.TTL < 0 {
		return o, nil, fmt.Errorf("%w: state %q: negative TTL %v", state.ErrIncompatible, name, o.TTL)
	}
	s, ok := b.states[name]
	if !ok {
		return o, nil, nil
	}
	in := s.info()
	if in.kind != k {
		return o, nil, fmt.Errorf("%w: state %q is registered as %s state, not as %s state", state.ErrIncompatible, name, in.kind, k)
	}
	if in.ttl != int64(o.TTL) {
		return o, nil, fmt.Errorf("%w: state %q is registered with TTL %v, not %v", state.ErrIncompatible, name, time.Duration(in.ttl), o.TTL)
	}
	return o, s, nil
}

func (b *HeapBackend[K]) typeConflict(name string, k kind) error {
	return fmt.Errorf("%w: state %q is registered as %s state with other type parameters", state.ErrIncompatible, name, k)
}

func (b *HeapBackend[K]) newBase(name string, k kind, o state.Options) base[K] {
	return base[K]{b: b, name: name, kind: k, ttl: int64(o.TTL)}
}
