package pebblestate

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/clock"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/internal/state/heap"
	"github.com/sluicehq/sluice/keygroup"
	"github.com/sluicehq/sluice/state"
)

// Options configure a Backend.
type Options struct {
	// Dir is the DB's working directory (OperatorContext.LocalDir + "/db").
	// Its previous content is removed: a new backend starts empty, and
	// Restore or RestoreNative fill it. Empty: a temporary directory,
	// removed by Close.
	Dir string
	// Cache is the block cache, shared by every DB of the job in the
	// process (Memory.Cache). Nil: the DB gets a small cache of its own.
	Cache *pebble.Cache
	// MemTableSize is the size of one memtable of this DB (Memory.MemTableSize);
	// 0: 4 MiB.
	MemTableSize uint64
	// Logger receives Pebble's messages (INFO at DEBUG level) and the
	// backend's own; nil: slog.Default().
	Logger *slog.Logger
	// Incremental makes every Snapshot also take a local Pebble checkpoint
	// (a flush, then hard links of the DB's files), which
	// Snapshot.WriteIncremental uploads. Set it from Config.State.Incremental:
	// without it WriteIncremental fails, and Snapshot costs only a Pebble
	// snapshot.
	Incremental bool
	// LocalRecovery keeps a task-local copy (hard links) of the last
	// checkpoints written with WriteIncremental, in the sibling directory
	// Dir + ".local", and RestoreNative opens that copy instead of fetching
	// the files when it holds exactly the files of the restored
	// checkpoint. It implies a local checkpoint per Snapshot, as Incremental.
	LocalRecovery bool
}

// Backend keeps one subtask's keyed state and timers in a Pebble DB, keyed
// by key group first (see the package comment). Like heap.HeapBackend it
// belongs to the task goroutine, apart from the Snapshots it hands out.
type Backend[K comparable] struct {
	kc   codec.KeyCodec[K]
	kcID codec.ID
	maxP int
	r    checkpoint.KeyGroupRange
	clk  clock.Clock
	o    Options
	log  *slog.Logger

	dir    string // the DB directory
	tmpDir string // a temporary directory to remove at Close, if Dir was empty
	db     *pebble.DB
	// Writes go straight to db (pebble.NoSync, WAL off: durability comes
	// from checkpoints), so reads and iterators see them at once.

	// dbMu is held for reading by a snapshot's writer while it reads
	// Pebble, and for writing by Close, which must not close the DB under
	// it.
	dbMu sync.RWMutex
	// live are the snapshots not yet released, which Close abandons.
	liveMu sync.Mutex
	live   map[*Snapshot]struct{}

	// The current key, its key group, that group's index in r and the
	// key's encoding.
	key  K
	kg   int
	gi   int
	kenc []byte
	// kbuf and kbuf2 are scratch Pebble keys, vbuf a scratch value.
	kbuf, kbuf2, vbuf []byte

	// metas describes every state the DB holds, registered or not, by name.
	metas   map[string]*stateMeta
	bySID   map[uint16]*stateMeta // metas by state id, built by metaBySID
	nextSID uint16
	// states are the states registered with this backend, by name.
	states map[string]registered[K]
	order  []string // registration order, for Plan

	timers, etimers timerIndex

	// ttlStates counts registered states with a TTL; writes counts writes
	// since the last TTL sweep step, sweepAt is where the next one starts.
	ttlStates int
	writes    int
	sweepAt   []byte
	swept     int64

	restored bool
	planning bool
	plan     []heap.Resolution

	// err is a sticky storage or decoding error met by a state access,
	// which cannot return one: SetCurrentKey and snapshots report it.
	err error

	inc *incremental

	closed bool
}

// registered is what the backend needs from a registered state of any kind.
type registered[K comparable] interface {
	info() *stateBase[K]
}

// stateBase is the part common to every state handle.
type stateBase[K comparable] struct {
	b    *Backend[K]
	m    *stateMeta
	ttl  int64 // nanoseconds, 0 for none
	sid  uint16
	name string
}

func (s *stateBase[K]) info() *stateBase[K] { return s }

// defaultMemTable is the memtable size when Options.MemTableSize is 0.
const defaultMemTable = 4 << 20

