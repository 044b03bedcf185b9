package metrics

// Def describes one metric for the tests: its name, type and labels.
type Def struct {
	Name, Type string
	Labels     []string
}

// Defs lists every metric the collector exports.
func Defs() []Def {
	var out []Def
	for _, d := range allDefs {
		typ := "gauge"
		switch {
		case d.hist:
			typ = "histogram"
		case d.kind == counter:
			typ = "counter"
		}
		out = append(out, Def{Name: d.name, Type: typ, Labels: d.labels})
	}
	return out
}
