package dataplane

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/knit-net/knit/internal/dataplane/nft/services"
	"github.com/knit-net/knit/internal/testutil/nfttest"
	"github.com/knit-net/knit/internal/testutil/nstest"
)

// TestServicePartialSyncs: endpoint and service changes go out as element
// changes; a new affinity timeout, a new block of backend counts, the first
// or the last node port or service changes the shape and takes a full sync. After every step the table is exactly
// what a full sync of that config into an empty namespace gives.
func TestServicePartialSyncs(t *testing.T) {
	ns := nstest.New(t, "nft")
	d, log := newLoggedDataplane(t, ns)
	step := func(edit func(*services.ServicePort)) Config {
		cfg := sampleConfig()
		edit(&cfg.Services[0])
		return cfg
	}
	var seventy []netip.AddrPort
	for i := range 70 {
		seventy = append(seventy, netip.MustParseAddrPort(fmt.Sprintf("10.1.0.%d:8080", 10+i)))
	}
	steps := []struct {
		name string
		cfg  Config
		want string
	}{
		{"sample", sampleConfig(), logFull},
		{"an endpoint more", step(func(s *services.ServicePort) { s.Backends = append(s.Backends, addrPorts("10.1.0.9:8080")...) }), logPartial},
		{"an endpoint less", step(func(s *services.ServicePort) { s.Backends = s.Backends[1:] }), logPartial},
		{"no IPv4 endpoint", step(func(s *services.ServicePort) { s.Backends = s.Backends[2:] }), logPartial},
		{"a VIP less, another node port", step(func(s *services.ServicePort) { s.VIPs = s.VIPs[:2]; s.NodePort = 30090 }), logPartial},
		{"a service port more", func() Config {
			cfg := sampleConfig()
			cfg.Services = append(cfg.Services, services.ServicePort{Name: "default/web:https", VIPs: addrs("10.96.0.10"),
				Protocol: "tcp", Port: 443, Backends: addrPorts("10.1.0.2:8443")})
			return cfg
		}(), logPartial},
		{"affinity", step(func(s *services.ServicePort) { s.AffinityTimeout = 3 * time.Hour }), logFull},
		{"affinity, an endpoint less", step(func(s *services.ServicePort) { s.AffinityTimeout = 3 * time.Hour; s.Backends = s.Backends[1:] }), logPartial},
		{"70 endpoints", step(func(s *services.ServicePort) { s.Backends = seventy }), logFull},
		{"69 endpoints", step(func(s *services.ServicePort) { s.Backends = seventy[1:] }), logPartial},
		{"sample again", sampleConfig(), logFull},
		{"no node port", step(func(s *services.ServicePort) { s.NodePort = 0 }), logFull}, // no node port chains
		{"sample", sampleConfig(), logFull},
		{"no services", Config{Networks: sampleConfig().Networks}, logFull}, // no count chains at all
	}
	for _, s := range steps {
		mustSync(t, d, s.cfg)
		if got := log.Take(); !strings.Contains(got, s.want) {
			t.Errorf("after %q: log %q, want %s", s.name, got, s.want)
		}
		fresh := nstest.New(t, "nftref")
		mustSync(t, newDataplane(t, fresh), s.cfg)
		if got, want := nfttest.List(t, ns), nfttest.List(t, fresh); got != want {
			t.Errorf("after %q:\n%s\nwant (fresh sync):\n%s", s.name, got, want)
		}
		if s.name == "sample again" {
			// An invalid config changes nothing, and the next sync is
			// still partial and right.
			bad := sampleConfig()
			bad.Services = append(bad.Services, bad.Services[0])
			bad.Services[2].Name = "default/copy:http"
			if err := d.Apply(bad); err == nil || !strings.Contains(err.Error(), `service port "default/copy:http"`) {
				t.Fatalf("Sync(duplicate frontend) = %v", err)
			}
		}
	}
}

// TestServiceListing: nft lists every service chain, affinity included
// (nft 1.0.6 aborts on some shapes a rule could take; see
// docs/datapath.md), and reads back everything but the rules that pick a
// backend.
func TestServiceListing(t *testing.T) {
	ns := nstest.New(t, "nft")
	cfg := sampleConfig()
	cfg.Services[0].AffinityTimeout = time.Minute
	mustSync(t, newDataplane(t, ns), cfg)
	got := nfttest.List(t, ns)
	for _, want := range []string{
		`chain svc_a60_n2 {`,
		`jump svc_a60_ret comment "knit: clients seen within the affinity timeout"`,
		`update @svc_affinity_v4 { ip saddr . ip daddr . meta l4proto . th dport . numgen random mod 2 timeout 1m } dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 2 map @svc_aff_backends_v4`,
		`ip6 saddr . ip6 daddr . meta l4proto . th dport . numgen random mod 1 offset 63 @svc_affinity_v6 update @svc_affinity_v6 { ip6 saddr . ip6 daddr . meta l4proto . th dport . numgen random mod 1 offset 63 timeout 1m } dnat ip6 to ip6 daddr . meta l4proto . th dport . numgen random mod 1 offset 63 map @svc_aff_backends_v6`,
		`chain svc_a60_np_n1 {`,
		`10.96.0.10 . tcp . 80 : goto svc_a60_n2`,
		`tcp . 30080 : goto svc_a60_np_n2`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("listing lacks %q", want)
		}
	}
	cmd := "nft list table inet knit | grep -v 'numgen random mod' | nft -c -f -"
	if out, err := nfttest.Exec(ns, "sh", "-c", cmd); err != nil {
		t.Errorf("%s: %v\n%s", cmd, err, out)
	}
}
