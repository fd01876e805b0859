package container

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"

	v1 "github.com/knit-net/knit/api/v1"
)

// hostsFile is the container's /etc/hosts: localhost, its own addresses
// under its hostname and name, and --add-host entries.
func hostsFile(ctr *v1.Container, owner *v1.Container) []byte {
	var b bytes.Buffer
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	names := ctr.Hostname
	if ctr.Name != ctr.Hostname {
		names += " " + ctr.Name
	}
	for _, ep := range owner.Endpoints {
		for _, a := range ep.Addresses {
			fmt.Fprintf(&b, "%s\t%s\n", a.Addr(), names)
		}
	}
	for _, h := range ctr.ExtraHosts {
		fmt.Fprintf(&b, "%s\t%s\n", h.IP, h.Name)
	}
	return b.Bytes()
}

// resolvConf is the container's /etc/resolv.conf. A container on bridge
// networks (its own or, for a shared namespace, its owner's) asks knit's
// resolver on its first network's gateway, which answers container names
// and forwards the rest (to --dns servers if given). Host and none
// containers get the host's file, with --dns servers instead of its own if
// given. --dns-search and --dns-option replace the host's search and
// options lines.
func (c *Controller) resolvConf(ctr, owner *v1.Container, nets map[string]*v1.Network) []byte {
	host, _ := os.ReadFile(c.opts.HostResolvConf)
	var servers, search, options []string
	for _, line := range strings.Split(string(host), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "nameserver":
			if a, err := netip.ParseAddr(f[1]); err == nil && (!a.IsLoopback() || ctr.NetworkMode == v1.DriverHost) {
				servers = append(servers, f[1])
			}
		case "search", "domain":
			search = f[1:]
		case "options":
			options = append(options, f[1:]...)
		}
	}
	r, knitResolver := resolverAddr(owner, nets)
	if knitResolver {
		servers = []string{r.String()}
	} else if len(ctr.DNS.Servers) > 0 {
		servers = strs(ctr.DNS.Servers)
	}
	if len(ctr.DNS.Search) > 0 {
		search = ctr.DNS.Search
	}
	if len(ctr.DNS.Options) > 0 {
		options = ctr.DNS.Options
	}
	if knitResolver && c.opts.ClusterDomain != "" {
		search, options = clusterSearch(ctr, c.opts.ClusterDomain, search, options)
	}
	var b bytes.Buffer
	for _, s := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	if len(options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(options, " "))
	}
	return b.Bytes()
}

// resolverAddr is knit's resolver as the container reaches it: the gateway
// of its first bridge network (IPv4 if the network has it).
func resolverAddr(owner *v1.Container, nets map[string]*v1.Network) (netip.Addr, bool) {
	if owner.NetworkMode != v1.DriverBridge || len(owner.Endpoints) == 0 {
		return netip.Addr{}, false
	}
	n := nets[owner.Endpoints[0].Network]
	if n == nil {
		return netip.Addr{}, false
	}
	for _, sub := range n.Subnets {
		if sub.Gateway.IsValid() {
			return sub.Gateway, true
		}
	}
	return netip.Addr{}, false
}

func strs[T fmt.Stringer](xs []T) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = x.String()
	}
	return out
}

// clusterSearch puts Kubernetes' search domains for the container's
// namespace in front of the others, so "backend" and "backend.default" find
// services, with Kubernetes' ndots:5 unless an ndots option was given (it
// makes names with fewer dots try the search list first; knit answers those
// names itself, so the detour costs microseconds, not a round trip).
func clusterSearch(ctr *v1.Container, domain string, search, options []string) ([]string, []string) {
	ns := ctr.Namespace
	if ns == "" {
		ns = v1.DefaultNamespace
	}
	cluster := []string{ns + ".svc." + domain, "svc." + domain, domain}
	out := slices.Clone(cluster)
	for _, s := range search {
		if !slices.Contains(cluster, s) {
			out = append(out, s)
		}
	}
	for _, o := range options {
		if strings.HasPrefix(o, "ndots:") {
			return out, options
		}
	}
	return out, append(slices.Clone(options), "ndots:5")
}
