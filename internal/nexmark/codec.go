package nexmark

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/sluicehq/sluice/codec"
)

// EventCodec is a compact binary codec of Event (a codec.Codec[Event]):
// a kind byte, then the fields of that kind in declaration order, integers
// as zig-zag varints and strings as a uvarint length and the bytes. A bid
// of the comparison profile takes about 155 bytes in it: 67 of padding,
// most of the rest its URL. Decode copies the record's bytes once, into one string
// that the event's strings share: one allocation per event.
var EventCodec codec.Codec[Event] = eventCodec{}

type eventCodec struct{}

// formatVersion is the codec's first byte's high bits: a later layout
// takes another value, so an old decoder refuses it rather than misread.
const formatVersion = 1 << 4

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func (eventCodec) Append(b []byte, e Event) []byte {
	b = append(b, formatVersion|byte(e.Kind))
	switch e.Kind {
	case KindPerson:
		p := &e.Person
		b = binary.AppendVarint(b, p.ID)
		b = appendStr(b, p.Name)
		b = appendStr(b, p.EmailAddress)
		b = appendStr(b, p.CreditCard)
		b = appendStr(b, p.City)
		b = appendStr(b, p.State)
		b = binary.AppendVarint(b, p.DateTime)
		b = appendStr(b, p.Extra)
	case KindAuction:
		a := &e.Auction
		b = binary.AppendVarint(b, a.ID)
		b = appendStr(b, a.ItemName)
		b = appendStr(b, a.Description)
		b = binary.AppendVarint(b, a.InitialBid)
		b = binary.AppendVarint(b, a.Reserve)
		b = binary.AppendVarint(b, a.DateTime)
		b = binary.AppendVarint(b, a.Expires-a.DateTime) // small: a delta
		b = binary.AppendVarint(b, a.Seller)
		b = binary.AppendVarint(b, a.Category)
		b = appendStr(b, a.Extra)
	default:
		d := &e.Bid
		b = binary.AppendVarint(b, d.Auction)
		b = binary.AppendVarint(b, d.Bidder)
		b = binary.AppendVarint(b, d.Price)
		b = appendStr(b, d.Channel)
		b = appendStr(b, d.URL)
		b = binary.AppendVarint(b, d.DateTime)
		b = appendStr(b, d.Extra)
	}
	return b
}

var errShort = errors.New("nexmark: event codec: short or corrupt input")

// decoder reads fields from src; strings are cut from all, a copy of src.
type decoder struct {
	src []byte
	all string
	off int
	err error
}

func (d *decoder) int() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.src[d.off:])
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) str() string {
	if d.err != nil {
		return ""
	}
	l, n := binary.Uvarint(d.src[d.off:])
	if n <= 0 || l > uint64(len(d.src)-d.off-n) {
		d.err = errShort
		return ""
	}
	start := d.off + n
	d.off = start + int(l)
	if l == 0 {
		return ""
	}
	if d.all == "" {
		d.all = string(d.src) // the one copy: src may be reused after Decode
	}
	return d.all[start:d.off]
}

func (eventCodec) Decode(src []byte) (Event, int, error) {
	var e Event
	if len(src) == 0 {
		return e, 0, errShort
	}
	if src[0]&0xf0 != formatVersion {
		return e, 0, fmt.Errorf("nexmark: event codec: unknown format %#x", src[0]>>4)
	}
	d := &decoder{src: src, off: 1}
	switch k := Kind(src[0] & 0x0f); k {
	case KindPerson:
		e.Kind = k
		p := &e.Person
		p.ID, p.Name, p.EmailAddress, p.CreditCard = d.int(), d.str(), d.str(), d.str()
		p.City, p.State, p.DateTime, p.Extra = d.str(), d.str(), d.int(), d.str()
	case KindAuction:
		e.Kind = k
		a := &e.Auction
		a.ID, a.ItemName, a.Description, a.InitialBid, a.Reserve = d.int(), d.str(), d.str(), d.int(), d.int()
		a.DateTime = d.int()
		a.Expires = a.DateTime + d.int()
		a.Seller, a.Category, a.Extra = d.int(), d.int(), d.str()
	case KindBid:
		e.Kind = k
		b := &e.Bid
		b.Auction, b.Bidder, b.Price, b.Channel, b.URL, b.DateTime, b.Extra = d.int(), d.int(), d.int(), d.str(), d.str(), d.int(), d.str()
	default:
		return Event{}, 0, fmt.Errorf("nexmark: event codec: unknown kind %d", k)
	}
	if d.err != nil {
		return Event{}, 0, d.err
	}
	return e, d.off, nil
}
