package bridge_test

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/knit-net/knit/internal/netns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func TestEnsureNetworkIdempotent(t *testing.T) {
	e := newEnv(t)
	n := network("1a2b3c", "10.89.0.0/24 10.89.0.1")
	e.ensureNetwork(n)

	l := link(t, e.host.Netlink, "kn-1a2b3c")
	a := l.Attrs()
	if l.Type() != "bridge" || a.MTU != 1500 || a.Flags&net.FlagUp == 0 {
		t.Fatalf("bridge: kind %s mtu %d flags %v; want bridge, 1500, up", l.Type(), a.MTU, a.Flags)
	}
	if mac := a.HardwareAddr; len(mac) != 6 || mac[0]&0x03 != 0x02 {
		t.Fatalf("bridge MAC %s is not unicast, locally administered", mac)
	}
	want := netip.MustParsePrefix("10.89.0.1/24")
	got := addrsOf(t, e.host.Netlink, l)
	if _, ok := got[want]; !ok || len(got) != 1 {
		t.Fatalf("bridge addresses %v, want only %s", got, want)
	}
	if v, _ := netns.Sysctl(e.host.Path, "net/ipv4/ip_forward"); v != "1" {
		t.Fatalf("host ip_forward = %s, want 1", v)
	}
	if v, _ := netns.Sysctl(e.host.Path, "net/ipv4/conf/kn-1a2b3c/route_localnet"); v != "1" {
		t.Fatalf("route_localnet on the bridge = %s, want 1 (published ports on 127.0.0.1)", v)
	}
	if v, _ := netns.Sysctl(e.host.Path, "net/ipv4/conf/all/route_localnet"); v != "0" {
		t.Fatalf("route_localnet on all = %s; knit must set it only on its bridges", v)
	}

	stop := watch(t, e.host.Path, a.Index)
	e.ensureNetwork(n)
	if ev := stop(); len(ev) > 0 {
		t.Errorf("second EnsureNetwork changed the kernel: %v", ev)
	}
	if l2 := link(t, e.host.Netlink, "kn-1a2b3c"); l2.Attrs().Index != a.Index || l2.Attrs().HardwareAddr.String() != a.HardwareAddr.String() {
		t.Fatalf("second EnsureNetwork replaced the bridge: index %d -> %d", a.Index, l2.Attrs().Index)
	}
}

func TestEnsureNetworkAppliesChanges(t *testing.T) {
	e := newEnv(t)
	h := e.host.Netlink
	n := network("c0ffee", "10.89.0.0/24 10.89.0.1")
	e.ensureNetwork(n)
	l := link(t, h, "kn-c0ffee")
	mac := l.Attrs().HardwareAddr

	// Drift made by hand: a foreign address, the bridge down, another MAC.
	foreign := &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP("192.0.2.1"), Mask: net.CIDRMask(24, 32)}}
	ll := &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP("fe80::1234"), Mask: net.CIDRMask(64, 128)}, Flags: unix.IFA_F_NODAD}
	if err := h.LinkSetDown(l); err != nil { // (drops IPv6 addresses: add them after)
		t.Fatal(err)
	}
	if err := h.LinkSetHardwareAddr(l, net.HardwareAddr{0x02, 0, 0, 0, 0, 1}); err != nil {
		t.Fatal(err)
	}
	for _, a := range []*netlink.Addr{foreign, ll} {
		if err := h.AddrAdd(l, a); err != nil {
			t.Fatal(err)
		}
	}

	// And a changed spec: new MTU, new gateway.
	n.MTU = 9000
	n.Subnets[0].Gateway = netip.MustParseAddr("10.89.0.254")
	e.ensureNetwork(n)

	l2 := link(t, h, "kn-c0ffee")
	a := l2.Attrs()
	if a.Index != l.Attrs().Index || a.MTU != 9000 || a.Flags&net.FlagUp == 0 || a.HardwareAddr.String() != mac.String() {
		t.Fatalf("bridge after changes: index %d (was %d), mtu %d, flags %v, mac %s (want %s)",
			a.Index, l.Attrs().Index, a.MTU, a.Flags, a.HardwareAddr, mac)
	}
	got := addrsOf(t, h, l2)
	if _, ok := got[netip.MustParsePrefix("10.89.0.254/24")]; !ok || len(got) != 1 {
		t.Fatalf("bridge addresses %v, want only 10.89.0.254/24", got)
	}
	list, _ := h.AddrList(l2, netlink.FAMILY_V6)
	found := false
	for _, a := range list {
		found = found || a.IP.Equal(ll.IP)
	}
	if !found {
		t.Fatal("link-local fe80::1234 was removed; link-local addresses must be kept")
	}
}

