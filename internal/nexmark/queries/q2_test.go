package queries

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/nexmark"
)

// Hand-built inputs and hand-checked results of q10 and q13–q22 (q12,
// which runs on the job clock, is in q12_test.go).

// bidAt is a bid at t0 + ms with the given channel, URL and padding.
func bidAt(auction, bidder, price, ms int64, channel, url, extra string) nexmark.Event {
	return nexmark.Event{Kind: nexmark.KindBid, Bid: nexmark.Bid{Auction: auction, Bidder: bidder, Price: price,
		Channel: channel, URL: url, DateTime: t0 + ms, Extra: extra}}
}

// auctionOf is an auction of a category at t0 + ms.
func auctionOf(id, category, ms int64) nexmark.Event {
	return nexmark.Event{Kind: nexmark.KindAuction, Auction: nexmark.Auction{ID: id, ItemName: "item", Description: "desc",
		InitialBid: 10, Reserve: 20, DateTime: t0 + ms, Expires: t0 + ms + 1000, Seller: 1000, Category: category, Extra: "pad"}}
}

const (
	hour   = 60 * 60 * 1000
	urlA   = "https://www.nexmark.com/apple/item.htm?query=1"
	urlDir = "https://www.nexmark.com/aaa/bbb/ccc/item.htm?query=1&channel_id=123"
)

