package conntrack

import (
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// UDPServiceBackend is a backend that a UDP service frontend no longer
// uses: the flows DNATed from the frontends to Backend are stale.
type UDPServiceBackend struct {
	// Frontends are the VIP:port pairs that sent to Backend.
	Frontends []netip.AddrPort
	// NodePort, when not 0, also sent to Backend from every local address
	// of the host.
	NodePort uint16
	Backend  netip.AddrPort
}

// FlushServiceUDP deletes, in the network namespace at netnsPath ("" = the
// calling thread's), the conntrack entries of UDP flows whose original
// destination is one of a gone backend's frontends (a VIP and port, or a
// local address and the node port) and whose reply comes from the backend:
// call it after a sync that removed the backends, so that clients that
// keep sending move to a remaining backend (or are refused when none is
// left). Other flows, to the same backend from elsewhere or to other
// backends, are left alone. Entries already gone are not an error.
func FlushServiceUDP(netnsPath string, gone []UDPServiceBackend) error {
	if len(gone) == 0 {
		return nil
	}
	f := newServiceFilter(gone)
	return deleteFlows(netnsPath, "flush udp service conntrack entries", f.local, f)
}

// serviceFilter matches the entries FlushServiceUDP deletes.
type serviceFilter struct {
	byBackend map[netip.AddrPort][]UDPServiceBackend
	local     map[netip.Addr]bool // the host's addresses
}

func newServiceFilter(gone []UDPServiceBackend) serviceFilter {
	f := serviceFilter{byBackend: map[netip.AddrPort][]UDPServiceBackend{}, local: map[netip.Addr]bool{}}
	for _, g := range gone {
		f.byBackend[g.Backend] = append(f.byBackend[g.Backend], g)
	}
	return f
}

// MatchConntrackFlow implements netlink.CustomConntrackFilter.
func (f serviceFilter) MatchConntrackFlow(flow *netlink.ConntrackFlow) bool {
	orig, reply := flow.Forward, flow.Reverse
	if orig.Protocol != unix.IPPROTO_UDP {
		return false
	}
	from := netip.AddrPortFrom(addrOf(reply.SrcIP), reply.SrcPort)
	dst := netip.AddrPortFrom(addrOf(orig.DstIP), orig.DstPort)
	for _, g := range f.byBackend[from] {
		for _, fe := range g.Frontends {
			if fe == dst {
				return true
			}
		}
		if g.NodePort != 0 && dst.Port() == g.NodePort && f.local[dst.Addr()] {
			return true
		}
	}
	return false
}
