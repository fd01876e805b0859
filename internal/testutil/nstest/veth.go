package nstest

import (
	"net"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Veth connects ns to host: hostName in host (enslaved to master unless 0,
// up) and eth0 in ns with addrs and a default route via each gateway (an IP
// or a CIDR; empty ones skipped).
func Veth(t testing.TB, host *NS, hostName string, master int, ns *NS, addrs, gateways []string) {
	t.Helper()
	v := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: hostName, MasterIndex: master},
		PeerName:      "eth0",
		PeerNamespace: netlink.NsFd(int(ns.Handle)),
	}
	check(t, "add veth "+hostName, host.Netlink.LinkAdd(v))
	hl, err := host.Netlink.LinkByName(hostName)
	check(t, "find "+hostName, err)
	check(t, "up "+hostName, host.Netlink.LinkSetUp(hl))
	eth, err := ns.Netlink.LinkByName("eth0")
	check(t, "find eth0 in "+ns.Name, err)
	AddrUp(t, ns.Netlink, eth, addrs...)
	for _, gw := range gateways {
		if gw == "" {
			continue
		}
		ip := net.ParseIP(gw)
		if ip == nil {
			ip, _, _ = net.ParseCIDR(gw)
		}
		check(t, "default route in "+ns.Name, ns.Netlink.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Gw: ip}))
	}
}

// AddrUp adds the addresses (empty ones skipped; IPv6 without duplicate
// address detection, so they are usable at once) and sets the link up.
func AddrUp(t testing.TB, h *netlink.Handle, l netlink.Link, addrs ...string) {
	t.Helper()
	for _, a := range addrs {
		if a == "" {
			continue
		}
		addr, err := netlink.ParseAddr(a)
		check(t, "parse "+a, err)
		addr.Flags = unix.IFA_F_NODAD
		check(t, "add address "+a+" to "+l.Attrs().Name, h.AddrAdd(l, addr))
	}
	check(t, "up "+l.Attrs().Name, h.LinkSetUp(l))
}

func check(t testing.TB, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}
