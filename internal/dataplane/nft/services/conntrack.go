package services

import (
	"net/netip"

	"github.com/knit-net/knit/internal/dataplane/conntrack"
)

// ServiceBackend is a backend that some frontends of a service port no
// longer use, as GoneUDPBackends finds them and FlushServiceUDP takes them.
type ServiceBackend struct {
	Name     string       // the service port, for logs
	Protocol string       // only "udp" is flushed
	VIPs     []netip.Addr // the VIPs (on Port) that no longer send to Backend
	Port     uint16
	NodePort uint16 // not 0: the node port no longer sends to Backend
	Backend  netip.AddrPort
}

// GoneUDPBackends compares the UDP service ports of two configs (before and
// after a Sync) and returns, per backend, the frontends that sent to it
// before and do not now: because the backend went, the service port went,
// or a VIP or node port went. A backend that moved to another service port
// on the same frontend is not gone.
func GoneUDPBackends(before, after []ServicePort) []ServiceBackend {
	const udp = 17
	now := map[frontKey]map[netip.AddrPort]bool{}
	for _, sp := range after {
		if sp.Protocol != "udp" {
			continue
		}
		fronts := []frontKey{{port: sp.NodePort, proto: udp}}
		for _, v := range sp.VIPs {
			fronts = append(fronts, frontKey{addr: v, port: sp.Port, proto: udp})
		}
		for _, f := range fronts {
			if f.port == 0 {
				continue
			}
			if now[f] == nil {
				now[f] = map[netip.AddrPort]bool{}
			}
			for _, b := range sp.Backends {
				now[f][b] = true
			}
		}
	}
	var out []ServiceBackend
	for _, sp := range before {
		if sp.Protocol != "udp" {
			continue
		}
		for _, b := range sp.Backends {
			g := ServiceBackend{Name: sp.Name, Protocol: sp.Protocol, Port: sp.Port, Backend: b}
			for _, v := range sp.VIPs {
				if v.Is4() == b.Addr().Is4() && !now[frontKey{addr: v, port: sp.Port, proto: udp}][b] {
					g.VIPs = append(g.VIPs, v)
				}
			}
			if sp.NodePort != 0 && !now[frontKey{port: sp.NodePort, proto: udp}][b] {
				g.NodePort = sp.NodePort
			}
			if len(g.VIPs) > 0 || g.NodePort != 0 {
				out = append(out, g)
			}
		}
	}
	return out
}

// FlushServiceUDP deletes the conntrack entries of UDP flows from the
// frontends of each gone backend to it, in the network namespace at
// netnsPath ("" = the calling thread's): call it after a Sync with
// GoneUDPBackends(old, new), so that a client that keeps sending to a VIP
// or node port moves on from a removed backend. Entries of other protocols
// are ignored. See conntrack.FlushServiceUDP.
func FlushServiceUDP(netnsPath string, gone []ServiceBackend) error {
	var bs []conntrack.UDPServiceBackend
	for _, g := range gone {
		if g.Protocol != "udp" {
			continue
		}
		b := conntrack.UDPServiceBackend{NodePort: g.NodePort, Backend: g.Backend}
		for _, v := range g.VIPs {
			b.Frontends = append(b.Frontends, netip.AddrPortFrom(v, g.Port))
		}
		bs = append(bs, b)
	}
	return conntrack.FlushServiceUDP(netnsPath, bs)
}
