package container

import (
	"net/netip"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/dataplane/nft/ports"
)

// portsFor expands the container's published ports into one dataplane entry
// per host port and family. The target is the container's first address of
// the family on a network that is not internal; a mapping bound to a host
// address uses that address's family only.
func portsFor(ctr *v1.Container, nets map[string]*v1.Network) []ports.Port {
	if len(ctr.Ports) == 0 {
		return nil
	}
	target := map[bool]netip.Addr{}
	for _, ep := range ctr.Endpoints {
		if n := nets[ep.Network]; n == nil || n.Internal {
			continue
		}
		for _, a := range ep.Addresses {
			if _, ok := target[a.Addr().Is6()]; !ok {
				target[a.Addr().Is6()] = a.Addr()
			}
		}
	}
	var out []ports.Port
	for _, p := range ctr.Ports {
		for i := range p.Count() {
			for _, v6 := range []bool{false, true} {
				dst, ok := target[v6]
				if !ok || (p.HostIP.IsValid() && p.HostIP.Is6() != v6) {
					continue
				}
				out = append(out, ports.Port{
					Proto: p.Protocol, HostIP: p.HostIP, HostPort: p.HostPort + uint16(i),
					ContainerIP: dst, ContainerPort: p.ContainerPort + uint16(i),
				})
			}
		}
	}
	return out
}
