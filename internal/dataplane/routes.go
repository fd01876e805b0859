package dataplane

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/knit-net/knit/internal/kname"
)

// RouteProtocol marks the routes knit makes (rtm_protocol), so that it finds
// and removes its own and never anyone else's.
const RouteProtocol = netlink.RouteProtocol(kname.RouteProtocol)

// LocalRoutes keeps "local PREFIX dev lo table local proto 75" routes: the
// service range and load balancer addresses are the host's own, so
// connections from the host reach the DNAT in the output hook, packets
// to a VIP that nothing DNATs are refused locally, and the host answers ARP
// for load balancer addresses on every interface.
type LocalRoutes struct{ H *netlink.Handle }

// SyncLocalRoutes makes knit's local routes exactly want: missing ones are
// added, knit's routes not in want removed; other routes are never touched.
func (r LocalRoutes) SyncLocalRoutes(want []netip.Prefix) error {
	lo, err := r.H.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo: %w", err)
	}
	have := map[netip.Prefix]netlink.Route{}
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rs, err := r.H.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_LOCAL, Protocol: RouteProtocol},
			netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
		if err != nil {
			return fmt.Errorf("list knit's local routes: %w", err)
		}
		for _, rt := range rs {
			if rt.Dst == nil {
				continue
			}
			if p, ok := prefixOf(rt.Dst); ok {
				have[p] = rt
			}
		}
	}
	wanted := map[netip.Prefix]bool{}
	for _, p := range want {
		p = p.Masked()
		wanted[p] = true
		if _, ok := have[p]; ok {
			continue
		}
		rt := netlink.Route{
			LinkIndex: lo.Attrs().Index, Dst: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())},
			Table: unix.RT_TABLE_LOCAL, Type: unix.RTN_LOCAL, Scope: netlink.SCOPE_HOST, Protocol: RouteProtocol,
		}
		if err := r.H.RouteReplace(&rt); err != nil {
			return fmt.Errorf("add local route %s dev lo: %w", p, err)
		}
	}
	for p, rt := range have {
		if !wanted[p] {
			if err := r.H.RouteDel(&rt); err != nil {
				return fmt.Errorf("remove local route %s: %w", p, err)
			}
		}
	}
	return nil
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones).Masked(), true
}
