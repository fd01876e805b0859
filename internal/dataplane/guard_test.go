package dataplane

import (
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"

	"github.com/knit-net/knit/internal/dataplane/nft/exprs"
	"github.com/knit-net/knit/internal/dataplane/nft/ports"
	"github.com/knit-net/knit/internal/testutil/nfttest"
	"github.com/knit-net/knit/internal/testutil/nstest"
)

// TestLoopbackGuard: with route_localnet on (knit's caller sets it on
// knit bridges; an administrator may set it elsewhere) a neighbour that
// routes 127.0.0.0/8 to the host reaches the host's loopback services
// (CVE-2020-8558). knit's guard drops such packets, while the host's own
// loopback traffic and 127.0.0.1 published ports keep working.
func TestLoopbackGuard(t *testing.T) {
	tp := newTopology(t)
	tp.prepareForPorts(t)
	setSysctl(t, tp.host, "net.ipv4.conf.kt-up.route_localnet", "1")
	serveNamed(t, tp.host, "host", "127.0.0.1")
	routeLoopbackVia(t, tp.outside, "192.168.100.1")
	routeLoopbackVia(t, tp.ctr["a1"], "10.10.1.1")

	tp.checkPorts(t, "without knit's table", []portProbe{
		{"outside", "tcp", "127.0.0.1:8081", "host 192.168.100.2"},
		{"a1", "tcp", "127.0.0.1:8081", "host 10.10.1.2"},
		{"a1", "udp", "127.0.0.1:8081", "host 10.10.1.2"},
	})

	d := newDataplane(t, tp.host)
	cfg := tp.config()
	cfg.Ports = []ports.Port{mapping(t, "tcp 127.0.0.1 9082 10.10.1.3 8081")}
	mustSync(t, d, cfg)
	tp.checkPorts(t, "guarded", []portProbe{
		{"outside", "tcp", "127.0.0.1:8081", ""},
		{"a1", "tcp", "127.0.0.1:8081", ""},
		{"a1", "udp", "127.0.0.1:8081", ""},
		{"outside", "tcp", "127.0.0.1:9082", ""},
		{"host", "tcp", "127.0.0.1:8081", "host 127.0.0.1"},
		{"host", "tcp", "127.0.0.1:9082", "a2 10.10.1.1"},
	})
	if n := ruleCounter(t, tp.host, "guard", "CVE-2020-8558"); n < 3 {
		t.Errorf("guard counted %d packets, want at least 3", n)
	}
}

// routeLoopbackVia makes ns send 127.0.0.0/8 to gw instead of its own lo,
// as an attacker next to the host would.
func routeLoopbackVia(t *testing.T, ns *nstest.NS, gw string) {
	t.Helper()
	h := ns.Netlink
	lo, err := h.LinkByName("lo")
	must(t, "find lo in "+ns.Name, err)
	loAddr, _ := netlink.ParseAddr("127.0.0.1/8")
	must(t, "remove 127.0.0.1 from lo in "+ns.Name, h.AddrDel(lo, loAddr))
	eth, err := h.LinkByName("eth0")
	must(t, "find eth0 in "+ns.Name, err)
	setSysctl(t, ns, "net.ipv4.conf.eth0.route_localnet", "1")
	_, dst, _ := net.ParseCIDR("127.0.0.0/8")
	must(t, "route 127.0.0.0/8 via "+gw, h.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Dst: dst, Gw: net.ParseIP(gw)}))
}

var counterOfRuleRE = regexp.MustCompile(`counter packets (\d+) .*comment "([^"]*)"`)

// ruleCounter returns the packet counter of the rule in knit's chain whose
// comment contains comment.
func ruleCounter(t *testing.T, ns *nstest.NS, chain, comment string) int {
	t.Helper()
	for _, m := range counterOfRuleRE.FindAllStringSubmatch(nfttest.Nft(t, ns, "list", "chain", "inet", "knit", chain), -1) {
		if strings.Contains(m[2], comment) {
			n, _ := strconv.Atoi(m[1])
			return n
		}
	}
	t.Fatalf("no counted rule with comment %q in chain %s", comment, chain)
	return 0
}

