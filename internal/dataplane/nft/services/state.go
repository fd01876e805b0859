package services

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"unsafe"

	"github.com/knit-net/knit/internal/dataplane/nft/exprs"
)

// Service ports are the one part of the config that is big (10,000 service
// ports with 10 endpoints are 120,000 set elements) and that changes all the
// time (an endpoint becomes ready). Rendering and diffing all of them on
// every Sync would cost tens of milliseconds, so the Dataplane keeps a
// svcState from one sync to the next: the normalized service ports by name,
// and indexes of what they claim. A Sync compares each given service port
// with the one of the same name (cheap when nothing changed), validates and
// renders only the changed ones, and sends the difference of their
// elements. The state is dropped with the rest of the applied state after
// any error, and the next sync builds it from nothing.

// svcEntry is one service port as the last sync applied it.
type svcEntry struct {
	key string      // Name, made unique within a config
	in  ServicePort // as given, cloned: the next sync compares with it
	sp  ServicePort // normalized
	n4  int         // sp.Backends[:n4] are IPv4, the rest IPv6
	gen uint64      // the last sync that listed it
}

// backends returns the entry's backends of one family, in slot order.
func (e *svcEntry) backends(v6 bool) []netip.AddrPort {
	if v6 {
		return e.sp.Backends[e.n4:]
	}
	return e.sp.Backends[:e.n4]
}

// sameInput reports whether sp is what e was made from. It is called for
// every service port on every sync, so slices are compared as memory (see
// sameMemory).
func (e *svcEntry) sameInput(sp *ServicePort) bool {
	return e.in.Name == sp.Name && e.in.Protocol == sp.Protocol && e.in.Port == sp.Port &&
		e.in.NodePort == sp.NodePort && e.in.AffinityTimeout == sp.AffinityTimeout &&
		sameMemory(e.in.VIPs, sp.VIPs) && sameMemory(e.in.Backends, sp.Backends)
}

// sameMemory reports whether two slices hold the same bytes: one memcmp
// instead of a comparison per element (10,000 service ports with 10
// backends: 1 ms less per sync). Equal bytes are equal values; unequal
// bytes in padding or in an address's zone handle could only make a
// service port look changed, which costs its re-rendering, never a missed
// change.
func sameMemory[T any](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	if len(a) == 0 {
		return true
	}
	n := len(a) * int(unsafe.Sizeof(a[0]))
	return bytes.Equal(unsafe.Slice((*byte)(unsafe.Pointer(&a[0])), n), unsafe.Slice((*byte)(unsafe.Pointer(&b[0])), n))
}

// frontKey is what a service port claims: a VIP's protocol and port, or,
// with addr invalid, a node port on every address.
type frontKey struct {
	addr  netip.Addr
	port  uint16
	proto byte
}

func (e *svcEntry) fronts() []frontKey {
	proto := exprs.L4Proto[e.sp.Protocol]
	out := make([]frontKey, 0, len(e.sp.VIPs)+1)
	for _, a := range e.sp.VIPs {
		out = append(out, frontKey{addr: a, port: e.sp.Port, proto: proto})
	}
	if e.sp.NodePort != 0 {
		out = append(out, frontKey{port: e.sp.NodePort, proto: proto})
	}
	return out
}

// svcState is every service port the last sync applied, with indexes.
type svcState struct {
	gen    uint64
	ranges []netip.Prefix // the service ranges every backend was checked against
	order  []*svcEntry    // every entry, in the order the last sync listed them
	ports  map[string]*svcEntry
	fronts map[frontKey]*svcEntry
	vips   map[netip.Addr]int // how many service ports have each VIP
	shape  svcShape
}

// svcShape counts what decides the service chains: which blocks of backend
// counts each kind of count chain needs. Counts, so that removing a service
// port updates it.
type svcShape struct {
	blocks map[chainKind]map[int]int // kind → block of K (see countBlock) → family-entries
}

// chainKind is a kind of count chain: for VIPs or for node ports, without
// affinity (secs 0) or with an affinity timeout of secs seconds.
type chainKind struct {
	np   bool
	secs uint32
}

func newSvcState() *svcState {
	return &svcState{
		ports:  map[string]*svcEntry{},
		fronts: map[frontKey]*svcEntry{},
		vips:   map[netip.Addr]int{},
		shape:  svcShape{blocks: map[chainKind]map[int]int{}},
	}
}

// svcChange replaces old (nil: a new service port) by new (nil: removed).
type svcChange struct{ old, new *svcEntry }

// svcPlan is what a sync does to the service ports: validated, not yet
// applied to the state.
type svcPlan struct {
	st            *svcState
	gen           uint64
	changes       []svcChange
	order         []*svcEntry    // every service port after the plan, in the given order
	ranges        []netip.Prefix // the service ranges, when they changed
	rangesChanged bool
}

