package queries_test

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/sluicehq/sluice/internal/nexmark"
	"github.com/sluicehq/sluice/internal/nexmark/queries"
)

// TestQ19UnderRestart: q19 keeps each auction's bids encoded in one
// append-only byte slice that later bids extend in place, behind the
// bytes a snapshot holds. With checkpoints every 10 ms (hundreds of
// snapshots taken while the slices grow) and a failure injected after a
// checkpoint, the committed rows still equal the batch top 10 of every
// auction, record for record: no snapshot saw a bid appended after it.
//
// The input spans 8 s of event time, less than q19's idle gap, so every
// auction emits at the end of input, with all its bids: on cpConfig's 80 s
// an auction near the end of split 0's id range also gets bids from the
// start of split 1, more than 10 s apart, and whether its early bids are
// emitted on their own then depends on how far one source subtask runs
// ahead of the other.
func TestQ19UnderRestart(t *testing.T) {
	t.Parallel()
	cfg := cpConfig(cpEvents())
	cfg.Rate = float64(cfg.Events) / 8
	splits := cpGenerate(cfg)
	var bids []nexmark.Bid
	for _, ev := range cpAll(splits, nexmark.KindBid) {
		bids = append(bids, ev.Bid)
	}
	want := queries.RefQ19(bids)
	slices.Sort(want)
	rng := rand.New(rand.NewPCG(cpSeed(t), 19))
	failure := cpFailureAt(rng, cfg)
	out := cpRunGenerated(t, "q19", cfg, &failure)
	if out.Count() != int64(len(want)) {
		t.Errorf("count %d, batch logic %d", out.Count(), len(want))
	}
	cpCheckRows(t, "q19", out.Rows(), want)
}
