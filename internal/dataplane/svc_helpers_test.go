package dataplane

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/knit-net/knit/internal/testutil/nstest"
)

// Service addresses of the service tests, in the topology of newTopology:
// ClusterIPs in 10.96.0.0/16 and fd00:96::/112 (routed to the host's lo as
// a cluster node does, so that what no service port takes arrives at
// input), load balancer addresses in 192.168.200.0/24 (routed by the host
// to outside and by outside to the host: what no service port takes is
// forwarded, and refused in forward).
var svcRanges = pfx("10.96.0.0/16", "fd00:96::/112")

// prepareForServices does prepareForPorts (named servers on 8081 in a1, a2
// and c1) and adds the routes above.
func (tp *topology) prepareForServices(t *testing.T) {
	t.Helper()
	tp.prepareForPorts(t)
	h := tp.host.Netlink
	lo, err := h.LinkByName("lo")
	must(t, "find lo", err)
	for _, p := range svcRanges {
		dst := &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
		must(t, "local route "+p.String(), h.RouteAdd(&netlink.Route{LinkIndex: lo.Attrs().Index, Dst: dst,
			Type: unix.RTN_LOCAL, Table: unix.RT_TABLE_LOCAL, Scope: netlink.SCOPE_HOST}))
	}
	route := func(ns *nstest.NS, cidr, gw string) {
		_, dst, _ := net.ParseCIDR(cidr)
		eth, err := ns.Netlink.LinkByName(map[bool]string{true: "kt-up", false: "eth0"}[ns == tp.host])
		must(t, "find uplink in "+ns.Name, err)
		must(t, "route "+cidr+" in "+ns.Name, ns.Netlink.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Dst: dst, Gw: net.ParseIP(gw)}))
	}
	route(tp.host, "192.168.200.0/24", "192.168.100.2")
	// Forwarding back out of kt-up sends outside an ICMP redirect, and
	// that uses up outside's ICMP allowance (net.ipv4.icmp_ratelimit):
	// the port unreachable of a refused UDP datagram would be suppressed.
	setSysctl(t, tp.host, "net.ipv4.conf.all.send_redirects", "0")
	setSysctl(t, tp.host, "net.ipv4.conf.kt-up.send_redirects", "0")
	route(tp.outside, "192.168.200.0/24", "192.168.100.1")
	route(tp.outside, "fd00:96::/112", "fd00:100::1")
}

// backendsAt are the named servers of prepareForPorts as backends on 8081.
func backendsAt(names ...string) []netip.AddrPort {
	at := map[string]string{"a1": "10.10.1.2", "a2": "10.10.1.3", "c1": "10.10.3.2",
		"a1v6": "fd00:a::2", "a2v6": "fd00:a::3"}
	var out []netip.AddrPort
	for _, n := range names {
		out = append(out, netip.AddrPortFrom(netip.MustParseAddr(at[n]), namedPort))
	}
	return out
}

// refused checks that a connection from ns to proto "to" is refused at
// once: TCP by a reset, UDP by an ICMP port unreachable (an error on the
// connected socket), within a quarter of a second and not by a timeout.
// The host's own UDP datagram is rejected in output, before it leaves:
// the send fails with EPERM.
func refused(t *testing.T, ns *nstest.NS, from, proto, to string) {
	t.Helper()
	start := time.Now()
	var c net.Conn
	var err error
	ns.Do(t, func() { c, err = net.DialTimeout(proto, to, okTimeout) })
	if err == nil {
		if proto == "tcp" {
			c.Close()
			t.Errorf("%s → %s/%s connected; want it refused", from, to, proto)
			return
		}
		var got string
		got, err = exchange(c, okTimeout)
		c.Close()
		if err == nil {
			t.Errorf("%s → %s/%s answered %q; want it refused", from, to, proto, got)
			return
		}
	}
	took := time.Since(start)
	ok := errors.Is(err, syscall.ECONNREFUSED) || from == "host" && proto == "udp" && errors.Is(err, syscall.EPERM)
	if !ok || took > 250*time.Millisecond {
		t.Errorf("%s → %s/%s: %v after %v; want connection refused at once", from, to, proto, err, took.Round(time.Millisecond))
	}
}

// reach asks proto "to" from ns n times, each time on a new connection
// (new source port), and returns how often each server answered.
func reach(t *testing.T, ns *nstest.NS, proto, to string, n int) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for range n {
		got, err := askPort(t, ns, proto, to, okTimeout)
		if err != nil {
			t.Errorf("%s → %s/%s: %v", ns.Name, to, proto, err)
			return seen
		}
		seen[strings.Fields(got)[0]]++
	}
	return seen
}

// askFrom dials tcp "to" from ns with source address src and returns the
// server's name.
func askFrom(t *testing.T, ns *nstest.NS, src, to string) string {
	t.Helper()
	var c net.Conn
	var err error
	d := net.Dialer{Timeout: okTimeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	ns.Do(t, func() { c, err = d.Dial("tcp", to) })
	if err != nil {
		t.Errorf("%s (%s) → %s: %v", ns.Name, src, to, err)
		return ""
	}
	defer c.Close()
	got, err := exchange(c, okTimeout)
	if err != nil {
		t.Errorf("%s (%s) → %s: no answer: %v", ns.Name, src, to, err)
		return ""
	}
	return strings.Fields(got)[0]
}