// planServices compares the service ports of a normalized config with the
// state (nil: none applied) and validates every new or changed one, and the
// claims of all of them: no two service ports on one VIP, protocol and port
// or on one node port, no node port that is also a published port, and no
// backend in a service range (its connections would be refused). On error
// the state is as before (but for marks that the next plan overwrites).
func planServices(in []ServicePort, ranges []netip.Prefix, hostPort HostPortFunc, st *svcState) (*svcPlan, error) {
	if st == nil {
		st = newSvcState()
	}
	st.gen++ // a new mark even if an earlier plan failed half-way
	p := &svcPlan{st: st, gen: st.gen, order: make([]*svcEntry, 0, len(in))}
	claimed := map[string]bool{} // keys of new service ports
	taken := func(key string) bool {
		e := st.ports[key]
		return claimed[key] || e != nil && e.gen == p.gen
	}
	for i := range in {
		sp := &in[i]
		// Callers list service ports in the same order every time: the
		// entry at the same position is the first guess, which saves a
		// map lookup per service port.
		var old *svcEntry
		key := sp.Name
		if i < len(st.order) && st.order[i].in.Name == sp.Name && st.order[i].gen != p.gen {
			old = st.order[i]
			key = old.key
		} else {
			for n := 2; taken(key); n++ { // a name given twice
				key = fmt.Sprintf("%s\x00%d", sp.Name, n)
			}
			old = st.ports[key]
		}
		if old != nil && old.sameInput(sp) {
			old.gen = p.gen
			p.order = append(p.order, old)
			continue
		}
		norm, n4, err := normalizeServicePort(*sp)
		if err != nil {
			return nil, err
		}
		in := *sp
		in.VIPs, in.Backends = slices.Clone(sp.VIPs), slices.Clone(sp.Backends)
		e := &svcEntry{key: key, in: in, sp: norm, n4: n4, gen: p.gen}
		if old != nil {
			old.gen = p.gen
		} else {
			claimed[key] = true
		}
		p.changes = append(p.changes, svcChange{old: old, new: e})
		p.order = append(p.order, e)
	}
	for _, e := range st.order {
		if e.gen != p.gen {
			p.changes = append(p.changes, svcChange{old: e})
		}
	}
	if err := p.checkClaims(hostPort); err != nil {
		return nil, err
	}
	return p, p.checkRanges(ranges)
}

