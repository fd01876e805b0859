package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	v1 "github.com/knit-net/knit/api/v1"
)

// The netpol e2e world: namespaces x, y, z (labels ns=x …), pods a, b, c in
// each (labels pod=a …; the c pods also role=db), serving 80 and 81 on TCP,
// UDP and SCTP under upstream's port names, plus "http": 80/tcp on a, 81/tcp
// on b, none on c.
var (
	nsNames    = []string{"x", "y", "z"}
	podLetters = []string{"a", "b", "c"}
)

func addr4(ns, pod int) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, byte(ns), byte(pod + 1)}) }

func addr6(ns, pod int) netip.Addr {
	return netip.AddrFrom16([16]byte{0: 0xfd, 13: byte(ns), 15: byte(pod + 1)})
}

func world() Input {
	var in Input
	for ni, ns := range nsNames {
		in.Namespaces = append(in.Namespaces, v1.Namespace{Name: ns, Labels: map[string]string{"ns": ns}})
		for pi, p := range podLetters {
			pod := Pod{Name: p, Namespace: ns, Labels: map[string]string{"pod": p},
				Addrs: []netip.Addr{addr4(ni, pi), addr6(ni, pi)}}
			if p == "c" {
				pod.Labels["role"] = "db"
			}
			for _, port := range []uint16{80, 81} {
				for _, proto := range []string{"tcp", "udp", "sctp"} {
					pod.Ports = append(pod.Ports, v1.ContainerPort{Name: fmt.Sprintf("serve-%d-%s", port, proto), Port: port, Protocol: proto})
				}
			}
			switch p {
			case "a":
				pod.Ports = append(pod.Ports, v1.ContainerPort{Name: "http", Port: 80, Protocol: "tcp"})
			case "b":
				pod.Ports = append(pod.Ports, v1.ContainerPort{Name: "http", Port: 81, Protocol: "tcp"})
			}
			in.Pods = append(in.Pods, pod)
		}
	}
	return in
}

// Policy builders.

func np(ns, name string, podSel v1.LabelSelector, spec func(*v1.NetworkPolicySpec)) v1.NetworkPolicy {
	p := v1.NetworkPolicy{APIVersion: v1.NetworkingAPIVersion, Kind: v1.KindNetworkPolicy,
		Metadata: v1.ObjectMeta{Namespace: ns, Name: name}, Spec: v1.NetworkPolicySpec{PodSelector: podSel}}
	if spec != nil {
		spec(&p.Spec)
	}
	return p
}

func labels(kv ...string) *v1.LabelSelector {
	s := &v1.LabelSelector{MatchLabels: map[string]string{}}
	for i := 0; i < len(kv); i += 2 {
		s.MatchLabels[kv[i]] = kv[i+1]
	}
	return s
}

func exprs(rs ...v1.LabelSelectorRequirement) *v1.LabelSelector {
	return &v1.LabelSelector{MatchExpressions: rs}
}

func req(key, op string, vals ...string) v1.LabelSelectorRequirement {
	return v1.LabelSelectorRequirement{Key: key, Operator: op, Values: vals}
}

func podPeer(s *v1.LabelSelector) v1.NetworkPolicyPeer { return v1.NetworkPolicyPeer{PodSelector: s} }
func nsPeer(s *v1.LabelSelector) v1.NetworkPolicyPeer {
	return v1.NetworkPolicyPeer{NamespaceSelector: s}
}
func bothPeer(ns, pod *v1.LabelSelector) v1.NetworkPolicyPeer {
	return v1.NetworkPolicyPeer{NamespaceSelector: ns, PodSelector: pod}
}
func blockPeer(cidr string, except ...string) v1.NetworkPolicyPeer {
	return v1.NetworkPolicyPeer{IPBlock: &v1.IPBlock{CIDR: cidr, Except: except}}
}

func port(proto string, n int32) v1.NetworkPolicyPort {
	return v1.NetworkPolicyPort{Protocol: proto, Port: &v1.IntOrString{Int: n}}
}
func portRange(proto string, lo, hi int32) v1.NetworkPolicyPort {
	return v1.NetworkPolicyPort{Protocol: proto, Port: &v1.IntOrString{Int: lo}, EndPort: &hi}
}
func namedPort(proto, name string) v1.NetworkPolicyPort {
	return v1.NetworkPolicyPort{Protocol: proto, Port: &v1.IntOrString{IsStr: true, Str: name}}
}

func ingressFrom(ports []v1.NetworkPolicyPort, peers ...v1.NetworkPolicyPeer) v1.NetworkPolicyIngressRule {
	return v1.NetworkPolicyIngressRule{From: peers, Ports: ports}
}
func egressTo(ports []v1.NetworkPolicyPort, peers ...v1.NetworkPolicyPeer) v1.NetworkPolicyEgressRule {
	return v1.NetworkPolicyEgressRule{To: peers, Ports: ports}
}

// probe is a protocol and port: "tcp/80", "icmp".
type probe struct {
	proto uint8
	port  uint16
}

