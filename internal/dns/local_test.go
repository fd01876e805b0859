package dns

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/miekg/dns"
)

// env is a running server loaded with world(), a default upstream (tag 1)
// and custom's upstream (tag 2).
type env struct {
	s      *Server
	srv    netip.AddrPort
	up     *upstream
	custom *upstream
}

func newEnv(t *testing.T, opts Options) *env {
	t.Helper()
	e := &env{up: startUpstream(t, "127.0.0.1", 1), custom: startUpstream(t, "127.0.0.1", 2)}
	opts.Upstreams = append(opts.Upstreams, e.up.addr)
	var port uint16
	e.s, port = startServer(t, opts, world(e.custom.addr))
	e.srv = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
	return e
}

// want asserts the rcode and the sorted answers of one UDP query.
func (e *env) want(t *testing.T, from netip.Addr, name string, qtype uint16, rcode int, answers ...string) *dns.Msg {
	t.Helper()
	r := ask(t, e.srv, from, name, qtype)
	if r.Rcode != rcode || !slices.Equal(addrs(r), answers) {
		t.Errorf("%s %s from %s: got %s %v, want %s %v", name, dns.TypeToString[qtype], from,
			dns.RcodeToString[r.Rcode], addrs(r), dns.RcodeToString[rcode], answers)
	}
	return r
}

const (
	ok   = dns.RcodeSuccess
	nx   = dns.RcodeNameError
	tA   = dns.TypeA
	tPTR = dns.TypePTR
)

func TestScoping(t *testing.T) {
	e := newEnv(t, Options{})
	// app is on netA only: web by its netA address, db and lonely not at all
	e.want(t, ipApp, "web.", tA, ok, "127.0.1.1")
	e.want(t, ipApp, "db.", tA, nx)
	e.want(t, ipApp, "lonely.", tA, nx)
	// web is on netA and netB: both networks' containers, and itself twice
	e.want(t, ipWebA, "db.", tA, ok, "127.0.2.2")
	e.want(t, ipWebB, "app.", tA, ok, "127.0.1.2")
	e.want(t, ipWebA, "web.", tA, ok, "127.0.1.1", "127.0.2.1")
	// db shares only netB with web
	e.want(t, ipDB, "web.", tA, ok, "127.0.2.1")
	// a known name outside the client's networks is never forwarded
	for _, name := range []string{"db.", "lonely."} {
		if e.up.saw("", name) {
			t.Errorf("%s was forwarded", name)
		}
	}
}

func TestNamesAliasesHostname(t *testing.T) {
	e := newEnv(t, Options{})
	e.want(t, ipApp, "web-host.", tA, ok, "127.0.1.1")          // hostname
	e.want(t, ipApp, "frontend.", tA, ok, "127.0.1.1")          // web's alias on netA
	e.want(t, ipDB, "frontend.", tA, nx)                        // not on netB
	e.want(t, ipWebA, "database.", tA, ok, "127.0.2.2")         // db's alias on netB
	e.want(t, ipApp, "database.", tA, nx)                       // app is not on netB
	e.want(t, ipApp, "svc1.", tA, ok, "127.0.1.11")             // a plain name
	e.want(t, ipApp, "web.example.com.", tA, ok, "203.0.113.1") // a search suffix is not ours: forwarded
}

func TestCaseInsensitive(t *testing.T) {
	e := newEnv(t, Options{})
	for _, name := range []string{"app.", "APP.", "aPp."} {
		r := e.want(t, ipWebA, name, tA, ok, "127.0.1.2")
		if len(r.Answer) == 1 && r.Answer[0].Header().Name != name {
			t.Errorf("answer name %q, want the question's %q", r.Answer[0].Header().Name, name)
		}
	}
	e.want(t, ipApp, "WEB-Host.", tA, ok, "127.0.1.1")
	e.want(t, ipApp, "DataBase.", tA, nx)
}

func TestRoundRobin(t *testing.T) {
	e := newEnv(t, Options{})
	firsts := map[string]bool{}
	for range 6 {
		r := e.want(t, ipApp, "svc.", tA, ok, "127.0.1.11", "127.0.1.12", "127.0.1.13")
		if len(r.Answer) > 0 {
			firsts[r.Answer[0].(*dns.A).A.String()] = true
		}
	}
	if len(firsts) < 2 {
		t.Errorf("the first answer never changed: %v", firsts)
	}
}

func TestTypesAndNODATA(t *testing.T) {
	e := newEnv(t, Options{})
	e.want(t, ipWebA, "app.", dns.TypeAAAA, ok, "fd00::2")
	e.want(t, ipApp, "web.", dns.TypeAAAA, ok) // IPv4 only: NODATA
	e.want(t, ipApp, "web.", dns.TypeMX, ok)
	e.want(t, ipApp, "db.", dns.TypeAAAA, nx)
	if e.up.saw("", "web.") {
		t.Error("a NODATA query was forwarded")
	}
}

