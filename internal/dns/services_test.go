package dns

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// The test services. db's endpoint db-0 has app's container address
// (127.0.1.2), so that PTR precedence shows.
var (
	ipSvcWeb  = netip.MustParseAddr("10.96.0.10")
	ipSvcWeb6 = netip.MustParseAddr("fd00:96::10")
	ipDB0     = ipApp
	ipDB1     = netip.MustParseAddr("10.244.0.7") // no hostname: 10-244-0-7
	ipDB1v6   = netip.MustParseAddr("fd00:244::7")
	ipDB2     = netip.MustParseAddr("10.244.0.8")
)

func testServices() []Service {
	mysql := func(port uint16) []ServicePort { return []ServicePort{{Name: "mysql", Protocol: "TCP", Port: port}} }
	return []Service{
		{Name: "web", Namespace: "default", ClusterIPs: []netip.Addr{ipSvcWeb, ipSvcWeb6}, Ports: []ServicePort{
			{Name: "http", Protocol: "tcp", Port: 80}, {Name: "dns", Protocol: "UDP", Port: 53}, {Port: 8080},
		}},
		{Name: "db", Namespace: "prod", Headless: true,
			Ports: []ServicePort{{Name: "mysql", Port: 3306}, {Name: "metrics", Port: 9100}},
			Endpoints: []ServiceEndpoint{
				{Hostname: "db-0", Addrs: []netip.Addr{ipDB0}, Ports: mysql(3306)},
				{Addrs: []netip.Addr{ipDB1, ipDB1v6}, Ports: mysql(13306)},
				{Hostname: "DB-2", Addrs: []netip.Addr{ipDB2}}, // serves no port
			}},
		{Name: "many", Namespace: "prod", Headless: true, Endpoints: []ServiceEndpoint{
			{Addrs: []netip.Addr{netip.MustParseAddr("10.244.1.1")}},
			{Addrs: []netip.Addr{netip.MustParseAddr("10.244.1.2")}},
			{Addrs: []netip.Addr{netip.MustParseAddr("10.244.1.3")}},
		}},
		// the dashed name of 10.244.0.7 in db loses the PTR to this hostname
		{Name: "pets", Namespace: "prod", Headless: true, Endpoints: []ServiceEndpoint{{Hostname: "dog", Addrs: []netip.Addr{ipDB1}}}},
		{Name: "empty", Namespace: "prod", Headless: true, Ports: []ServicePort{{Name: "mysql", Port: 3306}}},
		{Name: "pending", Namespace: "default"},
		{Name: "v6only", Namespace: "default", ClusterIPs: []netip.Addr{netip.MustParseAddr("fd00:96::20")}},
		{Name: "ext", Namespace: "default", ExternalName: "fwd.example"},
		{Name: "ext-int", Namespace: "default", ExternalName: "internal.example."},
		{Name: "ext-slow", Namespace: "default", ExternalName: "slow.example"},
		{Name: "alias", Namespace: "default", ExternalName: "web.default.svc.cluster.local"},
		{Name: "to-container", Namespace: "default", ExternalName: "web"},
		{Name: "loop-a", Namespace: "default", ExternalName: "loop-b.default.svc.cluster.local"},
		{Name: "loop-b", Namespace: "default", ExternalName: "loop-a.default.svc.cluster.local"},
		{Name: "Bad Name", Namespace: "default", ClusterIPs: []netip.Addr{netip.MustParseAddr("10.96.0.99")}},
	}
}

// newSvcEnv is newEnv with testServices set.
func newSvcEnv(t *testing.T, opts Options) *env {
	t.Helper()
	e := newEnv(t, opts)
	e.s.SetServices(testServices())
	return e
}

// records returns the answer records as "TYPE data" (no name, TTL or
// class), sorted.
func records(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		out = append(out, strings.Join(strings.Fields(rr.String())[3:], " "))
	}
	slices.Sort(out)
	return out
}

