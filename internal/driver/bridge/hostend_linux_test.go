package bridge_test

import (
	"net"
	"testing"

	"github.com/knit-net/knit/internal/netns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// hostIPv6 fails the test unless the host veth name has IPv6 off: no
// address and no route of its own in the host, which would otherwise grow
// by a link-local address and three routes per container.
func hostIPv6(t *testing.T, e *env, name string) {
	t.Helper()
	if v, err := netns.Sysctl(e.host.Path, "net/ipv6/conf/"+name+"/disable_ipv6"); v != "1" {
		t.Fatalf("host veth %s disable_ipv6 = %q (%v), want 1", name, v, err)
	}
	l := link(t, e.host.Netlink, name)
	if list, err := e.host.Netlink.AddrList(l, netlink.FAMILY_V6); err != nil || len(list) != 0 {
		t.Fatalf("host veth %s IPv6 addresses: %v, %v; want none", name, list, err)
	}
	filter := &netlink.Route{LinkIndex: l.Attrs().Index, Table: unix.RT_TABLE_UNSPEC}
	routes, err := e.host.Netlink.RouteListFiltered(netlink.FAMILY_V6, filter, netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
	if err != nil || len(routes) != 0 {
		t.Fatalf("host veth %s IPv6 routes: %v, %v; want none", name, routes, err)
	}
}

func TestHostEndWithoutIPv6(t *testing.T) {
	e := newEnv(t)
	n := network("h6", subnet4, subnet6)
	e.ensureNetwork(n)
	c := e.container("c1")
	ep := endpoint(n, "kn-h1", "eth0", c, "10.89.0.2/24", "fd00:89::2/64")
	e.ensureEndpoint(ep)
	hostIPv6(t, e, "kn-h1")
	host := link(t, e.host.Netlink, "kn-h1")
	if host.Attrs().Flags&net.FlagUp == 0 {
		t.Fatalf("host veth is down")
	}

	// IPv6 turned back on behind the driver's back (the kernel then gives
	// the link an address and routes) is turned off again, in place: the
	// link is not taken down.
	if err := netns.SetSysctl(e.host.Path, "net/ipv6/conf/kn-h1/disable_ipv6", "0"); err != nil {
		t.Fatal(err)
	}
	stop := watch(t, e.host.Path, host.Attrs().Index)
	e.ensureEndpoint(ep)
	for _, ev := range stop() {
		t.Errorf("host veth changed while turning IPv6 off: %s", ev)
	}
	hostIPv6(t, e, "kn-h1")
	if h := link(t, e.host.Netlink, "kn-h1").Attrs(); h.Index != host.Attrs().Index || h.Flags&net.FlagUp == 0 {
		t.Fatalf("host veth index %d -> %d, flags %v", host.Attrs().Index, h.Index, h.Flags)
	}

	// Hairpin mode off is turned back on.
	if err := e.host.Netlink.LinkSetHairpin(host, false); err != nil {
		t.Fatal(err)
	}
	e.ensureEndpoint(ep)
	if pi, err := e.host.Netlink.LinkGetProtinfo(host); err != nil || !pi.Hairpin {
		t.Fatalf("host veth hairpin = %v (%v) after EnsureEndpoint, want on", pi.Hairpin, err)
	}
}

// TestBridgeRecreated checks the bridge index cache: a bridge deleted and
// created again, by the driver or behind its back, gets its ports.
func TestBridgeRecreated(t *testing.T) {
	e := newEnv(t)
	h := e.host.Netlink
	n := network("bx", subnet4)
	e.ensureNetwork(n)
	c1, c2, c3 := e.container("c1"), e.container("c2"), e.container("c3")
	ep1 := endpoint(n, "kn-x1", "eth0", c1, "10.89.0.2/24")
	e.ensureEndpoint(ep1) // caches the bridge's index
	master := func(name string) int { return link(t, h, name).Attrs().MasterIndex }

	// Behind its back: the cached index is stale.
	if err := h.LinkDel(link(t, h, "kn-bx")); err != nil {
		t.Fatal(err)
	}
	if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "kn-bx"}}); err != nil {
		t.Fatal(err)
	}
	br := link(t, h, "kn-bx").Attrs().Index
	e.ensureEndpoint(endpoint(n, "kn-x2", "eth0", c2, "10.89.0.3/24")) // create
	e.ensureEndpoint(ep1)                                              // adopt
	if m1, m2 := master("kn-x1"), master("kn-x2"); m1 != br || m2 != br {
		t.Fatalf("masters after the bridge was recreated: kn-x1 %d, kn-x2 %d, want %d", m1, m2, br)
	}

	// By the driver.
	if err := e.d.DeleteNetwork(n); err != nil {
		t.Fatal(err)
	}
	if err := e.d.EnsureEndpoint(endpoint(n, "kn-x3", "eth0", c3, "10.89.0.4/24")); err == nil {
		t.Fatal("EnsureEndpoint succeeded on a deleted network")
	}
	e.ensureNetwork(n)
	br = link(t, h, "kn-bx").Attrs().Index
	e.ensureEndpoint(endpoint(n, "kn-x3", "eth0", c3, "10.89.0.4/24"))
	e.ensureEndpoint(ep1)
	if m1, m3 := master("kn-x1"), master("kn-x3"); m1 != br || m3 != br {
		t.Fatalf("masters after DeleteNetwork and EnsureNetwork: kn-x1 %d, kn-x3 %d, want %d", m1, m3, br)
	}
}
