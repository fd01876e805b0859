package nft

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/policy"
	"github.com/knit-net/knit/internal/testutil/nstest"
)

// polTopology is a "host" namespace with one bridge and three pods, and an
// "outside" namespace behind an uplink:
//
//	p1 10.20.0.11 fd00:20::11 ┐
//	p2 10.20.0.12 fd00:20::12 ├─ kt-pol 10.20.0.1 fd00:20::1 ─ host ─ kt-pup 192.168.200.1 ── outside 192.168.200.2
//	p3 10.20.0.13 fd00:20::13 ┘
//
// Every pod and outside serve TCP on 80 and 8080 and UDP on 5353 and
// answer ICMP echo; the host serves UDP on 10.20.0.1:53 (its "DNS") and
// TCP on 10.20.0.1:8080. Every server answers with the client address it
// sees.
type polTopology struct {
	host, outside *nstest.NS
	pods          map[string]*nstest.NS
}

var polPods = map[string]string{"p1": "11", "p2": "12", "p3": "13"}

func newPolTopology(t *testing.T) *polTopology {
	t.Helper()
	tp := &polTopology{host: nstest.New(t, "phost"), outside: nstest.New(t, "pout"), pods: map[string]*nstest.NS{}}
	tp.host.Do(t, func() {
		for file, v := range map[string]string{
			"/proc/sys/net/ipv4/ip_forward":              "1",
			"/proc/sys/net/ipv6/conf/all/forwarding":     "1",
			"/proc/sys/net/ipv6/conf/all/accept_dad":     "0",
			"/proc/sys/net/ipv6/conf/default/accept_dad": "0",
		} {
			if err := os.WriteFile(file, []byte(v), 0o644); err != nil {
				t.Errorf("write %s in host namespace: %v", file, err)
			}
		}
		on, err := BridgeNetfilterOn()
		if err != nil || !on {
			t.Fatalf("br_netfilter is off in the test namespace (%v): pods of one bridge would bypass the forward hook", err)
		}
	})
	h := tp.host.Netlink
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "kt-pol"}}
	must(t, "add bridge kt-pol", h.LinkAdd(br))
	nstest.AddrUp(t, h, br, "10.20.0.1/24", "fd00:20::1/64")
	for name, suffix := range polPods {
		ns := nstest.New(t, name)
		tp.pods[name] = ns
		nstest.Veth(t, tp.host, "kt-"+name, br.Attrs().Index, ns,
			[]string{"10.20.0." + suffix + "/24", "fd00:20::" + suffix + "/64"}, []string{"10.20.0.1", "fd00:20::1"})
		polServe(t, ns, "")
	}
	nstest.Veth(t, tp.host, "kt-pup", 0, tp.outside, []string{"192.168.200.2/24"}, nil)
	up, err := h.LinkByName("kt-pup")
	must(t, "find kt-pup", err)
	nstest.AddrUp(t, h, up, "192.168.200.1/24")
	oeth, err := tp.outside.Netlink.LinkByName("eth0")
	must(t, "find outside eth0", err)
	_, pods, _ := net.ParseCIDR("10.20.0.0/24")
	must(t, "route to the pods in outside", tp.outside.Netlink.RouteAdd(&netlink.Route{
		LinkIndex: oeth.Attrs().Index, Dst: pods, Gw: net.ParseIP("192.168.200.1")}))
	polServe(t, tp.outside, "")
	polServe(t, tp.host, "10.20.0.1")
	return tp
}

func (tp *polTopology) ns(name string) *nstest.NS {
	switch name {
	case "host":
		return tp.host
	case "outside":
		return tp.outside
	}
	return tp.pods[name]
}

func (tp *polTopology) config(c *policy.Compiled) Config {
	return Config{Networks: []Network{{Bridge: "kt-pol", Subnets: pfx("10.20.0.0/24", "fd00:20::/64")}}, Policy: c}
}

// polInput is the three pods (labels app=p1 …, a named port "web" = 80)
// with the given policies, all in namespace default.
func polInput(pols ...v1.NetworkPolicy) policy.Input {
	in := policy.Input{Policies: pols}
	for name, suffix := range polPods {
		in.Pods = append(in.Pods, policy.Pod{Name: name, Namespace: "default", Labels: map[string]string{"app": name},
			Addrs: []netip.Addr{netip.MustParseAddr("10.20.0." + suffix), netip.MustParseAddr("fd00:20::" + suffix)},
			Ports: []v1.ContainerPort{{Name: "web", Port: 80, Protocol: "tcp"}}})
	}
	return in
}

func netpol(name, app string, types []string, spec func(*v1.NetworkPolicySpec)) v1.NetworkPolicy {
	p := v1.NetworkPolicy{APIVersion: v1.NetworkingAPIVersion, Kind: v1.KindNetworkPolicy,
		Metadata: v1.ObjectMeta{Namespace: "default", Name: name},
		Spec:     v1.NetworkPolicySpec{PodSelector: *sel("app", app), PolicyTypes: types}}
	if spec != nil {
		spec(&p.Spec)
	}
	return p
}

