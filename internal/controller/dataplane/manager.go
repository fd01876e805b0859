// Package dataplane holds knit's desired nftables state — the networks and
// the published ports of every running container — and applies it through
// the nft package, which sends one transaction per change (only the map
// elements that differ, once the table is in place).
//
// Until Release is called the Manager only records: at startup knitd adopts
// every container before the first apply, so a restart never programs a
// table with some containers' ports missing (which would cut their
// connections); the previous daemon's table stays in force meanwhile.
package dataplane

import (
	"log/slog"
	"net/netip"
	"slices"
	"sync"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/dataplane/nft"
	"github.com/knit-net/knit/internal/policy"
)

// Manager is safe for concurrent use.
type Manager struct {
	dp  *nft.Dataplane
	log *slog.Logger

	mu        sync.Mutex
	held      bool
	nets      []nft.Network
	ports     map[string][]nft.Port // container ID → its published ports
	svcs      []nft.ServicePort
	svcRanges []netip.Prefix
	policy    *policy.Compiled
	warnedBNF bool // warned that br_netfilter is off
}

// New returns a Manager that holds changes until Release.
func New(dp *nft.Dataplane, log *slog.Logger) *Manager {
	return &Manager{dp: dp, log: log, held: true, ports: map[string][]nft.Port{}}
}

// SetNetworks replaces the networks and applies.
func (m *Manager) SetNetworks(nets []v1.Network) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.nets = nft.FromNetworks(nets).Networks
	return m.applyLocked()
}

// SetPorts replaces one container's published ports (none removes them) and
// applies; UDP flows toward ports that went away are flushed from conntrack.
func (m *Manager) SetPorts(id string, ports []nft.Port) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.ports[id]
	if slices.Equal(old, ports) {
		return nil
	}
	if len(ports) == 0 {
		if old == nil {
			return nil
		}
		delete(m.ports, id)
	} else {
		m.ports[id] = ports
	}
	if err := m.applyLocked(); err != nil {
		return err
	}
	// UDP has no handshake: a flow to a port that went away keeps its old
	// conntrack entry (and target), and one sent before a port was published
	// keeps going to the host. Both are flushed.
	if changed := changedUDP(old, ports); len(changed) > 0 && !m.held {
		if err := nft.FlushUDP("", changed); err != nil {
			m.log.Warn("flush conntrack of changed UDP ports", "err", err)
		}
	}
	return nil
}

// SetServices replaces every service port and the ClusterIP ranges and
// applies; UDP flows toward backends that went away are flushed from
// conntrack, so they move to a remaining backend.
func (m *Manager) SetServices(svcs []nft.ServicePort, ranges []netip.Prefix) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.svcs
	m.svcs, m.svcRanges = svcs, ranges
	if err := m.applyLocked(); err != nil {
		return err
	}
	if gone := nft.GoneUDPBackends(old, svcs); len(gone) > 0 && !m.held {
		if err := nft.FlushServiceUDP("", gone); err != nil {
			m.log.Warn("flush conntrack of removed UDP service backends", "err", err)
		}
	}
	return nil
}

// SetPolicy replaces the network policy in force (nil: none) and applies.
// c must not be modified afterwards: the data plane diffs the next one
// against it.
func (m *Manager) SetPolicy(c *policy.Compiled) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c == m.policy {
		return nil
	}
	m.policy = c
	if c != nil && len(c.GroupPolicies) > 0 && !m.warnedBNF {
		if on, err := nft.BridgeNetfilterOn(); err != nil || !on {
			m.warnedBNF = true
			m.log.Warn("network policy cannot see traffic between containers of one bridge: "+
				"load br_netfilter and set net.bridge.bridge-nf-call-iptables=1 and bridge-nf-call-ip6tables=1", "err", err)
		}
	}
	return m.applyLocked()
}

// Release applies the recorded state and applies every change from now on.
func (m *Manager) Release() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.held = false
	return m.applyLocked()
}

func (m *Manager) applyLocked() error {
	if m.held {
		return nil
	}
	cfg := nft.Config{Networks: m.nets, Services: m.svcs, ServiceRanges: m.svcRanges, Policy: m.policy}
	for _, ps := range m.ports {
		cfg.Ports = append(cfg.Ports, ps...)
	}
	return m.dp.Sync(cfg)
}

// changedUDP returns the UDP ports in only one of old and cur.
func changedUDP(old, cur []nft.Port) []nft.Port {
	in := func(ps []nft.Port) map[nft.Port]bool {
		m := map[nft.Port]bool{}
		for _, p := range ps {
			m[p] = true
		}
		return m
	}
	inOld, inCur := in(old), in(cur)
	var out []nft.Port
	for _, p := range old {
		if p.Proto == "udp" && !inCur[p] {
			out = append(out, p)
		}
	}
	for _, p := range cur {
		if p.Proto == "udp" && !inOld[p] {
			out = append(out, p)
		}
	}
	return out
}
