package policy

import (
	"fmt"
	"net/netip"
	"strings"

	v1 "github.com/knit-net/knit/api/v1"
)

// Trace says whether a new connection from src to dst (protocol number,
// destination port; 0 for protocols without ports) would be allowed, per
// direction and overall, and which rules and policies decided. The verdict
// comes from the group maps and set elements alone, as in the kernel.
func (c *Compiled) Trace(src, dst netip.Addr, proto uint8, port uint16) v1.PolicyVerdict {
	src, dst = src.Unmap().WithZone(""), dst.Unmap().WithZone("")
	if p := c.names.at[src]; p != "" && p == c.names.at[dst] {
		r := v1.DirectionResult{Allowed: true, Reason: fmt.Sprintf("pod %s talking to itself stays in its network namespace: no policy applies", p)}
		return v1.PolicyVerdict{Allowed: true, Egress: r, Ingress: r}
	}
	eg := c.direction(dirEgress, src, dst, proto, port)
	in := c.direction(dirIngress, dst, src, proto, port)
	return v1.PolicyVerdict{Allowed: eg.Allowed && in.Allowed, Egress: eg, Ingress: in}
}

// direction judges one side: self is the pod whose isolation counts (the
// source for egress, the destination for ingress), peer the other end.
func (c *Compiled) direction(dir int, self, peer netip.Addr, proto uint8, port uint16) v1.DirectionResult {
	groups, elems := c.IngressGroup, c.Ingress
	if dir == dirEgress {
		groups, elems = c.EgressGroup, c.Egress
	}
	id, ok := groups[self]
	if !ok {
		r := v1.DirectionResult{Allowed: true}
		if p, isPod := c.names.at[self]; isPod {
			r.Reason = fmt.Sprintf("no policy selects pod %s for %s", p, dirNames[dir])
		} else {
			r.Reason = fmt.Sprintf("%s is not a pod: no policy isolates it", self)
		}
		return r
	}
	g := c.dirs[dir][id]
	r := v1.DirectionResult{Isolated: true, IsolatedBy: c.GroupPolicies[id]}
	for _, e := range elems[g.lo:g.hi] {
		if e.Peer.Contains(peer) && (e.Proto == ProtoAny || e.Proto == proto) && e.PortLo <= port && port <= e.PortHi {
			r.Allowed = true
			break
		}
	}
	for _, ra := range g.rules {
		if ra.allows(peer, proto, port) {
			r.AllowedBy = append(r.AllowedBy, ra.name)
		}
	}
	switch {
	case r.Allowed && len(r.AllowedBy) > 0:
		r.Reason = "allowed by " + strings.Join(r.AllowedBy, ", ")
	case r.Allowed:
		r.Reason = "allowed by the set elements, but no rule explains it (a bug in knit's policy compiler)"
	default:
		verb := "policy %s isolates"
		if len(r.IsolatedBy) > 1 {
			verb = "policies %s isolate"
		}
		towards := "from"
		if dir == dirEgress {
			towards = "to"
		}
		r.Reason = fmt.Sprintf(verb+" %s of pod %s and no rule allows %s %s %s", strings.Join(r.IsolatedBy, ", "),
			dirNames[dir], c.names.at[self], connection(proto, port), towards, c.describe(peer))
	}
	return r
}

// connection names a protocol and port: "tcp/80", or "icmp".
func connection(proto uint8, port uint16) string {
	switch proto {
	case ProtoTCP, ProtoUDP, ProtoSCTP:
		return fmt.Sprintf("%s/%d", ProtoName(proto), port)
	case 1:
		return "icmp"
	case 58:
		return "icmpv6"
	}
	return "protocol " + ProtoName(proto)
}

// describe is an address with its pod, if any: "10.0.0.3 (y/a)".
func (c *Compiled) describe(a netip.Addr) string {
	if p, ok := c.names.at[a]; ok {
		return fmt.Sprintf("%s (%s)", a, p)
	}
	return a.String()
}

// PodAt returns the "ns/name" of the pod with address a ("ns/a+ns/b" for
// an address several pods share).
func (c *Compiled) PodAt(a netip.Addr) (string, bool) {
	p, ok := c.names.at[a.Unmap()]
	return p, ok
}

// PodAddrs returns the addresses of the pod "ns/name", or of the one pod
// called "name" in any namespace.
func (c *Compiled) PodAddrs(name string) ([]netip.Addr, error) {
	if !strings.Contains(name, "/") {
		switch keys := c.names.byName[name]; len(keys) {
		case 0:
			return nil, v1.NotFoundf("pod %q not found: give a container name (namespace/name) or an address", name)
		case 1:
			name = keys[0]
		default:
			return nil, v1.Invalidf("%q names pods in several namespaces (%s): say which, as namespace/name", name, strings.Join(keys, ", "))
		}
	}
	addrs, ok := c.names.addrs[name]
	if !ok {
		return nil, v1.NotFoundf("pod %q not found: give a container name (namespace/name) or an address", name)
	}
	if len(addrs) == 0 {
		return nil, v1.Invalidf("pod %q has no address of its own (host or none networking): policies do not apply to it", name)
	}
	return addrs, nil
}

// TraceRequest answers a v1.PolicyTrace whose ends are pod names or
// addresses. Pods with several addresses use the first pair of one family.
func (c *Compiled) TraceRequest(t v1.PolicyTrace) (v1.PolicyVerdict, error) {
	proto, ok := ParseProto(t.Protocol)
	if !ok {
		return v1.PolicyVerdict{}, v1.Invalidf("protocol %q: use tcp, udp, sctp or a protocol number", t.Protocol)
	}
	from, err := c.endpoint(t.From)
	if err != nil {
		return v1.PolicyVerdict{}, fmt.Errorf("trace from: %w", err)
	}
	to, err := c.endpoint(t.To)
	if err != nil {
		return v1.PolicyVerdict{}, fmt.Errorf("trace to: %w", err)
	}
	for _, s := range from {
		for _, d := range to {
			if s.Is4() == d.Is4() {
				return c.Trace(s, d, proto, t.Port), nil
			}
		}
	}
	return v1.PolicyVerdict{}, v1.Invalidf("%s and %s have no addresses of the same family", t.From, t.To)
}

func (c *Compiled) endpoint(s string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return []netip.Addr{a.Unmap()}, nil
	}
	return c.PodAddrs(s)
}