func TestPTR(t *testing.T) {
	e := newEnv(t, Options{})
	rev := func(a string) string { r, _ := dns.ReverseAddr(a); return r }
	e.want(t, ipWebA, rev("127.0.1.2"), tPTR, ok, "App.")
	e.want(t, ipWebA, rev("fd00::2"), tPTR, ok, "App.")
	e.want(t, ipApp, rev("127.0.2.2"), tPTR, nx) // db: not on app's network
	e.want(t, ipApp, rev("127.0.1.2"), tA, ok)   // a reverse name asked for A: NODATA
	e.want(t, ipApp, rev("127.0.200.1"), tPTR, ok)
	if !e.up.saw("udp", rev("127.0.200.1")) {
		t.Error("PTR for an address no container has was not forwarded")
	}
}

func TestTTL(t *testing.T) {
	for _, c := range []struct{ opt, want uint32 }{{0, 5}, {3, 3}, {100, 5}} {
		e := newEnv(t, Options{TTL: c.opt})
		r := e.want(t, ipApp, "web.", tA, ok, "127.0.1.1")
		if len(r.Answer) == 1 && r.Answer[0].Header().Ttl != c.want {
			t.Errorf("Options.TTL %d: answer TTL %d, want %d", c.opt, r.Answer[0].Header().Ttl, c.want)
		}
	}
}

func TestSetAndDeleteVisibleAtOnce(t *testing.T) {
	e := newEnv(t, Options{})
	e.want(t, ipWebA, "db.", tA, ok, "127.0.2.2")
	e.s.DeleteContainer("db")
	e.want(t, ipWebA, "db.", tA, ok, "203.0.113.1") // nobody's name now: forwarded
	e.want(t, ipWebA, "database.", tA, ok, "203.0.113.1")
	e.s.SetContainer(Container{ID: "db", Name: "db", Endpoints: []Endpoint{{NetworkID: "netA", Addrs: []netip.Addr{netip.MustParseAddr("127.0.1.30")}}}})
	e.want(t, ipApp, "db.", tA, ok, "127.0.1.30") // moved to netA
	e.want(t, netip.MustParseAddr("127.0.1.30"), "app.", tA, ok, "127.0.1.2")
	e.s.DeleteContainer("db")
	e.s.DeleteContainer("db")                                    // twice: nothing
	e.want(t, netip.MustParseAddr("127.0.1.30"), "app.", tA, nx) // now an unknown client
	e.s.DeleteContainer("app")
	e.s.DeleteContainer("web")
	e.want(t, ipApp, "web.", tA, ok, "203.0.113.1")
}

func TestInternalRefused(t *testing.T) {
	e := newEnv(t, Options{})
	e.want(t, ipVault, "vault-peer.", tA, ok, "127.0.4.2")
	e.want(t, ipVault, "web.", tA, nx)
	e.want(t, ipVault, "fwd.example.", tA, dns.RcodeRefused)
	e.want(t, ipVault, "peer.example.", dns.TypeAAAA, dns.RcodeRefused)
	if e.up.saw("", "fwd.example.") || e.up.saw("", "peer.example.") {
		t.Error("an internal client's query was forwarded")
	}
}

func TestUnknownClient(t *testing.T) {
	e := newEnv(t, Options{})
	e.want(t, ipUnknown, "web.", tA, nx)
	e.want(t, ipUnknown, "fwd.example.", tA, ok, "203.0.113.1")
}

func TestManyAddressesTruncateOverUDP(t *testing.T) {
	e := newEnv(t, Options{})
	for i := range 60 {
		e.s.SetContainer(Container{ID: "m" + string(rune('A'+i)), Endpoints: []Endpoint{
			{NetworkID: "netA", Addrs: []netip.Addr{netip.AddrFrom4([4]byte{127, 0, 5, byte(i)})}, Aliases: []string{"many"}},
		}})
	}
	m := new(dns.Msg)
	m.SetQuestion("many.", tA)
	r, err := exchange(e.srv, ipApp, "udp", m)
	if err != nil || !r.Truncated || len(r.Answer) == 0 || len(r.Answer) >= 60 {
		t.Fatalf("UDP: want a truncated answer with some records, got %v, %v", r, err)
	}
	r, err = exchange(e.srv, ipApp, "tcp", m)
	if err != nil || r.Truncated || len(r.Answer) != 60 {
		t.Fatalf("TCP: want all 60 records, got %d (err %v)", len(r.Answer), err)
	}
}
