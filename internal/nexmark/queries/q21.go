package queries

import (
	"fmt"
	"strings"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/nexmark"
)

// q21 adds a channel id to every bid: "0" to "3" for the channels Apple,
// Google, Facebook and Baidu (any case), otherwise what the SQL's
// REGEXP_EXTRACT(url, '(&|^)channel_id=([^&]*)', 2) finds: the value of
// the first channel_id parameter that starts the URL or follows an '&'.
// Bids with neither are dropped (the extract is null). The regular
// expression would be the whole cost of the query, so the match is
// hand-written (channelIDOf; a test checks it against the expression on
// every kind of URL); the id is a substring of the URL, so nothing is
// allocated per record.
func init() {
	register(Query{Name: "q21", Build: func(env *sluice.Environment, events sluice.Stream[nexmark.Event], out *Out) {
		rows := sluice.FlatMap(events, "q21-channel-id", func(e nexmark.Event, c *sluice.Collector[q21Row]) error {
			if e.Kind != nexmark.KindBid {
				return nil
			}
			b := &e.Bid
			id, ok := channelIDOf(b.Channel, b.URL)
			if ok {
				c.Collect(q21Row{Auction: b.Auction, Bidder: b.Bidder, Price: b.Price, Channel: b.Channel, ChannelID: id})
			}
			return nil
		})
		Emit(out, rows, "q21-sink", q21Row.String)
	}})
}

// q21Row is one row of q21.
type q21Row struct {
	Auction, Bidder, Price int64
	Channel, ChannelID     string
}

func (r q21Row) String() string {
	return fmt.Sprintf("%d,%d,%d,%s,%s", r.Auction, r.Bidder, r.Price, r.Channel, r.ChannelID)
}

// channelIDOf is q21's CASE: the fixed id of a known channel, else the
// URL's channel_id parameter; false if there is neither.
func channelIDOf(channel, url string) (string, bool) {
	switch {
	case strings.EqualFold(channel, "apple"):
		return "0", true
	case strings.EqualFold(channel, "google"):
		return "1", true
	case strings.EqualFold(channel, "facebook"):
		return "2", true
	case strings.EqualFold(channel, "baidu"):
		return "3", true
	}
	return extractChannelID(url)
}

// extractChannelID matches (&|^)channel_id=([^&]*) leftmost, as
// REGEXP_EXTRACT does, and returns group 2.
func extractChannelID(url string) (string, bool) {
	const param = "channel_id="
	for from := 0; ; {
		i := strings.Index(url[from:], param)
		if i < 0 {
			return "", false
		}
		i += from
		if i == 0 || url[i-1] == '&' {
			v := url[i+len(param):]
			if j := strings.IndexByte(v, '&'); j >= 0 {
				v = v[:j]
			}
			return v, true
		}
		from = i + 1
	}
}
