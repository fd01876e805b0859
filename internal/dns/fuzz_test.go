package dns

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/miekg/dns"
)

// fakeWriter is a dns.ResponseWriter that keeps what is written.
type fakeWriter struct {
	remote net.Addr
	out    [][]byte
}

func (w *fakeWriter) LocalAddr() net.Addr  { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53} }
func (w *fakeWriter) RemoteAddr() net.Addr { return w.remote }
func (w *fakeWriter) WriteMsg(m *dns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}
func (w *fakeWriter) Write(b []byte) (int, error) {
	w.out = append(w.out, slices.Clone(b))
	return len(b), nil
}
func (w *fakeWriter) Close() error        { return nil }
func (w *fakeWriter) TsigStatus() error   { return nil }
func (w *fakeWriter) TsigTimersOnly(bool) {}
func (w *fakeWriter) Hijack()             {}

// offlineServer is a server loaded with world() and testServices() that
// listens nowhere and forwards to a fake exchange: an empty answer (the
// query's header and question), or an error for queries of odd length. The
// rest of the query is not echoed: a record miekg/dns packs but cannot
// unpack (a client's TSIG) would make the answer unreadable.
func offlineServer() *Server {
	s := New(Options{Upstreams: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:1")}})
	for _, c := range world(netip.MustParseAddrPort("127.0.0.1:2")) {
		s.SetContainer(c)
	}
	s.SetServices(testServices())
	s.exchange = func(_ context.Context, q []byte, _ []netip.AddrPort, _ bool) ([]byte, error) {
		if len(q)%2 == 1 {
			return nil, errors.New("fake upstream down")
		}
		_, off, err := dns.UnpackDomainName(q, 12)
		if err != nil || len(q) < off+4 {
			return nil, errors.New("fake upstream: no question")
		}
		a := slices.Clone(q[:off+4])
		a[2] |= 0x80
		binary.BigEndian.PutUint16(a[4:], 1)
		clear(a[6:12])
		return a, nil
	}
	return s
}

// seeds are valid queries of every kind the server distinguishes.
func seeds() [][]byte {
	var out [][]byte
	add := func(name string, t uint16, edns bool) {
		m := new(dns.Msg)
		m.SetQuestion(name, t)
		if edns {
			m.SetEdns0(1232, true)
		}
		b, _ := m.Pack()
		out = append(out, b)
	}
	rev, _ := dns.ReverseAddr("127.0.1.2")
	rev6, _ := dns.ReverseAddr("fd00::2")
	revSvc, _ := dns.ReverseAddr("10.96.0.10")
	names := []string{"web.", "APP.", "svc.", "db.", "frontend.", "database.", "web-host.", "fwd.example.", "vault-peer.", rev, rev6, revSvc, "."}
	for _, n := range []string{"web.default", "WEB.Default", "db.prod", "db-0.db.prod", "10-244-0-7.db.prod", "many.prod", "empty.prod",
		"pending.default", "v6only.default", "ext.default", "alias.default", "loop-a.default", "_http._tcp.web.default", "_tcp.web.default",
		"_mysql._tcp.db.prod", "nope.default", "default", "prod", "nope"} {
		names = append(names, n+".svc.cluster.local.")
	}
	names = append(names, "svc.cluster.local.", "cluster.local.", "dns-version.cluster.local.", "x.cluster.local.",
		"10-1-2-3.default.pod.cluster.local.", "default.pod.cluster.local.", "pod.cluster.local.")
	for _, n := range names {
		for _, t := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypePTR, dns.TypeMX, dns.TypeSRV, dns.TypeTXT, dns.TypeCNAME} {
			add(n, t, false)
			add(n, t, true)
		}
	}
	return append(out, []byte{}, []byte{0, 1, 0}, make([]byte, 12), []byte("\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03web\x00\x00\x01\x00\x01"))
}

// FuzzServeDNS feeds arbitrary bytes, and queries built from them, through
// the UDP path (answerFast, else unpack and ServeDNS) and the TCP path, for
// clients of every kind. Nothing may panic; every answer must unpack and
// carry the query's ID; and whatever answerFast answers, ServeDNS must answer
// the same way.
func FuzzServeDNS(f *testing.F) {
	for _, b := range seeds() {
		f.Add(b)
	}
	s := offlineServer()
	f.Fuzz(func(t *testing.T, data []byte) {
		pkts := [][]byte{data}
		if len(data) >= 3 { // also a well-formed query: type, flags, then the name
			m := new(dns.Msg)
			m.SetQuestion(dns.Fqdn(string(data[3:])), binary.BigEndian.Uint16(data))
			m.RecursionDesired, m.CheckingDisabled = data[2]&1 != 0, data[2]&2 != 0
			if data[2]&4 != 0 {
				m.SetEdns0(uint16(data[2])<<4, data[2]&8 != 0)
			}
			if b, err := m.Pack(); err == nil {
				pkts = append(pkts, b)
			}
		}
		for _, pkt := range pkts {
			for _, src := range []netip.Addr{ipApp, ipWebA, ipVault, ipUnknown} {
				checkQuery(t, s, pkt, src)
			}
		}
	})
}

func checkQuery(t *testing.T, s *Server, pkt []byte, src netip.Addr) {
	fast, fastOK := s.answerFast(pkt, src, nil)
	req := new(dns.Msg)
	if err := req.Unpack(pkt); err != nil {
		if fastOK {
			t.Fatalf("answerFast answered a query that does not unpack (%v): % x", err, pkt)
		}
		return
	}
	for _, remote := range []net.Addr{net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 5353)), net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 5353))} {
		w := &fakeWriter{remote: remote}
		s.ServeDNS(w, req.Copy())
		if len(w.out) > 1 {
			t.Fatalf("%d answers to one query", len(w.out))
		}
		if len(w.out) == 0 {
			if !req.Response {
				t.Fatalf("no answer to a query from %s: %v", src, req)
			}
			continue
		}
		got := new(dns.Msg)
		if err := got.Unpack(w.out[0]); err != nil {
			t.Fatalf("answer does not unpack: %v", err)
		}
		if got.Id != req.Id {
			t.Fatalf("answer ID %d, query ID %d", got.Id, req.Id)
		}
		if _, udp := remote.(*net.UDPAddr); udp && fastOK {
			if err := sameAnswer(fast, got); err != nil {
				t.Fatalf("answerFast and ServeDNS differ for %v from %s: %v", req.Question, src, err)
			}
		}
	}
}

