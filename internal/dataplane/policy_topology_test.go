package dataplane

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/dataplane/nft/netpol"
	"github.com/knit-net/knit/internal/dataplane/nft/networks"
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
		on, err := netpol.BridgeNetfilterOn()
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
	return Config{Networks: []networks.Network{{Bridge: "kt-pol", Subnets: pfx("10.20.0.0/24", "fd00:20::/64")}}, Policy: c}
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

func newNetpol(name, app string, types []string, spec func(*v1.NetworkPolicySpec)) v1.NetworkPolicy {
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