// wantRR asserts the rcode and the records of one query over network.
func (e *env) wantRR(t *testing.T, network string, from netip.Addr, name string, qtype uint16, rcode int, answers ...string) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.SetEdns0(1232, false)
	r, err := exchange(e.srv, from, network, m)
	if err != nil {
		t.Fatalf("%s %s from %s over %s: %v", name, dns.TypeToString[qtype], from, network, err)
	}
	slices.Sort(answers)
	if r.Rcode != rcode || !slices.Equal(records(r.Answer), answers) {
		t.Errorf("%s %s from %s over %s: got %s %q, want %s %q", name, dns.TypeToString[qtype], from, network,
			dns.RcodeToString[r.Rcode], records(r.Answer), dns.RcodeToString[rcode], answers)
	}
	if _, inZone := zoneRel(lowerName(name), e.s.zone); inZone && e.s.svcs.Load() != nil && !r.Authoritative {
		t.Errorf("%s %s: answer not authoritative", name, dns.TypeToString[qtype])
	}
	return r
}

// queries is the number of queries the upstream got.
func (u *upstream) queries() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.seen)
}

// everyone is a container client, an internal one and the host.
var everyone = []netip.Addr{ipApp, ipVault, ipUnknown}

func TestServiceClusterIP(t *testing.T) {
	e := newSvcEnv(t, Options{})
	for _, from := range everyone {
		e.wantRR(t, "udp", from, "web.default.svc.cluster.local.", tA, ok, "A 10.96.0.10")
		e.wantRR(t, "udp", from, "web.default.svc.cluster.local.", dns.TypeAAAA, ok, "AAAA fd00:96::10")
		e.wantRR(t, "tcp", from, "web.default.svc.cluster.local.", tA, ok, "A 10.96.0.10")
		e.wantRR(t, "udp", from, "web.default.svc.cluster.local.", dns.TypeMX, ok) // NODATA
		e.wantRR(t, "udp", from, "pending.default.svc.cluster.local.", tA, ok)     // no address yet
		e.wantRR(t, "udp", from, "v6only.default.svc.cluster.local.", tA, ok)
		e.wantRR(t, "udp", from, "v6only.default.svc.cluster.local.", dns.TypeAAAA, ok, "AAAA fd00:96::20")
	}
	// the answer keeps the question's case
	for _, name := range []string{"WEB.Default.SVC.Cluster.LOCAL.", "web.default.svc.cluster.local"} {
		r := e.wantRR(t, "udp", ipApp, dns.Fqdn(name), tA, ok, "A 10.96.0.10")
		if len(r.Answer) == 1 && r.Answer[0].Header().Name != dns.Fqdn(name) {
			t.Errorf("answer name %q, want the question's %q", r.Answer[0].Header().Name, dns.Fqdn(name))
		}
	}
	e.wantRR(t, "udp", ipApp, "bad name.default.svc.cluster.local.", tA, nx) // an invalid service is left out
	if n := e.up.queries(); n != 0 {
		t.Errorf("the upstream got %d queries for service names", n)
	}
}

func TestServiceHeadless(t *testing.T) {
	e := newSvcEnv(t, Options{})
	for _, from := range everyone {
		e.wantRR(t, "udp", from, "db.prod.svc.cluster.local.", tA, ok, "A 10.244.0.7", "A 10.244.0.8", "A 127.0.1.2")
		e.wantRR(t, "udp", from, "db.prod.svc.cluster.local.", dns.TypeAAAA, ok, "AAAA fd00:244::7")
		e.wantRR(t, "udp", from, "db-0.db.prod.svc.cluster.local.", tA, ok, "A 127.0.1.2")
		e.wantRR(t, "udp", from, "db-0.db.prod.svc.cluster.local.", dns.TypeAAAA, ok)
		e.wantRR(t, "udp", from, "10-244-0-7.db.prod.svc.cluster.local.", tA, ok, "A 10.244.0.7")
		e.wantRR(t, "udp", from, "10-244-0-7.db.prod.svc.cluster.local.", dns.TypeAAAA, ok, "AAAA fd00:244::7")
		e.wantRR(t, "udp", from, "Db-2.DB.prod.svc.cluster.local.", tA, ok, "A 10.244.0.8")
		e.wantRR(t, "udp", from, "db-9.db.prod.svc.cluster.local.", tA, nx)
		e.wantRR(t, "udp", from, "fd00--244--7.db.prod.svc.cluster.local.", tA, nx) // an endpoint's name is its first address
		// no ready endpoint: NXDOMAIN (specification 2.4.1), but the
		// namespace still exists
		e.wantRR(t, "udp", from, "empty.prod.svc.cluster.local.", tA, nx)
		e.wantRR(t, "udp", from, "_mysql._tcp.empty.prod.svc.cluster.local.", dns.TypeSRV, nx)
	}
	firsts := map[string]bool{}
	for range 8 {
		r := e.wantRR(t, "udp", ipApp, "many.prod.svc.cluster.local.", tA, ok, "A 10.244.1.1", "A 10.244.1.2", "A 10.244.1.3")
		if len(r.Answer) > 0 {
			firsts[r.Answer[0].(*dns.A).A.String()] = true
		}
	}
	if len(firsts) < 2 {
		t.Errorf("the first address never changed: %v", firsts)
	}
	if n := e.up.queries(); n != 0 {
		t.Errorf("the upstream got %d queries for service names", n)
	}
}

