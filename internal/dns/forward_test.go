package dns

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestForwardDefaultAndPerContainer(t *testing.T) {
	e := newEnv(t, Options{})
	e.want(t, ipApp, "fwd.example.", tA, ok, "203.0.113.1")
	e.want(t, ipCustom, "fwd.example.", tA, ok, "203.0.113.2") // --dns
	e.want(t, ipCustom, "web.", tA, ok, "127.0.1.1")           // local names still local
	e.want(t, ipApp, "servfail.example.", tA, dns.RcodeServerFailure)
	if !e.up.saw("udp", "fwd.example.") || !e.custom.saw("udp", "fwd.example.") {
		t.Error("the upstreams did not see their queries")
	}
}

func TestForwardTruncatedThenTCP(t *testing.T) {
	e := newEnv(t, Options{})
	m := new(dns.Msg)
	m.SetQuestion("big.example.", tA)
	r, err := exchange(e.srv, ipApp, "udp", m)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Truncated {
		t.Fatalf("UDP answer not truncated: %v", r)
	}
	r, err = exchange(e.srv, ipApp, "tcp", m)
	if err != nil {
		t.Fatal(err)
	}
	if r.Truncated || len(r.Answer) != 40 {
		t.Fatalf("TCP answer: truncated %v with %d records, want 40", r.Truncated, len(r.Answer))
	}
	if !e.up.saw("tcp", "big.example.") {
		t.Error("the TCP query was not forwarded over TCP")
	}
}

func TestForwardEDNS0(t *testing.T) {
	e := newEnv(t, Options{})
	m := new(dns.Msg)
	m.SetQuestion("edns.example.", dns.TypeTXT)
	m.SetEdns0(1400, false)
	m.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_LOCAL{Code: 65001, Data: []byte("knit")}}
	m.Id = 4242
	for _, network := range []string{"udp", "tcp"} {
		r, err := exchange(e.srv, ipApp, network, m)
		if err != nil {
			t.Fatalf("%s: %v", network, err)
		}
		if r.Id != 4242 {
			t.Errorf("%s: answer ID %d, want the query's 4242", network, r.Id)
		}
		if len(r.Answer) != 1 || r.Answer[0].(*dns.TXT).Txt[0] != "size=1400 local=knit" {
			t.Errorf("%s: the upstream saw %v, want the client's OPT record", network, r.Answer)
		}
		opt := r.IsEdns0()
		if opt == nil || len(opt.Option) != 1 || string(opt.Option[0].(*dns.EDNS0_LOCAL).Data) != "up" {
			t.Errorf("%s: the upstream's OPT record was not passed back: %v", network, opt)
		}
	}
	// local answers carry an OPT record when the query had one
	m.SetQuestion("web.", tA)
	r, err := exchange(e.srv, ipApp, "udp", m)
	if err != nil || r.IsEdns0() == nil || len(r.Answer) != 1 {
		t.Errorf("local answer to an EDNS0 query: %v, %v", r, err)
	}
}

func TestForwardTimeoutServfail(t *testing.T) {
	e := newEnv(t, Options{Timeout: 300 * time.Millisecond})
	e.want(t, ipApp, "slow.example.", tA, dns.RcodeServerFailure)
	m := new(dns.Msg)
	m.SetQuestion("slow.example.", tA)
	if r, err := exchange(e.srv, ipApp, "tcp", m); err != nil || r.Rcode != dns.RcodeServerFailure {
		t.Errorf("TCP: got %v, %v; want SERVFAIL", r, err)
	}
}

func TestForwardTriesEachUpstream(t *testing.T) {
	// nothing listens on dead: the query goes on to the next upstream
	dead := deadAddr(t)
	up := startUpstream(t, "127.0.0.1", 7)
	_, port := startServer(t, Options{Upstreams: []netip.AddrPort{dead, up.addr}}, nil)
	srv := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
	for _, network := range []string{"udp", "tcp"} {
		m := new(dns.Msg)
		m.SetQuestion("fwd.example.", tA)
		r, err := exchange(srv, ipUnknown, network, m)
		if err != nil || len(r.Answer) != 1 || !strings.Contains(r.Answer[0].String(), "203.0.113.7") {
			t.Errorf("%s: got %v, %v; want the second upstream's answer", network, r, err)
		}
	}
	// no upstream at all: SERVFAIL
	_, port = startServer(t, Options{Upstreams: []netip.AddrPort{dead}}, nil)
	r := ask(t, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port), ipUnknown, "fwd.example.", tA)
	if r.Rcode != dns.RcodeServerFailure {
		t.Errorf("dead upstream: %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
	}
}

func TestForwardNeverToItself(t *testing.T) {
	s, port := startServer(t, Options{}, nil)
	self := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
	s.SetContainer(Container{ID: "loop", Upstreams: []netip.AddrPort{self}, Endpoints: []Endpoint{{NetworkID: "n", Addrs: []netip.Addr{ipApp}}}})
	if r := ask(t, self, ipApp, "fwd.example.", tA); r.Rcode != dns.RcodeServerFailure {
		t.Errorf("forwarding to itself: %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
	}
}

// deadAddr is a loopback UDP and TCP address nothing listens on.
func deadAddr(t *testing.T) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return netip.MustParseAddrPort(pc.LocalAddr().String())
}
