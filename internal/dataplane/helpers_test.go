package dataplane

import (
	"net/netip"
	"testing"

	"github.com/google/nftables"

	"github.com/knit-net/knit/internal/dataplane/nft"
	"github.com/knit-net/knit/internal/dataplane/nft/networks"
	"github.com/knit-net/knit/internal/dataplane/nft/ports"
	"github.com/knit-net/knit/internal/dataplane/nft/services"
	"github.com/knit-net/knit/internal/testutil/nfttest"
	"github.com/knit-net/knit/internal/testutil/nstest"
)

// newDataplane returns a Dataplane bound to ns, closed at cleanup.
func newDataplane(t testing.TB, ns *nstest.NS) *Table {
	t.Helper()
	d, err := NewTable(nft.Options{NetNSPath: ns.Path})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return d
}

func mustSync(t testing.TB, d *Table, cfg Config) {
	t.Helper()
	if err := d.Apply(cfg); err != nil {
		t.Fatalf("Sync: %v", err)
	}
}

// sampleConfig has a dual-stack network, an internal one and a plain one,
// ports published on every address, on one address and on 127.0.0.1, a
// dual-stack service with a load balancer address and a node port, and a
// UDP service without endpoints.
func sampleConfig() Config {
	return Config{
		Networks: []networks.Network{
			{Bridge: "kn-front", Subnets: pfx("10.1.0.0/24", "fd00:1::/64")},
			{Bridge: "kn-db", Subnets: pfx("10.2.0.0/24"), Internal: true},
			{Bridge: "kn-back", Subnets: pfx("10.3.0.0/24")},
		},
		Ports: []ports.Port{
			{Proto: "tcp", HostPort: 8080, ContainerIP: addr("10.1.0.2"), ContainerPort: 80},
			{Proto: "tcp", HostPort: 8080, ContainerIP: addr("fd00:1::2"), ContainerPort: 80},
			{Proto: "udp", HostIP: addr("192.0.2.1"), HostPort: 5353, ContainerIP: addr("10.3.0.2"), ContainerPort: 53},
			{Proto: "sctp", HostIP: addr("2001:db8::1"), HostPort: 3868, ContainerIP: addr("fd00:1::3"), ContainerPort: 3868},
			{Proto: "tcp", HostIP: addr("127.0.0.1"), HostPort: 9000, ContainerIP: addr("10.1.0.3"), ContainerPort: 9000},
		},
		Services: []services.ServicePort{
			{Name: "default/web:http", VIPs: addrs("10.96.0.10", "fd00:96::10", "192.0.2.80"), Protocol: "tcp", Port: 80, NodePort: 30080,
				Backends: addrPorts("10.1.0.2:8080", "10.3.0.2:8080", "[fd00:1::2]:8080")},
			{Name: "default/dns:dns", VIPs: addrs("10.96.0.53"), Protocol: "udp", Port: 53},
		},
		ServiceRanges: pfx("10.96.0.0/16", "fd00:96::/112"),
	}
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// addForeignForwardDrop creates "table ip foreign_fw" with an empty forward
// chain of policy drop, as a host firewall might, and returns its removal.
func addForeignForwardDrop(t testing.TB, ns *nstest.NS) (remove func()) {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns.Handle)))
	if err != nil {
		t.Fatalf("nftables conn: %v", err)
	}
	tbl := c.AddTable(&nftables.Table{Name: "foreign_fw", Family: nftables.TableFamilyIPv4})
	policy := nftables.ChainPolicyDrop
	c.AddChain(&nftables.Chain{Name: "forward", Table: tbl, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &policy})
	if err := c.Flush(); err != nil {
		t.Fatalf("add table ip foreign_fw: %v", err)
	}
	return func() {
		c.DelTable(tbl)
		if err := c.Flush(); err != nil {
			t.Fatalf("delete table ip foreign_fw: %v", err)
		}
	}
}

// Literals of the tests.
var (
	pfx       = nfttest.Prefixes
	addrs     = nfttest.Addrs
	addrPorts = nfttest.AddrPorts
)
