package nft

import "sync"

// ElemSet is what Static keeps a feature's elements in: KeyedSet and
// IntervalSet.
type ElemSet interface {
	Change(full bool) SetChange
	Commit()
	Abort()
}

var (
	_ ElemSet = (*KeyedSet)(nil)
	_ ElemSet = (*IntervalSet)(nil)
)

// Static implements Feature for a feature whose shape never changes and
// whose elements are all in ElemSets: networks, published ports. A
// feature embeds it and adds its setter, which edits the sets under
// Static's lock (Lock, Unlock).
type Static struct {
	sync.Mutex
	name  string
	shape *Shape
	sets  []ElemSet
	sent  bool
}

// NewStatic returns the Feature of name with shape and the sets holding
// its elements.
func NewStatic(name string, shape *Shape, sets ...ElemSet) *Static {
	return &Static{name: name, shape: shape, sets: sets}
}

// Name implements Feature.
func (s *Static) Name() string { return s.name }

// Plan implements Feature: the shape the first time and after Abort.
func (s *Static) Plan() (*Shape, bool, error) {
	s.Lock()
	defer s.Unlock()
	if s.sent {
		return nil, false, nil
	}
	s.sent = true
	return s.shape, false, nil
}

// Changes implements Feature: every set's change.
func (s *Static) Changes(_ Kernel, full bool) ([]SetChange, error) {
	s.Lock()
	defer s.Unlock()
	out := make([]SetChange, 0, len(s.sets))
	for _, set := range s.sets {
		out = append(out, set.Change(full))
	}
	return out, nil
}

// Commit implements Feature.
func (s *Static) Commit() {
	s.Lock()
	defer s.Unlock()
	for _, set := range s.sets {
		set.Commit()
	}
}

// Abort implements Feature.
func (s *Static) Abort() {
	s.Lock()
	defer s.Unlock()
	for _, set := range s.sets {
		set.Abort()
	}
	s.sent = false
}
