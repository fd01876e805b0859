package nft

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/policy"
)

// maxIfNameLen is IFNAMSIZ minus the terminating NUL.
const maxIfNameLen = 15

// Config is the whole desired state of knit's table. Sync renders it
// completely every time; anything not described here is removed from the
// table.
type Config struct {
	Networks []Network
	// Ports are the published ports of every container, each DNATed from
	// the host's addresses to its container (see Port).
	Ports []Port
	// Services are the load-balanced service ports (see ServicePort).
	Services []ServicePort
	// ServiceRanges are the ClusterIP ranges (e.g. 10.96.0.0/12): a new
	// connection to an address in them, or to any VIP, that no service
	// port DNATed is refused (TCP reset, otherwise ICMP port unreachable),
	// so that a service without endpoints, or a VIP on a port it does not
	// serve, refuses at once instead of hanging or reaching a socket of the
	// host. No backend may lie in them.
	ServiceRanges []netip.Prefix
	// Policy is the network policy to enforce, from policy.Compile; nil
	// is none (and no policy chains). Sync treats it as read-only and
	// diffs it against the last one applied: pass a new Compiled for a
	// change, never a modified one.
	Policy *policy.Compiled
}

// Network is the dataplane's view of one bridge network: only what the
// ruleset depends on.
type Network struct {
	// Bridge is the kernel bridge's name (at most 15 bytes).
	Bridge string
	// Subnets are the network's address ranges, IPv4 and/or IPv6.
	Subnets []netip.Prefix
	// Internal networks neither reach nor are reached from any interface
	// other than their own bridge, and are never masqueraded.
	Internal bool
}

// FromNetworks converts the API's networks into a Config, keeping only
// networks with driver "bridge" (host, none and other drivers have no part in
// this table).
func FromNetworks(nets []v1.Network) Config {
	var cfg Config
	for _, n := range nets {
		if n.Driver != v1.DriverBridge {
			continue
		}
		dn := Network{Bridge: n.Bridge, Internal: n.Internal}
		for _, s := range n.Subnets {
			dn.Subnets = append(dn.Subnets, s.Subnet)
		}
		cfg.Networks = append(cfg.Networks, dn)
	}
	return cfg
}

// normalize validates the config and returns a copy with networks sorted by
// bridge name and subnets masked, de-duplicated and sorted, so that equal
// configs render the same ruleset, ports checked (see normalizePorts) and
// service ranges masked and sorted. It does not modify c. Service ports
// are passed on as they are: planServices validates them, only those that
// changed since the last sync.
func (c Config) normalize() (Config, error) {
	nets, err := normalizeNetworks(c.Networks)
	if err != nil {
		return Config{}, err
	}
	ports, err := normalizePorts(c.Ports)
	if err != nil {
		return Config{}, err
	}
	ranges := make([]netip.Prefix, 0, len(c.ServiceRanges))
	for _, p := range c.ServiceRanges {
		switch {
		case !p.IsValid():
			return Config{}, fmt.Errorf("service range %v is not a valid prefix", p)
		case p.Addr().Is4In6():
			return Config{}, fmt.Errorf("service range %v is IPv4-mapped IPv6; give it in IPv4 form", p)
		case p.Addr().Zone() != "":
			return Config{}, fmt.Errorf("service range %v has an IPv6 zone; give it without", p)
		}
		ranges = append(ranges, p.Masked())
	}
	slices.SortFunc(ranges, comparePrefix)
	return Config{Networks: nets, Ports: ports, Services: c.Services, ServiceRanges: slices.Compact(ranges), Policy: c.Policy}, nil
}

func normalizeNetworks(in []Network) ([]Network, error) {
	out := make([]Network, 0, len(in))
	seen := make(map[string]bool, len(in))
	for _, n := range in {
		if n.Bridge == "" {
			return nil, fmt.Errorf("network with subnets %v: bridge name is empty; every bridge network needs one", n.Subnets)
		}
		if len(n.Bridge) > maxIfNameLen {
			return nil, fmt.Errorf("bridge %q: name is %d bytes, longer than the kernel's limit of %d", n.Bridge, len(n.Bridge), maxIfNameLen)
		}
		if seen[n.Bridge] {
			return nil, fmt.Errorf("bridge %q: listed by two networks; a bridge belongs to one network", n.Bridge)
		}
		seen[n.Bridge] = true
		subnets := make([]netip.Prefix, 0, len(n.Subnets))
		for _, p := range n.Subnets {
			if !p.IsValid() {
				return nil, fmt.Errorf("bridge %q: subnet %v is not a valid prefix", n.Bridge, p)
			}
			if p.Addr().Is4In6() {
				return nil, fmt.Errorf("bridge %q: subnet %v is IPv4-mapped IPv6; give it in IPv4 form", n.Bridge, p)
			}
			subnets = append(subnets, p.Masked())
		}
		slices.SortFunc(subnets, comparePrefix)
		n.Subnets = slices.Compact(subnets)
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b Network) int { return cmp.Compare(a.Bridge, b.Bridge) })
	return out, nil
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(a.Bits(), b.Bits())
}

// addrRange is an inclusive range of addresses of one family.
type addrRange struct{ first, last netip.Addr }

func (r addrRange) String() string { return r.first.String() + "-" + r.last.String() }

// prefixRange returns the first and last address of a masked prefix.
func prefixRange(p netip.Prefix) addrRange {
	first := p.Addr()
	b := first.AsSlice()
	hostBits := len(b)*8 - p.Bits()
	for i := len(b) - 1; i >= 0 && hostBits > 0; i-- {
		n := min(hostBits, 8)
		b[i] |= byte(1<<n - 1)
		hostBits -= n
	}
	last, _ := netip.AddrFromSlice(b)
	return addrRange{first: first, last: last}
}

// mergeRanges turns prefixes of one family into sorted, disjoint,
// non-adjacent ranges: the kernel's interval sets reject overlapping
// intervals, and two adjacent ones would share a boundary element.
func mergeRanges(prefixes []netip.Prefix) []addrRange {
	rs := make([]addrRange, 0, len(prefixes))
	for _, p := range prefixes {
		rs = append(rs, prefixRange(p))
	}
	slices.SortFunc(rs, func(a, b addrRange) int { return a.first.Compare(b.first) })
	var out []addrRange
	for _, r := range rs {
		if n := len(out); n > 0 {
			prev := &out[n-1]
			next := prev.last.Next()
			if !next.IsValid() || r.first.Compare(next) <= 0 {
				if r.last.Compare(prev.last) > 0 {
					prev.last = r.last
				}
				continue
			}
		}
		out = append(out, r)
	}
	return out
}
