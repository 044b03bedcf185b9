package nexmark

import (
	"encoding/binary"
	"math"
	"math/bits"
	"strconv"
)

// golden is SplitMix64's increment.
const golden = 0x9e3779b97f4a7c15

// mix64 is the SplitMix64 finalizer.
func mix64(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// splitmix is one event's random stream (ProfileComparison).
type splitmix struct{ s uint64 }

func (r *splitmix) seed(mixedSeed uint64, eventID int64) {
	r.s = mix64(mixedSeed + uint64(eventID)*golden)
}

func (r *splitmix) next() uint64 {
	r.s += golden
	return mix64(r.s)
}

// below returns a draw in [0, n).
func (r *splitmix) below(n uint64) uint64 { return r.next() % n }

// unit returns a draw in [0, 1).
func (r *splitmix) unit() float64 { return float64(r.next()>>11) * 0x1p-53 }

// The tables of the model.
var (
	firstNames = [...]string{"Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter"}
	lastNames  = [...]string{"Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris"}
	cities     = [...]string{"Phoenix", "Los Angeles", "San Francisco", "Boise", "Portland", "Bend", "Redmond", "Seattle", "Kent", "Cheyenne"}
	states     = [...]string{"AZ", "CA", "ID", "OR", "WA", "WY"}
	hotNames   = [...]string{"Google", "Facebook", "Baidu", "Apple"}
	hotURLs    = [...]string{
		"https://www.nexmark.com/google/item.htm?query=1",
		"https://www.nexmark.com/facebook/item.htm?query=1",
		"https://www.nexmark.com/baidu/item.htm?query=1",
		"https://www.nexmark.com/apple/item.htm?query=1",
	}
	// fullNames[i*len(lastNames)+j] is first name i, a space, last name j:
	// precomputed so that a person's name costs nothing.
	fullNames = func() []string {
		var out []string
		for _, f := range firstNames {
			for _, l := range lastNames {
				out = append(out, f+" "+l)
			}
		}
		return out
	}()
)

// channelCount is the number of non-hot channels.
const channelCount = 10000

// channelEntry is one non-hot channel's name and URL.
type channelEntry struct{ name, url string }

// channels is the table of the non-hot channels' names and URLs, built
// at start from the configured seed (ProfileComparison).
type channels struct {
	names [channelCount]string
	// nameURL[c] is channel c's name and URL side by side, so that a bid
	// reads both from one cache line.
	nameURL [channelCount]channelEntry
	ref     *refChannels // ProfileReference's URLs
}

func newChannels(mixedSeed uint64) *channels {
	t := &channels{}
	var a arena
	var r splitmix
	for c := range channelCount {
		t.names[c] = "channel-" + strconv.Itoa(c)
		r.seed(mixedSeed, int64(-1-c))
		b := a.begin(128)
		b = append(b, "https://www.nexmark.com/"...)
		b = appendExact(b, &r, 5)
		b = append(b, '/')
		b = appendExact(b, &r, 5)
		b = append(b, '/')
		b = appendExact(b, &r, 5)
		b = append(b, "/item.htm?query=1"...)
		if r.below(10) > 0 {
			id := int32(bits.Reverse32(uint32(c)))
			if id < 0 {
				id = -id // as Java's Math.abs: MinInt32 stays negative
			}
			b = append(b, "&channel_id="...)
			b = strconv.AppendInt(b, int64(id), 10)
		}
		t.nameURL[c] = channelEntry{t.names[c], a.end(b)}
	}
	return t
}

// appendString appends the comparison profile's string(max): 3 to max-1
// characters, one draw each, about one in 13 a space. b must have room for
// max-1 bytes (arena.begin).
func appendString(b []byte, r *splitmix, max int) []byte {
	n := 3 + int(r.below(uint64(max-3)))
	l := len(b)
	if cap(b)-l < n {
		b = append(b, make([]byte, n)...)[:l]
	}
	b = b[:l+n]
	d := b[l:]
	for i := range d {
		v := r.next()
		c := 'a' + byte((v>>32)%26)
		if v%13 == 0 {
			c = ' '
		}
		d[i] = c
	}
	return b
}

// letterTriples[p] holds the three letters of the base-26 number p <
// 26³, least significant first, in its low three bytes, for appendExact.
var letterTriples = func() (t [26 * 26 * 26]uint32) {
	for p := range t {
		t[p] = uint32('a'+byte(p%26)) | uint32('a'+byte(p/26%26))<<8 | uint32('a'+byte(p/676))<<16
	}
	return t
}()

const pow26_6 = 26 * 26 * 26 * 26 * 26 * 26

// exactRoom returns the bytes appendExact(b, r, n) writes past len(b):
// whole draws of twelve letters, and one byte more (the last four-byte
// store). Callers begin an arena string with that room, so that the
// letters past n land in the chunk's unused tail.
func exactRoom(n int) int { return (n+11)/12*12 + 1 }

// appendExact appends n letters, twelve per draw: the base-26 digits of
// the draw shifted right by 4, least significant first (a last partial
// draw gives its least significant digits). It writes whole draws, up to
// exactRoom(n) bytes past len(b), and returns b extended by n: b should
// have that room (arena.begin), or it grows. A draw is cut into two
// six-digit halves and each into two three-digit table entries, stored
// four bytes at a time (each store's fourth byte is overwritten by the
// next).
func appendExact(b []byte, r *splitmix, n int) []byte {
	l := len(b)
	room := exactRoom(n)
	if cap(b)-l < room {
		b = append(b, make([]byte, room)...)[:l]
	}
	d := b[l : l+room]
	for i := 0; i+13 <= len(d); i += 12 {
		v := r.next() >> 4
		q := v / pow26_6
		lo := uint32(v - q*pow26_6)
		hi := uint32(q) % pow26_6 // q < 2⁶⁰/26⁶ < 2³²
		e := d[i : i+13]
		binary.LittleEndian.PutUint32(e[0:], letterTriples[lo%17576])
		binary.LittleEndian.PutUint32(e[3:], letterTriples[lo/17576])
		binary.LittleEndian.PutUint32(e[6:], letterTriples[hi%17576])
		binary.LittleEndian.PutUint32(e[9:], letterTriples[hi/17576])
	}
	return b[:l+n]
}

// extraLen returns the length of the padding that brings an event of size
// current to about avg, drawing from r as the comparison profile does.
func extraLen(r *splitmix, current, avg int) int {
	if current > avg {
		return 0
	}
	d := avg - current
	delta := d / 5
	n := d - delta
	if delta > 0 {
		n += int(r.below(uint64(2 * delta)))
	}
	return n
}

// The average sizes the padding aims at, in bytes as the generator counts
// them.
const (
	personAvgSize  = 200
	auctionAvgSize = 500
	bidAvgSize     = 100
)

// Generator produces the events of one split: event numbers [0,
// PerGenerator()) of generator g, event ids firstEventID+n. Every event is
// a pure function of (config, event id), so the generator can start
// anywhere (SetPosition). A Generator is not safe for concurrent use.
type Generator struct {
	cfg   GeneratorConfig
	g     int
	first int64 // event id of event number 0
	count int64 // events of the split
	n     int64 // next event number
	// timestamps: ts(n) = base + n·mul/div (integer rates), or by float
	mul, div int64
	// The last integer timestamp, for the next event number's
	// (timestampNext): tsN·mul = tsQ·div + tsR. tsLimit bounds the event
	// numbers it serves (0: none; see newGenerator).
	tsN, tsQ, tsR, tsLimit int64
	fstep                  float64 // G·1000/rate, ms per event number, when the rate is not integral
	mixed                  uint64  // mix64(seed)
	r                      splitmix
	jr                     javaRandom // ProfileReference
	a                      arena
	ch                     *channels
	ref                    *refChannels // ProfileReference
	refNames               *[channelCount]string
	// lastKind is the kind of the event At filled last (filled: there
	// was one): the only fields set in it (see clear).
	lastKind Kind
	filled   bool
}

// NewGenerator returns the generator of split g in [0, cfg.Generators).
// cfg must be valid (Validate); NewGenerator panics otherwise, like an
// index out of range.
func NewGenerator(cfg GeneratorConfig, g int) *Generator {
	if err := cfg.Validate(); err != nil {
		panic("nexmark: NewGenerator: " + err.Error())
	}
	if g < 0 || g >= cfg.Generators {
		panic("nexmark: NewGenerator: split " + strconv.Itoa(g) + " out of range")
	}
	return newGenerator(cfg, g, sharedChannels(cfg))
}

func newGenerator(cfg GeneratorConfig, g int, ch *channels) *Generator {
	per := cfg.PerGenerator()
	gen := &Generator{cfg: cfg, g: g, first: 1 + int64(g)*per, count: per, mixed: mix64(cfg.Seed), ch: ch, ref: ch.ref, refNames: &ch.names}
	if cfg.Rate == math.Trunc(cfg.Rate) && cfg.Rate < 1<<53 {
		gen.mul, gen.div = int64(cfg.Generators)*1000, int64(cfg.Rate)
		if gen.mul < gen.div {
			gen.tsN, gen.tsLimit = -2, math.MaxInt64/gen.mul
		}
	} else {
		gen.fstep = float64(cfg.Generators) * 1000 / cfg.Rate
	}
	return gen
}

// sharedChannels returns the channel tables of the config's seed: the
// names, and the URLs of the config's profile.
func sharedChannels(cfg GeneratorConfig) *channels {
	ch := newChannels(mix64(cfg.Seed))
	if cfg.Profile == ProfileReference {
		ch.ref = newRefChannels(mix64(cfg.Seed))
	}
	return ch
}

// Len returns the number of events of the split.
func (g *Generator) Len() int64 { return g.count }

// Position returns the event number of the next event.
func (g *Generator) Position() int64 { return g.n }

// SetPosition makes event number n the next one.
func (g *Generator) SetPosition(n int64) { g.n = n }

// FirstEventID returns the event id of the split's event number 0.
func (g *Generator) FirstEventID() int64 { return g.first }

// Next fills ev with the next event and returns true, or returns false at
// the end of the split. ev must be the zero Event or the one this
// generator filled last (the usual loop), unchanged; then only the field
// of ev.Kind is set. The strings are the generator's own (see arena): they stay
// valid for as long as they are referenced.
func (g *Generator) Next(ev *Event) bool {
	if g.n >= g.count {
		return false
	}
	g.At(g.n, ev)
	g.n++
	return true
}

// timestamp returns the DateTime of event number n.
func (g *Generator) timestamp(n int64) int64 {
	if g.div != 0 {
		hi, lo := bits.Mul64(uint64(n), uint64(g.mul))
		if hi == 0 && lo < 1<<63 {
			return g.cfg.BaseTime + int64(lo)/g.div
		}
	}
	step := g.fstep
	if step == 0 {
		step = float64(g.mul) / float64(g.div)
	}
	return g.cfg.BaseTime + int64(math.Floor(float64(n)*step))
}

// timestampNext is timestamp(n), without timestamp's division when n
// follows the event number of the call before (the usual loop): n·mul
// is then the last quotient and remainder plus mul, and mul < div.
func (g *Generator) timestampNext(n int64) int64 {
	if n >= g.tsLimit {
		return g.timestamp(n)
	}
	var q, r int64
	if n == g.tsN+1 {
		q, r = g.tsQ, g.tsR+g.mul
		if r >= g.div {
			q, r = q+1, r-g.div
		}
	} else {
		q, r = n*g.mul/g.div, n*g.mul%g.div
	}
	g.tsN, g.tsQ, g.tsR = n, q, r
	return g.cfg.BaseTime + q
}

// At fills ev with event number n of the split without moving the
// position. ev must be the zero Event or the one this generator filled
// last, unchanged: At zeroes only the fields it set itself there.
func (g *Generator) At(n int64, ev *Event) {
	id := g.first + n
	t := g.timestampNext(n)
	if g.cfg.Profile == ProfileReference {
		g.reference(id, n, t, ev)
		return
	}
	g.r.seed(g.mixed, id)
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
		g.person(id, t, &ev.Person)
	case KindAuction:
		g.auction(id, n, t, &ev.Auction)
	default:
		g.bid(id, t, &ev.Bid)
	}
}

