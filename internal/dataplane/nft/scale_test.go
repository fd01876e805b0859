package nft

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/nftables"

	"github.com/knit-net/knit/internal/testutil/nstest"
)

// TestSyncManyElements needs several element batches per set: every set must
// hold all its elements (the library silently truncates big messages).
func TestSyncManyElements(t *testing.T) {
	ns := nstest.New(t, "nft")
	d := newDataplane(t, ns)
	cfg := manyNetworks(1500)
	mustSync(t, d, cfg)
	c, err := nftables.New(nftables.WithNetNSFd(int(ns.Handle)))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]int{
		setBridges: 1500, setInternal: 150, setIntra: 1500,
		setMasq6: 2 * 1350, // start and end element per range
	} {
		elems, err := c.GetSetElements(&nftables.Set{Table: knitTable(), Name: name})
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
	norm, err := cfg.normalize()
	if err != nil {
		t.Fatal(err)
	}
	want := renderPortElems(norm.Ports)
	c, err := nftables.New(nftables.WithNetNSFd(int(ns.Handle)))
	if err != nil {
		t.Fatal(err)
	}
	for name, n := range map[string]int{mapPorts4: len(want.v4), mapPortsAny4: len(want.any4),
		mapPorts6: len(want.v6), mapPortsAny6: len(want.any6)} {
		elems, err := c.GetSetElements(&nftables.Set{Table: knitTable(), Name: name, IsMap: true})
		if err != nil {
			t.Fatalf("elements of %s: %v", name, err)
		}
		if len(elems) != n {
			t.Errorf("map %s has %d elements, want %d", name, len(elems), n)
		}
	}
	if len(want.any4) <= 2*maxElemBatch {
		t.Errorf("the wildcard map has %d elements; the test wants several batches", len(want.any4))
	}
}

// manyNetworks returns n dual-stack networks, every tenth internal.
func manyNetworks(n int) Config {
	var cfg Config
	for i := range n {
		cfg.Networks = append(cfg.Networks, Network{
			Bridge:   fmt.Sprintf("kn-%d", i),
			Subnets:  pfx(fmt.Sprintf("10.%d.%d.0/24", i/256, i%256), fmt.Sprintf("fd00:%x::/64", i)),
			Internal: i%10 == 0,
		})
	}
	return cfg
}

// TestRulesDoNotGrow: per-network data lives in sets, so the rule count is
// the same for no networks and for many.
func TestRulesDoNotGrow(t *testing.T) {
	nets, err := manyNetworks(300).normalize()
	if err != nil {
		t.Fatal(err)
	}
	empty, many := render(Config{}), render(nets)
	if len(empty.rules) != len(many.rules) || len(empty.chains) != len(many.chains) {
		t.Errorf("rules %d → %d, chains %d → %d; want them constant",
			len(empty.rules), len(many.rules), len(empty.chains), len(many.chains))
	}
	if many.elemCount() == 0 || empty.elemCount() != 0 {
		t.Errorf("element counts: empty %d, many %d", empty.elemCount(), many.elemCount())
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
				d.mu.Lock()
				d.applied = nil // forces a full sync
				d.mu.Unlock()
				if err := d.Sync(cfg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRender is the pure part of a sync: validation and rendering.
func BenchmarkRender(b *testing.B) {
	for name, cfg := range map[string]Config{"networks=100": manyNetworks(100), "ports=10000": manyPorts(10000)} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				norm, err := cfg.normalize()
				if err != nil {
					b.Fatal(err)
				}
				render(norm)
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
		cfg.Ports = append(slices.Clip(base.Ports), Port{Proto: "tcp", HostPort: uint16(40000 + i%20000),
			ContainerIP: addr("10.200.99.1"), ContainerPort: 80})
		b.StartTimer()
		start := time.Now()
		if err := d.Sync(cfg); err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(start))
	}
	reportPercentiles(b, took)
}

// BenchmarkFullSync10000 measures a full sync of 10,000 mappings by a new
// Dataplane into a namespace without the table (deleted, untimed, between
// iterations).
func BenchmarkFullSync10000(b *testing.B) {
	benchFullSync(b, 10000, false)
}

// BenchmarkRestartSync10000 measures the full sync of a restarted daemon:
// a new Dataplane syncing 10,000 mappings into the table that holds them
// (every element flushed and added again).
func BenchmarkRestartSync10000(b *testing.B) {
	benchFullSync(b, 10000, true)
}

func benchFullSync(b *testing.B, n int, keepTable bool) {
	ns := nstest.New(b, "nftbench")
	cfg := manyPorts(n)
	mustSync(b, newDataplane(b, ns), cfg)
	var took []time.Duration
	for b.Loop() {
		b.StopTimer()
		d, err := New(Options{NetNSPath: ns.Path})
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
		if err := d.Sync(cfg); err != nil {
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
