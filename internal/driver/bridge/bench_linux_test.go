package bridge_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/knit-net/knit/internal/driver/bridge"
	"github.com/knit-net/knit/internal/netns"
	"github.com/knit-net/knit/internal/testutil/nstest"
)

// BenchmarkEnsureEndpoint times attaching a container: EnsureEndpoint of a
// new endpoint into a fresh, already created namespace, until eth0 is up with
// its addresses and default route. The namespace's creation and the
// endpoint's deletion are not timed. present=N first puts N other containers
// on the same bridge. Besides ns/op it reports percentiles of the attach, of
// netns.Create, and of adopting the same endpoint again (EnsureEndpoint on a
// correct endpoint, as after a knitd restart).
//
//	go test -run '^$' -bench EnsureEndpoint -benchtime 400x ./internal/driver/bridge/
func BenchmarkEnsureEndpoint(b *testing.B) {
	for _, present := range []int{0, 1000} {
		b.Run(fmt.Sprintf("present=%d", present), func(b *testing.B) {
			if present > 0 && testing.Short() {
				b.Skip("populating 1000 containers is slow")
			}
			benchEnsureEndpoint(b, present)
		})
	}
}

func benchEnsureEndpoint(b *testing.B, present int) {
	host := nstest.New(b, "bench")
	d := bridge.New(bridge.Options{Handle: host.Netlink, HostNetNS: host.Path})
	defer d.Close()
	n := network("bench", "10.90.0.0/16 10.90.0.1")
	if err := d.EnsureNetwork(n); err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()

	var paths []string
	b.Cleanup(func() {
		for _, p := range paths {
			netns.Delete(p) // the endpoint goes with its namespace
		}
	})
	for i := range present {
		p := filepath.Join(dir, fmt.Sprintf("p%d", i))
		if err := netns.Create(p); err != nil {
			b.Fatal(err)
		}
		paths = append(paths, p)
		addr := fmt.Sprintf("10.90.%d.%d/16", 1+i/250, 2+i%250)
		if err := d.EnsureEndpoint(endpoint(n, fmt.Sprintf("kn-p%d", i), "eth0", p, addr)); err != nil {
			b.Fatal(err)
		}
	}

	attach := make([]time.Duration, 0, b.N)
	create := make([]time.Duration, 0, b.N)
	adopt := make([]time.Duration, 0, b.N)
	p := filepath.Join(dir, "c")
	b.Cleanup(func() { netns.Delete(p) })
	ep := endpoint(n, "kn-b0", "eth0", p, "10.90.255.2/16")
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		t0 := time.Now()
		if err := netns.Create(p); err != nil {
			b.Fatal(err)
		}
		create = append(create, time.Since(t0))
		b.StartTimer()

		t0 = time.Now()
		err := d.EnsureEndpoint(ep)
		attach = append(attach, time.Since(t0))

		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		t0 = time.Now()
		if err := d.EnsureEndpoint(ep); err != nil {
			b.Fatal(err)
		}
		adopt = append(adopt, time.Since(t0))
		if err := d.DeleteEndpoint(ep); err != nil {
			b.Fatal(err)
		}
		if err := netns.Delete(p); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	report(b, "attach", attach)
	report(b, "netns-create", create)
	report(b, "adopt", adopt)
}

// report adds the 50th and 99th percentiles of ds as metrics.
func report(b *testing.B, name string, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	pct := func(p float64) float64 { return float64(ds[int(p*float64(len(ds)-1))].Nanoseconds()) }
	b.ReportMetric(pct(0.50), name+"-p50-ns")
	b.ReportMetric(pct(0.99), name+"-p99-ns")
}
