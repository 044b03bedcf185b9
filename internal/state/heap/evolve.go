package heap

import (
	"fmt"
	"strings"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/state"
)

// Outcome is what a restore does to one keyed state (docs/design.md §10).
type Outcome uint8

// The outcomes of restoring a keyed state.
const (
	// AsIs: restored with codecs that read its bytes unchanged.
	AsIs Outcome = iota + 1
	// Migrated: at least one codec reads the old bytes through a
	// migration (codec.CompatibleAfterMigration).
	Migrated
	// Fresh: the state is registered but not in the checkpoint: it starts
	// empty.
	Fresh
	// Unregistered: the state is in the checkpoint, but not registered:
	// kept unchanged in later checkpoints, invisible to the operator.
	Unregistered
	// Refused: the restore is refused (Resolution.Reason says why).
	Refused
)

// Resolution is the verdict on one keyed state (or, with Kind "key codec",
// on the key codec) of a restore: the one function of the written and the
// registered codecs that both the restore (adopt) and the restore check
// (PlanRestore) apply, so they cannot disagree.
type Resolution struct {
	// Name is the state's name ("" for the key codec).
	Name string
	// Kind is the kind the state is registered as (value, list, map,
	// reducing), the kind it was written as for Unregistered, or "key
	// codec".
	Kind string
	// Written are the codec IDs the checkpoint recorded (nil for a
	// version 1 file or a Fresh state), Now those the registration uses.
	Written, Now []codec.ID
	Outcome      Outcome
	// Reason explains a Migrated or Refused outcome.
	Reason string
}

// resolveState decides what restoring the state written as w (nil if the
// checkpoint lacks it) into a registration of kind k with codec IDs now
// does, given the codecs' verdicts (codec.Resolve) on the written IDs.
func resolveState(name string, w *blockMeta, k kind, now []codec.ID, verdicts []codec.Compatibility) Resolution {
	r := Resolution{Name: name, Kind: k.String(), Now: now, Outcome: AsIs}
	if w == nil {
		r.Outcome = Fresh
		return r
	}
	r.Written = w.codecs
	if w.kind != k {
		r.Outcome = Refused
		r.Reason = fmt.Sprintf("state %q was written as %s state, the job registers it as %s state", name, w.kind, k)
		return r
	}
	roles := codecRoles(k)
	var refused, migrated []string
	for i, v := range verdicts {
		if v == codec.CompatibleAsIs {
			continue
		}
		var wid, nid codec.ID
		if i < len(w.codecs) {
			wid = w.codecs[i]
		}
		if i < len(now) {
			nid = now[i]
		}
		role := "codec"
		if i < len(roles) {
			role = roles[i] + " codec"
		}
		d := fmt.Sprintf("%s %s, the job now uses %s", role, wid, nid)
		if v == codec.CompatibleAfterMigration {
			migrated = append(migrated, role)
		} else {
			refused = append(refused, d)
		}
	}
	switch {
	case len(refused) > 0:
		r.Outcome = Refused
		r.Reason = fmt.Sprintf("%s state %q was written with %s, which does not declare that it reads the old version (codec.Evolving)",
			k, name, strings.Join(refused, "; "))
	case len(migrated) > 0:
		r.Outcome = Migrated
		r.Reason = fmt.Sprintf("the %s reads the old version: migrated at restore, the next checkpoint writes the new one",
			strings.Join(migrated, " and "))
	}
	return r
}

// resolveKey decides whether keys written with key codec written can be
// read by the backend's key codec: as is only. A key codec that would
// migrate keys is refused, since a migrated key may hash to another key
// group than the one its entries are stored under.
func (b *HeapBackend[K]) resolveKey(written codec.ID) Resolution {
	r := Resolution{Kind: "key codec", Written: []codec.ID{written}, Now: []codec.ID{b.kcID}, Outcome: AsIs}
	switch comp, _ := codec.Resolve[K](b.kc, written); comp {
	case codec.CompatibleAsIs:
	case codec.CompatibleAfterMigration:
		r.Outcome = Refused
		r.Reason = fmt.Sprintf("keyed state was written with key codec %s, the job keys it with %s, which would migrate the keys: "+
			"key codecs cannot migrate, since a migrated key may hash to another key group (keep the key's encoding, or migrate the value instead)",
			written, b.kcID)
	default:
		r.Outcome = Refused
		r.Reason = fmt.Sprintf("keyed state was written with key codec %s, the job keys it with %s", written, b.kcID)
	}
	return r
}

// resolveCodec resolves codec c against the written ID at index i of
// written (as is if the file recorded none), storing the decoder to
// restore with in rd.
func resolveCodec[V any](c codec.Codec[V], written []codec.ID, i int, rd *codec.DecodeFunc[V]) codec.Compatibility {
	if i >= len(written) {
		*rd = c.Decode
		return codec.CompatibleAsIs
	}
	comp, d := codec.Resolve(c, written[i])
	*rd = d
	return comp
}

// PlanRestore puts a new, empty backend in planning mode for a restore
// check (sluice.Environment.CheckRestore, docs/design.md §10): instead of
// files it is given what the checkpoint's metadata records about the keyed
// state of the operator (key codec and states, as heap snapshots describe
// them), and registrations then resolve their codecs against it exactly as
// a restore would, recording the verdict (Plan) instead of decoding or
// failing. A planning backend holds no entries; discard it after Plan.
func (b *HeapBackend[K]) PlanRestore(keyCodec string, states []checkpoint.StateInfo) error {
	if b.restored || len(b.states) > 0 {
		return fmt.Errorf("state: PlanRestore must be called once, on a new backend")
	}
	b.restored, b.planning = true, true
	if keyCodec != "" {
		id, err := codec.ParseID(keyCodec)
		if err != nil {
			return fmt.Errorf("key codec: %w", err)
		}
		r := b.resolveKey(id)
		b.plan = append(b.plan, r)
	}
	for _, si := range states {
		m := blockMeta{name: si.Name}
		var ok bool
		if m.kind, ok = parseKind(si.Kind); !ok {
			return fmt.Errorf("state %q: unknown kind %q", si.Name, si.Kind)
		}
		if si.TTL {
			m.flags = flagTTL
		}
		for _, s := range si.Codecs {
			id, err := codec.ParseID(s)
			if err != nil {
				return fmt.Errorf("state %q: %w", si.Name, err)
			}
			m.codecs = append(m.codecs, id)
		}
		if m.codecs == nil {
			m.codecs = []codec.ID{} // recorded, but none: compare as such
		}
		b.raw[m.name] = &rawState{meta: m}
	}
	return nil
}

// Plan returns, after PlanRestore and the operator's registrations, the
// verdict on the key codec and on every state registered or in the
// checkpoint, in that order: registered states in registration order,
// then the unregistered ones by name.
func (b *HeapBackend[K]) Plan() []Resolution {
	out := append([]Resolution(nil), b.plan...)
	for _, name := range b.Unregistered() {
		rs := b.raw[name]
		out = append(out, Resolution{Name: name, Kind: rs.meta.kind.String(), Written: rs.meta.codecs, Outcome: Unregistered})
	}
	return out
}

func parseKind(s string) (kind, bool) {
	for k := kindValue; k <= kindReducing; k++ {
		if k.String() == s {
			return k, true
		}
	}
	return 0, false
}

// refusal is the error a Refused resolution is at restore.
func refusal(r Resolution) error {
	return fmt.Errorf("%w: %w: %s", state.ErrIncompatible, checkpoint.ErrIncompatible, r.Reason)
}