// TestPortsBesideForeignNAT: another program's nat table and iptables'
// rules (nft backend) stay untouched by every kind of sync, and both
// their DNAT and knit's published ports work side by side.
func TestPortsBesideForeignNAT(t *testing.T) {
	tp := newTopology(t)
	tp.prepareForPorts(t)
	addForeignNAT(t, tp.host, 9990, "10.10.3.2")
	probes := []portProbe{
		{"outside", "tcp", "192.168.100.1:9080", "a1 192.168.100.2"},
		{"outside", "tcp", "192.168.100.1:9990", "c1 192.168.100.2"},
		{"host", "tcp", "127.0.0.1:9082", "a2 10.10.1.1"},
	}
	nstest.RequireTool(t, "iptables", "iptables")
	for _, args := range [][]string{
		{"-t", "nat", "-A", "PREROUTING", "-p", "tcp", "--dport", "9991", "-j", "DNAT", "--to-destination", "10.10.3.2:8081"},
		{"-t", "nat", "-A", "POSTROUTING", "-s", "10.99.0.0/16", "-j", "MASQUERADE"},
	} {
		if out, err := nfttest.Exec(tp.host, "iptables", args...); err != nil {
			t.Fatalf("iptables %v: %v\n%s", args, err, out)
		}
	}
	probes = append(probes, portProbe{"outside", "tcp", "192.168.100.1:9991", "c1 192.168.100.2"})
	foreign := func() string {
		s := nfttest.Nft(t, tp.host, "-a", "list", "table", "ip", "foreign")
		out, err := nfttest.Exec(tp.host, "iptables", "-t", "nat", "-S")
		must(t, "iptables -S", err)
		s += string(out)
		return nfttest.WithoutCounters(s)
	}
	before := foreign()

	d := newDataplane(t, tp.host)
	cfg := tp.portsConfig(t)
	more := cfg
	more.Ports = append(more.Ports[:len(more.Ports):len(more.Ports)], mapping(t, "tcp * 9083 10.10.1.2 8081"))
	steps := []struct {
		name string
		sync func()
	}{
		{"full sync", func() { mustSync(t, d, cfg) }},
		{"partial sync", func() { mustSync(t, d, more) }},
		{"forced full sync", func() {
			d.ForceFull()
			mustSync(t, d, cfg)
		}},
		{"restart", func() { mustSync(t, newDataplane(t, tp.host), cfg) }},
	}
	for _, s := range steps {
		s.sync()
		if got := foreign(); got != before {
			t.Errorf("%s changed other tables:\n%s\nbefore:\n%s", s.name, got, before)
		}
		tp.checkPorts(t, s.name, probes)
	}
}

// addForeignNAT creates "table ip foreign" with a nat prerouting chain
// that DNATs TCP port to to:8081, as another program would.
func addForeignNAT(t *testing.T, ns *nstest.NS, port uint16, to string) {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns.Handle)))
	must(t, "nftables conn", err)
	tbl := c.AddTable(&nftables.Table{Name: "foreign", Family: nftables.TableFamilyIPv4})
	ch := c.AddChain(&nftables.Chain{Name: "prerouting", Table: tbl, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest})
	c.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: exprs.Reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: exprs.Reg1, Data: []byte{6}},
		&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: exprs.Reg1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: exprs.Reg1, Data: be16(port)},
		&expr.Counter{},
		&expr.Immediate{Register: exprs.Reg1, Data: net.ParseIP(to).To4()},
		&expr.Immediate{Register: exprs.Reg2, Data: be16(namedPort)},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: 2, RegAddrMin: exprs.Reg1, RegProtoMin: exprs.Reg2, Specified: true},
	}})
	must(t, "add table ip foreign", c.Flush())
}