// clear sets ev's kind and zeroes the fields the generator set in it last
// when they are of another kind: ev is the zero Event or the one this
// generator filled last (see At), so nothing else can be set. Zeroing
// only on a change of kind matters: most events are bids, and zeroing
// structs of strings costs write barriers while the collector runs.
func (g *Generator) clear(ev *Event, k Kind) {
	if g.filled && g.lastKind != k {
		switch g.lastKind {
		case KindPerson:
			ev.Person = Person{}
		case KindAuction:
			ev.Auction = Auction{}
		default:
			ev.Bid = Bid{}
		}
	}
	ev.Kind, g.lastKind, g.filled = k, k, true
}

func lastPerson(id int64) int64 { return id / 50 }

func lastAuction(id int64) int64 {
	switch rem := id % 50; {
	case rem == 0:
		return (id/50-1)*3 + 2
	case rem >= 4:
		return (id/50)*3 + 2
	default:
		return (id/50)*3 + rem - 1
	}
}

func (g *Generator) activePerson(id int64) int64 {
	k := lastPerson(id) + 1
	if k >= 1000 {
		return k - 1000 + int64(g.r.below(1010)) // a division by a constant
	}
	return int64(g.r.below(uint64(k + 10)))
}

func (g *Generator) price() int64 { return price(g.r.unit()) }