// New returns an empty backend for the subtask that owns key groups r of
// maxParallelism, in a new Pebble DB in o.Dir. kc hashes keys into key
// groups and encodes them; clk drives TTL and defaults to the wall clock
// when nil. Close it when done.
func New[K comparable](kc codec.KeyCodec[K], maxParallelism int, r checkpoint.KeyGroupRange, clk clock.Clock, o Options) (*Backend[K], error) {
	switch {
	case kc == nil:
		return nil, errors.New("pebblestate: nil key codec")
	case maxParallelism < 1 || maxParallelism > maxKeyGroups:
		return nil, fmt.Errorf("pebblestate: max parallelism %d outside [1, %d]", maxParallelism, maxKeyGroups)
	case r.Len() > 0 && (r.Start < 0 || r.End >= maxParallelism):
		return nil, fmt.Errorf("pebblestate: key-group range [%d, %d] outside [0, %d)", r.Start, r.End, maxParallelism)
	}
	if r.Len() == 0 {
		r = checkpoint.KeyGroupRange{Start: 0, End: -1}
	}
	if clk == nil {
		clk = clock.Real{}
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	b := &Backend[K]{
		kc: kc, kcID: codec.IDOf[K](kc), maxP: maxParallelism, r: r, clk: clk, o: o, log: log,
		kg: r.Start, metas: make(map[string]*stateMeta), nextSID: firstStateID,
		states: make(map[string]registered[K]), live: make(map[*Snapshot]struct{}),
		inc: newIncremental(),
	}
	b.timers.init(sidTimers, r.Len())
	b.etimers.init(sidEventTimers, r.Len())
	b.dir = o.Dir
	if b.dir == "" {
		d, err := os.MkdirTemp("", "sluice-pebble-")
		if err != nil {
			return nil, fmt.Errorf("pebblestate: %w", err)
		}
		b.tmpDir, b.dir = d, filepath.Join(d, "db")
	}
	if err := os.RemoveAll(b.dir); err != nil {
		return nil, fmt.Errorf("pebblestate: clearing %s: %w", b.dir, err)
	}
	if err := b.open(false); err != nil {
		b.removeTemp()
		return nil, err
	}
	if err := b.writeInfo(); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// pebbleOptions are the options every DB of the backend is opened with.
func (b *Backend[K]) pebbleOptions(readOnly bool) *pebble.Options {
	mts := b.o.MemTableSize
	if mts == 0 {
		mts = defaultMemTable
	}
	po := &pebble.Options{
		Cache:              b.o.Cache,
		CacheSize:          8 << 20,
		MemTableSize:       mts,
		DisableWAL:         true,
		Logger:             slogLogger{b.log},
		FormatMajorVersion: pebble.FormatNewest,
		// The MANIFEST goes into every incremental checkpoint: keep it small.
		MaxManifestFileSize: 4 << 20,
		ReadOnly:            readOnly,
	}
	for i := range po.Levels {
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	return po
}

// open opens (or creates) the DB in b.dir.
func (b *Backend[K]) open(mustExist bool) error {
	po := b.pebbleOptions(false)
	po.ErrorIfNotExists = mustExist
	db, err := pebble.Open(b.dir, po)
	if err != nil {
		return fmt.Errorf("pebblestate: opening %s: %w", b.dir, err)
	}
	b.db = db
	return nil
}

func (b *Backend[K]) removeTemp() {
	if b.tmpDir != "" {
		os.RemoveAll(b.tmpDir)
	}
}

// Close abandons the snapshots still held, closes
// the DB and removes a temporary directory. Later calls are no-ops.
func (b *Backend[K]) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	b.liveMu.Lock()
	live := slices.Collect(maps.Keys(b.live))
	b.liveMu.Unlock()
	for _, s := range live {
		s.Release()
	}
	b.dbMu.Lock()
	defer b.dbMu.Unlock()
	var errs []error
	if b.db != nil {
		errs = append(errs, b.db.Close())
		b.db = nil
	}
	b.removeTemp()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pebblestate: close: %w", err)
	}
	return nil
}

// Dir returns the DB's directory.
func (b *Backend[K]) Dir() string { return b.dir }

// SetCurrentKey makes k the key that state handles and timers act on. It
// hashes k once and derives its key group with keygroup.Of. A key whose key
// group lies outside the backend's range yields an error wrapping
// heap.ErrKeyGroupOutOfRange and leaves the current key unchanged. A
// storage error met earlier by a state access (which cannot return one) is
// returned here, wrapped, so the task fails at the next record.
func (b *Backend[K]) SetCurrentKey(k K) error {
	kh := b.kc.Hash(k)
	return b.SetCurrentKeyInGroup(k, kh, keygroup.Of(kh, b.maxP))
}

// SetCurrentKeyInGroup is SetCurrentKey for a key whose hash kh and key
// group kg the caller already computed (the hash partitioner did): it
// checks the range but does not hash again. Pebble finds keys by their
// encoding, so kh is not used.
func (b *Backend[K]) SetCurrentKeyInGroup(k K, kh uint64, kg int) error {
	if kg < b.r.Start || kg > b.r.End {
		return b.outOfRange(k, kg)
	}
	if b.err != nil {
		return b.err
	}
	b.key, b.kg, b.gi = k, kg, kg-b.r.Start
	b.kenc = b.kc.Append(b.kenc[:0], k)
	return nil
}

//go:noinline
func (b *Backend[K]) outOfRange(k K, kg int) error {
	return fmt.Errorf("%w: key %v is in key group %d, backend owns [%d, %d]",
		heap.ErrKeyGroupOutOfRange, k, kg, b.r.Start, b.r.End)
}

// CurrentKey returns the key set by the last successful SetCurrentKey.
func (b *Backend[K]) CurrentKey() K { return b.key }

// CurrentKeyGroup returns the current key's key group.
func (b *Backend[K]) CurrentKeyGroup() int { return b.kg }

// KeyGroupRange returns the key groups the backend owns.
func (b *Backend[K]) KeyGroupRange() checkpoint.KeyGroupRange { return b.r }

// MaxParallelism returns the number of key groups of the job.
func (b *Backend[K]) MaxParallelism() int { return b.maxP }

// Err returns the sticky error a state access met, if any.
func (b *Backend[K]) Err() error { return b.err }

func (b *Backend[K]) now() int64 { return b.clk.Now().UnixNano() }

// fail records the first storage or decoding error of a state access.
//
//go:noinline
func (b *Backend[K]) fail(err error) {
	if b.err == nil {
		b.err = fmt.Errorf("pebblestate: %w", err)
		b.log.Error("keyed state backend failed; the task fails at the next record", "dir", b.dir, "err", err)
	}
}

// stateKey builds the Pebble key of the current key in state sid.
func (b *Backend[K]) stateKey(sid uint16) []byte {
	k := appendPrefix(b.kbuf[:0], b.kg, sid)
	k = append(k, b.kenc...)
	b.kbuf = k
	return k
}

// getInto copies the value of key into b.vbuf, reporting whether it exists.
func (b *Backend[K]) getInto(key []byte) ([]byte, bool) {
	v, cl, err := b.db.Get(key)
	if err != nil {
		if !errors.Is(err, pebble.ErrNotFound) {
			b.fail(err)
		}
		return nil, false
	}
	b.vbuf = append(b.vbuf[:0], v...)
	cl.Close()
	return b.vbuf, true
}

func (b *Backend[K]) exists(key []byte) bool {
	_, cl, err := b.db.Get(key)
	if err != nil {
		if !errors.Is(err, pebble.ErrNotFound) {
			b.fail(err)
		}
		return false
	}
	cl.Close()
	return true
}

func (b *Backend[K]) set(key, value []byte) {
	if err := b.db.Set(key, value, pebble.NoSync); err != nil {
		b.fail(err)
	}
	b.wrote()
}

func (b *Backend[K]) del(key []byte) {
	if err := b.db.Delete(key, pebble.NoSync); err != nil {
		b.fail(err)
	}
	b.wrote()
}

func (b *Backend[K]) delRange(start, end []byte) {
	if err := b.db.DeleteRange(start, end, pebble.NoSync); err != nil {
		b.fail(err)
	}
	b.wrote()
}

// wrote follows every write: it runs a TTL sweep step every sweepEvery
// writes.
func (b *Backend[K]) wrote() {
	b.writes++
	if b.writes >= sweepEvery && b.ttlStates > 0 {
		b.writes = 0
		b.sweep(sweepStep)
	}

}

// iter returns an iterator over [lo, hi).
func (b *Backend[K]) iter(lo, hi []byte) *pebble.Iterator {
	it, err := b.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		b.fail(err)
		return nil
	}
	return it
}

