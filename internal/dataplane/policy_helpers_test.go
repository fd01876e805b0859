package dataplane

import (
	"fmt"
	"net/netip"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/policy"
)

// synthPolicies is a cluster of nPods dual-stack pods in 20 namespaces
// (addresses 10.1.x.y and fd00:0:0:1::x:y in creation order, so a
// namespace's pods are scattered) and nPolicies policies, each selecting
// one to five pods by label, allowing ingress on a port and a named port
// from pods of its namespace and of the next one by label, some also from
// an ipBlock; every second one also limits egress to a team's database
// pods and to DNS. The shape of internal/policy's benchmark input; the
// bench/policy program uses the same.
func synthPolicies(nPolicies, nPods int) policy.Input {
	const nNS = 20
	var in policy.Input
	for i := range nNS {
		in.Namespaces = append(in.Namespaces, v1.Namespace{Name: fmt.Sprintf("ns%02d", i),
			Labels: map[string]string{"team": fmt.Sprint("t", i%4)}})
	}
	for j := range nPods {
		ns, k := j%nNS, j/nNS
		in.Pods = append(in.Pods, policy.Pod{
			Name: fmt.Sprintf("p%04d", j), Namespace: fmt.Sprintf("ns%02d", ns),
			Labels: map[string]string{"app": fmt.Sprint("app", k%10), "tier": []string{"web", "db", "cache"}[k%3]},
			Addrs: []netip.Addr{netip.AddrFrom4([4]byte{10, 1, byte(j >> 8), byte(j)}),
				netip.AddrFrom16([16]byte{0: 0xfd, 7: 1, 14: byte(j >> 8), 15: byte(j)})},
			Ports: []v1.ContainerPort{{Name: "http", Port: 8080, Protocol: "tcp"}, {Name: "metrics", Port: 9090 + uint16(k%3), Protocol: "tcp"}},
		})
	}
	for i := range nPolicies {
		in.Policies = append(in.Policies, synthPolicy(i, nNS, 8080))
	}
	return in
}

// synthPolicy is policy i of synthPolicies; port is its first ingress
// port (changing it changes the policy's elements only).
func synthPolicy(i, nNS int, port int32) v1.NetworkPolicy {
	ns, m := i%nNS, i/nNS
	podSel := sel("app", fmt.Sprint("app", m%10))
	if m%2 == 1 {
		podSel.MatchLabels["tier"] = []string{"web", "db", "cache"}[m%3]
	}
	p := v1.NetworkPolicy{APIVersion: v1.NetworkingAPIVersion, Kind: v1.KindNetworkPolicy,
		Metadata: v1.ObjectMeta{Namespace: fmt.Sprintf("ns%02d", ns), Name: fmt.Sprintf("pol%04d", i)},
		Spec:     v1.NetworkPolicySpec{PodSelector: *podSel}}
	p.Spec.Ingress = []v1.NetworkPolicyIngressRule{{
		Ports: []v1.NetworkPolicyPort{tcpPort(port), {Protocol: "TCP", Port: &v1.IntOrString{IsStr: true, Str: "metrics"}}},
		From: []v1.NetworkPolicyPeer{
			{PodSelector: sel("app", fmt.Sprint("app", (m+1)%10))},
			{NamespaceSelector: sel(v1.NamespaceNameLabel, fmt.Sprintf("ns%02d", (ns+1)%nNS)), PodSelector: sel("app", fmt.Sprint("app", (m+3)%10))},
		},
	}}
	if i%5 == 0 {
		p.Spec.Ingress = append(p.Spec.Ingress, v1.NetworkPolicyIngressRule{Ports: []v1.NetworkPolicyPort{tcpPort(443)},
			From: []v1.NetworkPolicyPeer{{IPBlock: &v1.IPBlock{CIDR: "192.168.0.0/16", Except: []string{"192.168.1.0/24"}}}}})
	}
	if i%2 == 0 {
		p.Spec.Egress = []v1.NetworkPolicyEgressRule{
			{Ports: []v1.NetworkPolicyPort{tcpPort(5432)}, To: []v1.NetworkPolicyPeer{{
				NamespaceSelector: sel("team", fmt.Sprint("t", m%4)), PodSelector: sel("app", fmt.Sprint("app", (m+2)%10), "tier", "db")}}},
			{Ports: []v1.NetworkPolicyPort{{Protocol: "UDP", Port: &v1.IntOrString{Int: 53}}, tcpPort(53)},
				To: []v1.NetworkPolicyPeer{{IPBlock: &v1.IPBlock{CIDR: "10.96.0.10/32"}}}},
		}
	}
	return p
}

func sel(kv ...string) *v1.LabelSelector {
	s := &v1.LabelSelector{MatchLabels: map[string]string{}}
	for i := 0; i < len(kv); i += 2 {
		s.MatchLabels[kv[i]] = kv[i+1]
	}
	return s
}

func tcpPort(n int32) v1.NetworkPolicyPort {
	return v1.NetworkPolicyPort{Protocol: "TCP", Port: &v1.IntOrString{Int: n}}
}
