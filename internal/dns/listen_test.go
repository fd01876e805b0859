package dns

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// answers tells whether the server answers web. over network at ip:port.
func answers(ip string, port uint16, network string) bool {
	m := new(dns.Msg)
	m.SetQuestion("web.", dns.TypeA)
	// a removed address refuses at once (ICMP port unreachable, TCP reset),
	// so the timeout only bounds a slow answer
	c := &dns.Client{Net: network, Timeout: 2 * time.Second,
		Dialer: &net.Dialer{LocalAddr: map[string]net.Addr{"udp": &net.UDPAddr{IP: net.ParseIP("127.0.1.2")}, "tcp": &net.TCPAddr{IP: net.ParseIP("127.0.1.2")}}[network]}}
	r, _, err := c.Exchange(m, net.JoinHostPort(ip, strconv.Itoa(int(port))))
	return err == nil && len(r.Answer) == 1
}

func TestSetListenAddrs(t *testing.T) {
	a1, a3 := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.3")
	s, port := startServer(t, Options{}, world(netip.AddrPort{}), a1)
	steps := []struct {
		set          []netip.Addr
		want1, want3 bool
	}{
		{[]netip.Addr{a1}, true, false},
		{[]netip.Addr{a1, a3}, true, true},
		{[]netip.Addr{a3, a1, a3}, true, true}, // the same again, reordered, repeated
		{[]netip.Addr{a3}, false, true},
		{nil, false, false},
		{[]netip.Addr{a1}, true, false},
	}
	for i, st := range steps {
		if err := s.SetListenAddrs(st.set); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		for _, network := range []string{"udp", "tcp"} {
			if got := answers("127.0.0.1", port, network); got != st.want1 {
				t.Errorf("step %d: 127.0.0.1 %s answers %v, want %v", i, network, got, st.want1)
			}
			if got := answers("127.0.0.3", port, network); got != st.want3 {
				t.Errorf("step %d: 127.0.0.3 %s answers %v, want %v", i, network, got, st.want3)
			}
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if answers("127.0.0.1", port, "tcp") {
		t.Error("still answering after Close")
	}
	if err := s.SetListenAddrs([]netip.Addr{a1}); err == nil {
		t.Error("SetListenAddrs after Close succeeded")
	}
}

func TestSetListenAddrsPartialFailure(t *testing.T) {
	a1, a5 := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.5")
	s, port := startServer(t, Options{}, world(netip.AddrPort{}), a1)
	// someone else has 127.0.0.5's TCP port
	ln, err := net.Listen("tcp", netip.AddrPortFrom(a5, port).String())
	if err != nil {
		t.Skipf("cannot take the port: %v", err)
	}
	err = s.SetListenAddrs([]netip.Addr{a1, a5})
	if err == nil || !strings.Contains(err.Error(), "127.0.0.5") {
		t.Fatalf("want an error naming 127.0.0.5, got %v", err)
	}
	if !answers("127.0.0.1", port, "udp") {
		t.Error("127.0.0.1 stopped answering")
	}
	ln.Close()
	if err := s.SetListenAddrs([]netip.Addr{a1, a5}); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if !answers("127.0.0.5", port, "udp") || !answers("127.0.0.5", port, "tcp") {
		t.Error("127.0.0.5 not answering after the retry")
	}
}

func TestMalformedQueries(t *testing.T) {
	_, port := startServer(t, Options{}, world(netip.AddrPort{}))
	conn, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP("127.0.1.2")}, &net.UDPAddr{IP: net.ParseIP("127.0.0.1"), Port: int(port)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	header := func(id, bits, qd uint16) []byte {
		return []byte{byte(id >> 8), byte(id), byte(bits >> 8), byte(bits), byte(qd >> 8), byte(qd), 0, 0, 0, 0, 0, 0}
	}
	cases := []struct {
		name  string
		pkt   []byte
		rcode int // -1: no answer
	}{
		{"short", []byte{1, 2, 3}, -1},
		{"question missing", header(7, 0x0100, 1), dns.RcodeFormatError},
		{"no question", header(8, 0x0100, 0), dns.RcodeFormatError},
		{"a response", header(9, 0x8000, 1), -1},
		{"opcode update", header(10, 0x2800, 1), dns.RcodeNotImplemented},
		{"bad label", append(header(11, 0x0100, 1), 5, 'a', 0, 0, 1, 0, 1), dns.RcodeFormatError},
		{"oversized", append(header(12, 0x0100, 1), make([]byte, 3000)...), -1},
	}
	buf := make([]byte, 512)
	for _, c := range cases {
		if _, err := conn.Write(c.pkt); err != nil {
			t.Fatal(err)
		}
		wait := 2 * time.Second
		if c.rcode < 0 {
			wait = 300 * time.Millisecond // the answer that should not come
		}
		_ = conn.SetReadDeadline(time.Now().Add(wait))
		n, err := conn.Read(buf)
		switch {
		case c.rcode < 0 && err == nil:
			t.Errorf("%s: got an answer, want none", c.name)
		case c.rcode >= 0 && err != nil:
			t.Errorf("%s: no answer, want %s", c.name, dns.RcodeToString[c.rcode])
		case c.rcode >= 0:
			if n < 12 || int(buf[3]&0xf) != c.rcode || buf[0] != c.pkt[0] || buf[1] != c.pkt[1] || buf[2]&0x80 == 0 {
				t.Errorf("%s: answer % x, want %s with the query's ID", c.name, buf[:n], dns.RcodeToString[c.rcode])
			}
		}
	}
	if !answers("127.0.0.1", port, "udp") {
		t.Error("the server stopped answering")
	}
}

// panicWriter panics on RemoteAddr, as a stand-in for a bug in the handler.
type panicWriter struct{ fakeWriter }

func (panicWriter) RemoteAddr() net.Addr { panic("boom") }

func TestPanicIsServfail(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	w := &panicWriter{}
	m := new(dns.Msg)
	m.SetQuestion("web.", dns.TypeA)
	s.ServeDNS(w, m)
	if len(w.out) != 1 {
		t.Fatalf("%d answers, want 1", len(w.out))
	}
	r := new(dns.Msg)
	if err := r.Unpack(w.out[0]); err != nil || r.Rcode != dns.RcodeServerFailure || r.Id != m.Id {
		t.Errorf("got %v (%v), want SERVFAIL with the query's ID", r, err)
	}
}

func TestIPv6Client(t *testing.T) {
	lo6 := netip.MustParseAddr("::1")
	cs := append(world(netip.AddrPort{}), Container{ID: "six", Name: "six", Endpoints: []Endpoint{{NetworkID: "netA", Addrs: []netip.Addr{lo6}}}})
	s := New(Options{})
	defer s.Close()
	for _, c := range cs {
		s.SetContainer(c)
	}
	var port uint16
	for range 20 {
		s.port = uint16(20000 + rand.IntN(40000))
		if err := s.SetListenAddrs([]netip.Addr{lo6}); err == nil {
			port = s.port
			break
		}
	}
	if port == 0 {
		t.Skip("no IPv6 loopback to listen on")
	}
	srv := netip.AddrPortFrom(lo6, port)
	for _, network := range []string{"udp", "tcp"} {
		m := new(dns.Msg)
		m.SetQuestion("web.", dns.TypeA)
		r, err := exchange(srv, lo6, network, m)
		if err != nil || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "127.0.1.1" {
			t.Errorf("%s: web from ::1 (six, on netA): %v, %v", network, r, err)
		}
	}
	r := ask(t, srv, lo6, "six.", dns.TypeAAAA)
	if len(r.Answer) != 1 || r.Answer[0].(*dns.AAAA).AAAA.String() != "::1" {
		t.Errorf("six AAAA: %v", r)
	}
}
