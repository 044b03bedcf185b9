package queries

import (
	"fmt"
	"strings"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/nexmark"
)

// q22 splits every bid's URL at '/' and keeps pieces 3, 4 and 5 (from 0)
// as dir1–dir3, as the SQL's SPLIT_INDEX(url, '/', i) does, empty pieces
// included; a piece past the end is null (Dirs counts the pieces
// present). The pieces are substrings of the URL: one chained operator,
// no allocation per record.
func init() {
	register(Query{Name: "q22", Build: func(env *sluice.Environment, events sluice.Stream[nexmark.Event], out *Out) {
		rows := bidsAs(events, "q22-split", func(b nexmark.Bid) q22Row {
			r := q22Row{Auction: b.Auction, Bidder: b.Bidder, Price: b.Price, Channel: b.Channel}
			r.Dirs = splitDirs(b.URL, &r.Dir)
			return r
		})
		Emit(out, rows, "q22-sink", q22Row.String)
	}})
}

// q22Row is one row of q22. Dir[i] is meaningful for i < Dirs; the others
// are the SQL's nulls.
type q22Row struct {
	Auction, Bidder, Price int64
	Channel                string
	Dir                    [3]string
	Dirs                   uint8
}

func (r q22Row) String() string {
	d := [3]string{"null", "null", "null"}
	for i := range int(r.Dirs) {
		d[i] = r.Dir[i]
	}
	return fmt.Sprintf("%d,%d,%d,%s,%s,%s,%s", r.Auction, r.Bidder, r.Price, r.Channel, d[0], d[1], d[2])
}

// splitDirs fills dir with SPLIT_INDEX(url, '/', 3), 4 and 5 and returns
// how many exist.
func splitDirs(url string, dir *[3]string) uint8 {
	rest := url
	for i := 0; i < 6; i++ {
		j := strings.IndexByte(rest, '/')
		piece := rest
		if j >= 0 {
			piece = rest[:j]
		}
		if i >= 3 {
			dir[i-3] = piece
		}
		if j < 0 {
			return uint8(max(i-2, 0))
		}
		rest = rest[j+1:]
	}
	return 3
}
