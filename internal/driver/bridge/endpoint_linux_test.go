package bridge_test

import (
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/knit-net/knit/internal/driver/bridge"
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

// TestEnsureEndpointRecreates covers the incompatible cases: the host veth's
// peer is somewhere else, and a stale interface holds the container's name.
func TestEnsureEndpointRecreates(t *testing.T) {
	e := newEnv(t)
	n := network("rc", subnet4)
	e.ensureNetwork(n)
	c1, other := e.container("c1"), e.container("other")
	ch := e.handle(c1)

	// kn-r1's peer lives in another namespace.
	ofd, err := unix.Open(other, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "kn-r1"}, PeerName: "eth0", PeerNamespace: netlink.NsFd(ofd)}
	err = e.host.Netlink.LinkAdd(v)
	unix.Close(ofd)
	if err != nil {
		t.Fatal(err)
	}
	e.ensureEndpoint(endpoint(n, "kn-r1", "eth0", c1, "10.89.0.2/24"))
	if host, eth0 := link(t, e.host.Netlink, "kn-r1"), link(t, ch, "eth0"); host.Attrs().ParentIndex != eth0.Attrs().Index {
		t.Fatal("kn-r1 is not paired with c1's eth0 after EnsureEndpoint")
	}

	// A stale eth1 in c1 whose peer is in c1 too, and no host veth.
	stale := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth1"}, PeerName: "stale"}
	if err := ch.LinkAdd(stale); err != nil {
		t.Fatal(err)
	}
	e.ensureEndpoint(endpoint(n, "kn-r2", "eth1", c1, "10.89.0.3/24"))
	if host, eth1 := link(t, e.host.Netlink, "kn-r2"), link(t, ch, "eth1"); host.Attrs().ParentIndex != eth1.Attrs().Index {
		t.Fatal("kn-r2 is not paired with c1's eth1 after EnsureEndpoint")
	}
}

func TestDeleteEndpoint(t *testing.T) {
	e := newEnv(t)
	n := network("de", subnet4)
	e.ensureNetwork(n)
	c := e.container("c1")
	ep := endpoint(n, "kn-d1", "eth0", c, "10.89.0.2/24")
	e.ensureEndpoint(ep)
	for range 2 {
		if err := e.d.DeleteEndpoint(ep); err != nil {
			t.Fatalf("DeleteEndpoint: %v", err)
		}
	}
	if _, err := e.handle(c).LinkByName("eth0"); err == nil {
		t.Fatal("eth0 still in the container after DeleteEndpoint")
	}
}

func TestEnsureEndpointErrors(t *testing.T) {
	e := newEnv(t)
	n := network("er", subnet4)
	c := e.container("c1")
	err := e.d.EnsureEndpoint(endpoint(n, "kn-x1", "eth0", c, "10.89.0.2/24"))
	if err == nil || !strings.Contains(err.Error(), `"kn-er"`) {
		t.Fatalf("EnsureEndpoint without its bridge: %v, want an error naming kn-er", err)
	}
	// A bridge in the host veth's place is not deleted.
	e.ensureNetwork(n)
	if err := e.d.EnsureEndpoint(endpoint(n, "kn-er", "eth0", c, "10.89.0.2/24")); err == nil {
		t.Fatal("EnsureEndpoint accepted the bridge as its host veth")
	}
	if l := link(t, e.host.Netlink, "kn-er"); l.Type() != "bridge" {
		t.Fatalf("bridge in the way was replaced by a %s", l.Type())
	}
	ep := endpoint(n, "kn-x1", "eth0", c)
	ep.Spec.MAC = "not-a-mac"
	if err := e.d.EnsureEndpoint(ep); err == nil {
		t.Fatal("accepted an invalid MAC")
	}
	ep = endpoint(n, "kn-x1", "eth0", "")
	if err := e.d.EnsureEndpoint(ep); err == nil {
		t.Fatal("accepted an endpoint without a namespace")
	}
}

func TestMACFromIP(t *testing.T) {
	for in, want := range map[string]string{
		"10.89.0.2":          "02:42:0a:59:00:02",
		"::ffff:172.17.0.5":  "02:42:ac:11:00:05",
		"fd00:89::a:b0c:d0e": "02:42:0b:0c:0d:0e",
	} {
		if got := bridge.MACFromIP(netip.MustParseAddr(in)); got != want {
			t.Errorf("MACFromIP(%s) = %s, want %s", in, got, want)
		}
	}
	if got := bridge.MACFromIP(netip.Addr{}); got != "" {
		t.Errorf("MACFromIP(invalid) = %q, want empty", got)
	}
}
