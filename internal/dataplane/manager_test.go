package dataplane

import (
	"strings"
	"testing"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/dataplane/nft"
	"github.com/knit-net/knit/internal/dataplane/nft/ports"
	"github.com/knit-net/knit/internal/testutil/nfttest"
	"github.com/knit-net/knit/internal/testutil/nstest"
)

// TestManagerHoldsUntilRelease: at startup the Manager only records, so
// the previous table stays in force until every container is known;
// Release programs everything at once; afterwards each change is applied,
// and a refused one changes nothing.
func TestManagerHoldsUntilRelease(t *testing.T) {
	ns := nstest.New(t, "nft")
	m, err := NewManager(nft.Options{NetNSPath: ns.Path})
	must(t, "NewManager", err)
	t.Cleanup(func() { m.Close() })
	net := v1.Network{Name: "front", Driver: v1.DriverBridge, Bridge: "kn-front",
		Subnets: []v1.Subnet{{Subnet: pfx("10.1.0.0/24")[0]}}}
	must(t, "SetNetworks", m.SetNetworks([]v1.Network{net, {Name: "host", Driver: v1.DriverHost}}))
	must(t, "SetPorts", m.SetPorts("c1", []ports.Port{mapping(t, "tcp * 8080 10.1.0.2 80")}))
	if nfttest.HasTable(t, ns, "inet", nft.TableName) {
		t.Fatal("the Manager programmed the table before Release")
	}
	must(t, "Release", m.Release())
	got := nfttest.List(t, ns)
	if !strings.Contains(got, `"kn-front"`) || !strings.Contains(got, "tcp . 8080 : 10.1.0.2 . 80") {
		t.Fatalf("after Release:\n%s", got)
	}
	must(t, "SetPorts c2", m.SetPorts("c2", []ports.Port{mapping(t, "udp * 53 10.1.0.3 53")}))
	err = m.SetPorts("c3", []ports.Port{mapping(t, "tcp * 8080 10.1.0.4 80")})
	if err == nil || !strings.Contains(err.Error(), "already published by tcp *:8080 -> 10.1.0.2:80") {
		t.Errorf("SetPorts of a taken port = %v", err)
	}
	must(t, "SetPorts c1 none", m.SetPorts("c1", nil))
	got = nfttest.List(t, ns)
	if strings.Contains(got, "10.1.0.2") || strings.Contains(got, "10.1.0.4") || !strings.Contains(got, "udp . 53 : 10.1.0.3 . 53") {
		t.Errorf("after c2 added, c3 refused and c1 removed:\n%s", got)
	}
	if counts, err := m.PolicyDropCounts(); err != nil || len(counts) != 0 {
		t.Errorf("PolicyDropCounts without policy = %v, %v", counts, err)
	}
}
