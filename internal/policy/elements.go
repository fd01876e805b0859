package policy

import (
	"cmp"
	"net/netip"
	"slices"
)

// Building a group's set elements.
//
// The rules of a group allow a union of boxes peer-prefix × port-set. The
// kernel wants that union as disjoint elements (pipapo rejects overlaps),
// few of them. Peer prefixes nest or are disjoint, so they form a forest.
// Walking it from the roots with E = everything the ancestors allow, a node
// emits only what it adds: its prefix × (its ports \ E). A point (peer,
// proto, port) then lies in exactly one element: the one of the outermost
// prefix around the peer whose allowance includes (proto, port). The only
// difference that elements cannot express is "all but these ports", when a
// node allows everything and an ancestor only some ports: such a node
// emits prefix × everything, and its ancestors cut its prefix out of
// theirs. Finally neighbouring peers with the same elements are merged
// where their prefixes are the two halves of one.
//
// Every rule's peers are already sorted, so the forest comes out of a k-way
// merge in preorder, and the elements come out sorted unless a prefix was
// cut.

// node is one distinct peer prefix of a group; nodes are kept in preorder
// in one slice, node i's subtree being nodes[i+1:end].
type node struct {
	prefix netip.Prefix
	ports  portSet   // union of what its rules allow
	refs   []ruleRef // rules with a part on this prefix
	end    int
}

// ruleRef is a rule's part as seen from a node.
type ruleRef struct {
	ports *portSet
	names []string // the rule's name, alone: shared by its elements
}

// builder holds one group's work; its buffers are reused for the next.
type builder struct {
	group uint32
	nodes []node
	refs  []ruleRef
	heap  cursorHeap
	stack []int
	out   []Allow
	cut   bool // some prefix was cut: out needs sorting
	// names interns lists of up to four rules, keyed by the rules' name
	// slices (rules live as long as the builder).
	names map[[4]*string][]string
}

// build returns the disjoint elements of a group, sorted by peer,
// protocol and port, in a new slice.
func (b *builder) build(group uint32, rules []*ruleAllow) []Allow {
	b.group, b.cut = group, false
	b.nodes, b.refs, b.out = b.nodes[:0], b.refs[:0], b.out[:0]
	b.forest(rules)
	for i := 0; i < len(b.nodes); i = b.nodes[i].end {
		b.emit(i, portSet{})
	}
	if b.cut {
		slices.SortFunc(b.out, compareAllow)
	}
	b.out = mergeRuns(b.out)
	clear(b.nodes) // drop references to this group's data
	return slices.Clone(b.out)
}

// forest merges the rules' sorted peer lists into nodes in preorder.
func (b *builder) forest(rules []*ruleAllow) {
	h := b.heap[:0]
	total := 0
	for _, r := range rules {
		for i := range r.parts {
			if p := &r.parts[i]; len(p.peers) > 0 {
				h = append(h, cursor{p.peers, ruleRef{&p.ports, r.self}})
				total += len(p.peers)
			}
		}
	}
	h.init()
	b.nodes = slices.Grow(b.nodes, total)
	refs := slices.Grow(b.refs, total) // nodes' refs are windows of it
	stack := b.stack[:0]
	for len(h) > 0 {
		n := node{prefix: h[0].peers[0]}
		first := len(refs)
		for len(h) > 0 && h[0].peers[0] == n.prefix {
			ref := h[0].ref
			n.ports = union(n.ports, *ref.ports)
			refs = append(refs, ref)
			h.advance()
		}
		n.refs = refs[first:len(refs):len(refs)]
		i := len(b.nodes)
		for len(stack) > 0 && !contains(b.nodes[stack[len(stack)-1]].prefix, n.prefix) {
			b.nodes[stack[len(stack)-1]].end = i
			stack = stack[:len(stack)-1]
		}
		b.nodes = append(b.nodes, n)
		stack = append(stack, i)
	}
	for _, i := range stack {
		b.nodes[i].end = len(b.nodes)
	}
	b.heap, b.refs, b.stack = h, refs, stack
}