func TestEnsureNetworkIPv6(t *testing.T) {
	e := newEnv(t)
	n := network("d6", "10.89.6.0/24 10.89.6.1", "fd00:89:6::/64 fd00:89:6::1")
	n.IPv6 = true
	e.ensureNetwork(n)
	l := link(t, e.host.Netlink, "kn-d6")
	got := addrsOf(t, e.host.Netlink, l)
	flags, ok := got[netip.MustParsePrefix("fd00:89:6::1/64")]
	if !ok || len(got) != 2 {
		t.Fatalf("bridge addresses %v, want 10.89.6.1/24 and fd00:89:6::1/64", got)
	}
	if flags&unix.IFA_F_NODAD == 0 || flags&unix.IFA_F_TENTATIVE != 0 {
		t.Fatalf("IPv6 gateway flags %#x: want nodad, not tentative", flags)
	}
	for key, want := range map[string]string{
		"net/ipv6/conf/all/forwarding":   "1",
		"net/ipv4/ip_forward":            "1",
		"net/ipv6/conf/kn-d6/accept_dad": "0",
	} {
		if v, err := netns.Sysctl(e.host.Path, key); v != want {
			t.Errorf("host %s = %q (%v), want %s", key, v, err, want)
		}
	}
	e.ensureNetwork(n) // still fine the second time
	if l2 := link(t, e.host.Netlink, "kn-d6"); l2.Attrs().Index != l.Attrs().Index {
		t.Fatal("second EnsureNetwork replaced the bridge")
	}
}

func TestEnsureNetworkLinkInTheWay(t *testing.T) {
	e := newEnv(t)
	h := e.host.Netlink
	for _, name := range []string{"kn-way", "other0"} {
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: name + "p"}
		if err := h.LinkAdd(v); err != nil {
			t.Fatal(err)
		}
	}

	// knit's name: recreated as a bridge.
	n := network("way")
	e.ensureNetwork(n)
	if l := link(t, h, "kn-way"); l.Type() != "bridge" {
		t.Fatalf("kn-way is a %s after EnsureNetwork, want bridge", l.Type())
	}

	// Someone else's name: left alone, and the error names it.
	n = network("x")
	n.Bridge = "other0"
	err := e.d.EnsureNetwork(n)
	if err == nil || !strings.Contains(err.Error(), `"other0"`) {
		t.Fatalf("EnsureNetwork over a foreign veth: %v, want an error naming other0", err)
	}
	if l := link(t, h, "other0"); l.Type() != "veth" {
		t.Fatalf("foreign link was touched: now a %s", l.Type())
	}
}

func TestDeleteNetwork(t *testing.T) {
	e := newEnv(t)
	n := network("del")
	e.ensureNetwork(n)
	for range 2 {
		if err := e.d.DeleteNetwork(n); err != nil {
			t.Fatalf("DeleteNetwork: %v", err)
		}
	}
	if _, err := e.host.Netlink.LinkByName("kn-del"); err == nil {
		t.Fatal("bridge still there after DeleteNetwork")
	}
}

func TestEnsureNetworkInvalid(t *testing.T) {
	e := newEnv(t)
	n := network("x")
	n.Bridge = "kn-much-too-long-name"
	if err := e.d.EnsureNetwork(n); err == nil {
		t.Fatal("accepted a bridge name longer than IFNAMSIZ")
	}
	if err := e.d.EnsureNetwork(nil); err == nil {
		t.Fatal("accepted a nil network")
	}
}
