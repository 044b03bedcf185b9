package codec

import "math/bits"

// The default secret of wyhash final4, fixed forever here: key groups, and
// therefore every keyed snapshot, depend on it.
const (
	wyp0 = 0x2d358dccaa6c78a5
	wyp1 = 0x8bb84b93962eacc9
	wyp2 = 0x4b33a62ed433d4a3
	wyp3 = 0x4d5a2da51de1aa47
)

// HashString returns the 64-bit hash the String codec uses for keys: Wang
// Yi's wyhash, final version 4 (seed 0, its default secret), checked against
// the published test vectors. It costs a few 64×64→128 multiplications per
// 16 bytes, so short keys hash in a handful of nanoseconds without
// allocating, far faster than byte-at-a-time FNV-1a. The values are part of
// Sluice's snapshot format (they place keys in key groups) and pinned by
// golden tests: never change this function.
func HashString(s string) uint64 { return wyhash(s, 0) }

// wyhash is wyhash final4 with a seed; only seed 0 is used, the parameter exists
// so the tests can check the reference vectors, which vary it.
func wyhash(s string, seed uint64) uint64 {
	seed ^= wymix(seed^wyp0, wyp1)
	n := len(s)
	var a, b uint64
	switch {
	case n <= 16:
		switch {
		case n >= 4:
			q := (n >> 3) << 2
			a = r4(s, 0)<<32 | r4(s, q)
			b = r4(s, n-4)<<32 | r4(s, n-4-q)
		case n > 0:
			a = uint64(s[0])<<16 | uint64(s[n>>1])<<8 | uint64(s[n-1])
		}
	default:
		p, i := 0, n
		if i >= 48 {
			see1, see2 := seed, seed
			for i >= 48 {
				seed = wymix(r8(s, p)^wyp1, r8(s, p+8)^seed)
				see1 = wymix(r8(s, p+16)^wyp2, r8(s, p+24)^see1)
				see2 = wymix(r8(s, p+32)^wyp3, r8(s, p+40)^see2)
				p += 48
				i -= 48
			}
			seed ^= see1 ^ see2
		}
		for i > 16 {
			seed = wymix(r8(s, p)^wyp1, r8(s, p+8)^seed)
			p += 16
			i -= 16
		}
		a = r8(s, p+i-16)
		b = r8(s, p+i-8)
	}
	a ^= wyp1
	b ^= seed
	hi, lo := bits.Mul64(a, b)
	return wymix(lo^wyp0^uint64(n), hi^wyp1)
}

// wymix multiplies to 128 bits and folds the halves.
func wymix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// r8 and r4 read little-endian words from a string without converting it to
// a []byte (which would allocate); the compiler merges the byte loads.
func r8(s string, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

func r4(s string, i int) uint64 {
	s = s[i : i+4]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24
}