func TestServiceSRV(t *testing.T) {
	e := newSvcEnv(t, Options{})
	for _, network := range []string{"udp", "tcp"} {
		r := e.wantRR(t, network, ipUnknown, "_http._tcp.web.default.svc.cluster.local.", dns.TypeSRV, ok, "SRV 0 100 80 web.default.svc.cluster.local.")
		if got, want := records(r.Extra), []string{"A 10.96.0.10", "AAAA fd00:96::10"}; !slices.Equal(got, want) {
			t.Errorf("%s: additional section %q, want %q", network, got, want)
		}
		e.wantRR(t, network, ipUnknown, "_DNS._UDP.web.default.svc.cluster.local.", dns.TypeSRV, ok, "SRV 0 100 53 web.default.svc.cluster.local.")
		r = e.wantRR(t, network, ipApp, "_mysql._tcp.db.prod.svc.cluster.local.", dns.TypeSRV, ok,
			"SRV 0 100 3306 db-0.db.prod.svc.cluster.local.", "SRV 0 100 13306 10-244-0-7.db.prod.svc.cluster.local.")
		if got, want := records(r.Extra), []string{"A 10.244.0.7", "A 127.0.1.2", "AAAA fd00:244::7"}; !slices.Equal(got, want) {
			t.Errorf("%s: additional section %q, want %q", network, got, want)
		}
	}
	for _, name := range []string{
		"_http._udp.web.default.svc.cluster.local.",    // no such protocol
		"_https._tcp.web.default.svc.cluster.local.",   // no such port
		"_8080._tcp.web.default.svc.cluster.local.",    // unnamed ports have none
		"_metrics._tcp.db.prod.svc.cluster.local.",     // no endpoint serves it
		"_http._tcp.nope.default.svc.cluster.local.",   // no such service
		"x._http._tcp.web.default.svc.cluster.local.",  // nothing below
		"_http._tcp.db-0.db.prod.svc.cluster.local.",   // not per endpoint
		"_mysql._tcp.pets.prod.svc.cluster.local.",     // no such port
		"_http._tcp.web.default.svc.cluster.local.ex.", // not the zone: forwarded
	} {
		rcode := nx
		if strings.HasSuffix(name, ".ex.") {
			rcode = ok
		}
		e.wantRR(t, "udp", ipApp, name, dns.TypeSRV, rcode)
	}
	// the names of SRV records exist for other types, and so do their parents
	e.wantRR(t, "udp", ipApp, "_http._tcp.web.default.svc.cluster.local.", tA, ok)
	e.wantRR(t, "udp", ipApp, "_tcp.web.default.svc.cluster.local.", dns.TypeSRV, ok)
	e.wantRR(t, "udp", ipApp, "_udp.web.default.svc.cluster.local.", dns.TypeSRV, ok)
	e.wantRR(t, "udp", ipApp, "_sctp.web.default.svc.cluster.local.", dns.TypeSRV, nx)
	if e.up.queries() != 1 || !e.up.saw("udp", "_http._tcp.web.default.svc.cluster.local.ex.") {
		t.Errorf("the upstream got %v, want only the name outside the zone", e.up.seen)
	}
}

