package services

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/knit-net/knit/internal/testutil/nfttest"
)

// Tests in this file need no root: they check validation, the service
// state and rendering, not the kernel.

// config is what Set takes, and the published ports a HostPort hook
// knows.
type config struct {
	Ports         []string // "proto port published-as"
	Services      []ServicePort
	ServiceRanges []netip.Prefix
}

// checkServices validates a config as Set does.
func checkServices(cfg config) error {
	f := New(Options{HostPort: func(proto string, port uint16) (string, bool) {
		for _, p := range cfg.Ports {
			var pr, pub string
			var n uint16
			fmt.Sscanf(p, "%s %d", &pr, &n)
			pub = p[strings.Index(p, " as ")+4:]
			if pr == proto && n == port {
				return pub, true
			}
		}
		return "", false
	}})
	return f.Set(cfg.Services, cfg.ServiceRanges)
}

func TestServicesRejected(t *testing.T) {
	web := func(edit func(*ServicePort)) ServicePort {
		sp := ServicePort{Name: "default/web:http", VIPs: addrs("10.96.0.10"), Protocol: "tcp", Port: 80,
			Backends: addrPorts("10.1.0.2:8080")}
		edit(&sp)
		return sp
	}
	for _, tc := range []struct {
		name string
		cfg  config
		want string
	}{
		{"protocol", config{Services: []ServicePort{web(func(s *ServicePort) { s.Protocol = "icmp" })}},
			`service port "default/web:http": protocol "icmp" is not tcp, udp or sctp`},
		{"port 0", config{Services: []ServicePort{web(func(s *ServicePort) { s.Port = 0 })}},
			`service port "default/web:http": port 0 cannot be served`},
		{"no name", config{Services: []ServicePort{web(func(s *ServicePort) { s.Name = "" })}},
			`service port "": name is empty`},
		{"nothing to reach it", config{Services: []ServicePort{web(func(s *ServicePort) { s.VIPs = nil })}},
			"no virtual address and no node port"},
		{"VIP missing", config{Services: []ServicePort{web(func(s *ServicePort) { s.VIPs = []netip.Addr{{}} })}},
			"virtual address invalid IP: address is missing"},
		{"VIP mapped", config{Services: []ServicePort{web(func(s *ServicePort) { s.VIPs = addrs("::ffff:10.96.0.1") })}},
			"IPv4-mapped"},
		{"VIP loopback", config{Services: []ServicePort{web(func(s *ServicePort) { s.VIPs = addrs("127.0.0.5") })}},
			"virtual address 127.0.0.5: loopback"},
		{"backend port 0", config{Services: []ServicePort{web(func(s *ServicePort) { s.Backends = addrPorts("10.1.0.2:0") })}},
			"backend 10.1.0.2:0: port 0"},
		{"backend zone", config{Services: []ServicePort{web(func(s *ServicePort) {
			s.Backends = []netip.AddrPort{netip.AddrPortFrom(netip.MustParseAddr("fe80::1%eth0"), 80)}
		})}}, "IPv6 zone"},
		{"affinity fraction", config{Services: []ServicePort{web(func(s *ServicePort) { s.AffinityTimeout = 1500 * time.Millisecond })}},
			"not a whole number of seconds"},
		{"affinity too long", config{Services: []ServicePort{web(func(s *ServicePort) { s.AffinityTimeout = 25 * time.Hour })}},
			"session affinity timeout 25h0m0s is out of range"},
		{"same VIP and port", config{Services: []ServicePort{
			web(func(s *ServicePort) {}),
			web(func(s *ServicePort) { s.Name = "default/other:http"; s.VIPs = addrs("10.96.0.11", "10.96.0.10") }),
		}}, `service port "default/other:http": 10.96.0.10:80/tcp is also served by service port "default/web:http"`},
		{"same node port", config{Services: []ServicePort{
			web(func(s *ServicePort) { s.NodePort = 30080 }),
			web(func(s *ServicePort) { s.Name = "default/other:http"; s.VIPs = addrs("10.96.0.11"); s.NodePort = 30080 }),
		}}, "node port 30080/tcp is also served by"},
		{"node port published", config{
			Ports:    []string{"tcp 30080 as tcp *:30080 -> 10.1.0.3:80"},
			Services: []ServicePort{web(func(s *ServicePort) { s.NodePort = 30080 })},
		}, `service port "default/web:http": node port 30080/tcp is also the published port tcp *:30080 -> 10.1.0.3:80`},
		{"range", config{ServiceRanges: []netip.Prefix{{}}}, "service range invalid Prefix is not a valid prefix"},
		{"backend in a range", config{ServiceRanges: pfx("10.0.0.0/8"), Services: []ServicePort{web(func(s *ServicePort) {})}},
			`service port "default/web:http": backend 10.1.0.2:8080 is in the service range 10.0.0.0/8`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := checkServices(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestServicesAccepted(t *testing.T) {
	cfg := config{Services: []ServicePort{
		// The same VIP on two ports and two protocols, one name twice, a
		// node port alone, the same node port number for TCP and UDP.
		{Name: "a", VIPs: addrs("10.96.0.10"), Protocol: "tcp", Port: 80, NodePort: 30000},
		{Name: "a", VIPs: addrs("10.96.0.10"), Protocol: "udp", Port: 80, NodePort: 30000},
		{Name: "b", VIPs: addrs("10.96.0.10"), Protocol: "tcp", Port: 443},
		{Name: "c", Protocol: "sctp", Port: 1, NodePort: 30001, AffinityTimeout: 24 * time.Hour},
	}}
	if err := checkServices(cfg); err != nil {
		t.Fatal(err)
	}
	sp, n4, err := normalizeServicePort(ServicePort{Name: "d", VIPs: addrs("fd00::1", "10.96.0.1", "10.96.0.1"),
		Protocol: "tcp", Port: 1, Backends: addrPorts("[fd00::3]:1", "10.0.0.3:1", "10.0.0.2:1", "10.0.0.3:1")})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(sp.VIPs, sp.Backends, n4); got != "[10.96.0.1 fd00::1] [10.0.0.2:1 10.0.0.3:1 [fd00::3]:1] 2" {
		t.Errorf("normalized to %s", got)
	}
}

// TestServicePlans: an unchanged config changes nothing, a changed
// endpoint changes its elements only, and a failed plan leaves the state
// usable.
func TestServicePlans(t *testing.T) {
	cfg := manyServices(100, 3)
	p, err := planServices(cfg.Services, nil, nil, nil)
	must(t, "plan", err)
	d := p.apply()
	d.resolve()
	if len(d.add[ssBackends4]) != 300 || len(d.add[ssMap4]) != 100 || len(d.add[ssVIPs4]) != 100 {
		t.Fatalf("first plan adds %d backends, %d VIP map elements, %d VIPs", len(d.add[ssBackends4]), len(d.add[ssMap4]), len(d.add[ssVIPs4]))
	}
	st := p.st
	again, err := planServices(cfg.Services, nil, nil, st)
	must(t, "plan again", err)
	if d := again.apply(); !d.empty() || len(again.changes) != 0 {
		t.Errorf("the same config again: %d changes, delta empty %v", len(again.changes), d.empty())
	}

	bad := manyServices(100, 3)
	bad.Services[7].Protocol = "icmp"
	bad.Services = bad.Services[:50]
	if _, err := planServices(bad.Services, nil, nil, st); err == nil {
		t.Fatal("invalid config planned")
	}

	changed := manyServices(100, 3)
	changed.Services[42].Backends[1] = netip.AddrPortFrom(changed.Services[42].Backends[1].Addr(), 9090) // same slot
	p, err = planServices(changed.Services, nil, nil, st)
	must(t, "plan after a failed one", err)
	d = p.apply()
	d.resolve()
	for s := range numSvcSets {
		want := map[svcSet][2]int{ssBackends4: {1, 1}}[s]
		if got := [2]int{len(d.del[s]), len(d.add[s])}; got != want {
			t.Errorf("set %s: %d deleted, %d added; want %v", svcSetNames[s], got[0], got[1], want)
		}
	}

	fewer, err := planServices(changed.Services[:99], nil, nil, st)
	must(t, "plan with one service port less", err)
	d = fewer.apply()
	d.resolve()
	if len(d.del[ssBackends4]) != 3 || len(d.del[ssVIPs4]) != 1 || len(d.del[ssMap4]) != 1 {
		t.Errorf("removing a service port deletes %d backends, %d VIPs, %d VIP map elements", len(d.del[ssBackends4]), len(d.del[ssVIPs4]), len(d.del[ssMap4]))
	}
}

// TestServiceShape: service chains depend on the kinds of count chain in
// use, blocks of 64 backend counts and affinity timeouts only; a service
// port growing within a block keeps every chain and rule, and a host
// without services has no count chains.
func TestServiceShape(t *testing.T) {
	rules := func(cfg config) (int, int) {
		f := New(Options{})
		if err := f.Set(cfg.Services, cfg.ServiceRanges); err != nil {
			t.Fatal(err)
		}
		shape, _, err := f.Plan()
		if err != nil {
			t.Fatal(err)
		}
		r := 0
		for _, c := range shape.Chains {
			r += len(c.Rules)
		}
		return len(shape.Chains), r
	}
	c0, r0 := rules(config{})
	c1, r1 := rules(manyServices(1, 1))
	if c1 != c0+countBlockSize || r1 != r0+2*countBlockSize {
		t.Errorf("a service: %d chains, %d rules; want the count chains of block 0 more than without (%d, %d)", c1, r1, c0, r0)
	}
	if c, r := rules(manyServices(300, 64)); c != c1 || r != r1 {
		t.Errorf("300 service ports with 64 backends: %d chains, %d rules; want %d, %d as for one", c, r, c1, r1)
	}
	if c, r := rules(manyServices(3, 65)); c != c1+countBlockSize || r != r1+2*countBlockSize {
		t.Errorf("65 backends: %d chains, %d rules; want a block more than %d, %d", c, r, c1, r1)
	}
	np := manyServices(3, 2)
	np.Services[1].NodePort = 30000
	if c, _ := rules(np); c != c1+countBlockSize {
		t.Errorf("a node port: %d chains, want %d", c, c1+countBlockSize)
	}
	sticky := manyServices(3, 2)
	sticky.Services[0].AffinityTimeout = time.Hour
	sticky.Services[1].AffinityTimeout = time.Hour
	// One timeout: its count chains and the chain of returning clients.
	if c, _ := rules(sticky); c != c1+countBlockSize+1 {
		t.Errorf("one affinity timeout: %d chains, want %d", c, c1+countBlockSize+1)
	}
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// manyServices returns n service ports with eps backends each.
func manyServices(n, eps int) config {
	var cfg config
	for i := range n {
		sp := ServicePort{Name: fmt.Sprintf("ns/svc-%d:http", i), Protocol: "tcp", Port: 80,
			VIPs: []netip.Addr{netip.AddrFrom4([4]byte{10, 96 + byte(i>>16), byte(i >> 8), byte(i)})}}
		for j := range eps {
			k := i*eps + j
			sp.Backends = append(sp.Backends, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 128 + byte(k>>16), byte(k >> 8), byte(k)}), 8080))
		}
		cfg.Services = append(cfg.Services, sp)
	}
	return cfg
}

func TestGoneUDPBackends(t *testing.T) {
	before := []ServicePort{
		{Name: "dns", VIPs: addrs("10.96.0.10", "fd00:96::10"), Protocol: "udp", Port: 53, NodePort: 30053,
			Backends: addrPorts("10.1.0.2:53", "10.1.0.3:53", "[fd00::2]:53")},
		{Name: "web", VIPs: addrs("10.96.0.11"), Protocol: "tcp", Port: 80, Backends: addrPorts("10.1.0.2:80")},
	}
	after := []ServicePort{
		{Name: "dns", VIPs: addrs("10.96.0.10"), Protocol: "udp", Port: 53,
			Backends: addrPorts("10.1.0.2:53", "[fd00::2]:53")},
	}
	var got []string
	for _, g := range GoneUDPBackends(before, after) {
		got = append(got, fmt.Sprintf("%s %v np=%d", g.Backend, g.VIPs, g.NodePort))
	}
	want := "[10.1.0.2:53 [] np=30053 10.1.0.3:53 [10.96.0.10] np=30053 [fd00::2]:53 [fd00:96::10] np=30053]"
	if fmt.Sprint(got) != want {
		t.Errorf("gone = %v\nwant %s", got, want)
	}
}

// Literals of the tests.
var (
	pfx       = nfttest.Prefixes
	addrs     = nfttest.Addrs
	addrPorts = nfttest.AddrPorts
)
