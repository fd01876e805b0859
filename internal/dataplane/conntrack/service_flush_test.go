package conntrack_test

import (
	"net/netip"
	"os"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/knit-net/knit/internal/dataplane"
	"github.com/knit-net/knit/internal/dataplane/nft"
	"github.com/knit-net/knit/internal/dataplane/nft/networks"
	"github.com/knit-net/knit/internal/dataplane/nft/services"
	"github.com/knit-net/knit/internal/testutil/nstest"
)

// TestFlushServiceUDP (through services.GoneUDPBackends and services.FlushServiceUDP,
// as knit's controller calls them) follows two UDP clients in "outside",
// one of the VIP 10.96.0.10:53 and one of the node port 30053, while the
// backend of the first is removed: it keeps its old backend until the
// flush, then moves to the other; the second client's flow is touched only
// if it went to the removed backend too.
//
//	c1 10.20.0.2, c2 10.20.0.3 ─ kt-br 10.20.0.1 ─ host ─ kt-up 192.168.200.1 ── outside 192.168.200.2
func TestFlushServiceUDP(t *testing.T) {
	host, outside := nstest.New(t, "cthost"), nstest.New(t, "ctout")
	host.Do(t, func() {
		if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
			t.Errorf("ip_forward: %v", err)
		}
	})
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "kt-br"}}
	must(t, "add bridge", host.Netlink.LinkAdd(br))
	nstest.AddrUp(t, host.Netlink, br, "10.20.0.1/24")
	nstest.Veth(t, host, "kt-up", 0, outside, []string{"192.168.200.2/24"}, []string{"192.168.200.1"})
	up, err := host.Netlink.LinkByName("kt-up")
	must(t, "find kt-up", err)
	nstest.AddrUp(t, host.Netlink, up, "192.168.200.1/24")
	backend := map[string]netip.AddrPort{}
	for i, name := range []string{"c1", "c2"} {
		c := nstest.New(t, name)
		ip := "10.20.0." + string(rune('2'+i))
		nstest.Veth(t, host, "kt-"+name, br.Index, c, []string{ip + "/24"}, []string{"10.20.0.1"})
		serveUDP(t, c, name, 8081)
		backend[name] = netip.MustParseAddrPort(ip + ":8081")
	}

	d, err := dataplane.NewTable(nft.Options{NetNSPath: host.Path})
	must(t, "dataplane.NewTable", err)
	t.Cleanup(func() { d.Close() })
	svc := func(backends ...string) []services.ServicePort {
		sp := services.ServicePort{Name: "test/dns:dns", VIPs: []netip.Addr{netip.MustParseAddr("10.96.0.10")},
			Protocol: "udp", Port: 53, NodePort: 30053}
		for _, b := range backends {
			sp.Backends = append(sp.Backends, backend[b])
		}
		return []services.ServicePort{sp}
	}
	nets := []networks.Network{{Bridge: "kt-br", Subnets: []netip.Prefix{netip.MustParsePrefix("10.20.0.0/24")}}}
	sync := func(svcs []services.ServicePort) {
		t.Helper()
		must(t, "Sync", d.Apply(dataplane.Config{Networks: nets, Services: svcs}))
	}
	before := svc("c1", "c2")
	sync(before)

	toVIP, toNodePort := dialUDP(t, outside, "10.96.0.10:53"), dialUDP(t, outside, "192.168.200.1:30053")
	first, firstNP := ask(toVIP), ask(toNodePort)
	if backend[first] == (netip.AddrPort{}) || backend[firstNP] == (netip.AddrPort{}) {
		t.Fatalf("clients answered %q and %q; want c1 or c2", first, firstNP)
	}
	other := map[string]string{"c1": "c2", "c2": "c1"}[first]

	after := svc(other)
	sync(after)
	if got := ask(toVIP); got != first {
		t.Errorf("before the flush the VIP client got %q; want its stale backend %s", got, first)
	}
	gone := services.GoneUDPBackends(before, after)
	if len(gone) != 1 || gone[0].Backend != backend[first] || gone[0].NodePort != 30053 || len(gone[0].VIPs) != 1 {
		t.Fatalf("GoneUDPBackends = %+v; want %s on the VIP and the node port", gone, first)
	}
	must(t, "FlushServiceUDP", services.FlushServiceUDP(host.Path, gone))
	if got := ask(toVIP); got != other {
		t.Errorf("after the flush the VIP client got %q; want %s", got, other)
	}
	if got := ask(toNodePort); got != other {
		t.Errorf("after the flush the node port client (first %s) got %q; want %s", firstNP, got, other)
	}

	// Removing the last backend: refused after the flush.
	sync(nil)
	must(t, "FlushServiceUDP", services.FlushServiceUDP(host.Path, services.GoneUDPBackends(after, nil)))
	if got := ask(toVIP); got != "" {
		t.Errorf("no service left: the VIP client got %q", got)
	}
}
