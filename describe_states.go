package sluice

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/sluicehq/sluice/checkpoint"
)

// DescribeStates lists the states the job registers, per operator uid, with
// their kinds and the codecs (name@version) they are written with, one line
// each: what `describe` prints after the graph. It learns them as
// CheckRestore does, by opening subtask 0 of each keyed operator in
// planning mode: nothing runs, reads or writes. Sources and sinks keep
// operator state (split positions, pending transactions), not listed here.
func (e *Environment) DescribeStates() (string, error) {
	if e.err != nil {
		return "", e.err
	}
	if err := e.cfg.Validate(); err != nil {
		return "", err
	}
	plan, err := e.plan()
	if err != nil {
		return "", err
	}
	probed, err := e.probeStates(context.Background(), plan, &checkpoint.Metadata{})
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, uid := range slices.Sorted(maps.Keys(probed)) {
		for _, s := range probed[uid] {
			fmt.Fprintf(&b, "state %s: %s %q, codecs %s\n", uid, s.Kind, s.Name, strings.Join(s.Now, ", "))
		}
	}
	return b.String(), nil
}
