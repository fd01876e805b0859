package nft

import (
	"bytes"
	"encoding/binary"
	"slices"

	"github.com/google/nftables"
)

// KeyedSet is what a feature wants in one hash set or map, element by
// element, and what it last committed: Change sends only the keys put or
// deleted since (the work is proportional to them), or every element for
// a full sync. It is not safe for concurrent use; a feature guards it with
// its own lock. Keys put between Change and Commit are sent by the next
// sync.
type KeyedSet struct {
	name    string
	want    map[string]nftables.SetElement
	applied map[string][]byte // key → value the table holds; nil: unknown
	dirty   map[string]bool   // keys put or deleted since the last Change
	sent    map[string][]byte // keys (and values; nil for deleted) the last Change sent
	full    bool              // the last Change sent everything
}

// NewKeyedSet returns an empty KeyedSet for the set or map name.
func NewKeyedSet(name string) *KeyedSet {
	return &KeyedSet{name: name, want: map[string]nftables.SetElement{}, dirty: map[string]bool{}}
}

// Reserve makes room for n elements in an empty set (a first fill of
// thousands costs map growth otherwise).
func (s *KeyedSet) Reserve(n int) {
	if len(s.want) == 0 && n > 0 {
		s.want = make(map[string]nftables.SetElement, n)
	}
}

// Put wants e (replacing an element with the same key).
func (s *KeyedSet) Put(e nftables.SetElement) {
	k := string(e.Key)
	s.want[k] = e
	if s.applied != nil || s.sent != nil { // else the next Change sends everything anyway
		s.dirty[k] = true
	}
}

// Delete stops wanting the element with this key; no such element is a
// no-op.
func (s *KeyedSet) Delete(key []byte) {
	k := string(key)
	if _, ok := s.want[k]; !ok {
		return
	}
	delete(s.want, k)
	if s.applied != nil || s.sent != nil {
		s.dirty[k] = true
	}
}

// Len is the number of elements wanted.
func (s *KeyedSet) Len() int { return len(s.want) }

// Elements returns the elements wanted, in no order.
func (s *KeyedSet) Elements() []nftables.SetElement {
	out := make([]nftables.SetElement, 0, len(s.want))
	for _, e := range s.want {
		out = append(out, e)
	}
	return out
}

// Change returns what brings the set from its committed elements to the
// wanted ones; with full, or when nothing was committed, every wanted
// element (the Table has emptied the set).
func (s *KeyedSet) Change(full bool) SetChange {
	c := SetChange{Set: s.name}
	if full || s.applied == nil {
		s.full, s.sent = true, make(map[string][]byte, len(s.want))
		c.Add = make([]nftables.SetElement, 0, len(s.want))
		for k, e := range s.want {
			c.Add = append(c.Add, e)
			s.sent[k] = ElemValue(e)
		}
		clear(s.dirty)
		return c
	}
	s.full, s.sent = false, make(map[string][]byte, len(s.dirty))
	for k := range s.dirty {
		old, had := s.applied[k]
		e, ok := s.want[k]
		switch {
		case ok && had && bytes.Equal(old, ElemValue(e)):
			continue
		case ok:
			if had {
				c.Del = append(c.Del, nftables.SetElement{Key: e.Key})
			}
			c.Add = append(c.Add, e)
			s.sent[k] = ElemValue(e)
		case had:
			c.Del = append(c.Del, nftables.SetElement{Key: []byte(k)})
			s.sent[k] = nil
		}
	}
	clear(s.dirty)
	return c
}

// Commit records that the last Change is in the table.
func (s *KeyedSet) Commit() {
	if s.full {
		s.applied = s.sent
	} else {
		for k, v := range s.sent {
			if v == nil {
				delete(s.applied, k)
			} else {
				s.applied[k] = v
			}
		}
	}
	s.sent, s.full = nil, false
}

// Abort records that the last Change did not reach the table: the next
// Change sends everything.
func (s *KeyedSet) Abort() {
	s.applied, s.sent, s.full = nil, nil, false
	clear(s.dirty)
}

// ElemValue is what an element maps to, comparable with bytes.Equal: the
// value of a map element, the verdict (kind and chain) of a verdict map
// element, an empty slice for a set element. Verdict map elements carry
// no Val: their data is in VerdictData, so comparing Val alone would miss
// a changed goto.
func ElemValue(e nftables.SetElement) []byte {
	if v := e.VerdictData; v != nil {
		return append(binary.BigEndian.AppendUint32(nil, uint32(v.Kind)), v.Chain...)
	}
	if e.Val == nil {
		return []byte{}
	}
	return e.Val
}

// IntervalSet is what a feature wants in one interval set, as a whole:
// its elements change rarely (a network's subnets) and an interval set
// cannot be diffed element by element, so a change flushes and refills
// it.
type IntervalSet struct {
	name                string
	want, applied, sent []nftables.SetElement
	known, pending      bool // applied is what the table holds; sent awaits Commit
}

// NewIntervalSet returns an empty IntervalSet for the set name.
func NewIntervalSet(name string) *IntervalSet { return &IntervalSet{name: name} }

// Set wants exactly elems (from exprs.IntervalElems).
func (s *IntervalSet) Set(elems []nftables.SetElement) { s.want = elems }

// Change returns nothing when the committed elements are the wanted ones,
// else a flush and every wanted element.
func (s *IntervalSet) Change(full bool) SetChange {
	s.sent, s.pending = s.want, true
	if full {
		return SetChange{Set: s.name, Add: s.want}
	}
	if s.known && slices.EqualFunc(s.applied, s.want, sameElem) {
		return SetChange{Set: s.name}
	}
	return SetChange{Set: s.name, Flush: true, Add: s.want}
}

// Commit records that the last Change is in the table.
func (s *IntervalSet) Commit() {
	if s.pending {
		s.applied, s.known, s.pending = s.sent, true, false
	}
}

// Abort records that the last Change did not reach the table.
func (s *IntervalSet) Abort() { s.known, s.pending = false, false }

func sameElem(a, b nftables.SetElement) bool {
	return bytes.Equal(a.Key, b.Key) && bytes.Equal(ElemValue(a), ElemValue(b)) && a.IntervalEnd == b.IntervalEnd
}
