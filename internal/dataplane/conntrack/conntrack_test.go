package conntrack

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// flow builds a conntrack entry: the original tuple src → dst and the
// reply tuple from → to, as "ip:port" strings.
func flow(proto uint8, src, dst, from, to string) *netlink.ConntrackFlow {
	tuple := func(a, b string) netlink.IPTuple {
		s, d := netip.MustParseAddrPort(a), netip.MustParseAddrPort(b)
		return netlink.IPTuple{Protocol: proto, SrcIP: net.IP(s.Addr().AsSlice()), SrcPort: s.Port(),
			DstIP: net.IP(d.Addr().AsSlice()), DstPort: d.Port()}
	}
	return &netlink.ConntrackFlow{Forward: tuple(src, dst), Reverse: tuple(from, to)}
}

func TestUDPFilter(t *testing.T) {
	f := newUDPFilter([]UDPMapping{
		{HostPort: 5353, ContainerIP: netip.MustParseAddr("10.0.0.2"), ContainerPort: 53},
		{HostIP: netip.MustParseAddr("192.0.2.1"), HostPort: 6000, ContainerIP: netip.MustParseAddr("10.0.0.3"), ContainerPort: 6000},
		{HostIP: netip.MustParseAddr("0.0.0.0"), HostPort: 7000, ContainerIP: netip.MustParseAddr("10.0.0.2"), ContainerPort: 7000},
	})
	f.local[netip.MustParseAddr("192.0.2.1")] = true
	f.local[netip.MustParseAddr("127.0.0.1")] = true
	for _, tc := range []struct {
		name string
		flow *netlink.ConntrackFlow
		want bool
	}{
		{"translated to the container", flow(unix.IPPROTO_UDP,
			"198.51.100.7:4000", "192.0.2.1:5353", "10.0.0.2:53", "198.51.100.7:4000"), true},
		{"translated from 127.0.0.1 and masqueraded", flow(unix.IPPROTO_UDP,
			"127.0.0.1:4000", "127.0.0.1:5353", "10.0.0.2:53", "10.0.0.1:4000"), true},
		{"untranslated, to the host", flow(unix.IPPROTO_UDP,
			"198.51.100.7:4000", "192.0.2.1:5353", "192.0.2.1:5353", "198.51.100.7:4000"), true},
		{"to another machine's port 5353", flow(unix.IPPROTO_UDP,
			"10.0.0.9:4000", "198.51.100.7:5353", "198.51.100.7:5353", "192.0.2.1:4000"), false},
		{"translated elsewhere by someone else", flow(unix.IPPROTO_UDP,
			"198.51.100.7:4000", "192.0.2.1:5353", "10.0.0.8:53", "198.51.100.7:4000"), false},
		{"bound mapping, its address", flow(unix.IPPROTO_UDP,
			"198.51.100.7:4000", "192.0.2.1:6000", "10.0.0.3:6000", "198.51.100.7:4000"), true},
		{"bound mapping, another address", flow(unix.IPPROTO_UDP,
			"198.51.100.7:4000", "192.0.2.2:6000", "10.0.0.3:6000", "198.51.100.7:4000"), false},
		{"0.0.0.0 is every address", flow(unix.IPPROTO_UDP,
			"198.51.100.7:4000", "192.0.2.9:7000", "10.0.0.2:7000", "198.51.100.7:4000"), true},
		{"tcp", flow(unix.IPPROTO_TCP,
			"198.51.100.7:4000", "192.0.2.1:5353", "10.0.0.2:53", "198.51.100.7:4000"), false},
		{"other family, untranslated", flow(unix.IPPROTO_UDP,
			"[2001:db8::7]:4000", "[2001:db8::1]:5353", "[2001:db8::1]:5353", "[2001:db8::7]:4000"), false},
	} {
		if got := f.MatchConntrackFlow(tc.flow); got != tc.want {
			t.Errorf("%s: match = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestFlushUDPNothingToDo(t *testing.T) {
	// No mapping: the namespace is not even opened.
	if err := FlushUDP("/run/netns/kt-missing", nil); err != nil {
		t.Errorf("FlushUDP without mappings = %v", err)
	}
	err := FlushUDP("/run/netns/kt-missing", []UDPMapping{{HostPort: 1}})
	if err == nil || !strings.Contains(err.Error(), "kt-missing") {
		t.Errorf("FlushUDP in a missing namespace = %v, want an error naming it", err)
	}
}
