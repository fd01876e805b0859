package dns

import (
	"net/netip"
	"slices"
)

// edit is a snapshot being built by one change.
type edit struct {
	reg            *registry
	next           *snapshot
	netsCopied     bool         // next.nets is private to this change
	clients, known cow          // what the change copied of the global maps
	tables         []*tableEdit // the tables it writes to
}

// applyLocked replaces old (nil: none) by c (nil: delete) in the registry and
// publishes a new snapshot. It writes only what differs between the two: the
// tables of the networks where the container's names, addresses or PTR
// target change (an unchanged network is shared, however large), and in
// those and the global maps, only the entries that change, copying the
// shards that hold them.
func (s *Server) applyLocked(old, c *Container) {
	cur := s.snap.Load()
	next := *cur
	e := &edit{reg: &s.reg, next: &next}
	oldViews, oldNames := entries(old)
	views, names := entries(c)
	if old != nil {
		for i, ep := range old.Endpoints {
			var v *view
			if j := endpoint(c, ep.NetworkID); j >= 0 {
				v = &views[j]
			}
			e.network(ep.NetworkID, &oldViews[i], v)
		}
	}
	if c != nil {
		for i, ep := range c.Endpoints {
			if endpoint(old, ep.NetworkID) < 0 {
				e.network(ep.NetworkID, nil, &views[i])
			}
		}
	}
	e.setClients(cur, old, c)
	for _, name := range oldNames {
		if !slices.Contains(names, name) {
			e.count(name, -1)
		}
	}
	for _, name := range names {
		if !slices.Contains(oldNames, name) {
			e.count(name, 1)
		}
	}
	e.finish()
	if c != nil {
		s.reg.containers[c.ID] = c
	} else {
		delete(s.reg.containers, old.ID)
	}
	s.snap.Store(e.next)
}

// endpoint is the index of c's endpoint on the network, -1 if none or c is nil.
func endpoint(c *Container, netID string) int {
	if c == nil {
		return -1
	}
	return slices.IndexFunc(c.Endpoints, func(ep Endpoint) bool { return ep.NetworkID == netID })
}

// network replaces the container's entries in the network's table, old (nil:
// none) by v (nil: none). Nothing is copied when they are the same.
func (e *edit) network(netID string, old, v *view) {
	if old.equal(v) {
		return
	}
	te := e.table(netID)
	sl := e.reg.nets[netID]
	if old == nil {
		sl.members++
	}
	if v == nil {
		sl.members--
	}
	te.update(old, v)
}

// table returns the network's table as this change writes it.
func (e *edit) table(netID string) *tableEdit {
	for _, te := range e.tables {
		if te.netID == netID {
			return te
		}
	}
	if !e.netsCopied {
		e.next.nets, e.netsCopied = slices.Clone(e.next.nets), true
	}
	sl := e.reg.slot(netID, e.next)
	t := &netTable{}
	if cur := e.next.nets[sl.idx]; cur != nil {
		*t = *cur // shares the shards until they are written
	}
	e.next.nets[sl.idx] = t
	te := &tableEdit{netID: netID, t: t}
	e.tables = append(e.tables, te)
	return te
}

// setClients points the addresses of c (nil: none) at its client view, and
// removes those of old (nil: none) that c no longer has. When the view is
// the same as old's, the addresses c kept are not written at all.
func (e *edit) setClients(cur *snapshot, old, c *Container) {
	var prev, cl *client
	if old != nil {
		for a := range addrsOf(old) {
			if v := cur.client(a); v.id == old.ID {
				prev = v
				break
			}
		}
	}
	if c != nil {
		cl = &client{id: c.ID, upstreams: c.Upstreams, internal: c.Internal}
		for _, ep := range c.Endpoints {
			cl.nets = append(cl.nets, e.reg.nets[ep.NetworkID].idx)
		}
		if prev != nil && prev.equal(cl) {
			cl = prev
		}
	}
	if old != nil {
		for a := range addrsOf(old) {
			if !hasAddr(c, a) && e.next.client(a).id == old.ID {
				e.next.clients.del(a, addrHash(a), &e.clients)
			}
		}
	}
	if c != nil {
		for a := range addrsOf(c) {
			if e.next.client(a) != cl {
				e.next.clients.set(a, addrHash(a), cl, &e.clients)
			}
		}
	}
}

// addrsOf yields every address of c, on every network.
func addrsOf(c *Container) func(func(netip.Addr) bool) {
	return func(yield func(netip.Addr) bool) {
		for _, ep := range c.Endpoints {
			for _, a := range ep.Addrs {
				if !yield(a) {
					return
				}
			}
		}
	}
}

func hasAddr(c *Container, a netip.Addr) bool {
	if c != nil {
		for b := range addrsOf(c) {
			if a == b {
				return true
			}
		}
	}
	return false
}

// count adds d to the number of containers having name.
func (e *edit) count(name string, d int32) {
	h := nameHash(name)
	n, _ := e.next.known.get(name, h)
	if n += d; n <= 0 {
		e.next.known.del(name, h, &e.known)
	} else {
		e.next.known.set(name, h, n, &e.known)
	}
}

// finish resizes the maps the change wrote to and frees the slots of the
// networks it left empty.
func (e *edit) finish() {
	for _, te := range e.tables {
		te.t.names.resize(nameHash[string])
		te.t.ptr.resize(addrHash)
		if sl := e.reg.nets[te.netID]; sl.members <= 0 {
			delete(e.reg.nets, te.netID)
			e.reg.free = append(e.reg.free, sl.idx)
			e.next.nets[sl.idx] = nil
		}
	}
	e.next.clients.resize(addrHash)
	e.next.known.resize(nameHash[string])
}
