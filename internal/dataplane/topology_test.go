package dataplane

import (
	"bufio"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/knit-net/knit/internal/dataplane/nft/networks"
	"github.com/knit-net/knit/internal/testutil/nstest"
)

// topology is a "host" namespace with three bridges, two "container"
// namespaces on each, and an "outside" namespace behind an uplink veth:
//
//	a1 a2 ─ kt-bra 10.10.1.0/24 fd00:a::/64 ┐
//	c1 c2 ─ kt-brc 10.10.3.0/24             ├─ host ─ kt-up 192.168.100.1 ── outside 192.168.100.2
//	i1 i2 ─ kt-bri 10.10.2.0/24 (internal)  ┘         fd00:100::1                fd00:100::2
//
// outside has a route back to the internal subnet only, so that without
// masquerade a reply from outside to a1 or c1 has no way home.
type topology struct {
	host, outside *nstest.NS
	ctr           map[string]*nstest.NS
}

const serverPort = "8080"

func (tp *topology) config() Config {
	return Config{Networks: []networks.Network{
		{Bridge: "kt-bra", Subnets: pfx("10.10.1.0/24", "fd00:a::/64")},
		{Bridge: "kt-brc", Subnets: pfx("10.10.3.0/24")},
		{Bridge: "kt-bri", Subnets: pfx("10.10.2.0/24"), Internal: true},
	}}
}

func newTopology(t *testing.T) *topology {
	t.Helper()
	tp := &topology{host: nstest.New(t, "host"), outside: nstest.New(t, "out"), ctr: map[string]*nstest.NS{}}
	h := tp.host.Netlink
	tp.host.Do(t, func() {
		for file, v := range map[string]string{
			"/proc/sys/net/ipv4/ip_forward":          "1",
			"/proc/sys/net/ipv6/conf/all/forwarding": "1",
			// Link-local addresses usable at once: while the bridge's is
			// tentative the host sends no neighbour solicitation for
			// forwarded packets, and the first IPv6 flows stall ~2 s.
			"/proc/sys/net/ipv6/conf/all/accept_dad":     "0",
			"/proc/sys/net/ipv6/conf/default/accept_dad": "0",
		} {
			if err := os.WriteFile(file, []byte(v), 0o644); err != nil {
				t.Errorf("write %s in host namespace: %v", file, err)
			}
		}
	})
	type bridge struct {
		name, net4, gw4, net6, gw6 string
		ctrs                       []string
	}
	for _, b := range []bridge{
		{"kt-bra", "10.10.1.", "10.10.1.1/24", "fd00:a::", "fd00:a::1/64", []string{"a1", "a2"}},
		{"kt-brc", "10.10.3.", "10.10.3.1/24", "", "", []string{"c1", "c2"}},
		{"kt-bri", "10.10.2.", "10.10.2.1/24", "", "", []string{"i1", "i2"}},
	} {
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: b.name}}
		must(t, "add bridge "+b.name, h.LinkAdd(br))
		nstest.AddrUp(t, h, br, b.gw4, b.gw6)
		for i, name := range b.ctrs {
			c := nstest.New(t, name)
			tp.ctr[name] = c
			suffix := string(rune('2' + i))
			var v6 string
			if b.net6 != "" {
				v6 = b.net6 + suffix + "/64"
			}
			nstest.Veth(t, tp.host, "kt-"+name, br.Attrs().Index, c, []string{b.net4 + suffix + "/24", v6}, []string{b.gw4, b.gw6})
		}
	}
	nstest.Veth(t, tp.host, "kt-up", 0, tp.outside, []string{"192.168.100.2/24", "fd00:100::2/64"}, nil)
	up, err := h.LinkByName("kt-up")
	must(t, "find kt-up", err)
	nstest.AddrUp(t, h, up, "192.168.100.1/24", "fd00:100::1/64")
	oeth, err := tp.outside.Netlink.LinkByName("eth0")
	must(t, "find outside eth0", err)
	_, internal, _ := net.ParseCIDR("10.10.2.0/24")
	must(t, "route to internal subnet in outside", tp.outside.Netlink.RouteAdd(&netlink.Route{
		LinkIndex: oeth.Attrs().Index, Dst: internal, Gw: net.ParseIP("192.168.100.1")}))

	for _, ns := range append([]*nstest.NS{tp.outside}, mapValues(tp.ctr)...) {
		serve(t, ns)
	}
	return tp
}

// serve listens on port 8080 in ns and answers every connection with the
// client address it sees, one line per line received, until closed.
func serve(t *testing.T, ns *nstest.NS) {
	t.Helper()
	var ln net.Listener
	var err error
	ns.Do(t, func() { ln, err = net.Listen("tcp", ":"+serverPort) })
	must(t, "listen in "+ns.Name, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				peer := c.RemoteAddr().(*net.TCPAddr).IP.String()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					if _, err := c.Write([]byte(peer + "\n")); err != nil {
						return
					}
				}
			}()
		}
	}()
}

// connect dials ip:8080 from inside ns within timeout.
func connect(t *testing.T, ns *nstest.NS, ip string, timeout time.Duration) (net.Conn, error) {
	t.Helper()
	var c net.Conn
	var err error
	ns.Do(t, func() { c, err = net.DialTimeout("tcp", net.JoinHostPort(ip, serverPort), timeout) })
	return c, err
}

// ask sends one line and returns the server's answer: the client address
// as the server sees it.
func ask(c net.Conn) (string, error) {
	if err := c.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return "", err
	}
	if _, err := c.Write([]byte("who\n")); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

func must(t testing.TB, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func mapValues(m map[string]*nstest.NS) []*nstest.NS {
	var out []*nstest.NS
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