// pow10i holds 10^i·100 exactly, for priceExp.
var pow10i = [...]float64{1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9}

// pow10Steps[j] is 10^(j/256)·100, for price.
var pow10Steps = func() (t [6*256 + 1]float64) {
	for j := range t {
		t[j] = math.Pow(10, float64(j)/256) * 100
	}
	return t
}()

// price returns round(10^(6u)·100) for u in [0, 1), the same value as
// priceExp, faster: 10^(6u) is a table entry 10^(j/256) times a short
// series for 10^r, |r| ≤ 1/512, with a relative error far below 10⁻¹³.
// When the product lies that close to a half cent, where the rounding
// could go either way, priceExp decides (a few draws in a million).
func price(u float64) int64 {
	y := 6 * u
	j := int(y*256 + 0.5)
	x := (y - float64(j)*(1.0/256)) * math.Ln10
	p := pow10Steps[j] * (1 + x*(1+x*(1.0/2+x*(1.0/6+x*(1.0/24+x*(1.0/120))))))
	if f := p - float64(int64(p)); math.Abs(f-0.5) < p*1e-13 { // p > 0
		return priceExp(u)
	}
	return int64(p + 0.5)
}

// priceExp returns round(10^(6u)·100) for u in [0, 1): 10^(6u) as math.Pow
// computes it (an integer power times exp of the fraction in (-0.5, 0.5]
// times ln 10), without Pow's logarithm and loop. The result may differ
// from another pow in the last bit, which changes a rounded price only
// when it lies within that bit of a half cent: never seen in 10M prices.
func priceExp(u float64) int64 {
	y := 6 * u
	yi := math.Floor(y)
	yf := y - yi
	if yf > 0.5 {
		yf--
		yi++
	}
	return int64(math.Round(math.Exp(yf*math.Ln10) * pow10i[int(yi)]))
}

