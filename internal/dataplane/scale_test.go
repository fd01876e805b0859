package dataplane

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/knit-net/knit/internal/dataplane/nft"
	"github.com/knit-net/knit/internal/dataplane/nft/networks"
	"github.com/knit-net/knit/internal/dataplane/nft/ports"
	"github.com/knit-net/knit/internal/testutil/nfttest"
	"github.com/knit-net/knit/internal/testutil/nstest"
)

// TestSyncManyElements needs several element batches per set: every set must
// hold all its elements (the library silently truncates big messages).
func TestSyncManyElements(t *testing.T) {
	ns := nstest.New(t, "nft")
	d := newDataplane(t, ns)
	cfg := manyNetworks(1500)
	mustSync(t, d, cfg)
	for name, want := range map[string]int{
		networks.SetBridges: 1500, networks.SetInternal: 150, networks.SetIntra: 1500,
		"masq_v6": 2 * 1350, // start and end element per range
	} {
		elems, err := d.Elements(name)
		if err != nil {
			t.Fatalf("elements of %s: %v", name, err)
		}
		if len(elems) != want {
			t.Errorf("set %s has %d elements, want %d", name, len(elems), want)
		}
	}
}

// TestSyncManyPorts: every map holds all its elements after a full sync
// of 10,000 mappings (20 messages of at most 512 elements).
func TestSyncManyPorts(t *testing.T) {
	ns := nstest.New(t, "nft")
	d := newDataplane(t, ns)
	cfg := manyPorts(10000)
	mustSync(t, d, cfg)
	want := map[string]int{}
	for _, p := range cfg.Ports {
		name := "ports_" + map[bool]string{true: "any_", false: ""}[!p.HostIP.IsValid()] + map[bool]string{true: "v6", false: "v4"}[p.ContainerIP.Is6()]
		want[name]++
	}
	for name, n := range want {
		elems, err := d.Elements(name)
		if err != nil {
			t.Fatalf("elements of %s: %v", name, err)
		}
		if len(elems) != n {
			t.Errorf("map %s has %d elements, want %d", name, len(elems), n)
		}
	}
	if want["ports_any_v4"] <= 2*512 {
		t.Errorf("the wildcard map has %d elements; the test wants several batches", want["ports_any_v4"])
	}
}

// manyNetworks returns n dual-stack networks, every tenth internal.
func manyNetworks(n int) Config {
	var cfg Config
	for i := range n {
		cfg.Networks = append(cfg.Networks, networks.Network{
			Bridge:   fmt.Sprintf("kn-%d", i),
			Subnets:  pfx(fmt.Sprintf("10.%d.%d.0/24", i/256, i%256), fmt.Sprintf("fd00:%x::/64", i)),
			Internal: i%10 == 0,
		})
	}
	return cfg
}

// TestRulesDoNotGrow: per-network data lives in sets, so the rules are
// the same for no networks and for many.
func TestRulesDoNotGrow(t *testing.T) {
	rules := func(cfg Config) (string, int) {
		ns := nstest.New(t, "nft")
		mustSync(t, newDataplane(t, ns), cfg)
		listing := nfttest.List(t, ns)
		var out []string
		for _, l := range strings.Split(listing, "\n") {
			if strings.Contains(l, "comment \"knit: ") || strings.HasPrefix(strings.TrimSpace(l), "chain ") {
				out = append(out, l)
			}
		}
		return strings.Join(out, "\n"), strings.Count(listing, ",") + strings.Count(listing, "elements = {")
	}
	empty, emptyElems := rules(Config{})
	many, manyElems := rules(manyNetworks(300))
	if empty != many {
		t.Errorf("rules with no networks:\n%s\nwith 300:\n%s\nwant them the same", empty, many)
	}
	if manyElems <= emptyElems {
		t.Errorf("elements: empty %d, many %d", emptyElems, manyElems)
	}
}

// BenchmarkSync measures one full sync (read the table, one transaction)
// of n dual-stack networks into a table that already holds them: the
// steady-state cost of a full resync. (An unchanged config otherwise goes
// out as a partial sync, which sends nothing.)
func BenchmarkSync(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("networks=%d", n), func(b *testing.B) {
			ns := nstest.New(b, "nftbench")
			d := newDataplane(b, ns)
			cfg := manyNetworks(n)
			mustSync(b, d, cfg)
			for b.Loop() {
				d.ForceFull()
				if err := d.Apply(cfg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRender is the pure part of a sync: validation and rendering of
// every element (the features' Set and a full sync's Changes), no kernel.
func BenchmarkRender(b *testing.B) {
	for name, cfg := range map[string]Config{"networks=100": manyNetworks(100), "ports=10000": manyPorts(10000)} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				n, p := networks.New(), ports.New(ports.Options{})
				if err := n.Set(cfg.Networks); err != nil {
					b.Fatal(err)
				}
				if err := p.Set("all", cfg.Ports); err != nil {
					b.Fatal(err)
				}
				_, _ = n.Changes(nil, true)
				_, _ = p.Changes(nil, true)
			}
		})
	}
}

