package pebblestate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble/v2"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/codec"
	"github.com/sluicehq/sluice/internal/state/heap"
	"github.com/sluicehq/sluice/keygroup"
	"github.com/sluicehq/sluice/state"
)

// The restore-compatibility rules of docs/design.md §10, as the heap
// backend applies them (internal/state/heap/evolve.go): the same verdicts,
// reasons and errors, so that a job behaves the same on both backends.

// resolveState decides what restoring the state written as w (nil if the
// checkpoint lacks it) into a registration of kind k with codec IDs now
// does, given the codecs' verdicts.
func resolveState(name string, w *stateMeta, k kind, now []codec.ID, verdicts []codec.Compatibility) heap.Resolution {
	r := heap.Resolution{Name: name, Kind: k.String(), Now: now, Outcome: heap.AsIs}
	if w == nil {
		r.Outcome = heap.Fresh
		return r
	}
	r.Written = w.codecs
	if w.kind != k {
		r.Outcome = heap.Refused
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
		r.Outcome = heap.Refused
		r.Reason = fmt.Sprintf("%s state %q was written with %s, which does not declare that it reads the old version (codec.Evolving)",
			k, name, strings.Join(refused, "; "))
	case len(migrated) > 0:
		r.Outcome = heap.Migrated
		r.Reason = fmt.Sprintf("the %s reads the old version: migrated at restore, the next checkpoint writes the new one",
			strings.Join(migrated, " and "))
	}
	return r
}

// resolveKey decides whether keys written with key codec written can be
// read by the backend's key codec: as is only.
func (b *Backend[K]) resolveKey(written codec.ID) heap.Resolution {
	r := heap.Resolution{Kind: "key codec", Written: []codec.ID{written}, Now: []codec.ID{b.kcID}, Outcome: heap.AsIs}
	switch comp, _ := codec.Resolve[K](b.kc, written); comp {
	case codec.CompatibleAsIs:
	case codec.CompatibleAfterMigration:
		r.Outcome = heap.Refused
		r.Reason = fmt.Sprintf("keyed state was written with key codec %s, the job keys it with %s, which would migrate the keys: "+
			"key codecs cannot migrate, since a migrated key may hash to another key group (keep the key's encoding, or migrate the value instead)",
			written, b.kcID)
	default:
		r.Outcome = heap.Refused
		r.Reason = fmt.Sprintf("keyed state was written with key codec %s, the job keys it with %s", written, b.kcID)
	}
	return r
}

// resolveCodec resolves codec c against the written ID at index i of
// written (as is if none was recorded), storing the decoder in rd.
func resolveCodec[V any](c codec.Codec[V], written []codec.ID, i int, rd *codec.DecodeFunc[V]) codec.Compatibility {
	if i >= len(written) {
		*rd = c.Decode
		return codec.CompatibleAsIs
	}
	comp, d := codec.Resolve(c, written[i])
	*rd = d
	return comp
}

func refusal(r heap.Resolution) error {
	return fmt.Errorf("%w: %w: %s", state.ErrIncompatible, checkpoint.ErrIncompatible, r.Reason)
}

func codecRoles(k kind) []string {
	switch k {
	case kindList:
		return []string{"element"}
	case kindMap:
		return []string{"user key", "user value"}
	}
	return []string{"value"}
}

// codecMismatch describes how written differs from now, "" if equal.
func codecMismatch(k kind, written, now []codec.ID) string {
	if written == nil {
		return ""
	}
	roles := codecRoles(k)
	var diffs []string
	for i := range max(len(written), len(now)) {
		var w, n codec.ID
		if i < len(written) {
			w = written[i]
		}
		if i < len(now) {
			n = now[i]
		}
		if w != n {
			role := "codec"
			if i < len(roles) {
				role = roles[i] + " codec"
			}
			diffs = append(diffs, fmt.Sprintf("%s %s, the job now uses %s", role, w, n))
		}
	}
	return strings.Join(diffs, "; ")
}

// PlanRestore puts a new, empty backend in planning mode for a restore
// check, as heap.HeapBackend.PlanRestore: registrations then resolve their
// codecs against states (what the checkpoint's metadata records) and record
// the verdict (Plan) instead of decoding. Discard the backend after Plan.
func (b *Backend[K]) PlanRestore(keyCodec string, states []checkpoint.StateInfo) error {
	if b.restored || len(b.states) > 0 {
		return fmt.Errorf("state: PlanRestore must be called once, on a new backend")
	}
	b.restored, b.planning = true, true
	if keyCodec != "" {
		id, err := codec.ParseID(keyCodec)
		if err != nil {
			return fmt.Errorf("key codec: %w", err)
		}
		b.plan = append(b.plan, b.resolveKey(id))
	}
	for _, si := range states {
		m := &stateMeta{name: si.Name, raw: true}
		var ok bool
		if m.kind, ok = parseKind(si.Kind); !ok {
			return fmt.Errorf("state %q: unknown kind %q", si.Name, si.Kind)
		}
		if si.TTL {
			m.flags = flagTTL
		}
		m.codecs = []codec.ID{}
		for _, s := range si.Codecs {
			id, err := codec.ParseID(s)
			if err != nil {
				return fmt.Errorf("state %q: %w", si.Name, err)
			}
			m.codecs = append(m.codecs, id)
		}
		b.metas[m.name] = m // planning: never written to Pebble
	}
	return nil
}

// Plan returns, after PlanRestore and the operator's registrations, the
// verdict on the key codec and on every state registered or in the
// checkpoint: registered states in registration order, then the
// unregistered ones by name.
func (b *Backend[K]) Plan() []heap.Resolution {
	out := slices.Clone(b.plan)
	for _, name := range b.Unregistered() {
		m := b.metas[name]
		out = append(out, heap.Resolution{Name: name, Kind: m.kind.String(), Written: m.codecs, Outcome: heap.Unregistered})
	}
	return out
}

