package nexmark

import "unsafe"

// The generator's strings point into large chunks shared by hundreds of
// events (see arena): a query that keeps an event's strings in state for
// long keeps every chunk they point into alive. Clone copies them into one
// allocation of their own, so that the kept value holds only its bytes.

// cloneStrings copies the strings ss point to into one allocation and
// points them at the copy.
func cloneStrings(ss ...*string) {
	n := 0
	for _, s := range ss {
		n += len(*s)
	}
	if n == 0 {
		return
	}
	buf := make([]byte, 0, n)
	for _, s := range ss {
		if len(*s) == 0 {
			continue
		}
		start := len(buf)
		buf = append(buf, *s...)
		*s = unsafe.String(&buf[start], len(*s))
	}
}

// Clone returns p with its strings copied into one allocation of their
// own (see cloneStrings): for a person kept in state.
func (p Person) Clone() Person {
	cloneStrings(&p.Name, &p.EmailAddress, &p.CreditCard, &p.City, &p.State, &p.Extra)
	return p
}

// Clone returns a with its strings copied into one allocation of their
// own: for an auction kept in state.
func (a Auction) Clone() Auction {
	cloneStrings(&a.ItemName, &a.Description, &a.Extra)
	return a
}

// Clone returns b with its strings copied into one allocation of their
// own: for a bid kept in state (a window's buffer, the last bid of a key).
func (b Bid) Clone() Bid {
	cloneStrings(&b.Channel, &b.URL, &b.Extra)
	return b
}
