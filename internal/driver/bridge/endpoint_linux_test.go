package bridge_test

import (
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/knit-net/knit/internal/netns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

const (
	subnet4 = "10.89.0.0/24 10.89.0.1"
	subnet6 = "fd00:89::/64 fd00:89::1"
)

func TestEnsureEndpoint(t *testing.T) {
	e := newEnv(t)
	n := network("ep", subnet4, subnet6)
	e.ensureNetwork(n)
	c := e.container("c1")
	ep := endpoint(n, "kn-e1", "eth0", c, "10.89.0.2/24", "fd00:89::2/64")
	e.ensureEndpoint(ep)

	ch := e.handle(c)
	eth0 := link(t, ch, "eth0")
	a := eth0.Attrs()
	if eth0.Type() != "veth" || a.Flags&net.FlagUp == 0 || a.MTU != 1500 || a.HardwareAddr.String() != "02:42:0a:59:00:02" {
		t.Fatalf("eth0: kind %s flags %v mtu %d mac %s", eth0.Type(), a.Flags, a.MTU, a.HardwareAddr)
	}
	addrs := addrsOf(t, ch, eth0)
	if len(addrs) != 2 {
		t.Fatalf("eth0 addresses %v, want 10.89.0.2/24 and fd00:89::2/64", addrs)
	}
	if f, ok := addrs[netip.MustParsePrefix("fd00:89::2/64")]; !ok || f&unix.IFA_F_NODAD == 0 || f&unix.IFA_F_TENTATIVE != 0 {
		t.Fatalf("eth0 IPv6 address flags %#x (present %v): want nodad, not tentative", f, ok)
	}
	routes, err := ch.RouteList(eth0, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	gws := map[string]bool{}
	for _, r := range routes {
		if ones, _ := r.Dst.Mask.Size(); ones == 0 && r.Gw != nil {
			gws[r.Gw.String()] = true
		}
	}
	if !gws["10.89.0.1"] || !gws["fd00:89::1"] || len(gws) != 2 {
		t.Fatalf("default routes via %v, want 10.89.0.1 and fd00:89::1", gws)
	}

	host := link(t, e.host.Netlink, "kn-e1")
	br := link(t, e.host.Netlink, "kn-ep")
	ha := host.Attrs()
	if ha.MasterIndex != br.Attrs().Index || ha.Flags&net.FlagUp == 0 || ha.MTU != 1500 || ha.ParentIndex != a.Index {
		t.Fatalf("host veth: master %d (bridge %d) flags %v mtu %d peer %d (eth0 %d)",
			ha.MasterIndex, br.Attrs().Index, ha.Flags, ha.MTU, ha.ParentIndex, a.Index)
	}
	if pi, err := e.host.Netlink.LinkGetProtinfo(host); err != nil || !pi.Hairpin {
		t.Fatalf("host veth hairpin = %v (%v); a container must reach its own published port", pi.Hairpin, err)
	}
}

// TestEnsureEndpointIPv4Only checks that an interface without IPv6 addresses
// gets no link-local address either, so it sends no IPv6 chatter the bridge
// would flood to every container.
func TestEnsureEndpointIPv4Only(t *testing.T) {
	e := newEnv(t)
	n := network("v4", subnet4)
	e.ensureNetwork(n)
	c := e.container("c1")
	e.ensureEndpoint(endpoint(n, "kn-41", "eth0", c, "10.89.0.2/24"))
	ch := e.handle(c)
	list, err := ch.AddrList(link(t, ch, "eth0"), netlink.FAMILY_V6)
	if err != nil || len(list) != 0 {
		t.Fatalf("IPv6 addresses on an IPv4-only eth0: %v, %v", list, err)
	}
	if v, _ := netns.Sysctl(c, "net/ipv6/conf/eth0/addr_gen_mode"); v != "1" {
		t.Fatalf("eth0 addr_gen_mode = %q, want 1 (none)", v)
	}
}

// TestEndpointTraffic sends TCP over the bridge between two containers, on
// IPv4 and on IPv6, right after the endpoints are in place.
func TestEndpointTraffic(t *testing.T) {
	e := newEnv(t)
	n := network("tr", subnet4, subnet6)
	e.ensureNetwork(n)
	c1, c2 := e.container("c1"), e.container("c2")
	e.ensureEndpoint(endpoint(n, "kn-t1", "eth0", c1, "10.89.0.2/24", "fd00:89::2/64"))
	e.ensureEndpoint(endpoint(n, "kn-t2", "eth0", c2, "10.89.0.3/24", "fd00:89::3/64"))

	for _, addr := range []string{"10.89.0.2:7000", "[fd00:89::2]:7000"} {
		var ln net.Listener
		err := netns.Do(c1, func() (err error) { ln, err = net.Listen("tcp", addr); return err })
		if err != nil {
			t.Fatalf("listen %s in c1: %v", addr, err)
		}
		go func() {
			c, err := ln.Accept()
			if err == nil {
				io.WriteString(c, "hello from c1")
				c.Close()
			}
		}()
		var got []byte
		err = netns.Do(c2, func() error {
			c, err := net.DialTimeout("tcp", addr, 3*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(3 * time.Second))
			got, err = io.ReadAll(c)
			return err
		})
		ln.Close()
		if err != nil || string(got) != "hello from c1" {
			t.Fatalf("c2 -> %s: %q, %v", addr, got, err)
		}
	}
}

// TestEnsureEndpointAdopts checks that a correct endpoint is left exactly
// as it is: same links, and not a single link, address or route notification.
func TestEnsureEndpointAdopts(t *testing.T) {
	e := newEnv(t)
	n := network("ad", subnet4, subnet6)
	e.ensureNetwork(n)
	c := e.container("c1")
	ep := endpoint(n, "kn-a1", "eth0", c, "10.89.0.2/24", "fd00:89::2/64")
	e.ensureEndpoint(ep)
	ch := e.handle(c)
	eth0, host := link(t, ch, "eth0"), link(t, e.host.Netlink, "kn-a1")

	stopC := watch(t, c, eth0.Attrs().Index)
	stopH := watch(t, e.host.Path, host.Attrs().Index)
	e.ensureEndpoint(ep)
	if ev := append(stopC(), stopH()...); len(ev) > 0 {
		t.Errorf("EnsureEndpoint on a correct endpoint changed the kernel: %v", ev)
	}
	if i := link(t, ch, "eth0").Attrs().Index; i != eth0.Attrs().Index {
		t.Errorf("eth0 ifindex %d -> %d", eth0.Attrs().Index, i)
	}
	if i := link(t, e.host.Netlink, "kn-a1").Attrs().Index; i != host.Attrs().Index {
		t.Errorf("host veth ifindex %d -> %d", host.Attrs().Index, i)
	}
}

// TestEnsureEndpointFixes breaks a working endpoint in every way that can be
// fixed in place and checks that it is fixed without recreating the links.
func TestEnsureEndpointFixes(t *testing.T) {
	e := newEnv(t)
	n := network("fx", subnet4, subnet6)
	e.ensureNetwork(n)
	c := e.container("c1")
	ep := endpoint(n, "kn-f1", "eth0", c, "10.89.0.2/24", "fd00:89::2/64")
	e.ensureEndpoint(ep)
	ch, hh := e.handle(c), e.host.Netlink
	eth0, host := link(t, ch, "eth0"), link(t, hh, "kn-f1")

	wrong := &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP("10.89.0.99"), Mask: net.CIDRMask(24, 32)}}
	right := &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP("10.89.0.2"), Mask: net.CIDRMask(24, 32)}}
	steps := []error{
		ch.AddrDel(eth0, right), // takes the default route with it
		ch.AddrAdd(eth0, wrong),
		ch.LinkSetMTU(eth0, 1400),
		ch.LinkSetHardwareAddr(eth0, net.HardwareAddr{0x02, 0, 0, 0, 0, 9}),
		hh.LinkSetNoMaster(host),
		hh.LinkSetDown(host),
	}
	for i, err := range steps {
		if err != nil {
			t.Fatalf("breaking step %d: %v", i, err)
		}
	}
	e.ensureEndpoint(ep)

	eth0b, hostb := link(t, ch, "eth0"), link(t, hh, "kn-f1")
	if eth0b.Attrs().Index != eth0.Attrs().Index || hostb.Attrs().Index != host.Attrs().Index {
		t.Fatal("endpoint was recreated; it should have been fixed in place")
	}
	addrs := addrsOf(t, ch, eth0b)
	if _, ok := addrs[netip.MustParsePrefix("10.89.0.2/24")]; !ok || len(addrs) != 2 {
		t.Fatalf("eth0 addresses %v, want 10.89.0.2/24 and fd00:89::2/64", addrs)
	}
	a := eth0b.Attrs()
	if a.MTU != 1500 || a.HardwareAddr.String() != ep.Spec.MAC {
		t.Fatalf("eth0 mtu %d mac %s, want 1500 %s", a.MTU, a.HardwareAddr, ep.Spec.MAC)
	}
	br := link(t, hh, "kn-fx")
	if h := hostb.Attrs(); h.MasterIndex != br.Attrs().Index || h.Flags&net.FlagUp == 0 {
		t.Fatalf("host veth master %d (want %d), flags %v", h.MasterIndex, br.Attrs().Index, h.Flags)
	}
	r, err := ch.RouteGet(net.ParseIP("192.0.2.1"))
	if err != nil || len(r) == 0 || !r[0].Gw.Equal(net.ParseIP("10.89.0.1")) {
		t.Fatalf("route to 192.0.2.1: %v, %v; want via 10.89.0.1", r, err)
	}

	// A changed network MTU reaches both ends in place too.
	n.MTU = 9000
	e.ensureNetwork(n)
	e.ensureEndpoint(ep)
	if m1, m2 := link(t, ch, "eth0").Attrs(), link(t, hh, "kn-f1").Attrs(); m1.MTU != 9000 || m2.MTU != 9000 || m1.Index != a.Index {
		t.Fatalf("after MTU 9000: eth0 %d, host %d, eth0 index %d -> %d", m1.MTU, m2.MTU, a.Index, m1.Index)
	}
}