// Targets: one more mapping with 1,000 present ≤ 2 ms p50 (a partial
// sync); a full sync of 10,000 mappings ≤ 1 s.

// BenchmarkAddOneMappingAt1000 measures Sync of 1,000 mappings plus a new
// one into a table holding the 1,000 (the one is removed again between
// iterations, untimed).
func BenchmarkAddOneMappingAt1000(b *testing.B) {
	ns := nstest.New(b, "nftbench")
	d := newDataplane(b, ns)
	base := manyPorts(1000)
	mustSync(b, d, base)
	var took []time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		mustSync(b, d, base)
		cfg := base
		cfg.Ports = append(slices.Clip(base.Ports), ports.Port{Proto: "tcp", HostPort: uint16(40000 + i%20000),
			ContainerIP: addr("10.200.99.1"), ContainerPort: 80})
		b.StartTimer()
		start := time.Now()
		if err := d.Apply(cfg); err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(start))
	}
	reportPercentiles(b, took)
}

// BenchmarkAddOneContainerAt1000 is the path knitd takes: 1,000
// containers with one mapping each, and one more container's mapping set
// and synced (removed again between iterations, untimed). Only that
// container's elements are rendered and sent.
func BenchmarkAddOneContainerAt1000(b *testing.B) {
	ns := nstest.New(b, "nftbench")
	d := newDataplane(b, ns)
	base := manyPorts(1000)
	must(b, "networks", d.Networks.Set(base.Networks))
	for i, p := range base.Ports {
		must(b, "ports", d.Ports.Set(fmt.Sprint(i), []ports.Port{p}))
	}
	must(b, "sync", d.Sync())
	var took []time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		must(b, "remove", d.Ports.Set("new", nil))
		must(b, "sync", d.Sync())
		p := ports.Port{Proto: "tcp", HostPort: uint16(40000 + i%20000), ContainerIP: addr("10.200.99.1"), ContainerPort: 80}
		b.StartTimer()
		start := time.Now()
		must(b, "add", d.Ports.Set("new", []ports.Port{p}))
		must(b, "sync", d.Sync())
		took = append(took, time.Since(start))
	}
	reportPercentiles(b, took)
}

// BenchmarkFullSync10000 measures a full sync of 10,000 mappings by a new
// Dataplane into a namespace without the table (deleted, untimed, between
// iterations).
func BenchmarkFullSync10000(b *testing.B) {
	benchFullSync(b, manyPorts(10000), false)
}

// BenchmarkRestartSync10000 measures the full sync of a restarted daemon:
// a new Dataplane syncing 10,000 mappings into the table that holds them
// (every element flushed and added again).
func BenchmarkRestartSync10000(b *testing.B) {
	benchFullSync(b, manyPorts(10000), true)
}

// benchFullSync measures the full sync of cfg by a new Table, into the
// table that holds cfg already (keepTable) or into none.
func benchFullSync(b *testing.B, cfg Config, keepTable bool) {
	ns := nstest.New(b, "nftbench")
	if keepTable {
		mustSync(b, newDataplane(b, ns), cfg)
	}
	var took []time.Duration
	for b.Loop() {
		b.StopTimer()
		d, err := NewTable(nft.Options{NetNSPath: ns.Path})
		if err != nil {
			b.Fatal(err)
		}
		if !keepTable {
			if err := d.Delete(); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		start := time.Now()
		if err := d.Apply(cfg); err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(start))
		b.StopTimer()
		d.Close()
		b.StartTimer()
	}
	reportPercentiles(b, took)
}

// reportPercentiles adds the median and 99th percentile of the measured
// syncs to the benchmark's output, in milliseconds.
func reportPercentiles(b *testing.B, took []time.Duration) {
	if len(took) == 0 {
		return
	}
	slices.Sort(took)
	ms := func(q float64) float64 { return float64(took[int(q*float64(len(took)-1))]) / 1e6 }
	b.ReportMetric(ms(0.5), "p50-ms")
	b.ReportMetric(ms(0.99), "p99-ms")
}
