package dataplane

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/dataplane/nft/netpol"
	"github.com/knit-net/knit/internal/policy"
	"github.com/knit-net/knit/internal/testutil/nfttest"
	"github.com/knit-net/knit/internal/testutil/nstest"
)

// TestPolicyTraffic: real TCP, UDP and ICMP between pods of one bridge, to
// the host and to the outside, through policies installed and changed
// step by step: default deny, allows by peer address and port range, an
// any-protocol rule, egress deny to the host (input path), replies of
// allowed connections both ways, exact drop counts, the NFLOG reader, and
// partial syncs for every policy change, with a foreign table untouched.
func TestPolicyTraffic(t *testing.T) {
	tp := newPolTopology(t)
	nfttest.AddForeignTable(t, tp.host)
	addMarkCheck(t, tp.host)
	foreign := nfttest.Canonical(nfttest.Nft(t, tp.host, "list", "table", "ip", "foreign"))
	d, log := newLoggedDataplane(t, tp.host)

	var mu sync.Mutex
	var drops []netpol.Drop
	r, err := netpol.NewDropReader(netpol.DropReaderOptions{NetNSPath: tp.host.Path}, func(d netpol.Drop) {
		mu.Lock()
		drops = append(drops, d)
		mu.Unlock()
	})
	must(t, "NewDropReader", err)
	defer r.Close()

	// No policy: no chains, everything flows.
	mustSync(t, d, tp.config(nil))
	tp.check(t, "no policy", []polProbe{
		{"p1", "tcp", "10.20.0.12", 8080, true},
		{"p1", "udp", "10.20.0.1", 53, true},
		{"p1", "tcp", "192.168.200.2", 8080, true},
	})

	// Default deny ingress for p2.
	denyP2 := newNetpol("deny-p2", "p2", []string{v1.PolicyTypeIngress}, nil)
	step := func(name string, pols ...v1.NetworkPolicy) *policy.Compiled {
		t.Helper()
		c := policy.Compile(polInput(pols...))
		log.Take()
		mustSync(t, d, tp.config(c))
		return c
	}
	c := step("deny p2", denyP2)
	if got := log.Take(); !strings.Contains(got, logFull) {
		t.Errorf("first policy: log %q, want a full sync (the chains appear)", got)
	}
	tp.check(t, "default deny ingress p2", []polProbe{
		{"p1", "tcp", "10.20.0.12", 8080, false},
		{"p1", "tcp", "fd00:20::12", 8080, false},
		{"p3", "udp", "10.20.0.12", 5353, false},
		{"p1", "icmp", "10.20.0.12", 0, false},
		{"outside", "tcp", "10.20.0.12", 8080, false},
		// p2 itself is not egress-isolated; its peers' replies pass.
		{"p2", "tcp", "10.20.0.11", 8080, true},
		{"p2", "udp", "10.20.0.13", 5353, true},
		{"p2", "tcp", "192.168.200.2", 8080, true},
		{"p1", "tcp", "10.20.0.13", 8080, true},
	})

	// Exact drop counts: UDP datagrams, each a new denied packet.
	before, err := d.Policy.DropCounts(d.Table)
	must(t, "PolicyDropCounts", err)
	g := c.IngressGroup[netip.MustParseAddr("10.20.0.12")]
	sendUDP(t, tp.pods["p3"], "10.20.0.12", 5353, 7)
	waitFor(t, "7 more drops of p2's ingress group", func() bool {
		after, err := d.Policy.DropCounts(d.Table)
		must(t, "PolicyDropCounts", err)
		return after[g] == before[g]+7
	})
	waitFor(t, "a logged ingress drop p3 → p2 udp/5353", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, x := range drops {
			if x.Direction == "ingress" && x.Group == g && x.Proto == 17 && x.Src == netip.MustParseAddr("10.20.0.13") &&
				x.Dst == netip.MustParseAddr("10.20.0.12") && x.DstPort == 5353 && x.SrcPort != 0 && !x.Time.IsZero() {
				return true
			}
		}
		return false
	})

	// Allow p1 by address on a TCP port range (both families), and p3
	// everything (an any-protocol element).
	allowP2 := newNetpol("allow-p2", "p2", nil, func(s *v1.NetworkPolicySpec) {
		s.Ingress = []v1.NetworkPolicyIngressRule{
			{From: []v1.NetworkPolicyPeer{ipPeer("10.20.0.11/32"), ipPeer("fd00:20::11/128")},
				Ports: []v1.NetworkPolicyPort{portSpan("TCP", 8000, 8100)}},
			{From: []v1.NetworkPolicyPeer{{PodSelector: sel("app", "p3")}}},
		}
	})
	step("allow p2", denyP2, allowP2)
	if got := log.Take(); !strings.Contains(got, logPartial) {
		t.Errorf("policy change: log %q, want a partial sync", got)
	}
	tp.check(t, "allow p1 on 8000-8100, p3 on anything", []polProbe{
		{"p1", "tcp", "10.20.0.12", 8080, true},
		{"p1", "tcp", "fd00:20::12", 8080, true},
		{"p1", "tcp", "10.20.0.12", 80, false},
		{"p1", "udp", "10.20.0.12", 5353, false},
		{"p1", "icmp", "10.20.0.12", 0, false},
		{"p3", "tcp", "10.20.0.12", 80, true},
		{"p3", "tcp", "fd00:20::12", 8080, true},
		{"p3", "udp", "10.20.0.12", 5353, true},
		{"p3", "icmp", "10.20.0.12", 0, true},
		{"outside", "tcp", "10.20.0.12", 8080, false},
	})

	// Default deny egress for p1: not even the host's DNS (input path);
	// connections to p1 still work, their replies leave p1.
	denyEgP1 := newNetpol("deny-eg-p1", "p1", []string{v1.PolicyTypeEgress}, nil)
	step("deny egress p1", denyP2, allowP2, denyEgP1)
	if got := log.Take(); !strings.Contains(got, logPartial) {
		t.Errorf("policy change: log %q, want a partial sync", got)
	}
	tp.check(t, "default deny egress p1", []polProbe{
		{"p1", "udp", "10.20.0.1", 53, false},
		{"p1", "tcp", "10.20.0.1", 8080, false},
		{"p1", "tcp", "10.20.0.12", 8080, false},
		{"p1", "tcp", "10.20.0.13", 8080, false},
		{"p1", "tcp", "192.168.200.2", 8080, false},
		{"p1", "tcp", "fd00:20::13", 8080, false},
		{"p2", "tcp", "10.20.0.11", 8080, true},
		{"p3", "udp", "10.20.0.11", 5353, true},
		{"host", "tcp", "10.20.0.11", 80, true},
	})

	// Allow p1 DNS to the host and TCP 8080 to the outside.
	allowEgP1 := newNetpol("allow-eg-p1", "p1", nil, func(s *v1.NetworkPolicySpec) {
		s.Egress = []v1.NetworkPolicyEgressRule{
			{To: []v1.NetworkPolicyPeer{ipPeer("10.20.0.1/32")}, Ports: []v1.NetworkPolicyPort{portSpan("UDP", 53, 53)}},
			{To: []v1.NetworkPolicyPeer{ipPeer("192.168.200.0/24")}, Ports: []v1.NetworkPolicyPort{portSpan("TCP", 8080, 8080)}},
		}
	})
	c = step("allow egress p1", denyP2, allowP2, denyEgP1, allowEgP1)
	if got := log.Take(); !strings.Contains(got, logPartial) {
		t.Errorf("policy change: log %q, want a partial sync", got)
	}
	tp.check(t, "egress of p1 to DNS and outside:8080", []polProbe{
		{"p1", "udp", "10.20.0.1", 53, true},
		{"p1", "tcp", "10.20.0.1", 8080, false},
		{"p1", "tcp", "192.168.200.2", 8080, true},
		{"p1", "tcp", "192.168.200.2", 80, false},
		{"p1", "tcp", "10.20.0.12", 8080, false},
	})
	eg := c.EgressGroup[netip.MustParseAddr("10.20.0.11")]
	waitFor(t, "a logged egress drop of p1", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, x := range drops {
			if x.Direction == "egress" && x.Group == eg && x.Src == netip.MustParseAddr("10.20.0.11") {
				return true
			}
		}
		return false
	})

	// An established connection survives a policy that denies new ones
	// (only new connections are checked), and so do its replies.
	held, err := polDial(t, tp.pods["p3"], "10.20.0.12:8080")
	must(t, "connect p3 → p2", err)
	defer held.Close()
	c = step("deny p2 again", denyP2, denyEgP1, allowEgP1)
	tp.check(t, "p3 denied again", []polProbe{{"p3", "tcp", "10.20.0.12", 8080, false}})

	// p2's group is the one of the first step again, whose key a partial
	// sync cannot reuse (see polState): drops still count and log under
	// the group.
	g = c.IngressGroup[netip.MustParseAddr("10.20.0.12")]
	if keys, _, _ := d.Policy.Keys(); keys[g] == g {
		t.Errorf("group %#x kept its key; the test wants one stored under another", g)
	}
	before, err = d.Policy.DropCounts(d.Table)
	must(t, "PolicyDropCounts", err)
	mu.Lock()
	drops = nil
	mu.Unlock()
	sendUDP(t, tp.pods["p3"], "10.20.0.12", 5353, 3)
	waitFor(t, "3 more drops of p2's group under its new key", func() bool {
		after, err := d.Policy.DropCounts(d.Table)
		must(t, "PolicyDropCounts", err)
		return after[g] == before[g]+3
	})
	waitFor(t, "a logged drop of p2's group under its new key", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(drops) > 0 && drops[0].Group == g && drops[0].Direction == "ingress"
	})
	if _, err := held.Write([]byte("who\n")); err != nil {
		t.Errorf("established connection: %v", err)
	} else if _, err := held.Read(make([]byte, 64)); err != nil {
		t.Errorf("established connection after the policy changed: %v", err)
	}

	// Back to no policy: chains gone, everything flows; the foreign
	// table was never touched.
	mustSync(t, d, tp.config(nil))
	tp.check(t, "policy removed", []polProbe{
		{"p1", "tcp", "10.20.0.12", 8080, true},
		{"p1", "udp", "10.20.0.1", 53, true},
	})
	if got := nfttest.List(t, tp.host); strings.Contains(got, "pol_") || strings.Contains(got, "chain policy") {
		t.Errorf("policy left in the table:\n%s", got)
	}
	if got := nfttest.Nft(t, tp.host, "list", "table", "inet", "kt_mark"); !strings.Contains(got, "counter packets 0 bytes 0") {
		t.Errorf("allowed packets left knit's chains with another mark than they came with:\n%s", got)
	}
	if got := nfttest.Canonical(nfttest.Nft(t, tp.host, "list", "table", "ip", "foreign")); got != foreign {
		t.Errorf("foreign table changed:\n%s\nwant:\n%s", got, foreign)
	}
	if err := r.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func polDial(t *testing.T, ns *nstest.NS, addr string) (net.Conn, error) {
	var c net.Conn
	var err error
	ns.Do(t, func() { c, err = net.DialTimeout("tcp", addr, okTimeout) })
	if err == nil {
		c.SetDeadline(time.Now().Add(10 * time.Second))
	}
	return c, err
}