// sameAnswer compares a fast-path answer with ServeDNS's, answers as sets
// (round robin orders them differently).
func sameAnswer(fast []byte, slow *dns.Msg) error {
	f := new(dns.Msg)
	if err := f.Unpack(fast); err != nil {
		return fmt.Errorf("fast answer does not unpack: %w", err)
	}
	if f.MsgHdr != slow.MsgHdr || !slices.Equal(f.Question, slow.Question) || len(f.Ns) != 0 || len(slow.Ns) != 0 {
		return fmt.Errorf("headers differ:\nfast %v\nslow %v", f, slow)
	}
	if !slices.Equal(rrStrings(f.Answer), rrStrings(slow.Answer)) || !slices.Equal(rrStrings(f.Extra), rrStrings(slow.Extra)) {
		return fmt.Errorf("records differ:\nfast %v\nslow %v", f, slow)
	}
	return nil
}

func rrStrings(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		out = append(out, rr.String())
	}
	slices.Sort(out)
	return out
}

// TestFastPathMatchesServeDNS runs the seeds through the fuzz checks, and
// checks that the fast path takes the common queries at all.
func TestFastPathMatchesServeDNS(t *testing.T) {
	s := offlineServer()
	for _, pkt := range seeds() {
		for _, src := range []netip.Addr{ipApp, ipWebA, ipVault, ipUnknown} {
			checkQuery(t, s, pkt, src)
		}
	}
	for _, name := range []string{"web.", "APP.", "svc.", "db.", "web.default.svc.cluster.local.", "DB.prod.svc.cluster.local.",
		"db-0.db.prod.svc.cluster.local.", "nope.default.svc.cluster.local.", "default.svc.cluster.local."} {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		b, _ := m.Pack()
		if _, ok := s.answerFast(b, ipApp, nil); !ok {
			t.Errorf("%s: the fast path did not answer", name)
		}
	}
}
