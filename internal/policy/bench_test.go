package policy

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"testing"

	v1 "github.com/knit-net/knit/api/v1"
)

// benchInput is a cluster of nPods pods in 20 namespaces (addresses
// handed out in creation order, so a namespace's pods are scattered) and
// nPolicies policies, each selecting 1–5 pods by label and allowing
// ingress on a port and a named port (whose number differs between pods)
// from pods of its namespace by label and from pods of another namespace
// by namespace and label, some also from an ipBlock; every second one also
// limits egress to database pods of the namespaces of one team and to
// DNS. wide makes the second peer every web pod of a quarter of the
// namespaces (about 50 pods) instead of about 5.
func benchInput(nPolicies, nPods int, wide bool) Input {
	const nNS = 20
	var in Input
	for i := range nNS {
		in.Namespaces = append(in.Namespaces, v1.Namespace{Name: fmt.Sprintf("ns%02d", i),
			Labels: map[string]string{"team": fmt.Sprint("t", i%4), "env": []string{"prod", "dev"}[i%2]}})
	}
	for j := range nPods {
		ns, k := j%nNS, j/nNS
		in.Pods = append(in.Pods, Pod{
			Name: fmt.Sprintf("p%04d", j), Namespace: fmt.Sprintf("ns%02d", ns),
			Labels: map[string]string{"app": fmt.Sprint("app", k%10), "tier": []string{"web", "db", "cache"}[k%3]},
			Addrs: []netip.Addr{netip.AddrFrom4([4]byte{10, 1, byte(j >> 8), byte(j)}),
				netip.AddrFrom16([16]byte{0: 0xfd, 11: 1, 14: byte(j >> 8), 15: byte(j)})},
			Ports: []v1.ContainerPort{{Name: "http", Port: 8080, Protocol: "tcp"}, {Name: "metrics", Port: 9090 + uint16(k%3), Protocol: "tcp"}},
		})
	}
	for i := range nPolicies {
		ns, m := i%nNS, i/nNS
		sel := labels("app", fmt.Sprint("app", m%10))
		if m%2 == 1 {
			sel.MatchLabels["tier"] = []string{"web", "db", "cache"}[m%3]
		}
		other := bothPeer(labels(v1.NamespaceNameLabel, fmt.Sprintf("ns%02d", (ns+1)%nNS)), labels("app", fmt.Sprint("app", (m+3)%10)))
		if wide {
			other = bothPeer(labels("team", fmt.Sprint("t", m%4)), labels("tier", "web"))
		}
		p := np(fmt.Sprintf("ns%02d", ns), fmt.Sprintf("pol%04d", i), *sel, func(s *v1.NetworkPolicySpec) {
			s.Ingress = []v1.NetworkPolicyIngressRule{ingressFrom(
				[]v1.NetworkPolicyPort{port("TCP", 8080), namedPort("TCP", "metrics")},
				podPeer(labels("app", fmt.Sprint("app", (m+1)%10))), other)}
			if i%5 == 0 {
				s.Ingress = append(s.Ingress, ingressFrom([]v1.NetworkPolicyPort{port("TCP", 443)},
					blockPeer("192.168.0.0/16", "192.168.1.0/24")))
			}
			if i%2 == 0 {
				s.Egress = []v1.NetworkPolicyEgressRule{
					egressTo([]v1.NetworkPolicyPort{port("TCP", 5432)}, bothPeer(labels("team", fmt.Sprint("t", m%4)), labels("app", fmt.Sprint("app", (m+2)%10), "tier", "db"))),
					egressTo([]v1.NetworkPolicyPort{port("UDP", 53), port("TCP", 53)}, blockPeer("10.96.0.10/32")),
				}
			}
		})
		in.Policies = append(in.Policies, p)
	}
	return in
}

// BenchmarkCompile1000: 1,000 policies selecting 1,000 pods.
func BenchmarkCompile1000(b *testing.B) { benchCompile(b, benchInput(1000, 1000, false)) }

// BenchmarkCompile1000Wide: the same with peers of about 50 pods.
func BenchmarkCompile1000Wide(b *testing.B) { benchCompile(b, benchInput(1000, 1000, true)) }