// NumKeys returns the number of distinct keys that have an entry in at least
// one registered state, counting entries that have expired but have not been
// cleaned up yet. It scans the states: meant for tests and occasional
// metrics.
func (b *Backend[K]) NumKeys() int {
	if len(b.states) == 0 {
		return 0
	}
	seen := make(map[string]struct{})
	for _, s := range b.states {
		b.scanKeys(s.info(), func(enc []byte) bool {
			if _, ok := seen[string(enc)]; !ok {
				seen[string(enc)] = struct{}{}
			}
			return true
		})
	}
	return len(seen)
}

// scanKeys calls fn with the encoded key of every key with an entry in
// state s, in key-group and then byte order, once per key.
func (b *Backend[K]) scanKeys(s *stateBase[K], fn func(enc []byte) bool) {
	if b.r.Len() == 0 {
		return
	}
	var prev []byte
	for kg := b.r.Start; kg <= b.r.End; kg++ {
		lo := appendPrefix(nil, kg, s.sid)
		hi := appendPrefix(nil, kg, s.sid+1)
		it := b.iter(lo, hi)
		if it == nil {
			return
		}
		prev = prev[:0]
		for ok := it.First(); ok; ok = it.Next() {
			rest := it.Key()[prefixLen:]
			if s.m.kind == kindMap {
				if len(prev) > 0 && bytes.HasPrefix(rest, prev) {
					continue
				}
				_, n, err := b.kc.Decode(rest)
				if err != nil {
					b.fail(fmt.Errorf("%w: state %q, key group %d: key: %w", state.ErrCorrupt, s.name, kg, err))
					it.Close()
					return
				}
				rest = rest[:n]
				prev = append(prev[:0], rest...)
			}
			if !fn(rest) {
				it.Close()
				return
			}
		}
		if err := it.Close(); err != nil {
			b.fail(err)
			return
		}
	}
}

