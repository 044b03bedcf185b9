package queries

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/connector/file"
	"github.com/sluicehq/sluice/internal/nexmark"
)

// q10 logs every bid to files (the suite's filesystem sink): one CSV line
// per bid, auction,bidder,price,dateTime,extra,dt,hm, where dt and hm are
// DATE_FORMAT(dateTime, 'yyyy-MM-dd') and 'HH:mm' in UTC. Sluice's file
// sink is exactly-once (a part file per checkpoint and subtask, visible
// once the checkpoint completes, docs/design.md §6) but has no bucket
// assigner, so the suite's partitioning into dt=/hm= directories is
// carried as the two partition columns of every line instead; the suite
// rolls its files every minute, Sluice at every checkpoint. Every line is
// also counted in out. The part files go to out.FilesDir.
func init() {
	register(Query{Name: "q10", Build: func(env *sluice.Environment, events sluice.Stream[nexmark.Event], out *Out) {
		dir := out.FilesDir
		if dir == "" {
			// If the temporary directory cannot be made, the sink's own
			// attempt to create this one fails the job, naming it.
			dir = filepath.Join(os.TempDir(), "sluice-nexmark-q10")
			if d, err := os.MkdirTemp("", "sluice-nexmark-q10-"); err == nil {
				dir = d
			}
		}
		rows := bidsAs(events, "q10-project", func(b nexmark.Bid) q10Row {
			return q10Row{Auction: b.Auction, Bidder: b.Bidder, Price: b.Price, DateTime: b.DateTime, Extra: b.Extra}
		})
		sluice.Sink(rows, "q10-files", file.NewSink(file.Config[q10Row]{Dir: dir, Prefix: "bid", Encode: appendQ10Line}))
		EmitTimed(out, rows, "q10-count", func(r q10Row) string {
			line := appendQ10Line(nil, r)
			return string(line[:len(line)-1])
		}, func(r q10Row) int64 { return r.DateTime })
	}})
}

// q10Row is the part of a bid q10 writes.
type q10Row struct {
	Auction, Bidder, Price, DateTime int64
	Extra                            string
}

// appendQ10Line appends r's CSV line, with its partition columns, without
// allocating.
func appendQ10Line(dst []byte, r q10Row) []byte {
	dst = strconv.AppendInt(dst, r.Auction, 10)
	dst = append(dst, ',')
	dst = strconv.AppendInt(dst, r.Bidder, 10)
	dst = append(dst, ',')
	dst = strconv.AppendInt(dst, r.Price, 10)
	dst = append(dst, ',')
	dst = appendTimestamp(dst, r.DateTime)
	dst = append(dst, ',')
	dst = appendCSVField(dst, r.Extra)
	dst = append(dst, ',')
	dst = appendDay(dst, r.DateTime)
	dst = append(dst, ',')
	dst = appendHM(dst, r.DateTime)
	return append(dst, '\n')
}

// appendCSVField appends s, quoted (RFC 4180) only if it holds a comma,
// a quote or a line break.
func appendCSVField(dst []byte, s string) []byte {
	if !strings.ContainsAny(s, ",\"\r\n") {
		return append(dst, s...)
	}
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' {
			dst = append(dst, '"')
		}
		dst = append(dst, s[i])
	}
	return append(dst, '"')
}
