// Package bridge is knit's default network driver: one Linux bridge per
// network in the host namespace, holding the networks' gateway addresses, and
// one veth pair per container endpoint, its host end a port of the bridge and
// its other end the container's interface (eth0, eth1, …).
//
// # Design notes
//
// Ensure, never assume. Every method reads the kernel state first and changes
// only what differs, so calling it twice is free of side effects. A restarted
// knitd calls EnsureEndpoint for every running container: an endpoint that is
// already right is adopted without a single write (no link flap, no address
// removed and re-added), so established TCP connections survive the restart.
// What is wrong but fixable in place (MTU, master, up, MAC, addresses, default
// routes) is fixed in place; only an endpoint whose two halves are not each
// other's peers is deleted and recreated, with the reason logged.
//
// Attach is on the hot path (target: API call to eth0 up with its address in
// a few milliseconds with a thousand containers present), so a new endpoint
// costs few netlink round trips and never a dump of the host's links:
//
//  1. RTM_GETLINK of the host veth by name (absent: create); the bridge's
//     ifindex comes from a cache by bridge name (filled by EnsureNetwork or
//     the first lookup, dropped by DeleteNetwork; a creation refused with a
//     cached index looks the bridge up again and retries once);
//  2. one RTM_NEWLINK creating the pair with everything set: host end named,
//     MTU and enslaved to the bridge (IFLA_MASTER), the peer created
//     directly in the container namespace (IFLA_NET_NS_FD, no create-then-
//     move) with its name, MTU and MAC. The netlink library cannot send
//     IFLA_MASTER at creation (it adds a lookup and an RTM_SETLINK), so this
//     message is built by hand on the driver's own rtnetlink socket;
//  3. the host end, created down: IPv6 off (disable_ipv6 in /proc/sys, see
//     below), hairpin mode on, then RTM_SETLINK to set it up;
//  4. in the container namespace, through a socket opened there once per
//     call: RTM_GETLINK for the new ifindex, RTM_SETLINK to set it up (the
//     create message cannot: the kernel configures the peer before pairing
//     it, and an unpaired veth refuses to open), one RTM_NEWADDR per address
//     (IPv6 with IFA_F_NODAD, usable at once) and one RTM_NEWROUTE per
//     default gateway.
//
// An endpoint without IPv6 addresses gets no IPv6 link-local address either
// (addr_gen_mode none, one more RTM_SETLINK before the interface goes up;
// Docker disables IPv6 on such interfaces too). Otherwise each new interface
// sends DAD, MLD and router solicitations to multicast groups that the bridge
// floods to every port: with a thousand containers on the bridge that is
// thousands of packet deliveries per attach, competing for the CPU and the
// RTNL lock; in BenchmarkEnsureEndpoint it raised the attach p99 from about
// 5 ms to 30 ms.
//
// Host veths have IPv6 off: a bridge port needs no address of its own (the
// bridge switches IPv6 between containers all the same), and with IPv6 each
// one got a link-local address and three routes in the host, which the
// kernel walks on link events: some 3,000 routes with a thousand containers,
// making every attach slower. The kernel takes no IPv6 setting in the create
// message, so the host end is created down, its disable_ipv6 set, then set
// up: a link that is never up without it gets no IPv6 state at all. Adopting
// an endpoint reads the setting and turns it off in place if it is on.
//
// The bridge gets a fixed, locally administered MAC derived from the network
// ID. A bridge whose MAC was never set takes the lowest MAC of its ports and
// changes it as ports come and go, which makes every container's ARP entry
// for the gateway stale; a set MAC never moves.
//
// Names: links whose name starts with "kn" are knit's. A link in the way that
// is not knit's is never deleted; the error names it instead.
package bridge

import (
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/driver"
	"github.com/vishvananda/netlink"
)

// knitPrefix starts the name of every link knit creates.
const knitPrefix = "kn"

// defaultMTU applies when a network's MTU is 0.
const defaultMTU = 1500

// Options configure a Driver.
type Options struct {
	// Handle is a netlink handle for the host namespace, where bridges and
	// host veths live (knitd's own namespace). Required; the caller keeps
	// ownership.
	Handle *netlink.Handle
	// HostNetNS is the namespace file of that same namespace, for what is not
	// done through Handle: /proc/sys (forwarding, the bridge's IPv6 settings,
	// IPv6 off on host veths) and the driver's own rtnetlink socket. Empty
	// means the namespace knitd runs in. Tests pass a throwaway namespace
	// here.
	HostNetNS string
	// Logger receives the reasons for recreations and fixes; nil discards.
	Logger *slog.Logger
}