// Unregistered returns, sorted, the names of restored states that have not
// been registered (yet). Their entries are kept as they were restored and
// written unchanged into every snapshot, so nothing is lost; but an operator
// that renamed a state starts the new name empty, which is why the runtime
// logs them after Open (docs/design.md §10).
func (b *Backend[K]) Unregistered() []string {
	var out []string
	for name := range b.metas {
		if _, ok := b.states[name]; !ok {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// KeysOf returns the keys that have an entry in the registered state name
// (expired entries not yet cleaned up included), ordered by key group and,
// within one, by encoded key, as heap.HeapBackend.KeysOf. It allocates.
func (b *Backend[K]) KeysOf(name string) ([]K, error) {
	s, ok := b.states[name]
	if !ok {
		return nil, fmt.Errorf("keyed state %q is not registered (register it in Open)", name)
	}
	var out []K
	var derr error
	b.scanKeys(s.info(), func(enc []byte) bool {
		k, _, err := b.kc.Decode(enc)
		if err != nil {
			derr = fmt.Errorf("%w: state %q: key: %w", state.ErrCorrupt, name, err)
			return false
		}
		out = append(out, k)
		return true
	})
	if derr != nil {
		return nil, derr
	}
	if b.err != nil {
		return nil, b.err
	}
	return out, nil
}

// prepare validates a registration and returns the options and the state
// already registered under name, if any.
func (b *Backend[K]) prepare(name string, k kind, opts []state.Option) (state.Options, registered[K], error) {
	o := state.Settings(opts...)
	if name == "" {
		return o, nil, fmt.Errorf("%w: empty state name", state.ErrIncompatible)
	}
	if o.TTL < 0 {
		return o, nil, fmt.Errorf("%w: state %q: negative TTL %v", state.ErrIncompatible, name, o.TTL)
	}
	if b.closed {
		return o, nil, fmt.Errorf("pebblestate: state %q: backend closed", name)
	}
	s, ok := b.states[name]
	if !ok {
		return o, nil, nil
	}
	in := s.info()
	if in.m.kind != k {
		return o, nil, fmt.Errorf("%w: state %q is registered as %s state, not as %s state", state.ErrIncompatible, name, in.m.kind, k)
	}
	if in.ttl != int64(o.TTL) {
		return o, nil, fmt.Errorf("%w: state %q is registered with TTL %v, not %v", state.ErrIncompatible, name, time.Duration(in.ttl), o.TTL)
	}
	return o, s, nil
}

func (b *Backend[K]) typeConflict(name string, k kind) error {
	return fmt.Errorf("%w: state %q is registered as %s state with other type parameters", state.ErrIncompatible, name, k)
}

func errNil(name, what string) error {
	return fmt.Errorf("%w: state %q: nil %s", state.ErrIncompatible, name, what)
}

// slogLogger adapts slog to Pebble's logger.
type slogLogger struct{ l *slog.Logger }

func (l slogLogger) Infof(format string, args ...any) {
	l.l.Debug("pebble: " + fmt.Sprintf(format, args...))
}

func (l slogLogger) Errorf(format string, args ...any) {
	l.l.Error("pebble: " + fmt.Sprintf(format, args...))
}

func (l slogLogger) Fatalf(format string, args ...any) {
	l.l.Error("pebble: fatal: " + fmt.Sprintf(format, args...))
	panic(fmt.Sprintf("pebble: "+format, args...))
}

// Metrics returns the DB's Pebble metrics (levels, compactions, cache).
func (b *Backend[K]) Metrics() *pebble.Metrics { return b.db.Metrics() }
