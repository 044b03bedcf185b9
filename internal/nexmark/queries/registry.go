// Package queries holds the Nexmark queries q0–q22, each written with
// Sluice's DataStream API as a user would write it, and a registry the
// benchmark runs them from (docs/benchmarks.md).
package queries

import (
	"slices"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice"
	"github.com/sluicehq/sluice/internal/nexmark"
)

// Query is one Nexmark query.
type Query struct {
	// Name is "q0" to "q22".
	Name string
	// Build adds the query to env, reading events, and ends every result
	// stream in Emit.
	Build func(env *sluice.Environment, events sluice.Stream[nexmark.Event], out *Out)
}

var all []Query

// register adds q to the registry; each query's file calls it from init.
func register(q Query) {
	if _, ok := Lookup(q.Name); ok {
		panic("nexmark: query " + q.Name + " registered twice")
	}
	all = append(all, q)
	slices.SortFunc(all, func(a, b Query) int { return number(a.Name) - number(b.Name) })
}

// number returns the query number of a name such as "q12", -1 if none.
func number(name string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(name, "q"))
	if err != nil || !strings.HasPrefix(name, "q") {
		return -1
	}
	return n
}

// All returns every registered query, in query-number order.
func All() []Query { return slices.Clone(all) }

// Lookup returns the query of a name such as "q5".
func Lookup(name string) (Query, bool) {
	for _, q := range all {
		if q.Name == name {
			return q, true
		}
	}
	return Query{}, false
}
