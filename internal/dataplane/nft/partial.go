package nft

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"time"

	"github.com/google/nftables"
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
	// (nil for sets). Interval sets are compared as whole lists.
	index  map[string]map[string][]byte
	fullAt time.Time // when the last full sync was
}

func newApplied(rs *ruleset, fullAt time.Time) *applied {
	a := &applied{rs: rs, index: make(map[string]map[string][]byte, len(rs.sets)), fullAt: fullAt}
	for _, s := range rs.sets {
		if !s.set.Interval {
			a.index[s.set.Name] = indexElems(s.elems)
		}
	}
	return a
}

func indexElems(elems []nftables.SetElement) map[string][]byte {
	m := make(map[string][]byte, len(elems))
	for _, e := range elems {
		m[string(e.Key)] = e.Val
	}
	return m
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
			if ok && bytes.Equal(v, e.Val) {
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
	return bytes.Equal(a.Key, b.Key) && bytes.Equal(a.Val, b.Val) && a.IntervalEnd == b.IntervalEnd
}

// syncElems sends one transaction with only the element changes from a to
// rs and returns the new applied state and the number of elements sent.
// With no change it sends nothing.
func syncElems(c *nftables.Conn, a *applied, rs *ruleset) (*applied, int, error) {
	next := &applied{rs: rs, index: make(map[string]map[string][]byte, len(rs.sets)), fullAt: a.fullAt}
	sent := 0
	for _, d := range a.diffElems(rs) {
		if d.nextIndex != nil {
			next.index[d.set.Name] = d.nextIndex
		}
		if d.flush {
			c.FlushSet(d.set)
		}
		for _, op := range []struct {
			verb  string
			elems []nftables.SetElement
			queue func(*nftables.Set, []nftables.SetElement) error
		}{{"delete", d.del, c.SetDeleteElements}, {"add", d.add, c.SetAddElements}} {
			for batch := range slices.Chunk(op.elems, maxElemBatch) {
				if err := op.queue(d.set, batch); err != nil {
					return nil, 0, fmt.Errorf("%s elements of set %s: %w", op.verb, d.set.Name, err)
				}
			}
			sent += len(op.elems)
		}
	}
	if err := c.Flush(); err != nil {
		return nil, 0, fmt.Errorf("commit element changes: %w", err)
	}
	return next, sent, nil
}
