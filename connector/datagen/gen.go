package datagen

import (
	"math"
	"strconv"
	"sync"
)

// The record function. Record (split s, seq i) of a job is a pure function
// of (Seed, s, i): verifiers regenerate a job's input from its configuration
// and the positions in a checkpoint, so nothing here may depend on how polls
// were batched, on the reader's parallelism or on any other runtime state.
// TestGolden pins the output; changing it breaks the verification of
// every job that was checkpointed before the change.
//
// Each split is a splitmix64 stream (Steele, Lea, Flood: "Fast splittable
// pseudorandom number generators", OOPSLA 2014): its state after i steps is
// base(s) + i·gamma, so the draw of record i is mix(base(s) + (i+1)·gamma),
// computable without stepping through records 0..i-1. That is what makes
// seeking (restore from a checkpoint) and regeneration O(1) per record.

// gamma is splitmix64's increment, the odd integer closest to 2^64/φ.
const gamma = 0x9e3779b97f4a7c15

// mix is splitmix64's finalizer (David Stafford's Mix13), a bijection on
// uint64 with good avalanche.
func mix(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// splitBase is the splitmix64 state before the first record of split s.
// The seed and the split index are both mixed so that neighbouring seeds
// and splits give unrelated streams.
func splitBase(seed uint64, split int) uint64 {
	return mix(mix(seed) + uint64(split+1)*gamma)
}

// draw is the 64-bit random draw behind record seq of a split.
func draw(base uint64, seq int64) uint64 { return mix(base + uint64(seq+1)*gamma) }

// valueOf derives a record's Value from its draw: the low 10 bits, so
// values are uniform in [0, 1024). The uniform key uses the high 32 bits.
func valueOf(z uint64) int64 { return int64(z & 1023) }

// uniformIndex maps a draw to a key index in [0, keys) with Lemire's
// multiply-shift on the high 32 bits: no division on the hot path, and a
// bias below keys/2^32, irrelevant for a load generator.
func uniformIndex(z uint64, keys uint64) uint64 { return ((z >> 32) * keys) >> 32 }

// zipfS is the exponent of the skewed distribution: key rank r (from 0) has
// weight 1/(r+1)^1.1, so with 1000 keys the hottest key gets about 18% of
// the records and the top 10 about 48%.
const zipfS = 1.1

// aliasTable samples key indexes from the zipf distribution in O(1) with
// Vose's alias method: pick a column uniformly, keep it with probability
// thresh[col]/2^32, else take alias[col]. Sampling is integer-only, so it
// is exact given the table; the table is built in float64 (see newAlias).
type aliasTable struct {
	thresh []uint64 // in [0, 2^32]; 2^32 means "always keep"
	alias  []uint32
}

// sample maps a draw to a key index. The column comes from the high 32 bits
// like the uniform distribution; the keep decision needs bits independent of
// those, so it uses a second mix of the draw rather than the low bits (which
// also make the Value).
func (a *aliasTable) sample(z uint64) uint64 {
	col := uniformIndex(z, uint64(len(a.thresh)))
	if uint64(uint32(mix(z^gamma))) < a.thresh[col] {
		return col
	}
	return uint64(a.alias[col])
}

// newAlias builds the zipf alias table of n keys (Vose, "A linear algorithm
// for generating random numbers with a given distribution", 1991). It only
// adds, subtracts, multiplies and divides besides math.Pow, so it is
// reproducible wherever math.Pow is; Go's math.Pow is pure Go on the common
// platforms, but the compiler may fuse multiply-adds inside it on some
// (arm64), so a table built on arm64 may differ from an amd64 one in the
// last bit of a weight. That would change a threshold by one in 2^32 with a
// probability around one in a million: verify on the architecture that
// generated, or avoid zipf for cross-architecture checks.
func newAlias(n int) *aliasTable {
	w := make([]float64, n)
	sum := 0.0
	for i := range w {
		w[i] = math.Pow(float64(i+1), -zipfS)
		sum += w[i]
	}
	p := make([]float64, n)
	for i := range p {
		p[i] = w[i] * float64(n) / sum
	}
	a := &aliasTable{thresh: make([]uint64, n), alias: make([]uint32, n)}
	small := make([]int, 0, n)
	large := make([]int, 0, n)
	for i, v := range p {
		if v < 1 {
			small = append(small, i)
		} else {
			large = append(large, i)
		}
	}
	for len(small) > 0 && len(large) > 0 {
		l := small[len(small)-1]
		small = small[:len(small)-1]
		g := large[len(large)-1]
		large = large[:len(large)-1]
		a.thresh[l] = uint64(p[l] * (1 << 32))
		a.alias[l] = uint32(g)
		p[g] = (p[g] + p[l]) - 1
		if p[g] < 1 {
			small = append(small, g)
		} else {
			large = append(large, g)
		}
	}
	// What is left has probability 1 up to rounding error.
	for _, i := range large {
		a.thresh[i], a.alias[i] = 1<<32, uint32(i)
	}
	for _, i := range small {
		a.thresh[i], a.alias[i] = 1<<32, uint32(i)
	}
	return a
}

// Tables depend only on the number of keys, and a job builds one per
// reader plus one per verifier call: cache them.
var (
	aliasMu    sync.Mutex
	aliasCache = map[int]*aliasTable{}
)

func zipfTable(keys int) *aliasTable {
	aliasMu.Lock()
	defer aliasMu.Unlock()
	t, ok := aliasCache[keys]
	if !ok {
		t = newAlias(keys)
		aliasCache[keys] = t
	}
	return t
}

// keyDigits is the number of digits in a key: at least 6 ("k000123"), more
// when there are more than a million keys, so all keys have equal width.
func keyDigits(keys int) int {
	d := len(strconv.Itoa(keys - 1))
	return max(d, 6)
}

// appendKey appends key i ("k" and i zero-padded to digits).
func appendKey(dst []byte, i, digits int) []byte {
	dst = append(dst, 'k')
	var tmp [20]byte
	s := strconv.AppendInt(tmp[:0], int64(i), 10)
	for range digits - len(s) {
		dst = append(dst, '0')
	}
	return append(dst, s...)
}

// keyTable holds every key string back to back in one string, so that
// emitting a key is a substring (two integer operations, no allocation)
// and the table costs keys×width bytes rather than a string header each.
type keyTable struct {
	all   string
	width int
}

func newKeyTable(keys int) keyTable {
	d := keyDigits(keys)
	b := make([]byte, 0, keys*(d+1))
	for i := range keys {
		b = appendKey(b, i, d)
	}
	return keyTable{all: string(b), width: d + 1}
}

func (t keyTable) key(i uint64) string {
	off := int(i) * t.width
	return t.all[off : off+t.width]
}

// generator computes records for one configuration; it is immutable and
// shared by the readers of a Source.
type generator struct {
	cfg   Config // with defaults
	keys  keyTable
	zipf  *aliasTable // nil unless the distribution is zipf
	bases []uint64    // splitBase per split
}

func newGenerator(cfg Config) *generator {
	g := &generator{cfg: cfg, keys: newKeyTable(cfg.Keys), bases: make([]uint64, cfg.Splits)}
	if cfg.Distribution == Zipf {
		g.zipf = zipfTable(cfg.Keys)
	}
	for s := range g.bases {
		g.bases[s] = splitBase(cfg.Seed, s)
	}
	return g
}

// keyIndex is the key index of record (split, seq); the readers' loops
// inline the same computation per distribution.
func (g *generator) keyIndex(split int, seq int64) uint64 {
	z := draw(g.bases[split], seq)
	switch g.cfg.Distribution {
	case Zipf:
		return g.zipf.sample(z)
	case Sequential:
		return sequentialIndex(split, seq, g.cfg.Splits, g.cfg.Keys)
	default:
		return uniformIndex(z, uint64(g.cfg.Keys))
	}
}

// sequentialIndex numbers the records of all splits as one interleaved
// sequence (record i of split s is number i·splits+s) and cycles through
// the keys in that order, so with equal progress on every split each key
// gets the same count.
func sequentialIndex(split int, seq int64, splits, keys int) uint64 {
	k := uint64(keys)
	// Reduce before multiplying: seq·splits could overflow 64 bits, while
	// both factors below are < keys <= MaxKeys < 2^24.
	return ((uint64(seq)%k)*(uint64(splits)%k) + uint64(split)) % k
}
