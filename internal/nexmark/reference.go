package nexmark

// javaRandom is java.util.Random: the reference generator's per-event
// random stream (ProfileReference).
type javaRandom struct{ s uint64 }

// reference fills ev by the reference generator's rules.
func (g *Generator) reference(id, n, t int64, ev *Event) {
	panic("nexmark: the reference profile is not implemented yet")
}
