package policy

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	v1 "github.com/knit-net/knit/api/v1"
)

// TestRandomPolicies compiles random policies over the e2e world (with
// random extra labels and named ports) and compares Trace with the
// reference evaluator everywhere, and checks the data plane's invariants,
// determinism and independence from input order.
func TestRandomPolicies(t *testing.T) {
	n := 100
	if testing.Short() {
		n = 30
	}
	probes := []probe{{6, 53}, {6, 80}, {6, 81}, {6, 82}, {6, 8080}, {17, 53}, {17, 80}, {17, 8080}, {132, 81}, {1, 0}}
	for seed := range uint64(n) {
		r := rand.New(rand.NewPCG(seed, 7))
		in := randomWorld(r)
		c := Compile(in)
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			checkInvariants(t, c)
			compareAll(t, c, newRefWorld(&in), probes)
			if again := Compile(in); !reflect.DeepEqual(c, again) {
				t.Errorf("compiling the same input twice differs")
			}
			shuffled := in
			shuffled.Policies = append([]v1.NetworkPolicy(nil), in.Policies...)
			shuffled.Pods = append([]Pod(nil), in.Pods...)
			r.Shuffle(len(shuffled.Policies), func(i, j int) {
				shuffled.Policies[i], shuffled.Policies[j] = shuffled.Policies[j], shuffled.Policies[i]
			})
			r.Shuffle(len(shuffled.Pods), func(i, j int) { shuffled.Pods[i], shuffled.Pods[j] = shuffled.Pods[j], shuffled.Pods[i] })
			if other := Compile(shuffled); !reflect.DeepEqual(c, other) {
				t.Errorf("compiling the same input in another order differs")
			}
			if t.Failed() {
				for _, p := range in.Policies {
					t.Logf("policy %s/%s: %+v", p.Metadata.Namespace, p.Metadata.Name, p.Spec)
				}
			}
		})
	}
}

func pick[T any](r *rand.Rand, xs ...T) T { return xs[r.IntN(len(xs))] }

func randomWorld(r *rand.Rand) Input {
	in := world()
	for i := range in.Namespaces {
		if r.IntN(2) == 0 {
			in.Namespaces[i].Labels["team"] = pick(r, "red", "blue")
		}
	}
	for i := range in.Pods {
		p := &in.Pods[i]
		p.Labels = map[string]string{"pod": p.Name}
		if r.IntN(2) == 0 {
			p.Labels["role"] = pick(r, "db", "web")
		}
		p.Ports = nil
		for range r.IntN(4) {
			p.Ports = append(p.Ports, v1.ContainerPort{
				Name: pick(r, "http", "dns", "metrics"), Port: pick[uint16](r, 53, 80, 81, 8080), Protocol: pick(r, "tcp", "udp", "sctp", "")})
		}
	}
	for i := range 1 + r.IntN(5) {
		in.Policies = append(in.Policies, randomPolicy(r, i))
	}
	return in
}

func randomSelector(r *rand.Rand, key string, values ...string) *v1.LabelSelector {
	switch r.IntN(6) {
	case 0:
		return &v1.LabelSelector{}
	case 1, 2:
		return labels(key, pick(r, values...))
	case 3:
		return exprs(req(key, pick(r, v1.SelectorOpIn, v1.SelectorOpNotIn), pick(r, values...), pick(r, values...)))
	case 4:
		return exprs(req(pick(r, "role", "team"), pick(r, v1.SelectorOpExists, v1.SelectorOpDoesNotExist)))
	}
	return &v1.LabelSelector{MatchLabels: map[string]string{key: pick(r, values...)},
		MatchExpressions: []v1.LabelSelectorRequirement{req("role", v1.SelectorOpNotIn, "db")}}
}

func randomPolicy(r *rand.Rand, i int) v1.NetworkPolicy {
	ns := pick(r, nsNames...)
	p := np(ns, fmt.Sprint("p", i), *randomSelector(r, "pod", podLetters...), nil)
	switch r.IntN(5) {
	case 0:
		p.Spec.PolicyTypes = []string{"Ingress"}
	case 1:
		p.Spec.PolicyTypes = []string{"Egress"}
	case 2:
		p.Spec.PolicyTypes = []string{"Ingress", "Egress"}
	}
	for range r.IntN(4) {
		p.Spec.Ingress = append(p.Spec.Ingress, v1.NetworkPolicyIngressRule{From: randomPeers(r), Ports: randomPorts(r)})
	}
	for range r.IntN(4) {
		p.Spec.Egress = append(p.Spec.Egress, v1.NetworkPolicyEgressRule{To: randomPeers(r), Ports: randomPorts(r)})
	}
	return p
}

