package main

import (
	"fmt"
	"net/netip"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/policy"
)

const nNamespaces = 20

// podAddrs are pod j's addresses: 10.1.0.10 and fd00:1::a onwards, in
// creation order (so a namespace's pods are scattered).
func podAddrs(j int) []netip.Addr {
	n := j + 10
	return []netip.Addr{netip.AddrFrom4([4]byte{10, 1, byte(n >> 8), byte(n)}),
		netip.AddrFrom16([16]byte{0: 0xfd, 1: 0, 3: 1, 14: byte(n >> 8), 15: byte(n)})}
}

// Pods 0 and 1 are the client and the server of the traffic measurements.
var (
	clientAddr = podAddrs(0)[0]
	serverAddr = podAddrs(1)[0]
)

// workload is nPods dual-stack pods in 20 namespaces and nPolicies
// policies (the shape of internal/policy's benchmark input): each selects
// one to five pods by label, allows ingress on a port and a named port
// (whose number differs between pods) from pods of its namespace and of
// the next one by label, every fifth also from an ipBlock with an except;
// every second also limits egress to a team's database pods and to DNS.
// Policies 0 and 1 isolate the client and the server of the traffic
// measurements instead: the server takes TCP 5201 and 8080 from the
// client, the client may send to the server only, so that every new
// connection between them is looked up in both directions.
func workload(nPolicies, nPods int) policy.Input {
	var in policy.Input
	for i := range nNamespaces {
		in.Namespaces = append(in.Namespaces, v1.Namespace{Name: nsName(i),
			Labels: map[string]string{"team": fmt.Sprint("t", i%4)}})
	}
	for j := range nPods {
		ns, k := j%nNamespaces, j/nNamespaces
		p := policy.Pod{
			Name: fmt.Sprintf("p%04d", j), Namespace: nsName(ns),
			Labels: map[string]string{"app": fmt.Sprint("app", k%10), "tier": []string{"web", "db", "cache"}[k%3]},
			Addrs:  podAddrs(j),
			Ports:  []v1.ContainerPort{{Name: "http", Port: 8080, Protocol: "tcp"}, {Name: "metrics", Port: 9090 + uint16(k%3), Protocol: "tcp"}},
		}
		if j < 2 {
			p.Namespace = nsName(0)
			p.Labels["role"] = []string{"bench-client", "bench-server"}[j]
		}
		in.Pods = append(in.Pods, p)
	}
	for i := range nPolicies {
		in.Policies = append(in.Policies, benchPolicy(i, 8080))
	}
	return in
}

func nsName(i int) string { return fmt.Sprintf("ns%02d", i) }

// benchPolicy is policy i of the workload, its first ingress port port
// (for i ≥ 2: changing it changes the policy's elements only).
func benchPolicy(i int, port int32) v1.NetworkPolicy {
	p := v1.NetworkPolicy{APIVersion: v1.NetworkingAPIVersion, Kind: v1.KindNetworkPolicy,
		Metadata: v1.ObjectMeta{Namespace: nsName(i % nNamespaces), Name: fmt.Sprintf("pol%04d", i)}}
	bench := []v1.NetworkPolicyPort{tcp(5201), tcp(8080)}
	switch i {
	case 0:
		p.Metadata.Namespace = nsName(0)
		p.Spec.PodSelector = *sel("role", "bench-server")
		p.Spec.Ingress = []v1.NetworkPolicyIngressRule{{Ports: bench, From: []v1.NetworkPolicyPeer{{PodSelector: sel("role", "bench-client")}}}}
		return p
	case 1:
		p.Metadata.Namespace = nsName(0)
		p.Spec.PodSelector = *sel("role", "bench-client")
		p.Spec.PolicyTypes = []string{v1.PolicyTypeEgress}
		p.Spec.Egress = []v1.NetworkPolicyEgressRule{{Ports: bench, To: []v1.NetworkPolicyPeer{{PodSelector: sel("role", "bench-server")}}}}
		return p
	}
	ns, m := i%nNamespaces, i/nNamespaces
	p.Spec.PodSelector = *sel("app", fmt.Sprint("app", m%10))
	if m%2 == 1 {
		p.Spec.PodSelector.MatchLabels["tier"] = []string{"web", "db", "cache"}[m%3]
	}
	p.Spec.Ingress = []v1.NetworkPolicyIngressRule{{
		Ports: []v1.NetworkPolicyPort{tcp(port), {Protocol: "TCP", Port: &v1.IntOrString{IsStr: true, Str: "metrics"}}},
		From: []v1.NetworkPolicyPeer{
			{PodSelector: sel("app", fmt.Sprint("app", (m+1)%10))},
			{NamespaceSelector: sel(v1.NamespaceNameLabel, nsName((ns+1)%nNamespaces)), PodSelector: sel("app", fmt.Sprint("app", (m+3)%10))},
		},
	}}
	if i%5 == 0 {
		p.Spec.Ingress = append(p.Spec.Ingress, v1.NetworkPolicyIngressRule{Ports: []v1.NetworkPolicyPort{tcp(443)},
			From: []v1.NetworkPolicyPeer{{IPBlock: &v1.IPBlock{CIDR: "192.168.0.0/16", Except: []string{"192.168.1.0/24"}}}}})
	}
	if i%2 == 0 {
		p.Spec.Egress = []v1.NetworkPolicyEgressRule{
			{Ports: []v1.NetworkPolicyPort{tcp(5432)}, To: []v1.NetworkPolicyPeer{{
				NamespaceSelector: sel("team", fmt.Sprint("t", m%4)), PodSelector: sel("app", fmt.Sprint("app", (m+2)%10), "tier", "db")}}},
			{Ports: []v1.NetworkPolicyPort{{Protocol: "UDP", Port: &v1.IntOrString{Int: 53}}, tcp(53)},
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

func tcp(n int32) v1.NetworkPolicyPort {
	return v1.NetworkPolicyPort{Protocol: "TCP", Port: &v1.IntOrString{Int: n}}
}
