package conntrack_test

import (
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/knit-net/knit/internal/dataplane"
	"github.com/knit-net/knit/internal/dataplane/nft"
	"github.com/knit-net/knit/internal/dataplane/nft/networks"
	"github.com/knit-net/knit/internal/dataplane/nft/ports"
	"github.com/knit-net/knit/internal/testutil/nstest"
)

// TestFlushUDP (through ports.FlushUDP, as knit's controller calls it)
// follows one UDP client (a connected socket in "outside",
// the same 5-tuple throughout) to the published port 192.168.200.1:5353
// while the mapping is added, moved from c1 to c2 and removed. Each time
// the client keeps its old translation until FlushUDP deletes the entry.
// A flow from the host to outside's own port 5353 is never touched.
//
//	c1 10.20.0.2, c2 10.20.0.3 ─ kt-br 10.20.0.1 ─ host ─ kt-up 192.168.200.1 ── outside 192.168.200.2
func TestFlushUDP(t *testing.T) {
	host, outside := nstest.New(t, "cthost"), nstest.New(t, "ctout")
	host.Do(t, func() {
		if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
			t.Errorf("ip_forward: %v", err)
		}
	})
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "kt-br"}}
	must(t, "add bridge", host.Netlink.LinkAdd(br))
	nstest.AddrUp(t, host.Netlink, br, "10.20.0.1/24")
	nstest.Veth(t, host, "kt-up", 0, outside, []string{"192.168.200.2/24"}, nil)
	up, err := host.Netlink.LinkByName("kt-up")
	must(t, "find kt-up", err)
	nstest.AddrUp(t, host.Netlink, up, "192.168.200.1/24")
	for i, name := range []string{"c1", "c2"} {
		c := nstest.New(t, name)
		nstest.Veth(t, host, "kt-"+name, br.Index, c, []string{"10.20.0." + string(rune('2'+i)) + "/24"}, []string{"10.20.0.1"})
		serveUDP(t, c, name, 8081)
	}
	serveUDP(t, outside, "outside", 5353)

	d, err := dataplane.NewTable(nft.Options{NetNSPath: host.Path})
	must(t, "dataplane.NewTable", err)
	t.Cleanup(func() { d.Close() })
	nets := []networks.Network{{Bridge: "kt-br", Subnets: []netip.Prefix{netip.MustParsePrefix("10.20.0.0/24")}}}
	sync := func(ps ...ports.Port) {
		t.Helper()
		must(t, "Sync", d.Apply(dataplane.Config{Networks: nets, Ports: ps}))
	}
	to := func(ctr string) ports.Port {
		ip := map[string]string{"c1": "10.20.0.2", "c2": "10.20.0.3"}[ctr]
		return ports.Port{Proto: "udp", HostPort: 5353, ContainerIP: netip.MustParseAddr(ip), ContainerPort: 8081}
	}

	client := dialUDP(t, outside, "192.168.200.1:5353")
	hostFlow := dialUDP(t, host, "192.168.200.2:5353")
	expect := func(stage, want string) {
		t.Helper()
		if got := ask(client); got != want {
			t.Errorf("%s: client got %q, want %q", stage, got, want)
		}
	}
	flush := func(stage string, ps ...ports.Port) {
		t.Helper()
		var err error
		if stage == "moved" { // "" is the namespace of the calling thread
			host.Do(t, func() { err = ports.FlushUDP("", ps) })
		} else {
			err = ports.FlushUDP(host.Path, ps)
		}
		must(t, stage+": FlushUDP", err)
		if !hasFlow(t, host, "192.168.200.2", 5353) {
			t.Errorf("%s: FlushUDP deleted the host's flow to outside's port 5353", stage)
		}
	}
	sync() // conntrack starts tracking in a namespace once a nat chain exists
	if got := ask(hostFlow); got != "outside" || !hasFlow(t, host, "192.168.200.2", 5353) {
		t.Fatalf("host → outside:5353 answered %q, tracked %v", got, hasFlow(t, host, "192.168.200.2", 5353))
	}
	expect("no mapping", "")
	sync(to("c1"))
	expect("published, stale entry", "")
	flush("published", to("c1"))
	expect("published, flushed", "c1")

	sync(to("c2"))
	expect("moved, stale entry", "c1")
	flush("moved", to("c1"))
	look(t, host, "moved, flushed")
	expect("moved, flushed", "c2")

	sync()
	expect("removed, stale entry", "c2")
	flush("removed", to("c2"))
	expect("removed, flushed", "")
}

// hasFlow reports whether host's conntrack table has a UDP entry to
// dst:port, read through netlink.
func hasFlow(t *testing.T, host *nstest.NS, dst string, port uint16) bool {
	t.Helper()
	h, err := netlink.NewHandleAt(host.Handle, unix.NETLINK_NETFILTER)
	must(t, "netlink handle", err)
	defer h.Close()
	flows, err := h.ConntrackTableList(netlink.ConntrackTable, unix.AF_INET)
	must(t, "list conntrack", err)
	for _, f := range flows {
		if f.Forward.Protocol == unix.IPPROTO_UDP && f.Forward.DstIP.String() == dst && f.Forward.DstPort == port {
			return true
		}
	}
	return false
}

// look checks with the conntrack binary, when installed, that no entry is
// left translated to c1 (tests only: to look).
func look(t *testing.T, host *nstest.NS, stage string) {
	t.Helper()
	nstest.RequireTool(t, "conntrack", "conntrack")
	out, err := exec.Command("ip", "netns", "exec", host.Name, "conntrack", "-L", "-p", "udp").CombinedOutput()
	must(t, "conntrack -L", err)
	if strings.Contains(string(out), "src=10.20.0.2 ") {
		t.Errorf("%s: conntrack -L still shows a flow to c1:\n%s", stage, out)
	}
	if !strings.Contains(string(out), "dst=192.168.200.2 ") {
		t.Errorf("%s: conntrack -L lost the host's flow to outside:\n%s", stage, out)
	}
}

// dialUDP opens a connected UDP socket inside ns; its local port stays the
// same for the whole test.
func dialUDP(t *testing.T, ns *nstest.NS, to string) net.Conn {
	t.Helper()
	var c net.Conn
	var err error
	ns.Do(t, func() { c, err = net.Dial("udp", to) })
	must(t, "dial udp "+to+" in "+ns.Name, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// ask sends one datagram and returns the answer, "" when none comes within
// half a second (or the host refuses it).
func ask(c net.Conn) string {
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.Write([]byte("who")); err != nil {
		return ""
	}
	buf := make([]byte, 100)
	n, err := c.Read(buf)
	if err != nil {
		return ""
	}
	return string(buf[:n])
}

// serveUDP answers every datagram to port in ns with name.
func serveUDP(t *testing.T, ns *nstest.NS, name string, port int) {
	t.Helper()
	var pc net.PacketConn
	var err error
	ns.Do(t, func() { pc, err = net.ListenPacket("udp4", net.JoinHostPort("", itoa(port))) })
	must(t, "listen udp in "+ns.Name, err)
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 100)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo([]byte(name), from)
		}
	}()
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