func checkRows(t *testing.T, name string, got, want []string) {
	t.Helper()
	want = slices.Clone(want)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("%s rows:\n%s\nwant:\n%s", name, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestQ10(t *testing.T) {
	dir := t.TempDir()
	got := runQueryWith(t, "q10", 2, [][]nexmark.Event{
		{bidAt(1000, 2000, 150, 2, "Apple", urlA, "xyz"), auctionOf(1000, 10, 3)},
		{bidAt(1001, 2001, 7, 61*60*1000+5, "Apple", urlA, `a,b"c`)},
	}, &Out{Collect: true, FilesDir: dir})
	want := []string{
		"1000,2000,150,2026-01-01 00:00:00.002,xyz,2026-01-01,00:00",
		`1001,2001,7,2026-01-01 01:01:00.005,"a,b""c",2026-01-01,01:01`,
	}
	checkRows(t, "q10", got, want)
	// The same lines are in the committed part files, and nothing else is.
	var lines []string
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("uncommitted file %s left after the job ended", e.Name())
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")...)
	}
	slices.Sort(lines)
	checkRows(t, "q10 files", lines, want)
}

func TestQ13(t *testing.T) {
	t.Parallel()
	var split0, split1 []nexmark.Event
	var want []string
	// Enough bids that some arrive before the side table is complete.
	for i := range int64(3000) {
		a := 1000 + i*7
		ev := bidAt(a, 2000+i%5, 100+i, i, "Apple", urlA, "")
		if i%2 == 0 {
			split0 = append(split0, ev)
		} else {
			split1 = append(split1, ev)
		}
		want = append(want, q13Row{q13Bid{a, 2000 + i%5, 100 + i, t0 + i}, itoa(a % 10_000)}.String())
	}
	got := runQuery(t, "q13", 2, [][]nexmark.Event{split0, split1})
	checkRows(t, "q13", got, want)
	// Spot checks of the hand-readable form.
	for _, w := range []string{"1000,2000,100,2026-01-01 00:00:00.000,1000", "21993,2004,3099,2026-01-01 00:00:02.999,1993"} {
		if _, ok := slices.BinarySearch(got, w); !ok {
			t.Errorf("q13: row %q missing", w)
		}
	}
}

func TestQ14(t *testing.T) {
	t.Parallel()
	got := runQuery(t, "q14", 2, [][]nexmark.Event{
		{
			bidAt(1, 10, 1_101_322, 0, "Apple", urlA, "cacbc"),       // 1,000,000.376: in, night
			bidAt(2, 10, 1_101_321, 1, "Apple", urlA, "c"),           // 999,999.468: out
			bidAt(3, 10, 55_066_079, 7*hour, "Apple", urlA, "x"),     // 49,999,999.732: in, other
			bidAt(4, 10, 55_066_080, 7*hour+1, "Apple", urlA, "ccc"), // 50,000,000.64: out
		},
		{
			bidAt(5, 11, 2_000_000, 8*hour, "Apple", urlA, "cc"),  // day (8)
			bidAt(6, 11, 2_000_000, 19*hour, "Apple", urlA, ""),   // other (19)
			bidAt(7, 11, 2_000_000, 20*hour, "Apple", urlA, "Cc"), // night (20)
			bidAt(8, 11, 2_000_000, 18*hour+59*60*1000, "Apple", urlA, "c c"),
		},
	})
	checkRows(t, "q14", got, []string{
		"1,10,1000000.376,nightTime,2026-01-01 00:00:00.000,3",
		"3,10,49999999.732,otherTime,2026-01-01 07:00:00.000,0",
		"5,11,1816000.000,dayTime,2026-01-01 08:00:00.000,2",
		"6,11,1816000.000,otherTime,2026-01-01 19:00:00.000,0",
		"7,11,1816000.000,nightTime,2026-01-01 20:00:00.000,1",
		"8,11,1816000.000,dayTime,2026-01-01 18:59:00.000,2",
	})
}

// dailyInput has bids on the last second of 2025-12-31 and in the first
// hour of 2026-01-01, in two splits, each in time order.
func dailyInput() [][]nexmark.Event {
	return [][]nexmark.Event{
		{bidAt(1, 10, 50, -1000, "Apple", urlA, ""), bidAt(1, 10, 20_000, -500, "Apple", urlA, ""), bidAt(2, 11, 2_000_000, 100, "Apple", urlA, "")},
		{bidAt(1, 11, 60, -900, "Baidu", urlA, ""), bidAt(2, 10, 70, 200, "Apple", urlA, ""), bidAt(2, 10, 80, 61*60*1000, "Apple", urlA, "")},
	}
}

func TestQ15(t *testing.T) {
	t.Parallel()
	// day, bids (total, per range), bidders (total, per range), auctions (total, per range).
	checkRows(t, "q15", runQuery(t, "q15", 2, dailyInput()), []string{
		"2025-12-31,3,2,1,0,2,2,1,0,1,1,1,0",
		"2026-01-01,3,2,0,1,2,1,0,1,1,1,0,1",
	})
}

func TestQ16(t *testing.T) {
	t.Parallel()
	checkRows(t, "q16", runQuery(t, "q16", 2, dailyInput()), []string{
		"Apple,2025-12-31,23:59,2,1,1,0,1,1,1,0,1,1,1,0",
		"Baidu,2025-12-31,23:59,1,1,0,0,1,1,0,0,1,1,0,0",
		"Apple,2026-01-01,01:01,3,2,0,1,2,1,0,1,1,1,0,1",
	})
}

func TestQ17(t *testing.T) {
	t.Parallel()
	// auction, day, bids (total, per range), min, max, avg, sum.
	checkRows(t, "q17", runQuery(t, "q17", 2, dailyInput()), []string{
		"1,2025-12-31,3,2,1,0,50,20000,6703,20110",
		"2,2026-01-01,3,2,0,1,70,2000000,666716,2000150",
	})
}

func TestQ18(t *testing.T) {
	t.Parallel()
	got := runQuery(t, "q18", 2, [][]nexmark.Event{
		{bidAt(1, 10, 5, 0, "Apple", urlA, "a"), bidAt(1, 10, 6, 10, "Apple", urlA, "b"), bidAt(2, 10, 7, 5, "Apple", urlA, "c")},
		// The same time as the bid at 6: the higher price is kept, whatever arrives last.
		{bidAt(1, 11, 1, 3, "Apple", urlA, "d"), bidAt(1, 10, 9, 10, "Apple", urlA, "e")},
	})
	checkRows(t, "q18", got, []string{
		"1,10,9,Apple," + urlA + ",1767225600010,e",
		"2,10,7,Apple," + urlA + ",1767225600005,c",
		"1,11,1,Apple," + urlA + ",1767225600003,d",
	})
}

func TestQ19(t *testing.T) {
	t.Parallel()
	var s0, s1 []nexmark.Event
	for p := int64(1); p <= 11; p++ {
		ev := bidAt(1, 100+p, p, 10*p, "Apple", urlA, "")
		if p%2 == 0 {
			s0 = append(s0, ev)
		} else {
			s1 = append(s1, ev)
		}
	}
	s0 = append(s0, bidAt(1, 200, 11, 5, "Apple", urlA, "")) // a second 11, earlier: it ranks first
	s1 = append(s1, bidAt(2, 300, 42, 200, "Apple", urlA, ""))
	slices.SortFunc(s0, func(a, b nexmark.Event) int { return int(a.Bid.DateTime - b.Bid.DateTime) })
	got := runQuery(t, "q19", 2, [][]nexmark.Event{s0, s1})
	want := []string{
		"1,200,11,Apple," + urlA + ",1767225600005,,1",
		"1,111,11,Apple," + urlA + ",1767225600110,,2",
		"2,300,42,Apple," + urlA + ",1767225600200,,1",
	}
	for p := int64(10); p >= 3; p-- {
		want = append(want, formatBid(bidAt(1, 100+p, p, 10*p, "Apple", urlA, "").Bid)+","+itoa(13-p))
	}
	checkRows(t, "q19", got, want)
}

func TestQ20(t *testing.T) {
	t.Parallel()
	a1000, a1001 := auctionOf(1000, 10, 5), auctionOf(1001, 11, 1)
	early := bidAt(1000, 7, 70, 2, "Apple", urlA, "early") // before its auction
	got := runQuery(t, "q20", 2, [][]nexmark.Event{
		{a1001, early, a1000, bidAt(1001, 8, 80, 6, "Apple", urlA, "other category")},
		{bidAt(1000, 9, 90, 7, "Apple", urlA, "after"), bidAt(1002, 9, 90, 8, "Apple", urlA, "no auction")},
	})
	checkRows(t, "q20", got, []string{
		q20Row{early.Bid, a1000.Auction}.String(),
		q20Row{bidAt(1000, 9, 90, 7, "Apple", urlA, "after").Bid, a1000.Auction}.String(),
	})
	if want := "1000,7,70,Apple," + urlA + ",1767225600002,early,item,desc,10,20,2026-01-01 00:00:00.005,2026-01-01 00:00:01.005,1000,10,pad"; !slices.Contains(got, want) {
		t.Errorf("q20: row %q missing", want)
	}
}

func TestQ21(t *testing.T) {
	t.Parallel()
	got := runQuery(t, "q21", 2, [][]nexmark.Event{
		{bidAt(1, 1, 1, 0, "Apple", urlA, ""), bidAt(2, 1, 1, 0, "GOOGLE", "x", ""), bidAt(3, 1, 1, 0, "faceBook", "", ""),
			bidAt(4, 1, 1, 0, "baidu", "", "")},
		{bidAt(5, 1, 1, 0, "channel-5", urlDir, ""), bidAt(6, 1, 1, 0, "channel-6", "https://www.nexmark.com/a/b/c/item.htm?query=1", ""),
			bidAt(7, 1, 1, 0, "channel-7", "channel_id=9&x=1", ""), bidAt(8, 1, 1, 0, "channel-8", "q?xchannel_id=5&channel_id=7", ""),
			bidAt(9, 1, 1, 0, "channel-9", "q?a=1&channel_id=", "")},
	})
	checkRows(t, "q21", got, []string{
		"1,1,1,Apple,0", "2,1,1,GOOGLE,1", "3,1,1,faceBook,2", "4,1,1,baidu,3",
		"5,1,1,channel-5,123", "7,1,1,channel-7,9", "8,1,1,channel-8,7", "9,1,1,channel-9,",
	})
}

// TestChannelIDMatchesRegexp: the hand-written matcher of q21 agrees with
// the SQL's regular expression on URLs built to trip it.
func TestChannelIDMatchesRegexp(t *testing.T) {
	t.Parallel()
	re := regexp.MustCompile(`(&|^)channel_id=([^&]*)`)
	parts := []string{"channel_id=", "&", "x", "channel_id=1", "&channel_id=22", "?", "=", "channel_i", "d="}
	var urls []string
	var build func(prefix string, depth int)
	build = func(prefix string, depth int) {
		urls = append(urls, prefix)
		if depth == 0 {
			return
		}
		for _, p := range parts {
			build(prefix+p, depth-1)
		}
	}
	build("", 4)
	for _, u := range urls {
		m := re.FindStringSubmatch(u)
		got, ok := extractChannelID(u)
		if ok != (m != nil) || ok && got != m[2] {
			t.Fatalf("extractChannelID(%q) = %q, %v; the expression gives %q", u, got, ok, m)
		}
	}
}

func TestQ22(t *testing.T) {
	t.Parallel()
	got := runQuery(t, "q22", 2, [][]nexmark.Event{
		{bidAt(1, 1, 1, 0, "channel-1", urlDir, ""), bidAt(2, 1, 1, 0, "Apple", urlA, "")},
		{bidAt(3, 1, 1, 0, "x", "a/b", ""), bidAt(4, 1, 1, 0, "x", "a/b/c/d", ""), bidAt(5, 1, 1, 0, "x", "a//c///", "")},
	})
	checkRows(t, "q22", got, []string{
		"1,1,1,channel-1,aaa,bbb,ccc",
		"2,1,1,Apple,apple,item.htm?query=1,null",
		"3,1,1,x,null,null,null",
		"4,1,1,x,d,null,null",
		"5,1,1,x,,,",
	})
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }
