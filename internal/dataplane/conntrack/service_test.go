package conntrack

import (
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

func TestServiceFilter(t *testing.T) {
	f := newServiceFilter([]UDPServiceBackend{
		{Frontends: []netip.AddrPort{netip.MustParseAddrPort("10.96.0.10:53")}, NodePort: 30053,
			Backend: netip.MustParseAddrPort("10.0.0.2:5353")},
		{Frontends: []netip.AddrPort{netip.MustParseAddrPort("[fd00:96::10]:53")},
			Backend: netip.MustParseAddrPort("[fd00::2]:5353")},
	})
	f.local[netip.MustParseAddr("192.0.2.1")] = true
	for _, tc := range []struct {
		name               string
		src, dst, from, to string
		proto              uint8
		want               bool
	}{
		{"VIP to the gone backend", "10.1.0.7:4000", "10.96.0.10:53", "10.0.0.2:5353", "10.1.0.7:4000", unix.IPPROTO_UDP, true},
		{"VIP to a remaining backend", "10.1.0.7:4000", "10.96.0.10:53", "10.0.0.3:5353", "10.1.0.7:4000", unix.IPPROTO_UDP, false},
		{"node port on a local address", "198.51.100.7:4000", "192.0.2.1:30053", "10.0.0.2:5353", "198.51.100.7:4000", unix.IPPROTO_UDP, true},
		{"node port number on another machine", "10.0.0.9:4000", "198.51.100.7:30053", "10.0.0.2:5353", "10.0.0.9:4000", unix.IPPROTO_UDP, false},
		{"another VIP to the same backend", "10.1.0.7:4000", "10.96.0.11:53", "10.0.0.2:5353", "10.1.0.7:4000", unix.IPPROTO_UDP, false},
		{"the backend reached directly", "10.1.0.7:4000", "10.0.0.2:5353", "10.0.0.2:5353", "10.1.0.7:4000", unix.IPPROTO_UDP, false},
		{"tcp", "10.1.0.7:4000", "10.96.0.10:53", "10.0.0.2:5353", "10.1.0.7:4000", unix.IPPROTO_TCP, false},
		{"IPv6 VIP", "[fd00::7]:4000", "[fd00:96::10]:53", "[fd00::2]:5353", "[fd00::7]:4000", unix.IPPROTO_UDP, true},
	} {
		if got := f.MatchConntrackFlow(flow(tc.proto, tc.src, tc.dst, tc.from, tc.to)); got != tc.want {
			t.Errorf("%s: match = %v, want %v", tc.name, got, tc.want)
		}
	}
	if err := FlushServiceUDP("/run/netns/kt-missing", nil); err != nil {
		t.Errorf("FlushServiceUDP with nothing gone = %v; want nil without opening the namespace", err)
	}
}