func (g *Generator) person(id, t int64, p *Person) {
	r := &g.r
	p.ID = id/50 + 1000
	p.DateTime = t
	i := r.below(uint64(len(firstNames)))
	j := r.below(uint64(len(lastNames)))
	p.Name = fullNames[int(i)*len(lastNames)+int(j)]
	b := g.a.begin(6 + 1 + 4 + 4 + 19)
	b = appendString(b, r, 7)
	b = append(b, '@')
	b = appendString(b, r, 5)
	b = append(b, ".com"...)
	p.EmailAddress = g.a.end(b)
	b = g.a.begin(19)
	for k := range 4 {
		if k > 0 {
			b = append(b, ' ')
		}
		v := r.below(10000)
		b = append(b, byte('0'+v/1000), byte('0'+v/100%10), byte('0'+v/10%10), byte('0'+v%10))
	}
	p.CreditCard = g.a.end(b)
	p.City = cities[r.below(uint64(len(cities)))]
	p.State = states[r.below(uint64(len(states)))]
	size := 8 + len(p.Name) + len(p.EmailAddress) + len(p.CreditCard) + len(p.City) + len(p.State)
	n := extraLen(r, size, personAvgSize)
	b = g.a.begin(exactRoom(n))
	p.Extra = g.a.end(appendExact(b, r, n))
}

