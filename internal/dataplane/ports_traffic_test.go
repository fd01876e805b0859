package dataplane

import (
	"net"
	"testing"

	"github.com/knit-net/knit/internal/dataplane/nft"
	"github.com/knit-net/knit/internal/testutil/nstest"
)

// portsConfig publishes, in the topology of newTopology:
//
//	*:9080/tcp,udp       → a1:8081 (IPv4 and IPv6 wildcards)
//	10.10.3.1:9080/tcp   → a2:8081 (bound to one address: beats the wildcard)
//	192.168.100.1:9081   → a2:8081 (the uplink address only)
//	127.0.0.1:9082/tcp,udp → a2:8081 (the host's loopback only)
func (tp *topology) portsConfig(t testing.TB) Config {
	cfg := tp.config()
	for _, m := range []string{
		"tcp * 9080 10.10.1.2 8081",
		"udp * 9080 10.10.1.2 8081",
		"tcp * 9080 fd00:a::2 8081",
		"tcp 10.10.3.1 9080 10.10.1.3 8081",
		"tcp 192.168.100.1 9081 10.10.1.3 8081",
		"tcp 127.0.0.1 9082 10.10.1.3 8081",
		"udp 127.0.0.1 9082 10.10.1.3 8081",
	} {
		cfg.Ports = append(cfg.Ports, mapping(t, m))
	}
	return cfg
}

func TestPublishedPorts(t *testing.T) {
	tp := newTopology(t)
	tp.prepareForPorts(t)
	d := newDataplane(t, tp.host)
	mustSync(t, d, tp.portsConfig(t))

	tp.checkPorts(t, "published", []portProbe{
		// From outside: DNATed, and the container sees the real client.
		{"outside", "tcp", "192.168.100.1:9080", "a1 192.168.100.2"},
		{"outside", "udp", "192.168.100.1:9080", "a1 192.168.100.2"},
		{"outside", "tcp", "[fd00:100::1]:9080", "a1 fd00:100::2"},
		// From the host to its own addresses: the host's address is kept.
		{"host", "tcp", "192.168.100.1:9080", "a1 192.168.100.1"},
		{"host", "udp", "192.168.100.1:9080", "a1 192.168.100.1"},
		{"host", "tcp", "10.10.1.1:9080", "a1 10.10.1.1"},
		{"host", "tcp", "[fd00:100::1]:9080", "a1 fd00:100::1"},
		// 127.0.0.1 for wildcards and loopback-bound mappings, masqueraded
		// to the bridge's address so that the container can answer.
		{"host", "tcp", "127.0.0.1:9080", "a1 10.10.1.1"},
		{"host", "udp", "127.0.0.1:9080", "a1 10.10.1.1"},
		{"host", "tcp", "127.0.0.1:9082", "a2 10.10.1.1"},
		{"host", "udp", "127.0.0.1:9082", "a2 10.10.1.1"},
		{"outside", "tcp", "192.168.100.1:9082", ""},
		{"host", "tcp", "192.168.100.1:9082", ""},
		// ::1 is never DNATed (Linux cannot route it to a container).
		{"host", "tcp", "[::1]:9080", ""},
		// Bound to one address: that address only.
		{"outside", "tcp", "192.168.100.1:9081", "a2 192.168.100.2"},
		{"host", "tcp", "10.10.1.1:9081", ""},
		{"host", "tcp", "127.0.0.1:9081", ""},
		{"c1", "tcp", "10.10.3.1:9081", ""},
		// From another network: through DNAT, with the client's address;
		// an address-bound mapping beats the wildcard.
		{"c1", "tcp", "192.168.100.1:9080", "a1 10.10.3.2"},
		{"c1", "udp", "192.168.100.1:9080", "a1 10.10.3.2"},
		{"c1", "tcp", "10.10.3.1:9080", "a2 10.10.3.2"},
		// Isolation still holds without DNAT, and internal networks have
		// no way out even to a published port.
		{"c1", "tcp", "10.10.1.2:8081", ""},
		{"i1", "tcp", "10.10.2.1:9080", ""},
		// Hairpin: a container reaching its own or its neighbour's
		// published port through a host address is masqueraded.
		{"a1", "tcp", "192.168.100.1:9080", "a1 10.10.1.1"},
		{"a1", "udp", "10.10.1.1:9080", "a1 10.10.1.1"},
		{"a2", "tcp", "192.168.100.1:9080", "a1 10.10.1.1"},
		{"a2", "tcp", "10.10.3.1:9080", "a2 10.10.1.1"},
	})

	// With br_netfilter (on in every namespace here) the DNATed packet is
	// bridged straight back to the container's port.
	const bridged, routed = "br_netfilter bridged", "routed back"
	if n := ruleCounter(t, tp.host, "hairpin", bridged); n != 4 {
		t.Errorf("hairpin rule for bridged traffic counted %d connections, want 4", n)
	}
	if n := ruleCounter(t, tp.host, "hairpin", routed); n != 0 {
		t.Errorf("hairpin rule for routed traffic counted %d connections, want 0", n)
	}

	// Without br_netfilter (or with bridge-nf-call-iptables=0) a DNATed
	// packet going back into its bridge is routed, not bridged: the other
	// hairpin rule takes it.
	setSysctl(t, tp.host, "net.bridge.bridge-nf-call-iptables", "0")
	setSysctl(t, tp.host, "net.bridge.bridge-nf-call-ip6tables", "0")
	tp.checkPorts(t, "routed hairpin", []portProbe{
		{"a1", "tcp", "192.168.100.1:9080", "a1 10.10.1.1"},
		{"a1", "udp", "192.168.100.1:9080", "a1 10.10.1.1"},
		{"a2", "tcp", "192.168.100.1:9080", "a1 10.10.1.1"},
		{"outside", "tcp", "192.168.100.1:9080", "a1 192.168.100.2"},
		{"c1", "tcp", "192.168.100.1:9080", "a1 10.10.3.2"},
	})
	if n := ruleCounter(t, tp.host, "hairpin", routed); n != 3 {
		t.Errorf("hairpin rule for routed traffic counted %d connections, want 3", n)
	}
}

