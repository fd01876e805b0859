package dataplane

import (
	"sync"
	"testing"
	"time"

	"github.com/knit-net/knit/internal/dataplane/nft"
	"github.com/knit-net/knit/internal/testutil/nstest"
)

// probe is one TCP connection attempt to to:8080 from the namespace from.
// When ok, the server must answer, and must have seen the client as seen
// (unless empty); otherwise the connection must fail.
type probe struct {
	from, to string
	ok       bool
	seen     string
}

const (
	okTimeout      = 2 * time.Second
	blockedTimeout = 300 * time.Millisecond
)

func (tp *topology) ns(name string) *nstest.NS {
	switch name {
	case "host":
		return tp.host
	case "outside":
		return tp.outside
	}
	return tp.ctr[name]
}

// check runs the probes concurrently and reports every mismatch.
func (tp *topology) check(t *testing.T, stage string, probes []probe) {
	t.Helper()
	var wg sync.WaitGroup
	for _, p := range probes {
		wg.Go(func() {
			timeout := okTimeout
			if !p.ok {
				timeout = blockedTimeout
			}
			c, err := connect(t, tp.ns(p.from), p.to, timeout)
			switch {
			case !p.ok && err == nil:
				c.Close()
				t.Errorf("%s: %s → %s connected; want it blocked", stage, p.from, p.to)
			case p.ok && err != nil:
				t.Errorf("%s: %s → %s: %v; want it to connect", stage, p.from, p.to, err)
			case p.ok:
				defer c.Close()
				got, err := ask(c)
				if err != nil {
					t.Errorf("%s: %s → %s: no answer: %v", stage, p.from, p.to, err)
				} else if p.seen != "" && got != p.seen {
					t.Errorf("%s: %s → %s: server saw client %s, want %s", stage, p.from, p.to, got, p.seen)
				}
			}
		})
	}
	wg.Wait()
}

func TestTraffic(t *testing.T) {
	tp := newTopology(t)

	// Without knit's table everything routes, and nothing is masqueraded:
	// a1's packets reach outside, but the replies have no route back.
	tp.check(t, "before sync", []probe{
		{from: "a1", to: "10.10.3.2", ok: true, seen: "10.10.1.2"},
		{from: "i1", to: "192.168.100.2", ok: true, seen: "10.10.2.2"},
		{from: "a1", to: "192.168.100.2", ok: false},
	})

	d, err := NewTable(nft.Options{NetNSPath: tp.host.Path})
	must(t, "New", err)
	t.Cleanup(func() { d.Close() })
	mustSync(t, d, tp.config())

	tp.check(t, "after sync", []probe{
		// Within one bridge (bridged, through br_netfilter): allowed, and
		// the peer sees the real container address.
		{from: "a1", to: "10.10.1.3", ok: true, seen: "10.10.1.2"},
		{from: "a2", to: "10.10.1.2", ok: true, seen: "10.10.1.3"},
		{from: "a1", to: "fd00:a::3", ok: true, seen: "fd00:a::2"},
		{from: "c1", to: "10.10.3.3", ok: true, seen: "10.10.3.2"},
		{from: "i1", to: "10.10.2.3", ok: true, seen: "10.10.2.2"},
		// Between networks: blocked both ways, internal or not.
		{from: "a1", to: "10.10.3.2", ok: false},
		{from: "c1", to: "10.10.1.2", ok: false},
		{from: "a1", to: "10.10.2.2", ok: false},
		{from: "i1", to: "10.10.1.2", ok: false},
		{from: "c2", to: "10.10.2.3", ok: false},
		// Out of non-internal networks: masqueraded to the uplink address.
		{from: "a1", to: "192.168.100.2", ok: true, seen: "192.168.100.1"},
		{from: "a1", to: "fd00:100::2", ok: true, seen: "fd00:100::1"},
		{from: "c1", to: "192.168.100.2", ok: true, seen: "192.168.100.1"},
		// The internal network has no way out and no way in, although
		// outside has a route to it.
		{from: "i1", to: "192.168.100.2", ok: false},
		{from: "outside", to: "10.10.2.2", ok: false},
		// The host itself is not forwarding: it reaches every network, with
		// its own bridge address, not masqueraded.
		{from: "host", to: "10.10.2.2", ok: true, seen: "10.10.2.1"},
		{from: "host", to: "10.10.1.2", ok: true, seen: "10.10.1.1"},
	})

	// A daemon restart: an established, masqueraded connection survives a
	// new Dataplane syncing the same config and the old one closing.
	held, err := connect(t, tp.ns("a1"), "192.168.100.2", okTimeout)
	must(t, "connect a1 → outside", err)
	defer held.Close()
	askHeld := func(stage string) {
		t.Helper()
		if got, err := ask(held); err != nil || got != "192.168.100.1" {
			t.Errorf("%s: held connection answered %q, %v; want 192.168.100.1", stage, got, err)
		}
	}
	askHeld("before restart")
	must(t, "Close", d.Close())
	d2, err := NewTable(nft.Options{NetNSPath: tp.host.Path})
	must(t, "New after restart", err)
	t.Cleanup(func() { d2.Close() })
	mustSync(t, d2, tp.config())
	askHeld("after restart")
	tp.check(t, "after restart", []probe{
		{from: "a1", to: "10.10.3.2", ok: false},
		{from: "c1", to: "192.168.100.2", ok: true, seen: "192.168.100.1"},
	})

	// Another table's drop wins over knit's accept: every base chain on a
	// hook must accept. With br_netfilter that includes traffic bridged
	// within one knit network.
	removeDrop := addForeignForwardDrop(t, tp.host)
	tp.check(t, "foreign forward policy drop", []probe{
		{from: "a1", to: "10.10.1.3", ok: false},
		{from: "c1", to: "192.168.100.2", ok: false},
	})
	removeDrop()

	// Delete takes all of knit's rules away. (Established masqueraded
	// connections stop too: the kernel translates them only while some nat
	// chain of the family is registered; see docs/datapath.md.)
	must(t, "Delete", d2.Delete())
	tp.check(t, "after delete", []probe{
		{from: "a1", to: "10.10.3.2", ok: true, seen: "10.10.1.2"},
		{from: "i1", to: "192.168.100.2", ok: true, seen: "10.10.2.2"},
		{from: "a1", to: "192.168.100.2", ok: false},
	})
}
