package dns

import (
	"maps"
	"net/netip"
	"slices"
)

// netTable is one network's names and reverse names. A table in a published
// snapshot is never changed: a change works on a clone.
type netTable struct {
	// names maps a lowercased name (no trailing dot) to the addresses of the
	// containers having it on this network.
	names map[string]rrset
	// ptr maps a container address on this network to "name.".
	ptr map[netip.Addr]string
}

// rrset is the addresses behind one name on one network, in compact form,
// and how many containers have the name there (one may have no address).
// Its slices may be shared with older snapshots: they are never written in
// place, only replaced.
type rrset struct {
	v4      [][4]byte
	v6      [][16]byte
	holders int32
}

// clone returns a copy of t whose maps may be changed; an empty table for nil.
func (t *netTable) clone() *netTable {
	if t == nil {
		return &netTable{names: map[string]rrset{}, ptr: map[netip.Addr]string{}}
	}
	return &netTable{names: maps.Clone(t.names), ptr: maps.Clone(t.ptr)}
}

// add enters container c's names and addresses on ep's network.
func (t *netTable) add(c *Container, ep Endpoint) {
	v4, v6 := split(ep.Addrs)
	for _, name := range endpointNames(c, ep) {
		rs := t.names[name]
		// Clip: append must copy, not write into an array older snapshots share
		rs.v4 = append(slices.Clip(rs.v4), v4...)
		rs.v6 = append(slices.Clip(rs.v6), v6...)
		rs.holders++
		t.names[name] = rs
	}
	if ptr := ptrName(c); ptr != "" {
		for _, a := range ep.Addrs {
			t.ptr[a] = ptr
		}
	}
}

// remove takes out what add(c, ep) entered.
func (t *netTable) remove(c *Container, ep Endpoint) {
	v4, v6 := split(ep.Addrs)
	for _, name := range endpointNames(c, ep) {
		rs, ok := t.names[name]
		if !ok {
			continue
		}
		if rs.holders--; rs.holders <= 0 {
			delete(t.names, name)
			continue
		}
		rs.v4 = without(rs.v4, v4)
		rs.v6 = without(rs.v6, v6)
		t.names[name] = rs
	}
	for _, a := range ep.Addrs {
		delete(t.ptr, a)
	}
}

// endpointNames are the names c has on ep's network: its name, hostname and
// the endpoint's aliases, lowercased, each once.
func endpointNames(c *Container, ep Endpoint) []string {
	return dedupe(append([]string{c.Name, c.Hostname}, ep.Aliases...))
}

// split returns the IPv4 and IPv6 addresses of addrs in compact form.
func split(addrs []netip.Addr) (v4 [][4]byte, v6 [][16]byte) {
	for _, a := range addrs {
		if a.Is4() {
			v4 = append(v4, a.As4())
		} else {
			v6 = append(v6, a.As16())
		}
	}
	return v4, v6
}

// without returns a new slice of the elements of s not in drop (nil if none
// is left).
func without[T comparable](s, drop []T) []T {
	var out []T
	for _, x := range s {
		if !slices.Contains(drop, x) {
			out = append(out, x)
		}
	}
	return out
}
