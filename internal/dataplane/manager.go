// Package dataplane is knit's data-plane layer: knit's nftables table with
// its features (Table, Manager), the host's local routes knit owns
// (LocalRoutes), pruning of knit's links nothing wants (PruneLinks) and
// the API's read-only look at the host (HostView). Controllers hand it
// desired state; it never reads the store.
//
// The Manager holds each feature's desired state and syncs the table on
// every change; a feature sends only the elements that changed (one
// container's ports, one service's backends). Until Release is called it
// only records: at startup knitd adopts every container before the first
// sync, so a restart never programs a table with some containers' ports
// missing (which would cut their connections); the previous daemon's
// table stays in force meanwhile.
package dataplane

import (
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"sync"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/dataplane/nft"
	"github.com/knit-net/knit/internal/dataplane/nft/netpol"
	"github.com/knit-net/knit/internal/dataplane/nft/networks"
	"github.com/knit-net/knit/internal/dataplane/nft/ports"
	"github.com/knit-net/knit/internal/dataplane/nft/services"
	"github.com/knit-net/knit/internal/policy"
)

// Manager is safe for concurrent use.
type Manager struct {
	t   *Table
	log *slog.Logger

	mu        sync.Mutex
	held      bool
	ports     map[string][]ports.Port // container ID → its published ports
	svcs      []services.ServicePort
	policy    *policy.Compiled
	warnedBNF bool // warned that br_netfilter is off
}

// NewManager opens knit's table in the namespace of opts (the calling
// thread's by default) and returns a Manager that holds changes until
// Release.
func NewManager(opts nft.Options) (*Manager, error) {
	t, err := NewTable(opts)
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{t: t, log: log, held: true, ports: map[string][]ports.Port{}}, nil
}

// Close releases the netlink socket; the table stays in the kernel.
func (m *Manager) Close() error { return m.t.Close() }

// SetNetworks replaces the networks and applies.
func (m *Manager) SetNetworks(nets []v1.Network) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.t.Networks.Set(networks.FromNetworks(nets)); err != nil {
		return err
	}
	return m.applyLocked()
}

// SetPorts replaces one container's published ports (none removes them) and
// applies; UDP flows toward ports that went away are flushed from conntrack.
func (m *Manager) SetPorts(id string, ps []ports.Port) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.ports[id]
	if slices.Equal(old, ps) {
		return nil
	}
	if err := m.t.Ports.Set(id, ps); err != nil {
		return err
	}
	if len(ps) == 0 {
		delete(m.ports, id)
	} else {
		m.ports[id] = ps
	}
	if err := m.applyLocked(); err != nil {
		return err
	}
	// UDP has no handshake: a flow to a port that went away keeps its old
	// conntrack entry (and target), and one sent before a port was published
	// keeps going to the host. Both are flushed.
	if changed := changedUDP(old, ps); len(changed) > 0 && !m.held {
		if err := ports.FlushUDP("", changed); err != nil {
			m.log.Warn("flush conntrack of changed UDP ports", "err", err)
		}
	}
	return nil
}

// SetServices replaces every service port and the ClusterIP ranges and
// applies; UDP flows toward backends that went away are flushed from
// conntrack, so they move to a remaining backend.
func (m *Manager) SetServices(svcs []services.ServicePort, ranges []netip.Prefix) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.svcs
	if err := m.t.Services.Set(svcs, ranges); err != nil {
		return err
	}
	m.svcs = svcs
	if err := m.applyLocked(); err != nil {
		return err
	}
	if gone := services.GoneUDPBackends(old, svcs); len(gone) > 0 && !m.held {
		if err := services.FlushServiceUDP("", gone); err != nil {
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
		if on, err := netpol.BridgeNetfilterOn(); err != nil || !on {
			m.warnedBNF = true
			m.log.Warn("network policy cannot see traffic between containers of one bridge: "+
				"load br_netfilter and set net.bridge.bridge-nf-call-iptables=1 and bridge-nf-call-ip6tables=1", "err", err)
		}
	}
	m.t.Policy.Set(c)
	return m.applyLocked()
}

// PolicyDropCounts returns the packets network policy denied per group
// (see netpol.Feature.DropCounts).
func (m *Manager) PolicyDropCounts() (map[uint32]uint64, error) {
	return m.t.Policy.DropCounts(m.t.Table)
}

// ReadPolicyDrops calls fn for every packet network policy denies (see
// netpol.NewDropReader) until the returned reader is closed.
func (m *Manager) ReadPolicyDrops(fn func(netpol.Drop)) (io.Closer, error) {
	return netpol.ReadDrops(m.t.Table, netpol.DropReaderOptions{Logger: m.log}, fn)
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
	return m.t.Sync()
}

// changedUDP returns the UDP ports in only one of old and cur.
func changedUDP(old, cur []ports.Port) []ports.Port {
	in := func(ps []ports.Port) map[ports.Port]bool {
		m := map[ports.Port]bool{}
		for _, p := range ps {
			m[p] = true
		}
		return m
	}
	inOld, inCur := in(old), in(cur)
	var out []ports.Port
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
