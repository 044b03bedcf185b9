package nexmark

import (
	"math"
	"math/bits"
	"strconv"
)

// javaRandom is java.util.Random's linear congruential generator: the
// reference generator's random stream (ProfileReference).
type javaRandom struct{ s uint64 }

const (
	jrMul  = 0x5DEECE66D
	jrMask = 1<<48 - 1
)

func (r *javaRandom) setSeed(seed int64) { r.s = (uint64(seed) ^ jrMul) & jrMask }

func (r *javaRandom) next(n uint) int32 {
	r.s = (r.s*jrMul + 0xB) & jrMask
	return int32(int64(r.s) >> (48 - n))
}

// nextInt returns a uniform int32 (Java's nextInt()).
func (r *javaRandom) nextInt() int32 { return r.next(32) }

// nextIntN returns a draw in [0, n) for n > 0 (Java's nextInt(bound)).
func (r *javaRandom) nextIntN(n int32) int32 {
	if n&(-n) == n {
		return int32((int64(n) * int64(r.next(31))) >> 31)
	}
	for {
		b := r.next(31)
		v := b % n
		if b-v+(n-1) >= 0 { // no int32 overflow: not in the biased tail
			return v
		}
	}
}

// nextLong returns a draw in [0, n) as the reference's long generator does
// for the n this generator uses (below 2³¹-1).
func (r *javaRandom) nextLong(n int64) int64 {
	if n < math.MaxInt32 {
		return int64(r.nextIntN(int32(n)))
	}
	v := int64(uint64(r.next(32))<<32+uint64(int64(r.next(32)))) % n
	if v < 0 {
		v = -v
	}
	return v
}

// nextDouble returns a draw in [0, 1) (Java's nextDouble()).
func (r *javaRandom) nextDouble() float64 {
	return float64(int64(r.next(26))<<27+int64(r.next(27))) * 0x1p-53
}

// refChannels holds the reference profile's URLs: the four hot channels'
// and the 10000 others', drawn at start. (The suite draws them from
// unseeded generators once per process; here they come from the configured seed, so
// that the stream is reproducible.)
type refChannels struct {
	hot  [4]string
	urls [channelCount]string
}

func appendRefString(b []byte, r *javaRandom, max int, special byte) []byte {
	n := 3 + int(r.nextIntN(int32(max-3)))
	start := len(b)
	for range n {
		if r.nextIntN(13) == 0 {
			b = append(b, special)
		} else {
			b = append(b, 'a'+byte(r.nextIntN(26)))
		}
	}
	// Java's String.trim: drop leading and trailing bytes <= ' '.
	s := b[start:]
	i, j := 0, len(s)
	for i < j && s[i] <= ' ' {
		i++
	}
	for j > i && s[j-1] <= ' ' {
		j--
	}
	copy(s, s[i:j])
	return b[:start+j-i]
}

// appendRefExact appends n characters, six per draw of a signed int: 'a'
// plus the remainder of the draw by 26, which is negative for a negative
// draw, so the padding holds the bytes 'H' to 'z'.
func appendRefExact(b []byte, r *javaRandom, n int) []byte {
	var v int32
	k := 0
	for range n {
		if k == 0 {
			v, k = r.nextInt(), 6
		}
		b = append(b, byte(int32('a')+v%26))
		v /= 26
		k--
	}
	return b
}

func refExtraLen(r *javaRandom, current, avg int) int {
	if current > avg {
		return 0
	}
	d := avg - current
	delta := int(math.Round(float64(d) * 0.2))
	n := d - delta
	if delta > 0 {
		n += int(r.nextIntN(int32(2 * delta)))
	}
	return n
}

func refBaseURL(b []byte, r *javaRandom) []byte {
	b = append(b, "https://www.nexmark.com/"...)
	b = appendRefString(b, r, 5, '_')
	b = append(b, '/')
	b = appendRefString(b, r, 5, '_')
	b = append(b, '/')
	b = appendRefString(b, r, 5, '_')
	return append(b, "/item.htm?query=1"...)
}

func newRefChannels(mixedSeed uint64) *refChannels {
	t := &refChannels{}
	var a arena
	var r javaRandom
	for i := range t.hot {
		r.setSeed(int64(mix64(mixedSeed + uint64(-1-channelCount-i)*golden)))
		t.hot[i] = a.end(refBaseURL(a.begin(128), &r))
	}
	for c := range channelCount {
		r.setSeed(int64(mix64(mixedSeed + uint64(-1-c)*golden)))
		b := refBaseURL(a.begin(128), &r)
		if r.nextIntN(10) > 0 {
			id := int32(bits.Reverse32(uint32(c)))
			if id < 0 {
				id = -id // as Java's Math.abs: MinInt32 stays negative
			}
			b = append(b, "&channel_id="...)
			b = strconv.AppendInt(b, int64(id), 10)
		}
		t.urls[c] = a.end(b)
	}
	return t
}