// checkRanges finds backends in the service ranges: the changed service
// ports', or everybody's when the ranges changed.
func (p *svcPlan) checkRanges(ranges []netip.Prefix) error {
	check := func(e *svcEntry) error {
		for _, b := range e.sp.Backends {
			for _, r := range ranges {
				if r.Contains(b.Addr()) {
					return fmt.Errorf("%s: backend %s is in the service range %s, where nothing but a service port answers; endpoints need addresses outside the service ranges", e.sp, b, r)
				}
			}
		}
		return nil
	}
	if slices.Equal(ranges, p.st.ranges) {
		for _, c := range p.changes {
			if c.new != nil {
				if err := check(c.new); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, e := range p.order {
		if err := check(e); err != nil {
			return err
		}
	}
	p.ranges, p.rangesChanged = slices.Clone(ranges), true
	return nil
}

// checkClaims finds the frontends that two service ports claim and node
// ports that are also published ports. Only changed service ports can
// conflict: the others were checked by an earlier plan, and the ports
// feature refuses a published port on a node port.
func (p *svcPlan) checkClaims(hostPort HostPortFunc) error {
	replaced := map[string]bool{}
	for _, c := range p.changes {
		if c.old != nil {
			replaced[c.old.key] = true
		}
	}
	// owner returns who claims f after this plan, if anyone.
	newClaims := map[frontKey]*svcEntry{}
	owner := func(f frontKey) *svcEntry {
		if e := newClaims[f]; e != nil {
			return e
		}
		if e := p.st.fronts[f]; e != nil && !replaced[e.key] {
			return e
		}
		return nil
	}
	for _, c := range p.changes {
		if c.new == nil {
			continue
		}
		for _, f := range c.new.fronts() {
			if o := owner(f); o != nil {
				return fmt.Errorf("%s: %s is also served by %s; a frontend belongs to one service port", c.new.sp, f.describe(c.new.sp.Protocol), o.sp)
			}
			newClaims[f] = c.new
		}
	}
	for _, c := range p.changes {
		if c.new == nil || c.new.sp.NodePort == 0 || hostPort == nil {
			continue
		}
		if pub, taken := hostPort(c.new.sp.Protocol, c.new.sp.NodePort); taken {
			return fmt.Errorf("%s: node port %d/%s is also the published port %s; pick another node port or host port", c.new.sp, c.new.sp.NodePort, c.new.sp.Protocol, pub)
		}
	}
	return nil
}

func (f frontKey) describe(proto string) string {
	if !f.addr.IsValid() {
		return fmt.Sprintf("node port %d/%s", f.port, proto)
	}
	return fmt.Sprintf("%s/%s", netip.AddrPortFrom(f.addr, f.port), proto)
}

// svcDelta is what the element sets must lose and gain. The VIP sets'
// part is known when the plan is applied; the rest is rendered from the
// changes when resolve is first called (a full sync never calls it: it
// renders everything).
type svcDelta struct {
	del, add [numSvcSets][]svcElem
	changes  []svcChange
	resolved bool
}

func (d *svcDelta) empty() bool {
	d.resolve()
	for i := range d.del {
		if len(d.del[i])+len(d.add[i]) > 0 {
			return false
		}
	}
	return true
}

// resolve renders the element changes of the service ports that changed.
func (d *svcDelta) resolve() {
	if d.resolved {
		return
	}
	d.resolved = true
	a := &elemArena{}
	var scratch []svcElem
	for _, c := range d.changes {
		switch {
		case c.new == nil:
			scratch = c.old.elems(a, scratch[:0])
			for _, x := range scratch {
				d.del[x.set] = append(d.del[x.set], x)
			}
		case c.old == nil:
			scratch = c.new.elems(a, scratch[:0])
			for _, x := range scratch {
				d.add[x.set] = append(d.add[x.set], x)
			}
		default:
			d.diff(a, c.old, c.new)
		}
	}
}

// apply brings the state to the plan and returns the changes. It is the
// commit point: call it only when the plan is going to be sent (the state
// is dropped if sending fails).
func (p *svcPlan) apply() *svcDelta {
	st, d := p.st, &svcDelta{changes: p.changes}
	vipBefore := map[netip.Addr]int{}
	touch := func(e *svcEntry) {
		for _, a := range e.sp.VIPs {
			if _, ok := vipBefore[a]; !ok {
				vipBefore[a] = st.vips[a]
			}
		}
	}
	for _, c := range p.changes {
		if c.old != nil {
			touch(c.old)
			st.unindex(c.old)
			if c.new == nil {
				delete(st.ports, c.old.key)
			}
		}
	}
	for _, c := range p.changes {
		if c.new != nil {
			touch(c.new)
			st.index(c.new)
			st.ports[c.new.key] = c.new
		}
	}
	st.order = p.order
	if p.rangesChanged {
		st.ranges = p.ranges
	}
	for a, before := range vipBefore {
		after := st.vips[a]
		s := ssVIPs4
		if a.Is6() {
			s = ssVIPs6
		}
		x := svcElem{set: s, key: a.AsSlice()}
		switch {
		case before == 0 && after > 0:
			d.add[s] = append(d.add[s], x)
		case before > 0 && after == 0:
			d.del[s] = append(d.del[s], x)
		}
	}
	return d
}

// diff adds what turns old's elements into new's: a changed value is a
// delete and an add of the same key.
func (d *svcDelta) diff(a *elemArena, old, new *svcEntry) {
	before := map[string]svcElem{}
	for _, x := range old.elems(a, nil) {
		before[x.id()] = x
	}
	for _, x := range new.elems(a, nil) {
		id := x.id()
		prev, ok := before[id]
		delete(before, id)
		if ok && prev.sameValue(x) {
			continue
		}
		if ok {
			d.del[x.set] = append(d.del[x.set], prev)
		}
		d.add[x.set] = append(d.add[x.set], x)
	}
	for _, x := range before {
		d.del[x.set] = append(d.del[x.set], x)
	}
}

func (st *svcState) index(e *svcEntry) {
	for _, f := range e.fronts() {
		st.fronts[f] = e
	}
	for _, a := range e.sp.VIPs {
		st.vips[a]++
	}
	st.shape.add(e, 1)
}

func (st *svcState) unindex(e *svcEntry) {
	for _, f := range e.fronts() {
		if st.fronts[f] == e {
			delete(st.fronts, f)
		}
	}
	for _, a := range e.sp.VIPs {
		if st.vips[a]--; st.vips[a] <= 0 {
			delete(st.vips, a)
		}
	}
	st.shape.add(e, -1)
}

// add counts (n = 1) or uncounts (n = -1) what e needs of the chains: per
// family with backends, the count chain of K for its VIPs of that family
// and for its node port.
func (s *svcShape) add(e *svcEntry, n int) {
	secs := e.sp.affinitySeconds()
	for _, v6 := range []bool{false, true} {
		k := len(e.backends(v6))
		if k == 0 {
			continue
		}
		if slices.ContainsFunc(e.sp.VIPs, func(a netip.Addr) bool { return a.Is6() == v6 }) {
			s.bump(chainKind{secs: secs}, countBlock(k), n)
		}
		if e.sp.NodePort != 0 {
			s.bump(chainKind{np: true, secs: secs}, countBlock(k), n)
		}
	}
}

// hasAffinity reports whether some service port has session affinity.
func (st *svcState) hasAffinity() bool {
	for kind := range st.shape.blocks {
		if kind.secs > 0 {
			return true
		}
	}
	return false
}

func (s *svcShape) bump(kind chainKind, block, n int) {
	m := s.blocks[kind]
	if m == nil {
		m = map[int]int{}
		s.blocks[kind] = m
	}
	bump(m, block, n)
	if len(m) == 0 {
		delete(s.blocks, kind)
	}
}

func bump[K comparable](m map[K]int, k K, n int) {
	if m[k] += n; m[k] <= 0 {
		delete(m, k)
	}
}
