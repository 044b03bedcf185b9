package queries

import (
	"cmp"
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/nexmark"
)

// TestGeneratedAgainstBatch runs the event-time queries of this file set
// on generated input — 40,000 events in two splits, 4 s of event time
// across midnight, so that the daily queries see two days — and checks
// every row against plain batch Go logic over the same events.
func TestGeneratedAgainstBatch(t *testing.T) {
	cfg := nexmark.DefaultConfig()
	cfg.Events, cfg.Generators, cfg.Rate = 40_000, 2, 10_000
	cfg.BaseTime = nexmark.DefaultBaseTime - 1500
	var bids []nexmark.Bid
	var auctions []nexmark.Auction
	var ev nexmark.Event
	for g := range cfg.Generators {
		gen := nexmark.NewGenerator(cfg, g)
		for gen.Next(&ev) {
			switch ev.Kind {
			case nexmark.KindBid:
				bids = append(bids, ev.Bid)
			case nexmark.KindAuction:
				auctions = append(auctions, ev.Auction)
			}
		}
	}
	refs := map[string]func() []string{
		"q10": func() []string { return mapBids(bids, func(b nexmark.Bid) string { return lineOf(b) }) },
		"q13": func() []string {
			return mapBids(bids, func(b nexmark.Bid) string {
				return fmt.Sprintf("%d,%d,%d,%s,%d", b.Auction, b.Bidder, b.Price, tsString(b.DateTime), b.Auction%10_000)
			})
		},
		"q14": func() []string { return refQ14(bids) },
		"q15": func() []string { return refDaily(bids, false) },
		"q16": func() []string { return refDaily(bids, true) },
		"q17": func() []string { return refQ17(bids) },
		"q18": func() []string { return refQ18(bids) },
		"q19": func() []string { return refQ19(bids) },
		"q20": func() []string { return refQ20(bids, auctions) },
		"q21": func() []string { return refQ21(bids) },
		"q22": func() []string { return refQ22(bids) },
	}
	names := make([]string, 0, len(refs))
	for n := range refs {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			q, _ := Lookup(name)
			env := sluice.New(sluice.Config{JobName: name, Parallelism: 2, CheckpointDir: t.TempDir()})
			out := &Out{Collect: true, FilesDir: t.TempDir()}
			q.Build(env, nexmark.Events(env, cfg), out)
			if _, err := env.Execute(context.Background()); err != nil {
				t.Fatal(err)
			}
			want := refs[name]()
			if len(want) == 0 {
				t.Fatalf("%s: the batch logic gives no rows: the input does not test it", name)
			}
			slices.Sort(want)
			got := out.Rows()
			if !slices.Equal(got, want) {
				t.Fatalf("%s: %d rows, batch logic %d; first difference: %s", name, len(got), len(want), firstDiff(got, want))
			}
			t.Logf("%s: %d rows equal", name, len(got))
		})
	}
}

func firstDiff(got, want []string) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("row %d %q, want %q", i, got[i], want[i])
		}
	}
	return fmt.Sprintf("lengths %d and %d", len(got), len(want))
}

func mapBids(bids []nexmark.Bid, f func(nexmark.Bid) string) []string {
	out := make([]string, len(bids))
	for i, b := range bids {
		out[i] = f(b)
	}
	return out
}

// lineOf is q10's line, written out by hand.
func lineOf(b nexmark.Bid) string {
	ts := tsString(b.DateTime)
	return fmt.Sprintf("%d,%d,%d,%s,%s,%s,%s", b.Auction, b.Bidder, b.Price, ts, b.Extra, ts[:10], ts[11:16])
}

func refQ14(bids []nexmark.Bid) []string {
	var out []string
	for _, b := range bids {
		p := float64(b.Price) * 0.908
		if !(p > 1e6 && p < 5e7) {
			continue
		}
		h := (b.DateTime / 3_600_000) % 24
		kind := "otherTime"
		if h >= 8 && h <= 18 {
			kind = "dayTime"
		} else if h <= 6 || h >= 20 {
			kind = "nightTime"
		}
		out = append(out, fmt.Sprintf("%d,%d,%.3f,%s,%s,%d", b.Auction, b.Bidder, float64(b.Price*908)/1000, kind, tsString(b.DateTime),
			strings.Count(b.Extra, "c")))
	}
	return out
}

func rankOf(price int64) int {
	if price < 10_000 {
		return 0
	}
	if price < 1_000_000 {
		return 1
	}
	return 2
}