func parseProbe(s string) probe {
	if s == "icmp" {
		return probe{1, 0}
	}
	name, n, _ := strings.Cut(s, "/")
	p, _ := ParseProto(name)
	var port int
	fmt.Sscan(n, &port)
	return probe{p, uint16(port)}
}

func (p probe) String() string { return connection(p.proto, p.port) }

var allProbes = []probe{{6, 80}, {6, 81}, {6, 82}, {6, 53}, {17, 80}, {17, 81}, {17, 53}, {132, 80}, {132, 81}, {1, 0}, {6, 8080}}

// Addresses that belong to no pod, inside and outside the blocks tests use.
var externals = []netip.Addr{
	netip.MustParseAddr("10.0.1.200"), netip.MustParseAddr("10.0.3.7"), netip.MustParseAddr("192.168.0.1"),
	netip.MustParseAddr("fd00::1:c8"), netip.MustParseAddr("2001:db8::1"),
}

// endpoints are every pod address plus the externals.
func endpoints(in *Input) []netip.Addr {
	var out []netip.Addr
	for _, p := range in.Pods {
		out = append(out, p.Addrs...)
	}
	return append(out, externals...)
}

// compareAll checks Trace against the reference evaluator for every pair
// of endpoints of one family and every probe: verdicts, isolation, and the
// exact rules and policies named.
func compareAll(t *testing.T, c *Compiled, w *refWorld, probes []probe) {
	t.Helper()
	eps := endpoints(w.in)
	bad := 0
	for _, src := range eps {
		for _, dst := range eps {
			if src.Is4() != dst.Is4() {
				continue
			}
			for _, pr := range probes {
				got := c.Trace(src, dst, pr.proto, pr.port)
				ok, eg, in := w.verdict(src, dst, pr.proto, pr.port)
				if msg := diffVerdict(got, ok, eg, in); msg != "" {
					if bad++; bad <= 10 {
						t.Errorf("%s → %s %s: %s", w.name(src), w.name(dst), pr, msg)
					}
				}
			}
		}
	}
	if bad > 10 {
		t.Errorf("… %d mismatches in all", bad)
	}
}

func (w *refWorld) name(a netip.Addr) string {
	if p := w.podAt(a); p != nil {
		return fmt.Sprintf("%s/%s(%s)", p.Namespace, p.Name, a)
	}
	return a.String()
}

func diffVerdict(got v1.PolicyVerdict, ok bool, eg, in refDir) string {
	var out []string
	if got.Allowed != ok {
		out = append(out, fmt.Sprintf("allowed %v, want %v", got.Allowed, ok))
	}
	for _, d := range []struct {
		name string
		got  v1.DirectionResult
		want refDir
	}{{"egress", got.Egress, eg}, {"ingress", got.Ingress, in}} {
		g, w := d.got, d.want
		if g.Allowed != w.allowed || g.Isolated != w.isolated ||
			!sameSet(g.AllowedBy, w.allowedBy) || !sameSet(g.IsolatedBy, w.isolatedBy) {
			out = append(out, fmt.Sprintf("%s: got allowed=%v isolated=%v by %v isolatedBy %v (%s); want allowed=%v isolated=%v by %v isolatedBy %v",
				d.name, g.Allowed, g.Isolated, g.AllowedBy, g.IsolatedBy, g.Reason, w.allowed, w.isolated, w.allowedBy, w.isolatedBy))
		}
	}
	return strings.Join(out, "; ")
}

func sameSet(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}

// checkInvariants checks what the data plane relies on: disjoint, masked
// elements per group, "any protocol" only with all ports, every element
// with an origin, every group with its policies, every address's group
// known.
func checkInvariants(t *testing.T, c *Compiled) {
	t.Helper()
	for dir, elems := range [][]Allow{c.Ingress, c.Egress} {
		if !slices.IsSortedFunc(elems, compareAllow) {
			t.Errorf("%s elements are not sorted", dirNames[dir])
		}
		for i, e := range elems {
			if e.Peer != e.Peer.Masked() || e.PortLo > e.PortHi || len(e.Rules) == 0 {
				t.Errorf("bad element %+v", e)
			}
			if e.Proto == ProtoAny && (e.PortLo != 0 || e.PortHi != 65535) {
				t.Errorf("any-protocol element with ports: %+v", e)
			}
			if _, ok := c.GroupPolicies[e.Group]; !ok {
				t.Errorf("element of unknown group: %+v", e)
			}
			for _, f := range elems[i+1:] {
				if f.Group != e.Group {
					break
				}
				if overlap(e, f) {
					t.Errorf("%s elements overlap: %+v and %+v", dirNames[dir], e, f)
				}
			}
		}
	}
	for _, m := range []map[netip.Addr]uint32{c.IngressGroup, c.EgressGroup} {
		for a, g := range m {
			if g == 0 || len(c.GroupPolicies[g]) == 0 {
				t.Errorf("address %s in group %d without policies", a, g)
			}
		}
	}
}

func overlap(a, b Allow) bool {
	if !a.Peer.Overlaps(b.Peer) {
		return false
	}
	if a.Proto != ProtoAny && b.Proto != ProtoAny && a.Proto != b.Proto {
		return false
	}
	return a.PortLo <= b.PortHi && b.PortLo <= a.PortHi
}