func benchCompile(b *testing.B, in Input) {
	var c *Compiled
	for b.Loop() {
		c = Compile(in)
	}
	b.ReportMetric(float64(len(c.Ingress)+len(c.Egress)), "elements")
	b.ReportMetric(float64(len(c.GroupPolicies)), "groups")
}

func BenchmarkTrace(b *testing.B) {
	in := benchInput(1000, 1000, false)
	c := Compile(in)
	src, dst := in.Pods[21].Addrs[0], in.Pods[0].Addrs[0]
	for b.Loop() {
		c.Trace(src, dst, ProtoTCP, 8080)
	}
}

// TestRecompileStable: changing one policy of 1,000 leaves every group ID
// alone (IDs derive from the policies' names), and changes only the
// elements of the groups that policy isolates; adding one changes only
// the groups of the pods it selects.
func TestRecompileStable(t *testing.T) {
	in := benchInput(1000, 1000, false)
	before := Compile(in)
	if len(before.GroupPolicies) < 100 {
		t.Fatalf("only %d groups: the benchmark input is too uniform", len(before.GroupPolicies))
	}

	changed := in
	changed.Policies = append([]v1.NetworkPolicy(nil), in.Policies...)
	pol := &changed.Policies[500]
	pol.Spec.Ingress = []v1.NetworkPolicyIngressRule{ingressFrom([]v1.NetworkPolicyPort{port("TCP", 8443), namedPort("TCP", "metrics")})}
	after := Compile(changed)
	if !maps.Equal(before.IngressGroup, after.IngressGroup) || !maps.Equal(before.EgressGroup, after.EgressGroup) {
		t.Errorf("group IDs changed with a policy's rules")
	}
	touched := map[uint32]bool{}
	for g, pols := range after.GroupPolicies {
		for _, p := range pols {
			if p == pol.Key() {
				touched[g] = true
			}
		}
	}
	added, removed := diffElements(before.Ingress, after.Ingress)
	for _, e := range append(added, removed...) {
		if !touched[e.Group] {
			t.Errorf("element of an untouched group changed: %+v", e)
		}
	}
	if len(added)+len(removed) == 0 {
		t.Errorf("changing a policy changed no element")
	}

	grown := in
	grown.Policies = append(append([]v1.NetworkPolicy(nil), in.Policies...), np("ns03", "extra", *labels("app", "app1", "tier", "db"), nil))
	after = Compile(grown)
	moved := 0
	for a, g := range before.IngressGroup {
		if after.IngressGroup[a] != g {
			moved++
		}
	}
	if moved == 0 || moved > 4 {
		t.Errorf("adding a policy selecting a few pods moved %d addresses to other groups", moved)
	}
	if !maps.Equal(before.EgressGroup, after.EgressGroup) {
		t.Errorf("an ingress-only policy changed egress groups")
	}
}

func diffElements(a, b []Allow) (added, removed []Allow) {
	in := func(es []Allow) map[AllowKey]Allow {
		m := map[AllowKey]Allow{}
		for _, e := range es {
			m[e.Key()] = e
		}
		return m
	}
	ma, mb := in(a), in(b)
	for k, e := range mb {
		if _, ok := ma[k]; !ok {
			added = append(added, e)
		}
	}
	for k, e := range ma {
		if _, ok := mb[k]; !ok {
			removed = append(removed, e)
		}
	}
	return added, removed
}

// BenchmarkRecompileOneChanged: a Compiler recompiling 1,000 policies
// after one of them changed.
func BenchmarkRecompileOneChanged(b *testing.B) {
	in := benchInput(1000, 1000, false)
	var cc Compiler
	cc.Compile(in)
	versions := [2][]v1.NetworkPolicyIngressRule{in.Policies[500].Spec.Ingress,
		{ingressFrom([]v1.NetworkPolicyPort{port("TCP", 8443), namedPort("TCP", "metrics")}, podPeer(everything))}}
	i := 0
	for b.Loop() {
		i++
		next := in
		next.Policies = slices.Clone(in.Policies)
		next.Policies[500].Spec.Ingress = versions[i%2]
		cc.Compile(next)
	}
}
