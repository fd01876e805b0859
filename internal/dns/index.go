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
// it in, so queries never lock. A change copies only the tables of the
// networks where the container's entries differ, and of those tables and the
// global maps only the shards holding keys it writes (smap.go); the rest is
// shared with the previous snapshot.
type snapshot struct {
	// clients maps every address of every container to its view.
	clients smap[netip.Addr, *client]
	// nets holds one table per network, by the index in registry.nets; freed
	// slots are nil.
	nets []*netTable
	// known counts, per lowercased name, the containers that have it on any
	// network: a known name no network of the client has is NXDOMAIN.
	known smap[string, int32]
}

// client is what a query's source address tells: the querying container's
// networks and where its other queries go.
type client struct {
	id        string
	nets      []int32
	upstreams []netip.AddrPort
	internal  bool
}

func (cl *client) equal(o *client) bool {
	return cl.id == o.id && cl.internal == o.internal && slices.Equal(cl.nets, o.nets) && slices.Equal(cl.upstreams, o.upstreams)
}

// unknownClient is the view of a source address no container owns: it sees no
// container names and forwards to the default upstreams.
var unknownClient = &client{}

// registry is the mutable source the snapshots are built from; Server.mu
// guards it.
type registry struct {
	containers map[string]*Container // normalized copies, by ID
	nets       map[string]*netSlot   // by network ID
	free       []int32               // unused indices of snapshot.nets
}

// netSlot is a network's index in snapshot.nets and its number of containers.
type netSlot struct{ idx, members int32 }

func newRegistry() registry {
	return registry{containers: map[string]*Container{}, nets: map[string]*netSlot{}}
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

// slot returns the network's slot, taking a free index of next.nets (or a
// new one) for a network seen for the first time.
func (reg *registry) slot(netID string, next *snapshot) *netSlot {
	if sl := reg.nets[netID]; sl != nil {
		return sl
	}
	sl := &netSlot{}
	if n := len(reg.free); n > 0 {
		sl.idx, reg.free = reg.free[n-1], reg.free[:n-1]
	} else {
		sl.idx = int32(len(next.nets))
		next.nets = append(next.nets, nil)
	}
	reg.nets[netID] = sl
	return sl
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

// entries returns what c (nil: none) enters in the index: for each of its
// endpoints, in order, its view of the endpoint's network; and every name it
// has on some network, lowercased, each once. Name is lowercased once, so
// every key for it shares one string.
func entries(c *Container) ([]view, []string) {
	if c == nil {
		return nil, nil
	}
	base := []string{lowerName(c.Name), c.Hostname}
	views := make([]view, len(c.Endpoints))
	all := base
	ptr := ptrName(c)
	for i, ep := range c.Endpoints {
		views[i] = view{names: dedupe(append(slices.Clip(base), ep.Aliases...)), addrs: ep.Addrs, ptr: ptr}
		all = append(all, ep.Aliases...)
	}
	return views, dedupe(all)
}

// dedupe lowercases names (already lowercase ones are not copied) and drops
// empty and repeated ones, keeping the first of each.
func dedupe(names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		if n = lowerName(n); n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}
