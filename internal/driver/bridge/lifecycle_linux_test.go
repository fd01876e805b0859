package bridge_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/knit-net/knit/internal/driver/bridge"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

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