// adopt registers the new handle h of kind k with codec identities now:
// it gives it a state id, and decodes or re-encodes the state's restored
// entries, if any (docs/design.md §10). resolve sets the handle's restore
// decoders and returns a verdict per codec; decodeBlob writes the entries
// of a canonical body; rewrite re-encodes a native entry when the codecs
// or the TTL setting changed. In planning mode the outcome is recorded.
func (b *Backend[K]) adopt(s *stateBase[K], h registered[K], k kind, now []codec.ID,
	resolve func(written []codec.ID) []codec.Compatibility,
	decodeBlob func(kg int, body []byte, hasTTL bool, now int64) error,
	rewrite func(key, val []byte, hasTTL bool, now int64) error) error {
	name := s.name
	var flags byte
	if s.ttl != 0 {
		flags = flagTTL
	}
	m, ok := b.metas[name]
	if !ok || b.planning {
		if b.planning {
			if !ok {
				b.plan = append(b.plan, resolveState(name, nil, k, now, nil))
			} else {
				var verdicts []codec.Compatibility
				if m.kind == k {
					verdicts = resolve(m.codecs)
				}
				b.plan = append(b.plan, resolveState(name, m, k, now, verdicts))
				delete(b.metas, name)
			}
			m = &stateMeta{name: name, kind: k, flags: flags, codecs: now}
		} else {
			var err error
			if m, err = b.newMeta(name, k, flags, now, false); err != nil {
				return err
			}
		}
		b.bind(s, h, m)
		return nil
	}
	var verdicts []codec.Compatibility
	if m.kind == k {
		verdicts = resolve(m.codecs)
	}
	r := resolveState(name, m, k, now, verdicts)
	if r.Outcome == heap.Refused {
		return refusal(r)
	}
	s.m, s.sid = m, m.sid // the decoders write under the state's id
	tsNow := b.now()
	wrap := func(kg int, err error) error {
		if d := codecMismatch(k, m.codecs, now); d != "" && r.Outcome == heap.AsIs {
			return fmt.Errorf("%w: %w: %s state %q was written with %s, which cannot read it (key group %d: %w)",
				state.ErrIncompatible, checkpoint.ErrIncompatible, k, name, d, kg, err)
		}
		return fmt.Errorf("%w: state %q, key group %d: %w", state.ErrCorrupt, name, kg, err)
	}
	hasTTL := m.ttl()
	switch {
	case m.raw:
		for kg := b.r.Start; kg <= b.r.End && b.r.Len() > 0; kg++ {
			bk := appendPrefix(nil, kg, m.sid)
			v, ok := b.getInto(bk)
			if !ok {
				continue
			}
			body := slices.Clone(v)
			b.del(bk)
			if err := decodeBlob(kg, body, hasTTL, tsNow); err != nil {
				return wrap(kg, err)
			}
		}
	case r.Outcome == heap.Migrated || m.flags != flags || !slices.Equal(m.codecs, now):
		// Native entries written with other codecs (or an undeclared ID:
		// only decoding can tell) or another TTL setting: re-encode all.
		for kg := b.r.Start; kg <= b.r.End && b.r.Len() > 0; kg++ {
			it, err := b.db.NewIter(&pebble.IterOptions{LowerBound: appendPrefix(nil, kg, m.sid), UpperBound: appendPrefix(nil, kg, m.sid+1)})
			if err != nil {
				return err
			}
			for ok := it.First(); ok; ok = it.Next() {
				if err := rewrite(it.Key(), it.Value(), hasTTL, tsNow); err != nil {
					it.Close()
					return wrap(kg, err)
				}
			}
			if err := it.Close(); err != nil {
				return err
			}
		}
	}
	if b.err != nil {
		return b.err
	}
	m.codecs, m.flags, m.raw = now, flags, false
	b.saveMeta(m)
	b.bind(s, h, m)
	return nil
}

// bind records a registered handle.
func (b *Backend[K]) bind(s *stateBase[K], h registered[K], m *stateMeta) {
	s.m, s.sid = m, m.sid
	b.states[s.name] = h
	b.order = append(b.order, s.name)
	if s.ttl != 0 {
		b.ttlStates++
	}
}

// decodeKey decodes a key from the front of src and checks that it belongs
// to key group kg.
func (b *Backend[K]) decodeKey(src []byte, kg int) (K, int, error) {
	k, n, err := b.kc.Decode(src)
	if err != nil {
		return k, 0, fmt.Errorf("key: %w", err)
	}
	if got := keygroup.Of(b.kc.Hash(k), b.maxP); got != kg {
		return k, 0, fmt.Errorf("key %v hashes to key group %d", k, got)
	}
	return k, n, nil
}

// restoredExpiry maps a restored entry's expiry to this registration's TTL,
// as the heap backend does.
func (s *stateBase[K]) restoredExpiry(exp int64, hasTTL bool, now int64) (int64, bool) {
	switch {
	case hasTTL && exp <= now:
		return 0, false
	case s.ttl == 0:
		return 0, true
	case !hasTTL:
		return now + s.ttl, true
	}
	return exp, true
}

func readExpiry(src []byte, hasTTL bool) (int64, int, error) {
	if !hasTTL {
		return 0, 0, nil
	}
	exp, n := binary.Varint(src)
	if n <= 0 {
		return 0, 0, errors.New("bad expiry")
	}
	return exp, n, nil
}

func errEntry[K any](k K, err error) error { return fmt.Errorf("entry for key %v: %w", k, err) }
