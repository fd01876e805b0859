package bridge

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ipNet converts a prefix that keeps its host bits (10.1.0.2/24) to the
// netlink library's form.
func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// prefixOf converts back; ok is false for a malformed address.
func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	ones, bits := n.Mask.Size()
	if bits != a.BitLen() {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, ones), true
}

// addAddr adds p to link; IPv6 addresses skip duplicate address detection so
// they are usable at once (knit's IPAM guarantees uniqueness on the bridge).
// An address already present is no error.
func addAddr(h *netlink.Handle, link netlink.Link, p netip.Prefix) error {
	a := &netlink.Addr{IPNet: ipNet(p)}
	if p.Addr().Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	if err := h.AddrAdd(link, a); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add address %s: %w", p, err)
	}
	return nil
}

// syncAddrs makes want exactly the addresses of link, IPv6 link-local ones
// aside, and returns what it changed. Missing addresses are added before
// extra ones are deleted. Exceptions go first: an address that failed DAD,
// and an IPv6 address present with another prefix length (IPv6 refuses the
// same address twice). Deleting a primary IPv4 address takes its secondaries
// with it, so a round that deleted something is checked once more.
func syncAddrs(h *netlink.Handle, link netlink.Link, want []netip.Prefix) ([]string, error) {
	var changes []string
	for range 2 {
		have, err := h.AddrList(link, netlink.FAMILY_ALL)
		if err != nil {
			return changes, fmt.Errorf("list addresses: %w", err)
		}
		wantAddr := make(map[netip.Addr]bool, len(want))
		for _, p := range want {
			wantAddr[p.Addr()] = true
		}
		present := make(map[netip.Prefix]bool, len(have))
		var first, extra []netlink.Addr
		for _, a := range have {
			p, ok := prefixOf(a.IPNet)
			if !ok || (p.Addr().Is6() && p.Addr().IsLinkLocalUnicast()) {
				continue
			}
			switch {
			case a.Flags&unix.IFA_F_DADFAILED != 0, p.Addr().Is6() && wantAddr[p.Addr()] && !slices.Contains(want, p):
				first = append(first, a)
			case slices.Contains(want, p):
				present[p] = true
			default:
				extra = append(extra, a)
			}
		}
		var missing []netip.Prefix
		for _, p := range want {
			if !present[p] {
				missing = append(missing, p)
			}
		}
		if len(first)+len(missing)+len(extra) == 0 {
			return changes, nil
		}
		var errs []error
		del := func(a netlink.Addr) {
			if err := h.AddrDel(link, &a); err != nil && !isNotFound(err) {
				errs = append(errs, fmt.Errorf("delete address %s: %w", a.IPNet, err))
				return
			}
			changes = append(changes, "deleted address "+a.IPNet.String())
		}
		for _, a := range first {
			del(a)
		}
		for _, p := range missing {
			if err := addAddr(h, link, p); err != nil {
				errs = append(errs, err)
				continue
			}
			changes = append(changes, "added address "+p.String())
		}
		for _, a := range extra {
			del(a)
		}
		if err := errors.Join(errs...); err != nil || len(first)+len(extra) == 0 {
			return changes, err
		}
	}
	return changes, nil
}

// syncDefaultRoutes makes the main table's default routes through the link
// with ifindex index exactly one per gateway in gws (at most one per family)
// and returns what it changed. A default route of a family without a gateway
// here is deleted: another interface owns it.
func syncDefaultRoutes(h *netlink.Handle, index int, gws []netip.Addr) ([]string, error) {
	routes, err := h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{LinkIndex: index}, netlink.RT_FILTER_OIF)
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	var changes []string
	var errs []error
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		var gw netip.Addr
		for _, g := range gws {
			if g = g.Unmap(); g.Is4() == (family == netlink.FAMILY_V4) {
				gw = g
			}
		}
		found := false
		var stale []netlink.Route
		for _, r := range routes {
			if r.Family != family || !isDefault(r.Dst) {
				continue
			}
			if g, ok := netip.AddrFromSlice(r.Gw); !found && ok && g.Unmap() == gw && len(r.MultiPath) == 0 {
				found = true
				continue
			}
			stale = append(stale, r)
		}
		if gw.IsValid() && !found {
			if err := replaceDefaultRoute(h, index, gw); err != nil {
				errs = append(errs, err)
			} else {
				changes = append(changes, "set default route via "+gw.String())
			}
		}
		for _, r := range stale {
			if err := h.RouteDel(&r); err != nil && !isNotFound(err) {
				errs = append(errs, fmt.Errorf("delete route %s: %w", r, err))
				continue
			}
			changes = append(changes, fmt.Sprintf("deleted default route via %s", r.Gw))
		}
	}
	return changes, errors.Join(errs...)
}

// replaceDefaultRoute points the family's default route at gw through the
// link with ifindex index. Replace, not add, so that the route moves here
// from another interface of the container in one step.
func replaceDefaultRoute(h *netlink.Handle, index int, gw netip.Addr) error {
	r := &netlink.Route{LinkIndex: index, Gw: gw.AsSlice()}
	if err := h.RouteReplace(r); err != nil {
		return fmt.Errorf("set default route via %s: %w", gw, err)
	}
	return nil
}

func isDefault(dst *net.IPNet) bool {
	if dst == nil {
		return true
	}
	ones, _ := dst.Mask.Size()
	return ones == 0
}