// refDaily is q15 (byChannel false) and q16 over all bids at once.
func refDaily(bids []nexmark.Bid, byChannel bool) []string {
	type group struct {
		bids                 [4]int64 // total, per range
		bidders, auctions    [4]map[int64]bool
		maxTime              int64
		channel, day, minute string
	}
	groups := map[string]*group{}
	for _, b := range bids {
		ts := tsString(b.DateTime)
		k := ts[:10]
		if byChannel {
			k = b.Channel + "|" + k
		}
		g := groups[k]
		if g == nil {
			g = &group{channel: b.Channel, day: ts[:10]}
			for i := range 4 {
				g.bidders[i], g.auctions[i] = map[int64]bool{}, map[int64]bool{}
			}
			groups[k] = g
		}
		r := rankOf(b.Price) + 1
		for _, i := range []int{0, r} {
			g.bids[i]++
			g.bidders[i][b.Bidder] = true
			g.auctions[i][b.Auction] = true
		}
		if b.DateTime >= g.maxTime {
			g.maxTime, g.minute = b.DateTime, ts[11:16]
		}
	}
	var out []string
	for _, g := range groups {
		cols := []string{g.day}
		if byChannel {
			cols = []string{g.channel, g.day, g.minute}
		}
		for _, part := range [][4]int64{g.bids, lens(g.bidders), lens(g.auctions)} {
			for _, v := range part {
				cols = append(cols, fmt.Sprint(v))
			}
		}
		out = append(out, strings.Join(cols, ","))
	}
	return out
}

func lens(ms [4]map[int64]bool) [4]int64 {
	var l [4]int64
	for i, m := range ms {
		l[i] = int64(len(m))
	}
	return l
}

func refQ17(bids []nexmark.Bid) []string {
	groups := map[string][]int64{}
	for _, b := range bids {
		k := fmt.Sprintf("%d,%s", b.Auction, tsString(b.DateTime)[:10])
		groups[k] = append(groups[k], b.Price)
	}
	var out []string
	for k, ps := range groups {
		var r [3]int64
		var sum int64
		for _, p := range ps {
			r[rankOf(p)]++
			sum += p
		}
		out = append(out, fmt.Sprintf("%s,%d,%d,%d,%d,%d,%d,%d,%d", k, len(ps), r[0], r[1], r[2], slices.Min(ps), slices.Max(ps), sum/int64(len(ps)), sum))
	}
	return out
}

// bidTuple orders bids by every column but the one a query ranks by.
func bidTuple(a, b nexmark.Bid) int {
	return cmp.Or(cmp.Compare(a.Price, b.Price), cmp.Compare(a.Auction, b.Auction), cmp.Compare(a.Bidder, b.Bidder),
		strings.Compare(a.Channel, b.Channel), strings.Compare(a.URL, b.URL), strings.Compare(a.Extra, b.Extra))
}

func refQ18(bids []nexmark.Bid) []string {
	last := map[[2]int64]nexmark.Bid{}
	for _, b := range bids {
		k := [2]int64{b.Bidder, b.Auction}
		cur, ok := last[k]
		if !ok || cmp.Or(cmp.Compare(b.DateTime, cur.DateTime), bidTuple(b, cur)) > 0 {
			last[k] = b
		}
	}
	var out []string
	for _, b := range last {
		out = append(out, formatBid(b))
	}
	return out
}

func refQ19(bids []nexmark.Bid) []string {
	per := map[int64][]nexmark.Bid{}
	for _, b := range bids {
		per[b.Auction] = append(per[b.Auction], b)
	}
	var out []string
	for _, bs := range per {
		slices.SortFunc(bs, func(a, b nexmark.Bid) int {
			return cmp.Or(-cmp.Compare(a.Price, b.Price), cmp.Compare(a.DateTime, b.DateTime), bidTuple(a, b))
		})
		for i, b := range bs[:min(len(bs), 10)] {
			out = append(out, fmt.Sprintf("%s,%d", formatBid(b), i+1))
		}
	}
	return out
}

func refQ20(bids []nexmark.Bid, auctions []nexmark.Auction) []string {
	byID := map[int64]nexmark.Auction{}
	for _, a := range auctions {
		if a.Category == 10 {
			byID[a.ID] = a
		}
	}
	var out []string
	for _, b := range bids {
		if a, ok := byID[b.Auction]; ok {
			out = append(out, q20Row{b, a}.String())
		}
	}
	return out
}

func refQ21(bids []nexmark.Bid) []string {
	re := regexp.MustCompile(`(&|^)channel_id=([^&]*)`)
	ids := map[string]string{"apple": "0", "google": "1", "facebook": "2", "baidu": "3"}
	var out []string
	for _, b := range bids {
		id, ok := ids[strings.ToLower(b.Channel)]
		if !ok {
			m := re.FindStringSubmatch(b.URL)
			if m == nil {
				continue
			}
			id = m[2]
		}
		out = append(out, fmt.Sprintf("%d,%d,%d,%s,%s", b.Auction, b.Bidder, b.Price, b.Channel, id))
	}
	return out
}

func refQ22(bids []nexmark.Bid) []string {
	return mapBids(bids, func(b nexmark.Bid) string {
		parts := strings.Split(b.URL, "/")
		d := []string{"null", "null", "null"}
		for i := range d {
			if 3+i < len(parts) {
				d[i] = parts[3+i]
			}
		}
		return fmt.Sprintf("%d,%d,%d,%s,%s", b.Auction, b.Bidder, b.Price, b.Channel, strings.Join(d, ","))
	})
}
