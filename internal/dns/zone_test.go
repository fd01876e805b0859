package dns

import (
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestServiceExternalName(t *testing.T) {
	e := newSvcEnv(t, Options{Timeout: 400 * time.Millisecond})
	const ext = "ext.default.svc.cluster.local."
	// a CNAME question gets the CNAME alone, and nothing is forwarded
	e.wantRR(t, "udp", ipApp, ext, dns.TypeCNAME, ok, "CNAME fwd.example.")
	if e.up.queries() != 0 {
		t.Fatalf("the upstream got %v for a CNAME question", e.up.seen)
	}
	// A: the CNAME, then the target's records from the client's upstreams
	for _, network := range []string{"udp", "tcp"} {
		r := e.wantRR(t, network, ipApp, ext, tA, ok, "CNAME fwd.example.", "A 203.0.113.1")
		if len(r.Answer) == 2 && (r.Answer[0].Header().Rrtype != dns.TypeCNAME || r.Answer[1].Header().Name != "fwd.example.") {
			t.Errorf("%s: the CNAME must come first, then the target's records: %v", network, r.Answer)
		}
		if !e.up.saw(network, "fwd.example.") {
			t.Errorf("%s: the target was not resolved over %s", network, network)
		}
	}
	e.wantRR(t, "udp", ipUnknown, ext, tA, ok, "CNAME fwd.example.", "A 203.0.113.1")
	e.wantRR(t, "udp", ipCustom, ext, tA, ok, "CNAME fwd.example.", "A 203.0.113.2") // its --dns
	e.wantRR(t, "udp", ipApp, ext, dns.TypeAAAA, ok, "CNAME fwd.example.")           // the upstream has no AAAA
	e.wantRR(t, "udp", ipApp, ext, dns.TypeMX, ok, "CNAME fwd.example.")
	// internal clients get the CNAME, never a forwarded answer
	e.wantRR(t, "udp", ipVault, "ext-int.default.svc.cluster.local.", tA, ok, "CNAME internal.example.")
	if e.up.saw("", "internal.example.") {
		t.Error("an internal client's ExternalName target was forwarded")
	}
	// targets in the zone, or a container name, resolve locally
	e.wantRR(t, "udp", ipVault, "alias.default.svc.cluster.local.", tA, ok, "CNAME web.default.svc.cluster.local.", "A 10.96.0.10")
	e.wantRR(t, "udp", ipApp, "to-container.default.svc.cluster.local.", tA, ok, "CNAME web.", "A 127.0.1.1")
	e.wantRR(t, "udp", ipDB, "to-container.default.svc.cluster.local.", tA, ok, "CNAME web.", "A 127.0.2.1")
	e.wantRR(t, "udp", ipLonely, "to-container.default.svc.cluster.local.", tA, ok, "CNAME web.") // web is not its
	r := e.wantRR(t, "udp", ipApp, "loop-a.default.svc.cluster.local.", tA, ok,
		"CNAME loop-a.default.svc.cluster.local.", "CNAME loop-a.default.svc.cluster.local.", "CNAME loop-a.default.svc.cluster.local.",
		"CNAME loop-a.default.svc.cluster.local.", "CNAME loop-b.default.svc.cluster.local.", "CNAME loop-b.default.svc.cluster.local.",
		"CNAME loop-b.default.svc.cluster.local.", "CNAME loop-b.default.svc.cluster.local.", "CNAME loop-b.default.svc.cluster.local.")
	if len(r.Answer) != 1+maxChase {
		t.Errorf("a CNAME loop gave %d records, want %d", len(r.Answer), 1+maxChase)
	}
	// an upstream too slow: the CNAME alone, in half the forwarding timeout
	start := time.Now()
	e.wantRR(t, "udp", ipApp, "ext-slow.default.svc.cluster.local.", tA, ok, "CNAME slow.example.")
	if d := time.Since(start); d > 800*time.Millisecond { // the upstream takes 1 s
		t.Errorf("the answer took %v; the target may take half of the 400ms timeout", d)
	}
}

// TestServiceZoneNotForwarded asks names under the zone that are not
// services: NXDOMAIN, or NODATA for the names above services, and never a
// query upstream.
func TestServiceZoneNotForwarded(t *testing.T) {
	e := newSvcEnv(t, Options{})
	nxNames := []string{"nope.default.svc.cluster.local.", "web.nope.svc.cluster.local.", "nope.svc.cluster.local.",
		"x.web.default.svc.cluster.local.", "x.y.web.default.svc.cluster.local.", "foo.cluster.local.", "a.b.foo.cluster.local.",
		"web.default.cluster.local.", "x.dns-version.cluster.local.", "empty.prod.svc.cluster.local."}
	existing := []string{"default.svc.cluster.local.", "PROD.svc.cluster.local.", "svc.cluster.local.", "cluster.local.", "dns-version.cluster.local."}
	for _, from := range everyone {
		for _, qtype := range []uint16{tA, dns.TypeAAAA, dns.TypeSRV, dns.TypeTXT, dns.TypeMX} {
			for _, name := range nxNames {
				e.wantRR(t, "udp", from, name, qtype, nx)
			}
			if qtype == dns.TypeTXT {
				continue // dns-version has one
			}
			for _, name := range existing {
				e.wantRR(t, "udp", from, name, qtype, ok)
			}
		}
		e.wantRR(t, "tcp", from, "nope.default.svc.cluster.local.", tA, nx)
	}
	if n := e.up.queries(); n != 0 {
		t.Errorf("the upstream got %d queries for names in the zone: %v", n, e.up.seen)
	}
	e.wantRR(t, "udp", ipApp, "web.default.svc.cluster.local.example.", tA, ok, "A 203.0.113.1") // not the zone
}

func TestServiceDNSVersion(t *testing.T) {
	e := newSvcEnv(t, Options{})
	for _, from := range everyone {
		e.wantRR(t, "udp", from, "dns-version.cluster.local.", dns.TypeTXT, ok, `TXT "1.1.0"`)
		e.wantRR(t, "udp", from, "DNS-Version.Cluster.Local.", tA, ok)
	}
}

func TestClusterDomain(t *testing.T) {
	e := newEnv(t, Options{ClusterDomain: "Corp.Example."})
	e.s.SetServices(testServices())
	e.wantRR(t, "udp", ipApp, "dns-version.corp.example.", dns.TypeTXT, ok, `TXT "1.1.0"`)
	e.wantRR(t, "udp", ipApp, "web.default.svc.corp.example.", tA, ok, "A 10.96.0.10")
	e.wantRR(t, "udp", ipApp, "_http._tcp.web.default.svc.corp.example.", dns.TypeSRV, ok, "SRV 0 100 80 web.default.svc.corp.example.")
	e.wantRR(t, "udp", ipApp, "alias.default.svc.corp.example.", tA, ok, "CNAME web.default.svc.cluster.local.", "A 203.0.113.1")
	e.wantRR(t, "udp", ipApp, "web.default.svc.cluster.local.", tA, ok, "A 203.0.113.1") // another zone: forwarded
	for _, d := range []string{"", ".", "a..b", "bad domain"} {
		if z := clusterDomain(d, e.s.log); z != DefaultClusterDomain {
			t.Errorf("cluster domain %q: zone %q, want the default", d, z)
		}
	}
}

// TestPodNames checks the deprecated pod records the specification still
// requires (2.6).
func TestPodNames(t *testing.T) {
	e := newSvcEnv(t, Options{})
	e.wantRR(t, "udp", ipApp, "10-1-2-3.default.pod.cluster.local.", tA, ok, "A 10.1.2.3")
	e.wantRR(t, "udp", ipApp, "10-1-2-3.anyns.pod.cluster.local.", dns.TypeAAAA, ok)
	e.wantRR(t, "udp", ipUnknown, "fd00--1.prod.pod.cluster.local.", dns.TypeAAAA, ok, "AAAA fd00::1")
	e.wantRR(t, "udp", ipApp, "default.pod.cluster.local.", tA, ok)
	e.wantRR(t, "udp", ipApp, "pod.cluster.local.", tA, ok)
	for _, name := range []string{"10-1-2.default.pod.cluster.local.", "10-1-2-300.default.pod.cluster.local.",
		"x.10-1-2-3.default.pod.cluster.local.", "x.pod.x.cluster.local.", "fe80--1%eth0.default.pod.cluster.local."} {
		e.wantRR(t, "udp", ipApp, name, tA, nx)
	}
	if n := e.up.queries(); n != 0 {
		t.Errorf("the upstream got %d queries for pod names", n)
	}
}

// TestZoneServedAfterSetServices: a server that was never given services
// forwards the zone like any other name.
func TestZoneServedAfterSetServices(t *testing.T) {
	e := newEnv(t, Options{})
	e.wantRR(t, "udp", ipApp, "web.default.svc.cluster.local.", tA, ok, "A 203.0.113.1")
	e.s.SetServices(nil)
	e.wantRR(t, "udp", ipApp, "web.default.svc.cluster.local.", tA, nx)
	e.wantRR(t, "udp", ipApp, "dns-version.cluster.local.", dns.TypeTXT, ok, `TXT "1.1.0"`)
	e.wantRR(t, "udp", ipApp, "web.", tA, ok, "A 127.0.1.1") // containers as before
}

func TestSetServicesReplaces(t *testing.T) {
	e := newSvcEnv(t, Options{})
	rev, _ := dns.ReverseAddr("10.96.0.10")
	e.wantRR(t, "udp", ipApp, "web.default.svc.cluster.local.", tA, ok, "A 10.96.0.10")
	e.wantRR(t, "udp", ipApp, "db-0.db.prod.svc.cluster.local.", tA, ok, "A 127.0.1.2")
	e.wantRR(t, "udp", ipApp, rev, tPTR, ok, "PTR web.default.svc.cluster.local.")
	e.s.SetServices([]Service{{Name: "api", Namespace: "staging", ClusterIPs: []netip.Addr{netip.MustParseAddr("10.96.0.50")}}})
	e.wantRR(t, "udp", ipApp, "api.staging.svc.cluster.local.", tA, ok, "A 10.96.0.50")
	e.wantRR(t, "udp", ipApp, "web.default.svc.cluster.local.", tA, nx)
	e.wantRR(t, "udp", ipApp, "default.svc.cluster.local.", tA, nx) // no service left in it
	e.wantRR(t, "udp", ipApp, "db.prod.svc.cluster.local.", tA, nx)
	e.wantRR(t, "udp", ipApp, "db-0.db.prod.svc.cluster.local.", tA, nx)
	e.wantRR(t, "udp", ipWebA, "2.1.0.127.in-addr.arpa.", tPTR, ok, "PTR App.") // app's name again, not db-0's
	if e.up.queries() != 0 {
		t.Fatalf("the upstream got %v", e.up.seen)
	}
	e.wantRR(t, "udp", ipApp, rev, tPTR, ok) // nobody's address now: forwarded
	if !e.up.saw("udp", rev) {
		t.Error("the PTR question of a removed service's address was not forwarded")
	}
	e.s.SetServices(nil)
	e.wantRR(t, "udp", ipApp, "api.staging.svc.cluster.local.", tA, nx)
}