func (g *Generator) auction(id, n, t int64, a *Auction) {
	r := &g.r
	a.ID = lastAuction(id) + 1000
	a.DateTime = t
	b := g.a.begin(20)
	a.ItemName = g.a.end(appendString(b, r, 20))
	b = g.a.begin(100)
	a.Description = g.a.end(appendString(b, r, 100))
	a.InitialBid = g.price()
	a.Reserve = a.InitialBid + g.price()
	if r.below(4) > 0 {
		a.Seller = lastPerson(id)/100*100 + 1000
	} else {
		a.Seller = g.activePerson(id) + 1000
	}
	a.Category = 10 + int64(r.below(5))
	horizon := g.timestamp(n+1666) - t
	a.Expires = t + 1 + int64(r.below(uint64(max(2*horizon, 1))))
	size := 8 + len(a.ItemName) + len(a.Description) + 40
	k := extraLen(r, size, auctionAvgSize)
	b = g.a.begin(exactRoom(k))
	a.Extra = g.a.end(appendExact(b, r, k))
}

func (g *Generator) bid(id, t int64, bd *Bid) {
	r := &g.r
	bd.DateTime = t
	last := lastAuction(id)
	if r.below(2) > 0 {
		bd.Auction = last/100*100 + 1000
	} else {
		if last >= 100 {
			bd.Auction = last - 100 + int64(r.below(111)) + 1000 // a division by a constant
		} else {
			bd.Auction = int64(r.below(uint64(last+11))) + 1000
		}
	}
	if r.below(4) > 0 {
		bd.Bidder = lastPerson(id)/100*100 + 1 + 1000
	} else {
		bd.Bidder = g.activePerson(id) + 1000
	}
	bd.Price = g.price()
	if r.below(2) > 0 {
		i := r.below(4)
		bd.Channel, bd.URL = hotNames[i], hotURLs[i]
	} else {
		c := r.below(channelCount)
		e := &g.ch.nameURL[c]
		bd.Channel, bd.URL = e.name, e.url
	}
	k := extraLen(r, 32, bidAvgSize)
	b := g.a.begin(exactRoom(k))
	bd.Extra = g.a.end(appendExact(b, r, k))
}

// Size returns an event's size as the generator counts it: 8 bytes per
// numeric field plus the lengths of the strings (for a bid, of the padding
// only). The padding aims the sizes at about 207, 508 and 100 bytes on
// average for persons, auctions and bids.
func Size(ev *Event) int {
	switch ev.Kind {
	case KindPerson:
		p := &ev.Person
		return 16 + len(p.Name) + len(p.EmailAddress) + len(p.CreditCard) + len(p.City) + len(p.State) + len(p.Extra)
	case KindAuction:
		a := &ev.Auction
		return 56 + len(a.ItemName) + len(a.Description) + len(a.Extra)
	default:
		return 32 + len(ev.Bid.Extra)
	}
}
