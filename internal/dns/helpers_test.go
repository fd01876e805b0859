package dns

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// The test world: containers on fake networks, with loopback addresses so a
// test can send from any of them (127.0.0.0/8 is all on lo).
var (
	ipWebA    = netip.MustParseAddr("127.0.1.1") // web on netA
	ipWebB    = netip.MustParseAddr("127.0.2.1") // web on netB
	ipApp     = netip.MustParseAddr("127.0.1.2") // app on netA
	ipApp6    = netip.MustParseAddr("fd00::2")   // app on netA, IPv6 (data only)
	ipDB      = netip.MustParseAddr("127.0.2.2") // db on netB
	ipLonely  = netip.MustParseAddr("127.0.3.1") // lonely on netC
	ipCustom  = netip.MustParseAddr("127.0.1.20")
	ipVault   = netip.MustParseAddr("127.0.4.1") // internal network netI
	ipPeer    = netip.MustParseAddr("127.0.4.2")
	ipUnknown = netip.MustParseAddr("127.0.9.9") // no container's
)

// world returns the test containers; custom's upstream is given.
func world(custom netip.AddrPort) []Container {
	cs := []Container{
		{ID: "web", Name: "web", Hostname: "web-host", Endpoints: []Endpoint{
			{NetworkID: "netA", Addrs: []netip.Addr{ipWebA}, Aliases: []string{"frontend"}},
			{NetworkID: "netB", Addrs: []netip.Addr{ipWebB}},
		}},
		{ID: "app", Name: "App", Endpoints: []Endpoint{{NetworkID: "netA", Addrs: []netip.Addr{ipApp, ipApp6}}}},
		{ID: "db", Name: "db", Endpoints: []Endpoint{{NetworkID: "netB", Addrs: []netip.Addr{ipDB}, Aliases: []string{"Database."}}}},
		{ID: "lonely", Name: "lonely", Endpoints: []Endpoint{{NetworkID: "netC", Addrs: []netip.Addr{ipLonely}}}},
		{ID: "custom", Name: "custom", Upstreams: []netip.AddrPort{custom}, Endpoints: []Endpoint{{NetworkID: "netA", Addrs: []netip.Addr{ipCustom}}}},
		{ID: "vault", Name: "vault", Internal: true, Endpoints: []Endpoint{{NetworkID: "netI", Addrs: []netip.Addr{ipVault}}}},
		{ID: "peer", Name: "vault-peer", Internal: true, Endpoints: []Endpoint{{NetworkID: "netI", Addrs: []netip.Addr{ipPeer}}}},
	}
	for i := 1; i <= 3; i++ {
		cs = append(cs, Container{ID: "svc" + string(rune('0'+i)), Name: "svc" + string(rune('0'+i)), Endpoints: []Endpoint{
			{NetworkID: "netA", Addrs: []netip.Addr{netip.AddrFrom4([4]byte{127, 0, 1, byte(10 + i)})}, Aliases: []string{"svc"}},
		}})
	}
	return cs
}

// startServer starts a server with opts on addrs (default 127.0.0.1) at a
// free port, loaded with cs, and returns it with its port.
func startServer(t *testing.T, opts Options, cs []Container, addrs ...netip.Addr) (*Server, uint16) {
	t.Helper()
	if len(addrs) == 0 {
		addrs = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	}
	for range 20 {
		opts.Port = uint16(20000 + rand.IntN(40000))
		s := New(opts)
		if err := s.SetListenAddrs(addrs); err != nil {
			s.Close()
			continue
		}
		for _, c := range cs {
			s.SetContainer(c)
		}
		t.Cleanup(func() { s.Close() })
		return s, opts.Port
	}
	t.Fatal("no free port for the server")
	return nil, 0
}

