package nft

import (
	"fmt"
	"testing"

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
	empty, many := render(nil), render(nets)
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
// steady-state cost of a resync.
func BenchmarkSync(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("networks=%d", n), func(b *testing.B) {
			ns := nstest.New(b, "nftbench")
			d := newDataplane(b, ns)
			cfg := manyNetworks(n)
			mustSync(b, d, cfg)
			for b.Loop() {
				if err := d.Sync(cfg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRender is the pure part of a sync: validation and rendering.
func BenchmarkRender(b *testing.B) {
	cfg := manyNetworks(100)
	for b.Loop() {
		nets, err := cfg.normalize()
		if err != nil {
			b.Fatal(err)
		}
		render(nets)
	}
}