// MACFromIP returns the MAC Docker gives a container interface for addr:
// 02:42 followed by the four bytes of an IPv4 address, or by the last four
// bytes of an IPv6 address. It returns "" for an invalid addr. Deriving the
// MAC from the address keeps neighbour caches valid when a container is
// recreated with the same address.
func MACFromIP(addr netip.Addr) string {
	if !addr.IsValid() {
		return ""
	}
	b := addr.Unmap().AsSlice()
	b = b[len(b)-4:]
	return fmt.Sprintf("02:42:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3])
}

// bridgeMAC derives a stable unicast, locally administered MAC from a network
// ID (or, lacking one, from the bridge name).
func bridgeMAC(n *v1.Network) net.HardwareAddr {
	seed := n.ID
	if seed == "" {
		seed = n.Bridge
	}
	sum := sha256.Sum256([]byte("knit-bridge/" + seed))
	mac := net.HardwareAddr(sum[:6])
	mac[0] = mac[0]&^0x01 | 0x02 // unicast, locally administered
	return mac
}

// mtuOf is the MTU of n's bridge and interfaces.
func mtuOf(n *v1.Network) int {
	if n.MTU > 0 {
		return n.MTU
	}
	return defaultMTU
}

// isKnit reports whether a link name is one knit creates.
func isKnit(name string) bool { return strings.HasPrefix(name, knitPrefix) }

// bridgeSpec is what EnsureNetwork puts in place for one network.
type bridgeSpec struct {
	name     string
	mtu      int
	mac      net.HardwareAddr
	gateways []netip.Prefix // gateway address with the subnet's length
	ipv4     bool
	ipv6     bool
}

func bridgeOf(n *v1.Network) (bridgeSpec, error) {
	if n == nil {
		return bridgeSpec{}, fmt.Errorf("bridge driver: nil network")
	}
	if n.Bridge == "" || len(n.Bridge) > 15 {
		return bridgeSpec{}, fmt.Errorf("network %q: invalid bridge name %q: want 1 to 15 characters", n.Name, n.Bridge)
	}
	b := bridgeSpec{name: n.Bridge, mtu: mtuOf(n), mac: bridgeMAC(n)}
	for _, s := range n.Subnets {
		if !s.Gateway.IsValid() {
			continue
		}
		gw := s.Gateway.Unmap()
		b.gateways = append(b.gateways, netip.PrefixFrom(gw, s.Subnet.Bits()))
		if gw.Is4() {
			b.ipv4 = true
		} else {
			b.ipv6 = true
		}
	}
	return b, nil
}

// endpointSpec is what EnsureEndpoint puts in place for one endpoint.
type endpointSpec struct {
	hostVeth string
	iface    string
	bridge   string
	netns    string
	mtu      int
	mac      net.HardwareAddr // nil: the kernel's choice, not checked
	addrs    []netip.Prefix
	gateways []netip.Addr
}

func endpointOf(ep driver.Endpoint) (endpointSpec, error) {
	if ep.Spec == nil || ep.Network == nil {
		return endpointSpec{}, fmt.Errorf("bridge driver: endpoint without spec or network")
	}
	e := endpointSpec{
		hostVeth: ep.Spec.HostVeth,
		iface:    ep.Spec.Interface,
		bridge:   ep.Network.Bridge,
		netns:    ep.NetNSPath,
		mtu:      mtuOf(ep.Network),
		gateways: ep.Gateways,
	}
	for _, p := range ep.Spec.Addresses {
		e.addrs = append(e.addrs, netip.PrefixFrom(p.Addr().Unmap(), p.Bits()))
	}
	switch {
	case e.hostVeth == "" || e.iface == "":
		return e, fmt.Errorf("endpoint %q on network %q: host veth and interface names are required", e.hostVeth, ep.Network.Name)
	case e.netns == "":
		return e, fmt.Errorf("endpoint %q: no network namespace path", e.hostVeth)
	case e.bridge == "":
		return e, fmt.Errorf("endpoint %q: network %q has no bridge name", e.hostVeth, ep.Network.Name)
	}
	if ep.Spec.MAC != "" {
		mac, err := net.ParseMAC(ep.Spec.MAC)
		if err == nil && len(mac) != 6 {
			err = fmt.Errorf("not an Ethernet address")
		}
		if err != nil {
			return e, fmt.Errorf("endpoint %q: MAC %q: %w", e.hostVeth, ep.Spec.MAC, err)
		}
		e.mac = mac
	}
	return e, nil
}

// hasIPv6 reports whether the endpoint has an IPv6 address.
func (e endpointSpec) hasIPv6() bool {
	for _, p := range e.addrs {
		if p.Addr().Is6() {
			return true
		}
	}
	return false
}