// upstream is a fake upstream server on UDP and TCP. It answers A queries for
// any name with 203.0.113.<tag>, and:
//   - big.example: over UDP an empty answer with TC set, over TCP 40 records;
//   - slow.example: after 1 s;
//   - edns.example: a TXT telling the OPT record it got, and an OPT with a
//     local option 65001 "up";
//   - servfail.example: SERVFAIL.
type upstream struct {
	addr netip.AddrPort
	mu   sync.Mutex
	seen []string // "udp name" or "tcp name"
}

func startUpstream(t *testing.T, ip string, tag byte) *upstream {
	t.Helper()
	u := &upstream{}
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		_, tcp := w.RemoteAddr().(*net.TCPAddr)
		q := r.Question[0]
		name := strings.ToLower(q.Name)
		u.mu.Lock()
		u.seen = append(u.seen, map[bool]string{true: "tcp ", false: "udp "}[tcp]+name)
		u.mu.Unlock()
		m := new(dns.Msg)
		m.SetReply(r)
		a := func(d byte) dns.RR {
			return &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(203, 0, 113, d)}
		}
		switch {
		case name == "slow.example.":
			time.Sleep(time.Second)
		case name == "servfail.example.":
			m.Rcode = dns.RcodeServerFailure
		case name == "big.example." && !tcp:
			m.Truncated = true
		case name == "big.example.":
			for i := range 40 {
				m.Answer = append(m.Answer, a(byte(i)))
			}
		case name == "edns.example.":
			txt := "no-opt"
			if opt := r.IsEdns0(); opt != nil {
				txt = "size=" + strconv.Itoa(int(opt.UDPSize()))
				for _, o := range opt.Option {
					if l, ok := o.(*dns.EDNS0_LOCAL); ok {
						txt += " local=" + string(l.Data)
					}
				}
				m.SetEdns0(1400, false)
				m.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_LOCAL{Code: 65001, Data: []byte("up")}}
			}
			m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{txt}})
		case q.Qtype == dns.TypeA:
			m.Answer = append(m.Answer, a(tag))
		}
		_ = w.WriteMsg(m)
	})
	for range 20 {
		port := 20000 + rand.IntN(40000)
		addr := net.JoinHostPort(ip, strconv.Itoa(port))
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			continue
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			pc.Close()
			continue
		}
		for _, srv := range []*dns.Server{{PacketConn: pc, Handler: handler}, {Listener: ln, Handler: handler}} {
			go func() { _ = srv.ActivateAndServe() }()
			t.Cleanup(func() { _ = srv.Shutdown() })
		}
		u.addr = netip.MustParseAddrPort(addr)
		return u
	}
	t.Fatal("no free port for the upstream")
	return nil
}

// saw tells whether the upstream got a query for name (lowercase, with the
// trailing dot) over network ("udp", "tcp", or "" for either).
func (u *upstream) saw(network, name string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.ContainsFunc(u.seen, func(s string) bool {
		n, q, _ := strings.Cut(s, " ")
		return q == name && (network == "" || network == n)
	})
}

// exchange sends m to the server at ip:port from src over network and returns
// the answer; dns.Client checks that its ID is the query's.
func exchange(srv netip.AddrPort, src netip.Addr, network string, m *dns.Msg) (*dns.Msg, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	if network == "tcp" {
		d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
	} else {
		d.LocalAddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
	}
	c := &dns.Client{Net: network, Dialer: d, Timeout: 5 * time.Second, UDPSize: 4096}
	r, _, err := c.Exchange(m, srv.String())
	return r, err
}

// ask queries name/qtype over UDP from src and fails the test on no answer.
func ask(t *testing.T, srv netip.AddrPort, src netip.Addr, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	r, err := exchange(srv, src, "udp", m)
	if err != nil {
		t.Fatalf("query %s %s from %s: %v", name, dns.TypeToString[qtype], src, err)
	}
	return r
}

// addrs returns the A/AAAA/PTR data of the answer, sorted.
func addrs(r *dns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			out = append(out, rr.A.String())
		case *dns.AAAA:
			out = append(out, rr.AAAA.String())
		case *dns.PTR:
			out = append(out, rr.Ptr)
		}
	}
	slices.Sort(out)
	return out
}