func ipPeer(cidr string) v1.NetworkPolicyPeer {
	return v1.NetworkPolicyPeer{IPBlock: &v1.IPBlock{CIDR: cidr}}
}

func portSpan(proto string, lo, hi int32) v1.NetworkPolicyPort {
	p := v1.NetworkPolicyPort{Protocol: proto, Port: &v1.IntOrString{Int: lo}}
	if hi != lo {
		p.EndPort = &hi
	}
	return p
}

// polProbe is one attempt from a namespace: "tcp", "udp" or "icmp" to
// address:port. ok says whether it must get an answer.
type polProbe struct {
	from, proto, to string
	port            int
	ok              bool
}

const polBlocked = 400 * time.Millisecond

// check runs the probes concurrently and reports every mismatch.
func (tp *polTopology) check(t *testing.T, stage string, probes []polProbe) {
	t.Helper()
	var wg sync.WaitGroup
	for _, p := range probes {
		wg.Go(func() {
			timeout := okTimeout
			if !p.ok {
				timeout = polBlocked
			}
			err := polAsk(t, tp.ns(p.from), p.proto, p.to, p.port, timeout)
			switch {
			case p.ok && err != nil:
				t.Errorf("%s: %s → %s %s:%d: %v; want an answer", stage, p.from, p.proto, p.to, p.port, err)
			case !p.ok && err == nil:
				t.Errorf("%s: %s → %s %s:%d answered; want it blocked", stage, p.from, p.proto, p.to, p.port)
			}
		})
	}
	wg.Wait()
}

// polAsk makes one exchange from inside ns: a TCP connection with one line
// each way, a UDP datagram and its echo, or an ICMP echo request and reply.
func polAsk(t *testing.T, ns *nstest.NS, proto, to string, port int, timeout time.Duration) error {
	var err error
	ns.Do(t, func() {
		switch proto {
		case "icmp":
			err = ping(to, timeout)
		default:
			var c net.Conn
			if c, err = net.DialTimeout(proto, net.JoinHostPort(to, strconv.Itoa(port)), timeout); err != nil {
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(timeout))
			if _, err = c.Write([]byte("who\n")); err != nil {
				return
			}
			buf := make([]byte, 64)
			_, err = c.Read(buf)
		}
	})
	return err
}

// ping sends one ICMP echo request (IPv4) and waits for the reply.
func ping(to string, timeout time.Duration) error {
	c, err := net.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		return err
	}
	defer c.Close()
	id := uint16(os.Getpid()) ^ uint16(time.Now().UnixNano())
	msg := []byte{8, 0, 0, 0, byte(id >> 8), byte(id), 0, 1, 'k', 'n', 'i', 't'}
	binary.BigEndian.PutUint16(msg[2:], icmpChecksum(msg))
	dst := &net.IPAddr{IP: net.ParseIP(to)}
	if _, err := c.WriteTo(msg, dst); err != nil {
		return err
	}
	c.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return err
		}
		if n >= 8 && buf[0] == 0 && binary.BigEndian.Uint16(buf[4:]) == id && from.String() == to {
			return nil
		}
	}
}

func icmpChecksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

// polServe serves TCP 80 and 8080 and UDP 5353 on addr (all addresses when
// empty), or, for the host's gateway address, UDP 53 and TCP 8080.
func polServe(t *testing.T, ns *nstest.NS, addr string) {
	t.Helper()
	tcp, udp := []string{"80", "8080"}, []string{"5353"}
	if addr != "" {
		tcp, udp = []string{"8080"}, []string{"53"}
	}
	for _, port := range tcp {
		var ln net.Listener
		var err error
		ns.Do(t, func() { ln, err = net.Listen("tcp", net.JoinHostPort(addr, port)) })
		must(t, "listen tcp "+port+" in "+ns.Name, err)
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					buf := make([]byte, 64)
					for {
						if _, err := c.Read(buf); err != nil {
							return
						}
						peer := c.RemoteAddr().(*net.TCPAddr).IP.String()
						if _, err := c.Write([]byte(peer + "\n")); err != nil {
							return
						}
					}
				}()
			}
		}()
	}
	for _, port := range udp {
		var pc net.PacketConn
		var err error
		ns.Do(t, func() { pc, err = net.ListenPacket("udp", net.JoinHostPort(addr, port)) })
		must(t, "listen udp "+port+" in "+ns.Name, err)
		t.Cleanup(func() { pc.Close() })
		go func() {
			buf := make([]byte, 1500)
			for {
				_, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				pc.WriteTo([]byte(from.String()+"\n"), from)
			}
		}()
	}
}

