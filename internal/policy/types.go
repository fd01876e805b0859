package policy

import (
	"net/netip"

	v1 "github.com/knit-net/knit/api/v1"
)

// Pod is an endpoint policies select: a container with its namespace
// ("" is default), labels, addresses and named ports.
type Pod struct {
	Name      string
	Namespace string
	Labels    map[string]string
	Addrs     []netip.Addr
	Ports     []v1.ContainerPort
}

// Input is everything a compilation depends on. Namespaces that pods or
// policies use but that are not listed exist with only the
// kubernetes.io/metadata.name label. Pods and policies are identified by
// "namespace/name"; of duplicates the first is used.
type Input struct {
	Policies   []v1.NetworkPolicy
	Namespaces []v1.Namespace
	Pods       []Pod
}

// Compiled is what the data plane installs, plus what Trace needs to
// explain it. Treat it as read-only; it is safe for concurrent readers.
type Compiled struct {
	// IngressGroup and EgressGroup map the address of every isolated pod
	// to its group (≥ 1) for that direction. An address that is absent is
	// not isolated in that direction: everything is allowed.
	IngressGroup map[netip.Addr]uint32
	EgressGroup  map[netip.Addr]uint32
	// Ingress allows a new connection to a pod of Group from an address in
	// Peer; Egress allows one from a pod of Group to an address in Peer.
	// Elements of one group are disjoint (see Allow); both lists are
	// sorted by group, peer, protocol and port.
	Ingress []Allow
	Egress  []Allow
	// GroupPolicies lists, per group of either direction (IDs are unique
	// across both), the "ns/name" keys of the policies that isolate it,
	// sorted: what a drop in that group is charged to.
	GroupPolicies map[uint32][]string

	names *podNames
	dirs  [2]map[uint32]*compiledGroup // ingress, egress
}

// podNames tell which pod an address belongs to and back, for Trace.
type podNames struct {
	at     map[netip.Addr]string   // "ns/name" ("ns/a+ns/b" when shared)
	addrs  map[string][]netip.Addr // "ns/name" → addresses
	byName map[string][]string     // bare name → "ns/name" keys
}

const (
	dirIngress = 0
	dirEgress  = 1
)

var dirNames = [2]string{"ingress", "egress"}

// compiledGroup is what Trace needs of a group.
type compiledGroup struct {
	lo, hi int // its elements: Ingress[lo:hi] or Egress[lo:hi]
	rules  []*ruleAllow
}

// Allow is one set element: group . peer . protocol . port. Proto 0 is any
// protocol and comes with ports 0-65535: the data plane writes it as the
// protocol range 0-255, and looks up port 0 for protocols without ports.
// No two elements of a group overlap: the kernel's pipapo sets reject
// overlapping elements, so the data plane can add them in any order.
type Allow struct {
	Group          uint32
	Peer           netip.Prefix
	Proto          uint8
	PortLo, PortHi uint16
	// Rules are the "ns/name ingress[i]" rules the element was cut from:
	// together they allow all of it, each some of it. Other rules may allow
	// parts of it as well; Trace names all the rules behind one
	// connection.
	Rules []string
}

// Key is the element without its origin: what the kernel holds.
func (a Allow) Key() AllowKey {
	return AllowKey{a.Group, a.Peer, a.Proto, a.PortLo, a.PortHi}
}

// AllowKey is a comparable Allow without Rules, for diffing.
type AllowKey struct {
	Group          uint32
	Peer           netip.Prefix
	Proto          uint8
	PortLo, PortHi uint16
}

// Groups is EgressGroup (egress) or IngressGroup.
func (c *Compiled) Groups(egress bool) map[netip.Addr]uint32 {
	if egress {
		return c.EgressGroup
	}
	return c.IngressGroup
}

// Allows is Egress (egress) or Ingress.
func (c *Compiled) Allows(egress bool) []Allow {
	if egress {
		return c.Egress
	}
	return c.Ingress
}