// emit appends node i's elements and its subtree's, given what its
// ancestors allow (anc), and returns the prefixes its ancestors must leave
// out: those of nodes in the subtree (or i) that emitted "everything".
func (b *builder) emit(i int, anc portSet) []netip.Prefix {
	n := &b.nodes[i]
	if anc.all {
		return nil // an ancestor's element covers all of n
	}
	e := union(anc, n.ports)
	if e.all {
		b.out = append(b.out, Allow{Group: b.group, Peer: n.prefix, Proto: ProtoAny, PortHi: 65535, Rules: b.ruleNames(n.refs, -1, fullSpan)})
		return []netip.Prefix{n.prefix}
	}
	start := len(b.out)
	var carved []netip.Prefix
	for j := i + 1; j < n.end; j = b.nodes[j].end {
		carved = append(carved, b.emit(j, e)...)
	}
	add := minus(n.ports, anc)
	if add.empty() {
		return carved
	}
	one := [1]netip.Prefix{n.prefix}
	regions := one[:]
	if len(carved) > 0 {
		regions = Subtract(n.prefix, carved)
		b.cut = true
	}
	mine := len(b.out)
	for _, r := range regions {
		for pi, sps := range add.p {
			for _, sp := range sps {
				b.out = append(b.out, Allow{Group: b.group, Peer: r, Proto: protoNums[pi], PortLo: sp.lo, PortHi: sp.hi, Rules: b.ruleNames(n.refs, pi, sp)})
			}
		}
	}
	if mine > start && !b.cut {
		// Preorder: n's own elements go before its subtree's.
		slices.Reverse(b.out[start:mine])
		slices.Reverse(b.out[mine:])
		slices.Reverse(b.out[start:])
	}
	return carved
}

// ruleNames are the rules of refs allowing some of protocol index pi (-1:
// any) and ports sp, sorted and unique.
func (b *builder) ruleNames(refs []ruleRef, pi int, sp span) []string {
	if len(refs) == 1 {
		return refs[0].names
	}
	// Lists of up to four rules are interned, keyed by the rules' names.
	var id [4]*string
	n := 0
	for _, r := range refs {
		if r.ports.intersects(pi, sp) {
			if n < len(id) {
				id[n] = &r.names[0]
			}
			n++
		}
	}
	if n <= len(id) {
		if names, ok := b.names[id]; ok {
			return names
		}
	}
	out := make([]string, 0, n)
	for _, r := range refs {
		if r.ports.intersects(pi, sp) {
			out = append(out, r.names[0])
		}
	}
	slices.Sort(out)
	out = slices.Clip(slices.Compact(out))
	if n <= len(id) {
		if b.names == nil {
			b.names = map[[4]*string][]string{}
		}
		b.names[id] = out
	}
	return out
}

// mergeRuns joins neighbouring runs of elements whose peers are the two
// halves of one prefix and that have the same protocols and ports, in
// place. Rule peers come aggregated, so this catches what different rules
// add up to.
func mergeRuns(es []Allow) []Allow {
	out := es[:0]
	merged := false
	var runs []int // start of each run of one peer in out
	for i := 0; i < len(es); {
		j := i + 1
		for j < len(es) && es[j].Peer == es[i].Peer {
			j++
		}
		runs = append(runs, len(out))
		if len(out) == i {
			out = out[:j] // nothing merged yet: the run is in place
		} else {
			out = append(out, es[i:j]...)
		}
		i = j
		for len(runs) >= 2 {
			a, b := out[runs[len(runs)-2]:runs[len(runs)-1]], out[runs[len(runs)-1]:]
			parent, ok := buddies(a[0].Peer, b[0].Peer)
			if !ok || !samePorts(a, b) {
				break
			}
			for k := range a {
				a[k].Peer = parent
				if !slices.Equal(a[k].Rules, b[k].Rules) {
					a[k].Rules = slices.Compact(slices.Sorted(slices.Values(slices.Concat(a[k].Rules, b[k].Rules))))
				}
			}
			out = out[:runs[len(runs)-1]]
			runs = runs[:len(runs)-1]
			merged = true
		}
	}
	if merged && !slices.IsSortedFunc(out, compareAllow) {
		slices.SortFunc(out, compareAllow)
	}
	return out
}

func samePorts(a, b []Allow) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if a[k].Proto != b[k].Proto || a[k].PortLo != b[k].PortLo || a[k].PortHi != b[k].PortHi {
			return false
		}
	}
	return true
}

// cursor walks one rule part's sorted peers.
type cursor struct {
	peers []netip.Prefix
	ref   ruleRef
}

// cursorHeap is a min-heap of cursors by their next peer.
type cursorHeap []cursor

func (h cursorHeap) less(i, j int) bool { return comparePrefix(h[i].peers[0], h[j].peers[0]) < 0 }

func (h cursorHeap) init() {
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

// advance moves the top cursor to its next peer, dropping it when done.
func (h *cursorHeap) advance() {
	top := &(*h)[0]
	if top.peers = top.peers[1:]; len(top.peers) == 0 {
		last := len(*h) - 1
		(*h)[0] = (*h)[last]
		*h = (*h)[:last]
	}
	h.down(0)
}

func (h cursorHeap) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h.less(r, l) {
			m = r
		}
		if !h.less(m, i) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

func compareAllow(a, b Allow) int {
	if c := cmp.Compare(a.Group, b.Group); c != 0 {
		return c
	}
	if c := comparePrefix(a.Peer, b.Peer); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Proto, b.Proto); c != 0 {
		return c
	}
	return cmp.Compare(a.PortLo, b.PortLo)
}