// sendUDP sends n datagrams from ns to to:port without waiting for answers.
func sendUDP(t *testing.T, ns *nstest.NS, to string, port, n int) {
	t.Helper()
	ns.Do(t, func() {
		c, err := net.Dial("udp", net.JoinHostPort(to, strconv.Itoa(port)))
		if err != nil {
			t.Errorf("dial udp %s:%d: %v", to, port, err)
			return
		}
		defer c.Close()
		for range n {
			if _, err := c.Write([]byte("x")); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("send udp %s:%d: %v", to, port, err)
			}
		}
	})
}

// TestPolicyTraffic: real TCP, UDP and ICMP between pods of one bridge, to
// the host and to the outside, through policies installed and changed
// step by step: default deny, allows by peer address and port range, an
// any-protocol rule, egress deny to the host (input path), replies of
// allowed connections both ways, exact drop counts, the NFLOG reader, and
// partial syncs for every policy change, with a foreign table untouched.
func TestPolicyTraffic(t *testing.T) {
	tp := newPolTopology(t)
	addForeignTable(t, tp.host)
	addMarkCheck(t, tp.host)
	foreign := canonical(nft(t, tp.host, "list", "table", "ip", "foreign"))
	d, log := newLoggedDataplane(t, tp.host)

	var mu sync.Mutex
	var drops []Drop
	r, err := NewDropReader(DropReaderOptions{NetNSPath: tp.host.Path}, func(d Drop) {
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
	denyP2 := netpol("deny-p2", "p2", []string{v1.PolicyTypeIngress}, nil)
	step := func(name string, pols ...v1.NetworkPolicy) *policy.Compiled {
		t.Helper()
		c := policy.Compile(polInput(pols...))
		log.take()
		mustSync(t, d, tp.config(c))
		return c
	}
	c := step("deny p2", denyP2)
	if got := log.take(); !strings.Contains(got, logFull) {
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
	before, err := d.PolicyDropCounts()
	must(t, "PolicyDropCounts", err)
	g := c.IngressGroup[netip.MustParseAddr("10.20.0.12")]
	sendUDP(t, tp.pods["p3"], "10.20.0.12", 5353, 7)
	waitFor(t, "7 more drops of p2's ingress group", func() bool {
		after, err := d.PolicyDropCounts()
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
	allowP2 := netpol("allow-p2", "p2", nil, func(s *v1.NetworkPolicySpec) {
		s.Ingress = []v1.NetworkPolicyIngressRule{
			{From: []v1.NetworkPolicyPeer{ipPeer("10.20.0.11/32"), ipPeer("fd00:20::11/128")},
				Ports: []v1.NetworkPolicyPort{portSpan("TCP", 8000, 8100)}},
			{From: []v1.NetworkPolicyPeer{{PodSelector: sel("app", "p3")}}},
		}
	})
	step("allow p2", denyP2, allowP2)
	if got := log.take(); !strings.Contains(got, logPartial) {
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
	denyEgP1 := netpol("deny-eg-p1", "p1", []string{v1.PolicyTypeEgress}, nil)
	step("deny egress p1", denyP2, allowP2, denyEgP1)
	if got := log.take(); !strings.Contains(got, logPartial) {
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
	allowEgP1 := netpol("allow-eg-p1", "p1", nil, func(s *v1.NetworkPolicySpec) {
		s.Egress = []v1.NetworkPolicyEgressRule{
			{To: []v1.NetworkPolicyPeer{ipPeer("10.20.0.1/32")}, Ports: []v1.NetworkPolicyPort{portSpan("UDP", 53, 53)}},
			{To: []v1.NetworkPolicyPeer{ipPeer("192.168.200.0/24")}, Ports: []v1.NetworkPolicyPort{portSpan("TCP", 8080, 8080)}},
		}
	})
	c = step("allow egress p1", denyP2, allowP2, denyEgP1, allowEgP1)
	if got := log.take(); !strings.Contains(got, logPartial) {
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
	if key := d.applied.rs.pol.keys[g]; key == g {
		t.Errorf("group %#x kept its key; the test wants one stored under another", g)
	}
	before, err = d.PolicyDropCounts()
	must(t, "PolicyDropCounts", err)
	mu.Lock()
	drops = nil
	mu.Unlock()
	sendUDP(t, tp.pods["p3"], "10.20.0.12", 5353, 3)
	waitFor(t, "3 more drops of p2's group under its new key", func() bool {
		after, err := d.PolicyDropCounts()
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
	if got := listKnit(t, tp.host); strings.Contains(got, "pol_") || strings.Contains(got, "chain policy") {
		t.Errorf("policy left in the table:\n%s", got)
	}
	if got := nft(t, tp.host, "list", "table", "inet", "kt_mark"); !strings.Contains(got, "counter packets 0 bytes 0") {
		t.Errorf("allowed packets left knit's chains with another mark than they came with:\n%s", got)
	}
	if got := canonical(nft(t, tp.host, "list", "table", "ip", "foreign")); got != foreign {
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
