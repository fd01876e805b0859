package dataplane

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/knit-net/knit/internal/dataplane/nft/services"
	"github.com/knit-net/knit/internal/testutil/nstest"
)

// Service benchmarks at 10,000 service ports with 10 endpoints, for
// profiling (go test -bench Service -cpuprofile …); bench/services runs the
// same measurements beside a kube-proxy-shaped ruleset. Targets: a full
// sync from nothing ≤ 1 s, one endpoint changed ≤ 5 ms.

// BenchmarkServiceFullSync10000 measures Sync of a new Table into a
// namespace without the table (deleted, untimed, between iterations).
func BenchmarkServiceFullSync10000(b *testing.B) {
	benchFullSync(b, manyServices(10000, 10), false)
}

// BenchmarkServiceEndpointReplace10000 measures Sync of the whole config
// with one endpoint of one service port replaced (same count: one backend
// map element changes).
func BenchmarkServiceEndpointReplace10000(b *testing.B) {
	benchEndpointChange(b, func(bs []netip.AddrPort, i int) []netip.AddrPort {
		out := slices.Clone(bs)
		out[3] = netip.AddrPortFrom(out[3].Addr(), 8080+uint16(i%2))
		return out
	})
}

// BenchmarkServiceEndpointAdd10000 measures Sync with one endpoint added
// to, or removed again from, one service port (the count changes: the VIP
// goes to another count chain).
func BenchmarkServiceEndpointAdd10000(b *testing.B) {
	benchEndpointChange(b, func(bs []netip.AddrPort, i int) []netip.AddrPort {
		if i%2 == 0 {
			return bs
		}
		return append(slices.Clip(bs), netip.MustParseAddrPort("10.255.255.254:8080"))
	})
}

func benchEndpointChange(b *testing.B, change func([]netip.AddrPort, int) []netip.AddrPort) {
	ns := nstest.New(b, "nftbench")
	d := newDataplane(b, ns)
	cfg := manyServices(10000, 10)
	mustSync(b, d, cfg)
	orig := cfg.Services[5000].Backends
	var took []time.Duration
	for i := 1; b.Loop(); i++ {
		cfg.Services[5000].Backends = change(orig, i)
		start := time.Now()
		if err := d.Apply(cfg); err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(start))
	}
	reportPercentiles(b, took)
}

// manyServices returns n service ports (10.96.x.y:80/tcp) with eps
// backends each, all distinct, and the range 10.96.0.0/12.
func manyServices(n, eps int) Config {
	cfg := Config{ServiceRanges: pfx("10.96.0.0/12")}
	for i := range n {
		sp := services.ServicePort{Name: fmt.Sprintf("ns/svc-%d:http", i), Protocol: "tcp", Port: 80,
			VIPs: []netip.Addr{netip.AddrFrom4([4]byte{10, 96 + byte(i>>16), byte(i >> 8), byte(i)})}}
		for j := range eps {
			k := i*eps + j
			sp.Backends = append(sp.Backends, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 128 + byte(k>>16), byte(k >> 8), byte(k)}), 8080))
		}
		cfg.Services = append(cfg.Services, sp)
	}
	return cfg
}