func randomPeers(r *rand.Rand) []v1.NetworkPolicyPeer {
	var out []v1.NetworkPolicyPeer
	for range r.IntN(3) {
		switch r.IntN(5) {
		case 0:
			out = append(out, podPeer(randomSelector(r, "pod", podLetters...)))
		case 1:
			out = append(out, nsPeer(randomSelector(r, "ns", nsNames...)))
		case 2:
			out = append(out, bothPeer(randomSelector(r, "ns", nsNames...), randomSelector(r, "pod", podLetters...)))
		default:
			cidr := pick(r, "10.0.0.0/16", "10.0.1.0/24", "10.0.0.0/8", "0.0.0.0/0", "10.0.0.2/31", "fd00::/16", "fd00::1:0/112", "::/0", "10.0.1.77/24")
			var except []string
			for range r.IntN(3) {
				except = append(except, pick(r, "10.0.1.0/24", "10.0.1.2/32", "10.0.0.0/30", "10.0.2.0/25", "fd00::1:1/128", "fd00::2:0/120", "10.0.0.0/8"))
			}
			out = append(out, blockPeer(cidr, except...))
		}
	}
	return out
}

func randomPorts(r *rand.Rand) []v1.NetworkPolicyPort {
	var out []v1.NetworkPolicyPort
	for range r.IntN(3) {
		pp := v1.NetworkPolicyPort{Protocol: pick(r, "", "TCP", "UDP", "SCTP")}
		switch r.IntN(5) {
		case 0: // all ports of the protocol
		case 1:
			pp.Port = &v1.IntOrString{IsStr: true, Str: pick(r, "http", "dns", "metrics", "nope")}
		case 2:
			lo := pick[int32](r, 53, 80, 81)
			hi := lo + pick[int32](r, 0, 1, 2, 8000)
			pp.Port, pp.EndPort = &v1.IntOrString{Int: lo}, &hi
		default:
			pp.Port = &v1.IntOrString{Int: pick[int32](r, 53, 80, 81, 8080)}
		}
		out = append(out, pp)
	}
	return out
}

// TestCompilerIncremental feeds a Compiler a sequence of inputs, each a
// small change of the one before, and checks that every result is what a
// fresh Compile returns.
func TestCompilerIncremental(t *testing.T) {
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 11))
		in := randomWorld(r)
		for i := range 6 {
			in.Policies = append(in.Policies, randomPolicy(r, 10+i))
		}
		var cc Compiler
		for step := range 30 {
			next := in
			next.Policies = slices.Clone(in.Policies)
			switch r.IntN(7) {
			case 0, 1: // change a policy
				i := r.IntN(len(next.Policies))
				p := randomPolicy(r, 0)
				p.Metadata = next.Policies[i].Metadata
				next.Policies[i] = p
			case 2: // add one
				next.Policies = append(next.Policies, randomPolicy(r, 100+step))
			case 3: // remove one
				if len(next.Policies) > 1 {
					next.Policies = slices.Delete(next.Policies, 0, 1)
				}
			case 4: // relabel a pod
				next.Pods = slices.Clone(in.Pods)
				p := &next.Pods[r.IntN(len(next.Pods))]
				p.Labels = map[string]string{"pod": pick(r, podLetters...), "role": pick(r, "db", "web")}
			case 5: // relabel a namespace
				next.Namespaces = slices.Clone(in.Namespaces)
				ns := &next.Namespaces[r.IntN(len(next.Namespaces))]
				ns.Labels = map[string]string{"ns": ns.Name, "team": pick(r, "red", "blue")}
			case 6: // reorder the policies
				r.Shuffle(len(next.Policies), func(i, j int) { next.Policies[i], next.Policies[j] = next.Policies[j], next.Policies[i] })
			}
			in = next
			if got, want := cc.Compile(in), Compile(in); !reflect.DeepEqual(got, want) {
				t.Fatalf("seed %d step %d: the incremental result differs from a fresh one", seed, step)
			}
		}
	}
}
