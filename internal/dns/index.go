package dns

import (
	"net/netip"
	"reflect"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// Endpoint is one container interface as DNS sees it.
type Endpoint struct {
	NetworkID string
	// Addrs are the container's addresses on that network.
	Addrs []netip.Addr
	// Aliases are extra names on that network (--alias), visible only to
	// clients on that network.
	Aliases []string
}

// Container is what the server knows about one container.
type Container struct {
	ID, Name, Hostname string
	Endpoints          []Endpoint
	// Upstreams are the container's --dns servers; empty means the server's
	// default upstreams. A zero port means 53.
	Upstreams []netip.AddrPort
	// Internal is true when every network of the container is --internal:
	// names outside knit get REFUSED at once (no forwarding, no timeout).
	Internal bool
}

// snapshot is the immutable index queries read through Server.snap. Every
// SetContainer or DeleteContainer builds a new one (copy on write) and swaps
// it in, so queries never lock. What a change does not touch is shared with
// the previous snapshot: the tables of other networks, and the shards of the
// two global maps (see table.go) that hold none of its keys.
type snapshot struct {
	// clients maps every address of every container to its view.
	clients [shardCount]map[netip.Addr]*client
	// nets holds one table per network, by the index in registry.netIdx;
	// freed slots are nil.
	nets []*netTable
	// known counts, per lowercased name, the containers that have it on any
	// network: a known name no network of the client has is NXDOMAIN.
	known [shardCount]map[string]int32
}

// client is what a query's source address tells: the querying container's
// networks and where its other queries go.
type client struct {
	id        string
	nets      []int32
	upstreams []netip.AddrPort
	internal  bool
}

// unknownClient is the view of a source address no container owns: it sees no
// container names and forwards to the default upstreams.
var unknownClient = &client{}

// registry is the mutable source the snapshots are built from; Server.mu
// guards it.
type registry struct {
	containers map[string]*Container      // normalized copies, by ID
	members    map[string]map[string]bool // network ID -> container IDs
	netIdx     map[string]int32           // network ID -> index in snapshot.nets
	free       []int32                    // unused indices of snapshot.nets
}

func newRegistry() registry {
	return registry{containers: map[string]*Container{}, members: map[string]map[string]bool{}, netIdx: map[string]int32{}}
}

// SetContainer adds the container or replaces the one with its ID. The next
// query sees the change.
func (s *Server) SetContainer(c Container) {
	if c.ID == "" {
		s.log.Warn("dns: container without an ID ignored", "name", c.Name)
		return
	}
	n := normalize(c)
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.reg.containers[c.ID]
	if old != nil && reflect.DeepEqual(old, n) {
		return
	}
	s.applyLocked(old, n)
}

// DeleteContainer removes the container; its names are gone for the next
// query. Deleting an unknown ID does nothing.
func (s *Server) DeleteContainer(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.reg.containers[id]; old != nil {
		s.applyLocked(old, nil)
	}
}

// applyLocked replaces old (nil: none) by c (nil: delete) in the registry and
// publishes a new snapshot. Only the tables of the networks of old and c are
// copied and changed; the others are shared with the current snapshot.
func (s *Server) applyLocked(old, c *Container) {
	reg := &s.reg
	cur := s.snap.Load()
	e := &edit{next: &snapshot{clients: cur.clients, nets: slices.Clone(cur.nets), known: cur.known}}
	tables := map[string]*netTable{} // the copies this change writes to
	table := func(netID string) *netTable {
		t := tables[netID]
		if t == nil {
			idx := reg.index(netID, e.next)
			t = e.next.nets[idx].clone()
			tables[netID], e.next.nets[idx] = t, t
		}
		return t
	}
	if old != nil {
		for _, ep := range old.Endpoints {
			table(ep.NetworkID).remove(old, ep)
			delete(reg.members[ep.NetworkID], old.ID)
			for _, a := range ep.Addrs {
				if cl := e.next.client(a); cl.id == old.ID {
					delete(e.clients(a), a)
				}
			}
		}
		for _, name := range allNames(old) {
			known := e.known(name)
			if known[name]--; known[name] <= 0 {
				delete(known, name)
			}
		}
		delete(reg.containers, old.ID)
	}
	if c != nil {
		reg.containers[c.ID] = c
		cl := &client{id: c.ID, upstreams: c.Upstreams, internal: c.Internal}
		for _, ep := range c.Endpoints {
			table(ep.NetworkID).add(c, ep)
			if reg.members[ep.NetworkID] == nil {
				reg.members[ep.NetworkID] = map[string]bool{}
			}
			reg.members[ep.NetworkID][c.ID] = true
			cl.nets = append(cl.nets, reg.netIdx[ep.NetworkID])
			for _, a := range ep.Addrs {
				e.clients(a)[a] = cl
			}
		}
		for _, name := range allNames(c) {
			e.known(name)[name]++
		}
	}
	for netID := range tables {
		if len(reg.members[netID]) == 0 { // the last container left: free the slot
			idx := reg.netIdx[netID]
			delete(reg.members, netID)
			delete(reg.netIdx, netID)
			reg.free = append(reg.free, idx)
			e.next.nets[idx] = nil
		}
	}
	s.snap.Store(e.next)
}

// index returns the network's slot in next.nets, taking a free one (or a new
// one) for a network seen for the first time.
func (reg *registry) index(netID string, next *snapshot) int32 {
	if idx, ok := reg.netIdx[netID]; ok {
		return idx
	}
	var idx int32
	if n := len(reg.free); n > 0 {
		idx, reg.free = reg.free[n-1], reg.free[:n-1]
	} else {
		idx = int32(len(next.nets))
		next.nets = append(next.nets, nil)
	}
	reg.netIdx[netID] = idx
	return idx
}

// normalize returns a private copy of c: names without a trailing dot and,
// but for Name, lowercased (Name keeps its case for PTR answers and is
// lowercased where it is a key); addresses unmapped; empty and repeated
// entries dropped; endpoints on one network merged; upstream port 0 made 53.
func normalize(c Container) *Container {
	n := &Container{ID: c.ID, Internal: c.Internal, Name: strings.TrimSuffix(c.Name, "."), Hostname: lowerName(c.Hostname)}
	byNet := map[string]int{}
	for _, ep := range c.Endpoints {
		i, ok := byNet[ep.NetworkID]
		if !ok {
			i = len(n.Endpoints)
			byNet[ep.NetworkID] = i
			n.Endpoints = append(n.Endpoints, Endpoint{NetworkID: ep.NetworkID})
		}
		e := &n.Endpoints[i]
		for _, a := range ep.Addrs {
			if a = a.Unmap().WithZone(""); a.IsValid() && !slices.Contains(e.Addrs, a) {
				e.Addrs = append(e.Addrs, a)
			}
		}
		for _, a := range ep.Aliases {
			e.Aliases = append(e.Aliases, lowerName(a))
		}
		e.Aliases = dedupe(e.Aliases)
	}
	for _, u := range c.Upstreams {
		if u.Port() == 0 {
			u = netip.AddrPortFrom(u.Addr(), 53)
		}
		n.Upstreams = append(n.Upstreams, netip.AddrPortFrom(u.Addr().Unmap(), u.Port()))
	}
	return n
}

// ptrName is the PTR target for c's addresses: its name, else its hostname,
// as a fully qualified name; "" when that is not a valid domain name.
func ptrName(c *Container) string {
	name := c.Name
	if name == "" {
		name = c.Hostname
	}
	if name == "" {
		return ""
	}
	if _, ok := dns.IsDomainName(name); !ok {
		return ""
	}
	return name + "."
}

// allNames is every name c answers to on some network, lowercased, each once.
func allNames(c *Container) []string {
	names := []string{lowerName(c.Name), c.Hostname}
	for _, ep := range c.Endpoints {
		names = append(names, ep.Aliases...)
	}
	return dedupe(names)
}

// dedupe lowercases names (already lowercase ones are not copied) and drops
// empty and repeated ones, keeping the first of each.
func dedupe(names []string) []string {
	out := names[:0:0]
	for _, n := range names {
		if n = lowerName(n); n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}