func (g *Generator) refActivePerson(r *javaRandom, id int64) int64 {
	k := lastPerson(id) + 1
	active := min(k, 1000)
	return k - active + r.nextLong(active+10)
}

func refPrice(r *javaRandom) int64 {
	return int64(math.Round(math.Pow(10, r.nextDouble()*6) * 100))
}

// reference fills ev by the reference generator's rules, with one
// java.util.Random per event seeded from (seed, event id): the suite draws
// from one unseeded Random per generator, which no run can reproduce.
func (g *Generator) reference(id, n, t int64, ev *Event) {
	r := &g.jr
	r.setSeed(int64(mix64(g.mixed + uint64(id)*golden)))
	var k Kind
	switch rem := id % 50; {
	case rem == 0:
		k = KindPerson
	case rem < 4:
		k = KindAuction
	default:
		k = KindBid
	}
	g.clear(ev, k)
	switch k {
	case KindPerson:
		p := &ev.Person
		p.ID, p.DateTime = id/50+1000, t
		i := r.nextIntN(int32(len(firstNames)))
		j := r.nextIntN(int32(len(lastNames)))
		p.Name = fullNames[int(i)*len(lastNames)+int(j)]
		b := g.a.begin(32)
		b = appendRefString(b, r, 7, ' ')
		b = append(b, '@')
		b = appendRefString(b, r, 5, ' ')
		p.EmailAddress = g.a.end(append(b, ".com"...))
		b = g.a.begin(19)
		for q := range 4 {
			if q > 0 {
				b = append(b, ' ')
			}
			v := r.nextIntN(10000)
			b = append(b, byte('0'+v/1000), byte('0'+v/100%10), byte('0'+v/10%10), byte('0'+v%10))
		}
		p.CreditCard = g.a.end(b)
		p.City = cities[r.nextIntN(int32(len(cities)))]
		p.State = states[r.nextIntN(int32(len(states)))]
		x := refExtraLen(r, 8+len(p.Name)+len(p.EmailAddress)+len(p.CreditCard)+len(p.City)+len(p.State), personAvgSize)
		p.Extra = g.a.end(appendRefExact(g.a.begin(x), r, x))
	case KindAuction:
		a := &ev.Auction
		a.ID, a.DateTime = lastAuction(id)+1000, t
		if r.nextIntN(4) > 0 {
			a.Seller = lastPerson(id) / 100 * 100
		} else {
			a.Seller = g.refActivePerson(r, id)
		}
		a.Seller += 1000
		a.Category = 10 + int64(r.nextIntN(5))
		a.InitialBid = refPrice(r)
		horizon := g.timestamp(n+1666) - t
		a.Expires = t + 1 + r.nextLong(max(2*horizon, 1))
		a.ItemName = g.a.end(appendRefString(g.a.begin(20), r, 20, ' '))
		a.Description = g.a.end(appendRefString(g.a.begin(100), r, 100, ' '))
		a.Reserve = a.InitialBid + refPrice(r)
		x := refExtraLen(r, 8+len(a.ItemName)+len(a.Description)+40, auctionAvgSize)
		a.Extra = g.a.end(appendRefExact(g.a.begin(x), r, x))
	default:
		bd := &ev.Bid
		bd.DateTime = t
		last := lastAuction(id)
		if r.nextIntN(2) > 0 {
			bd.Auction = last / 100 * 100
		} else {
			lo := max(last-100, 0)
			bd.Auction = lo + r.nextLong(last-lo+1+10)
		}
		bd.Auction += 1000
		if r.nextIntN(4) > 0 {
			bd.Bidder = lastPerson(id)/100*100 + 1
		} else {
			bd.Bidder = g.refActivePerson(r, id)
		}
		bd.Price = refPrice(r)
		if r.nextIntN(2) > 0 {
			i := r.nextIntN(4)
			bd.Channel, bd.URL = hotNames[i], g.ref.hot[i]
		} else {
			c := r.nextIntN(channelCount)
			bd.Channel, bd.URL = g.refNames[c], g.ref.urls[c]
		}
		bd.Bidder += 2000 // the suite adds its first person id twice
		x := refExtraLen(r, 32, bidAvgSize)
		bd.Extra = g.a.end(appendRefExact(g.a.begin(x), r, x))
	}
}
