package nft

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
)

// fullResyncInterval bounds how long partial syncs may trust the in-memory
// copy of the table: the next sync after it is a full one, which also
// repairs anything changed behind knit's back.
const fullResyncInterval = time.Hour

// applied is what the last successful sync wrote into the table. Kept in
// memory, it lets the next sync send only element additions and deletions
// when the chains, rules and set definitions are unchanged (kube-proxy's
// partial sync). It is dropped after any error, so the next sync is full.
type applied struct {
	rs *ruleset
	// index maps a hash set's or map's name to its elements: key → value
	// (nil for sets). Interval sets are compared as whole lists. Only sets
	// whose elements come from the config (ownConfig) are indexed: the
	// service sets are tracked by svc, the learned sets by nobody.
	index  map[string]map[string][]byte
	svc    *svcState
	fullAt time.Time // when the last full sync was
}

func newApplied(rs *ruleset, svc *svcState, fullAt time.Time) *applied {
	a := &applied{rs: rs, index: make(map[string]map[string][]byte, len(rs.sets)), svc: svc, fullAt: fullAt}
	for _, s := range rs.sets {
		if s.owner == ownConfig && !s.set.Interval {
			a.index[s.set.Name] = indexElems(s.elems)
		}
	}
	return a
}

func indexElems(elems []nftables.SetElement) map[string][]byte {
	m := make(map[string][]byte, len(elems))
	for _, e := range elems {
		m[string(e.Key)] = elemValue(e)
	}
	return m
}

// elemValue is what an element maps to, comparable with bytes.Equal: the
// value of a map element, the verdict (kind and chain) of a verdict map
// element, nil for a set element. Verdict map elements carry no Val: their
// data is in VerdictData, so comparing Val alone would miss a changed goto.
func elemValue(e nftables.SetElement) []byte {
	if v := e.VerdictData; v != nil {
		return append(binaryutil.BigEndian.PutUint32(uint32(v.Kind)), v.Chain...)
	}
	return e.Val
}

// sameShape reports whether rs has the same table, chains, rules and set
// definitions (elements aside) as what was applied: then a partial sync
// can bring the table from one to the other.
func (a *applied) sameShape(rs *ruleset) bool {
	if len(a.rs.sets) != len(rs.sets) {
		return false
	}
	for i, s := range rs.sets {
		if !reflect.DeepEqual(a.rs.sets[i].set, s.set) {
			return false
		}
	}
	return reflect.DeepEqual(a.rs.table, rs.table) &&
		reflect.DeepEqual(a.rs.chains, rs.chains) &&
		reflect.DeepEqual(a.rs.rules, rs.rules)
}

// elemDelta is the difference between one set's applied elements and the
// wanted ones.
type elemDelta struct {
	set       *nftables.Set
	flush     bool // interval set: flush, then add every element
	del, add  []nftables.SetElement
	nextIndex map[string][]byte
}

// diffElems computes what turns the applied elements into rs's. A map
// element whose value changed is deleted and added again.
func (a *applied) diffElems(rs *ruleset) []elemDelta {
	var out []elemDelta
	for i, s := range rs.sets {
		d := elemDelta{set: s.set}
		if s.owner != ownConfig {
			continue
		}
		if s.set.Interval {
			if !slices.EqualFunc(a.rs.sets[i].elems, s.elems, sameElem) {
				d.flush, d.add = true, s.elems
			}
			out = append(out, d)
			continue
		}
		old := a.index[s.set.Name]
		d.nextIndex = indexElems(s.elems)
		for _, e := range s.elems {
			v, ok := old[string(e.Key)]
			if ok && bytes.Equal(v, elemValue(e)) {
				continue
			}
			if ok { // deleted by key, then added with its new value
				d.del = append(d.del, nftables.SetElement{Key: e.Key})
			}
			d.add = append(d.add, e)
		}
		for k := range old {
			if _, ok := d.nextIndex[k]; !ok {
				d.del = append(d.del, nftables.SetElement{Key: []byte(k)})
			}
		}
		out = append(out, d)
	}
	return out
}

func sameElem(a, b nftables.SetElement) bool {
	return bytes.Equal(a.Key, b.Key) && bytes.Equal(elemValue(a), elemValue(b)) && a.IntervalEnd == b.IntervalEnd
}

// syncElems sends one transaction with only the element changes from a to
// rs, and those of the service ports (svc, the state delta was computed
// against), and returns the new applied state and the number of elements
// sent. With no change it sends nothing.
func syncElems(c *nftables.Conn, a *applied, rs *ruleset, svc *svcState, sd *svcDelta) (*applied, int, error) {
	next := &applied{rs: rs, index: make(map[string]map[string][]byte, len(rs.sets)), svc: svc, fullAt: a.fullAt}
	sd.resolve()
	var learned map[string]learnedOps
	if sd.touchesAffinity() {
		var err error
		if learned, err = remapAffinity(c, svc); err != nil {
			return nil, 0, err
		}
	}
	deltas := append(a.diffElems(rs), policyDeltas(rs, a.rs.pol, rs.pol)...)
	for _, s := range rs.sets {
		switch s.owner {
		case ownServices:
			deltas = append(deltas, elemDelta{set: s.set, del: setElements(sd.del[s.svc]), add: setElements(sd.add[s.svc])})
		case ownLearned:
			if ops, ok := learned[s.set.Name]; ok {
				deltas = append(deltas, elemDelta{set: s.set, del: ops.del, add: ops.add})
			}
		}
	}
	sent := 0
	for _, d := range deltas {
		if d.nextIndex != nil {
			next.index[d.set.Name] = d.nextIndex
		}
		if d.flush {
			c.FlushSet(d.set)
		}
		if err := queueElems(c, d.set, d.del, d.add); err != nil {
			return nil, 0, err
		}
		sent += len(d.del) + len(d.add)
	}
	if err := c.Flush(); err != nil {
		return nil, 0, fmt.Errorf("commit element changes: %w", err)
	}
	return next, sent, nil
}

// setElements converts service elements for the library; deletions need
// only the key.
func setElements(xs []svcElem) []nftables.SetElement {
	if len(xs) == 0 {
		return nil
	}
	out := make([]nftables.SetElement, len(xs))
	for i, x := range xs {
		out[i] = x.setElement()
	}
	return out
}