func TestServicePTR(t *testing.T) {
	e := newSvcEnv(t, Options{})
	rev := func(a string) string { r, _ := dns.ReverseAddr(a); return r }
	for _, from := range everyone {
		e.wantRR(t, "udp", from, rev("10.96.0.10"), tPTR, ok, "PTR web.default.svc.cluster.local.")
		e.wantRR(t, "udp", from, rev("fd00:96::10"), tPTR, ok, "PTR web.default.svc.cluster.local.")
		e.wantRR(t, "udp", from, rev("10.244.0.8"), tPTR, ok, "PTR db-2.db.prod.svc.cluster.local.")
		e.wantRR(t, "udp", from, rev("fd00:244::7"), tPTR, ok, "PTR 10-244-0-7.db.prod.svc.cluster.local.")
		// 10.244.0.7: db knows it by its address, pets by a hostname, which wins
		e.wantRR(t, "udp", from, rev("10.244.0.7"), tPTR, ok, "PTR dog.pets.prod.svc.cluster.local.")
		e.wantRR(t, "udp", from, rev("10.96.0.10"), tA, ok) // NODATA
		// 127.0.1.2 is app's, and db-0's: the service's name wins, for the
		// clients that see app (web) and those that do not (db, the host)
		for _, c := range []netip.Addr{ipWebA, ipDB, ipUnknown} {
			e.wantRR(t, "udp", c, rev("127.0.1.2"), tPTR, ok, "PTR db-0.db.prod.svc.cluster.local.")
		}
	}
	e.wantRR(t, "udp", ipWebA, rev("127.0.1.1"), tPTR, ok, "PTR web.") // a container's alone: its name
	if n := e.up.queries(); n != 0 {
		t.Errorf("the upstream got %d PTR queries for service addresses", n)
	}
}

// TestSetServicesUnchanged: the same services again keep the index; any
// change to them builds a new one.
func TestSetServicesUnchanged(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	s.SetServices(nil)
	empty := s.svcs.Load()
	if s.SetServices([]Service{}); s.svcs.Load() != empty {
		t.Error("no services again: the index was rebuilt")
	}
	s.SetServices(testServices())
	idx := s.svcs.Load()
	if s.SetServices(testServices()); s.svcs.Load() != idx {
		t.Error("the same services again: the index was rebuilt")
	}
	changes := []func(svcs []Service){
		func(svcs []Service) { svcs[0].Name = "web2" },
		func(svcs []Service) { svcs[0].Namespace = "other" },
		func(svcs []Service) { svcs[0].ClusterIPs = svcs[0].ClusterIPs[:1] },
		func(svcs []Service) { svcs[0].ClusterIPs[0] = netip.MustParseAddr("::ffff:10.96.0.10") },
		func(svcs []Service) { svcs[0].Headless = true },
		func(svcs []Service) { svcs[0].ExternalName = "x.example" },
		func(svcs []Service) { svcs[0].Ports[0].Name = "https" },
		func(svcs []Service) { svcs[0].Ports[0].Protocol = "udp" },
		func(svcs []Service) { svcs[0].Ports[0].Port = 81 },
		func(svcs []Service) { svcs[1].Endpoints[0].Hostname = "db-7" },
		func(svcs []Service) { svcs[1].Endpoints[0].Addrs = nil },
		func(svcs []Service) { svcs[1].Endpoints[0].Ports = nil },
		func(svcs []Service) { svcs[1].Endpoints = svcs[1].Endpoints[1:] },
		func(svcs []Service) { svcs[0], svcs[1] = svcs[1], svcs[0] },
	}
	for i, change := range changes {
		svcs := testServices()
		change(svcs)
		s.SetServices(svcs)
		if s.svcs.Load() == idx {
			t.Errorf("change %d: the index was kept", i)
		}
		s.SetServices(testServices())
		idx = s.svcs.Load()
	}
}