// TestPortsRestartAndRemoval: an established connection through a
// published port survives a restart of the daemon (a new Dataplane syncing
// the same config); removing the mapping stops new connections.
func TestPortsRestartAndRemoval(t *testing.T) {
	tp := newTopology(t)
	tp.prepareForPorts(t)
	d, err := NewTable(nft.Options{NetNSPath: tp.host.Path})
	must(t, "New", err)
	cfg := tp.portsConfig(t)
	mustSync(t, d, cfg)

	c, err := connectPort(t, tp.outside, "192.168.100.1:9080")
	must(t, "connect outside → 192.168.100.1:9080", err)
	defer c.Close()
	askHeld := func(stage string) {
		t.Helper()
		if got, err := exchange(c, okTimeout); err != nil || got != "a1 192.168.100.2" {
			t.Errorf("%s: held connection answered %q, %v; want a1 192.168.100.2", stage, got, err)
		}
	}
	askHeld("before restart")
	must(t, "Close", d.Close())
	d2 := newDataplane(t, tp.host)
	mustSync(t, d2, cfg)
	askHeld("after restart")

	// A partial sync (elements only) that removes the TCP mappings on 9080.
	removed := cfg
	removed.Ports = nil
	for _, p := range cfg.Ports {
		if p.Proto != "tcp" || p.HostPort != 9080 {
			removed.Ports = append(removed.Ports, p)
		}
	}
	mustSync(t, d2, removed)
	if !d2.Synced() {
		t.Fatal("no applied state after a sync")
	}
	tp.checkPorts(t, "mapping removed", []portProbe{
		{"outside", "tcp", "192.168.100.1:9080", ""},
		{"host", "tcp", "127.0.0.1:9080", ""},
		{"c1", "tcp", "10.10.3.1:9080", ""},
		{"outside", "udp", "192.168.100.1:9080", "a1 192.168.100.2"},
		{"outside", "tcp", "192.168.100.1:9081", "a2 192.168.100.2"},
	})
	// Conntrack keeps the translation of established flows, as with
	// Docker: the held connection carries on until it is closed.
	askHeld("after removal")

	mustSync(t, d2, cfg)
	tp.checkPorts(t, "mapping back", []portProbe{
		{"outside", "tcp", "192.168.100.1:9080", "a1 192.168.100.2"},
		{"c1", "tcp", "10.10.3.1:9080", "a2 10.10.3.2"},
	})
}

// connectPort dials TCP to "ip:port" from inside ns.
func connectPort(t *testing.T, ns *nstest.NS, to string) (net.Conn, error) {
	t.Helper()
	var c net.Conn
	var err error
	ns.Do(t, func() { c, err = net.DialTimeout("tcp", to, okTimeout) })
	return c, err
}
