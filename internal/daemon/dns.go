package daemon

import (
	"net/netip"
	"os"
	"strings"

	v1 "github.com/knit-net/knit/api/v1"
)

// hostUpstreams reads the name servers of the host's resolv.conf. knitd runs
// in the host's namespace, so a loopback resolver (systemd-resolved's
// 127.0.0.53) is reachable from it and kept.
func hostUpstreams(path string) []netip.AddrPort {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []netip.AddrPort
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			if a, err := netip.ParseAddr(f[1]); err == nil {
				out = append(out, netip.AddrPortFrom(a, 53))
			}
		}
	}
	return out
}

// gatewayAddrs are the addresses knit's DNS server serves on: every bridge
// network's gateways, which each container reaches on its own network,
// internal ones included.
func gatewayAddrs(nets []v1.Network) []netip.Addr {
	var out []netip.Addr
	for _, n := range nets {
		if n.Driver != v1.DriverBridge {
			continue
		}
		for _, s := range n.Subnets {
			if s.Gateway.IsValid() {
				out = append(out, s.Gateway)
			}
		}
	}
	return out
}
