// Package conntrack deletes the connection tracking entries that published
// ports and service backends leave behind.
//
// Design notes:
//
//   - NAT is decided once per connection, on its first packet, and kept in
//     the conntrack entry. A UDP "connection" lives as long as packets keep
//     coming (every packet refreshes its timeout), so a client that keeps
//     sending keeps its old translation for ever: after a published port is
//     removed or moved to another container, it still goes to the old one;
//     and a client that sent before the port was published keeps reaching
//     the host itself. Docker, the CNI portmap plugin and kube-proxy delete
//     such entries; so does FlushUDP.
//   - TCP needs nothing: a connection to a container that is gone fails
//     (reset or timeout) and the client's next connection is decided by the
//     ruleset of the moment. An established connection to a container
//     that still runs carries on, as with Docker.
//   - The kernel's conntrack netlink interface offers no filtered delete:
//     the table is dumped and each matching entry deleted
//     (vishvananda/netlink's ConntrackDeleteFilters), once per family.
//   - Services likewise: a UDP client of a VIP or node port keeps the
//     backend its first packet was DNATed to, after that backend is gone
//     (FlushServiceUDP). A service port gaining its first backend needs
//     nothing: while it had none, its packets were refused, and a refused
//     packet leaves no entry (it is dropped before conntrack confirms it).
//   - The package knows nothing of nftables; ports.FlushUDP and
//     services.FlushServiceUDP (packages under dataplane/nft) take the
//     data plane's types and call FlushUDP and
//     FlushServiceUDP.
//
// The product never executes conntrack; tests use it only to look.
package conntrack

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// UDPMapping is what FlushUDP needs to know of one published UDP port.
type UDPMapping struct {
	HostIP        netip.Addr // invalid or unspecified: every address of the host
	HostPort      uint16
	ContainerIP   netip.Addr
	ContainerPort uint16
}

// FlushUDP deletes, in the network namespace at netnsPath ("" = the calling
// thread's), the conntrack entries of UDP flows that go, or ought to go,
// through the given published ports:
//
//   - flows translated to a mapping's ContainerIP:ContainerPort from its
//     HostPort (on its HostIP when it has one): call FlushUDP with the old
//     mappings after a sync that removed or changed them, so that clients
//     stop sending to the old container;
//   - flows to HostPort on an address of the host that no translation
//     touched: call it with the new mappings after a sync that added them,
//     so that clients that were already sending reach the container.
//
// Flows through the host to other machines' ports are left alone, even on
// the same port numbers. Entries already gone are not an error.
func FlushUDP(netnsPath string, mappings []UDPMapping) error {
	if len(mappings) == 0 {
		return nil
	}
	f := newUDPFilter(mappings)
	return deleteFlows(netnsPath, "flush udp conntrack entries", f.local, f)
}

// deleteFlows deletes the entries f matches in the namespace at netnsPath
// ("" = the calling thread's), once per family, after filling local with
// the namespace's addresses.
func deleteFlows(netnsPath, what string, local map[netip.Addr]bool, f netlink.CustomConntrackFilter) error {
	if netnsPath == "" {
		netnsPath = "/proc/thread-self/ns/net"
	}
	ns, err := netns.GetFromPath(netnsPath)
	if err != nil {
		return fmt.Errorf("%s: open network namespace %s: %w", what, netnsPath, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_NETFILTER, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("%s: netlink in %s: %w", what, netnsPath, err)
	}
	defer h.Close()
	addrs, err := h.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("%s: list addresses in %s: %w", what, netnsPath, err)
	}
	for _, a := range addrs {
		local[addrOf(a.IP)] = true
	}
	var errs []error
	for _, family := range []netlink.InetFamily{unix.AF_INET, unix.AF_INET6} {
		if _, err := h.ConntrackDeleteFilters(netlink.ConntrackTable, family, f); err != nil {
			errs = append(errs, fmt.Errorf("%s (family %d) in %s: %w", what, family, netnsPath, err))
		}
	}
	return errors.Join(errs...)
}

// udpFilter matches the entries FlushUDP deletes.
type udpFilter struct {
	byHostPort map[uint16][]UDPMapping
	local      map[netip.Addr]bool // the host's addresses
}

func newUDPFilter(mappings []UDPMapping) udpFilter {
	f := udpFilter{byHostPort: map[uint16][]UDPMapping{}, local: map[netip.Addr]bool{}}
	for _, m := range mappings {
		f.byHostPort[m.HostPort] = append(f.byHostPort[m.HostPort], m)
	}
	return f
}

// MatchConntrackFlow implements netlink.CustomConntrackFilter.
func (f udpFilter) MatchConntrackFlow(flow *netlink.ConntrackFlow) bool {
	orig, reply := flow.Forward, flow.Reverse
	if orig.Protocol != unix.IPPROTO_UDP {
		return false
	}
	dst, from := addrOf(orig.DstIP), addrOf(reply.SrcIP)
	for _, m := range f.byHostPort[orig.DstPort] {
		if m.HostIP.IsValid() && !m.HostIP.IsUnspecified() && m.HostIP != dst {
			continue
		}
		if from == m.ContainerIP && reply.SrcPort == m.ContainerPort {
			return true // translated to the mapping's container
		}
		if from == dst && reply.SrcPort == orig.DstPort && f.local[dst] && dst.Is4() == m.ContainerIP.Is4() {
			return true // untranslated, to the host itself
		}
	}
	return false
}

// addrOf converts a netlink address, unmapping IPv4 in IPv6 form; nil is
// the invalid address.
func addrOf(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}