// waitFor polls cond for up to 3 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("timed out waiting for %s", what)
			return
		}
	}
}

// addMarkCheck creates "table inet kt_mark", which marks every packet 0x4242
// in prerouting and counts, in forward after knit's chains, the packets
// whose mark is another: network policy passes the group through the
// mark, and must give an allowed packet its own mark back.
func addMarkCheck(t *testing.T, ns *nstest.NS) {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns.Handle)))
	must(t, "nftables conn", err)
	tbl := c.AddTable(&nftables.Table{Name: "kt_mark", Family: nftables.TableFamilyINet})
	mangle, after := nftables.ChainPriorityMangle, nftables.ChainPriority(10)
	pre := c.AddChain(&nftables.Chain{Name: "pre", Table: tbl, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: mangle})
	fwd := c.AddChain(&nftables.Chain{Name: "fwd", Table: tbl, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: &after})
	mark := binaryutil.NativeEndian.PutUint32(0x4242)
	c.AddRule(&nftables.Rule{Table: tbl, Chain: pre, Exprs: []expr.Any{
		&expr.Immediate{Register: 1, Data: mark},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1},
	}})
	c.AddRule(&nftables.Rule{Table: tbl, Chain: fwd, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: mark},
		&expr.Counter{},
	}})
	must(t, "add table inet kt_mark", c.Flush())
}
