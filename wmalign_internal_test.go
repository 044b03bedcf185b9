package sluice

import (
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/sluicehq/sluice/watermark"
)

// recPauser records what alignment asked of a reader.
type recPauser struct{ paused []string }

func (p *recPauser) PauseSplits(ids []string) {
	p.paused = append(p.paused, ids...)
	slices.Sort(p.paused)
}

func (p *recPauser) ResumeSplits(ids []string) {
	p.paused = slices.DeleteFunc(p.paused, func(s string) bool { return slices.Contains(ids, s) })
}

// TestAlignSilentPausedSplitsStayPaused: splits a (slow), b and c (ahead)
// of one reader; b and c are paused. Then every split falls silent and
// turns idle: a for want of records, b and c because they are paused.
// Their silence is the pause's, so they still count as active: the
// slowest of them, b, resumes, and c, more than the drift ahead of b,
// stays paused (were they idle, the group would have no active member and
// would resume both). A finished split leaves the group, and an exchange
// of an earlier attempt changes nothing.
func TestAlignSilentPausedSplitsStayPaused(t *testing.T) {
	t0 := time.Unix(1000, 0)
	g := &alignGroup{name: "g", drift: time.Second}
	r := watermark.NewReader(watermark.ForMonotonousTimestamps().WithIdleness(time.Second))
	p := &recPauser{}
	a := &splitAlign{g: g, uid: "src", every: time.Millisecond, pauser: p, log: slog.Default()}
	splits := map[string]*watermark.Split{}
	for _, id := range []string{"a", "b", "c"} {
		s, err := r.AddSplit(id, t0)
		if err != nil {
			t.Fatal(err)
		}
		splits[id] = s
		a.add(s)
	}
	a.open("run-1")
	splits["a"].OnEvent(t0.UnixNano())
	splits["b"].OnEvent(t0.Add(5 * time.Second).UnixNano())
	splits["c"].OnEvent(t0.Add(10 * time.Second).UnixNano())
	now := t0.Add(100 * time.Millisecond)
	r.OnPeriodicEmit(now)
	a.step(now)
	if want := []string{"b", "c"}; !slices.Equal(p.paused, want) {
		t.Fatalf("paused %v, want %v", p.paused, want)
	}
	now = now.Add(2 * time.Second) // every split silent past the idleness timeout
	r.OnPeriodicEmit(now)
	for id, s := range splits {
		if !s.Idle() {
			t.Fatalf("split %s is not idle", id)
		}
	}
	a.step(now)
	if want := []string{"c"}; !slices.Equal(p.paused, want) {
		t.Fatalf("after silence: paused %v, want %v", p.paused, want)
	}
	// b finishes: it leaves the group, and c is alone and resumes.
	a.members[1].finished = true
	now = now.Add(time.Millisecond)
	a.step(now)
	if len(p.paused) != 0 || len(a.members) != 2 {
		t.Fatalf("after b finished: paused %v, %d members", p.paused, len(a.members))
	}
	// A new attempt resets the group; the old one's exchanges are ignored.
	g.join("run-2", []string{"x"})
	if g.exchange("run-1", []alignReport{{id: "src/c", wm: watermark.Final}}, nil, make([]bool, 1)) {
		t.Fatal("an exchange of an earlier attempt was accepted")
	}
}
