package policy

import (
	"cmp"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	v1 "github.com/knit-net/knit/api/v1"
)

// ruleAllow is what one rule allows for one group, exactly: a (peer,
// protocol, port) is allowed iff one of the parts holds it. Trace uses it to
// name the rules behind a verdict; the kernel elements are built from it.
type ruleAllow struct {
	name  string   // "ns/name ingress[0]"
	self  []string // {name}, shared by the elements it alone makes
	parts []part
}

func newRuleAllow(name string, parts ...part) *ruleAllow {
	return &ruleAllow{name: name, self: []string{name}, parts: parts}
}

// part is a set of peers (sorted, disjoint prefixes) times a port set.
type part struct {
	peers []netip.Prefix
	ports portSet
}

func (r *ruleAllow) allows(peer netip.Addr, proto uint8, port uint16) bool {
	for i := range r.parts {
		if p := &r.parts[i]; p.ports.has(proto, port) && containsAddr(p.peers, peer) {
			return true
		}
	}
	return false
}

// namedRef is a container port name a rule uses, with its protocol index.
type namedRef struct {
	name  string
	proto int
}

func compareRef(a, b namedRef) int {
	if c := cmp.Compare(a.name, b.name); c != 0 {
		return c
	}
	return a.proto - b.proto
}

// rulePorts is a rule's ports: the numeric ones as a set, and the names
// still to be resolved against a destination pod.
type rulePorts struct {
	numeric portSet
	named   []namedRef
}

func compilePorts(ps []v1.NetworkPolicyPort) rulePorts {
	if len(ps) == 0 {
		return rulePorts{numeric: portSet{all: true}}
	}
	var out rulePorts
	for _, p := range ps {
		i, ok := protoIndex(p.Protocol)
		if !ok {
			continue
		}
		switch {
		case p.Port == nil:
			if p.EndPort == nil {
				out.numeric.p[i] = append(out.numeric.p[i], fullSpan)
			}
		case p.Port.IsStr:
			if p.EndPort == nil && p.Port.Str != "" {
				out.named = append(out.named, namedRef{p.Port.Str, i})
			}
		default:
			lo, hi := p.Port.Int, p.Port.Int
			if p.EndPort != nil {
				hi = *p.EndPort
			}
			if lo >= 1 && hi >= lo && hi <= 65535 {
				out.numeric.p[i] = append(out.numeric.p[i], span{uint16(lo), uint16(hi)})
			}
		}
	}
	for i := range out.numeric.p {
		out.numeric.p[i] = normSpans(out.numeric.p[i])
	}
	slices.SortFunc(out.named, compareRef)
	out.named = slices.Compact(out.named)
	return out
}

// resolve returns the ports the names stand for on a pod with these
// container ports: same name, same protocol.
func resolve(named []namedRef, ports []v1.ContainerPort) portSet {
	var out portSet
	for _, r := range named {
		for _, cp := range ports {
			if i, ok := protoIndex(cp.Protocol); ok && cp.Name == r.name && i == r.proto && cp.Port != 0 {
				out.p[i] = append(out.p[i], span{cp.Port, cp.Port})
			}
		}
	}
	for i := range out.p {
		out.p[i] = normSpans(out.p[i])
	}
	return out
}

// rulePeers is a rule's from/to resolved: all addresses, or the selected
// pods and address blocks, as sorted disjoint prefixes.
type rulePeers struct {
	prefixes []netip.Prefix
	all      bool
}

func (rs *resolver) compilePeers(policyNS string, peers []v1.NetworkPolicyPeer) rulePeers {
	if len(peers) == 0 {
		return rulePeers{prefixes: anyPeers, all: true}
	}
	// Rules of policies often name the same peers: compile them once.
	var kb strings.Builder
	writeKeyString(&kb, policyNS)
	for _, p := range peers {
		kb.WriteByte('|')
		if p.IPBlock != nil {
			kb.WriteByte('B')
			writeKeyString(&kb, p.IPBlock.CIDR)
			kb.WriteString(strconv.Itoa(len(p.IPBlock.Except)) + ";")
			for _, e := range p.IPBlock.Except {
				writeKeyString(&kb, e)
			}
		}
		if p.NamespaceSelector != nil {
			kb.WriteByte('N')
			writeKeyString(&kb, selectorKey(p.NamespaceSelector))
		}
		if p.PodSelector != nil {
			kb.WriteByte('P')
			writeKeyString(&kb, selectorKey(p.PodSelector))
		}
	}
	key := kb.String()
	if r, ok := rs.peerCache[key]; ok {
		return r
	}
	r := rs.resolvePeers(policyNS, peers)
	rs.peerCache[key] = r
	return r
}

func (rs *resolver) resolvePeers(policyNS string, peers []v1.NetworkPolicyPeer) rulePeers {
	var sets [][]*pod
	var blocks []netip.Prefix
	for _, p := range peers {
		switch {
		case p.IPBlock != nil:
			if p.PodSelector == nil && p.NamespaceSelector == nil {
				blocks = append(blocks, blockPrefixes(p.IPBlock)...)
			}
		case p.NamespaceSelector != nil:
			sel := p.PodSelector
			if sel == nil {
				sel = &v1.LabelSelector{}
			}
			key := selectorKey(sel)
			for _, ns := range rs.selectNamespaces(p.NamespaceSelector) {
				sets = append(sets, rs.selectPods(ns, sel, key))
			}
		case p.PodSelector != nil:
			sets = append(sets, rs.selectPods(policyNS, p.PodSelector, selectorKey(p.PodSelector)))
		}
	}
	n := len(blocks)
	for _, set := range sets {
		for _, q := range set {
			n += len(q.addrs)
		}
	}
	ps := make([]netip.Prefix, 0, n)
	for _, set := range sets {
		for _, q := range set {
			for _, a := range q.addrs {
				ps = append(ps, hostPrefix(a))
			}
		}
	}
	return rulePeers{prefixes: aggregate(append(ps, blocks...))}
}

// egressAllow compiles an egress rule, which does not depend on the source
// pod: numeric ports towards every peer address, and each named port
// towards the peer pods that define it, at their own numbers.
func (rs *resolver) egressAllow(name string, peers rulePeers, ports rulePorts) *ruleAllow {
	r := newRuleAllow(name)
	if len(peers.prefixes) == 0 {
		return r
	}
	if !ports.numeric.empty() {
		r.parts = append(r.parts, part{peers.prefixes, ports.numeric})
	}
	if len(ports.named) == 0 {
		return r
	}
	var cands []*pod
	for _, ref := range ports.named {
		cands = append(cands, rs.byPortName[ref.name]...)
	}
	slices.SortFunc(cands, func(a, b *pod) int { return cmp.Compare(a.key, b.key) })
	cands = slices.Compact(cands)
	byPorts := map[string]int{} // ports key → index in r.parts
	for _, q := range cands {
		set := resolve(ports.named, rs.endpointPorts(q))
		if set.empty() {
			continue
		}
		var hosts []netip.Prefix
		for _, a := range q.addrs {
			if peers.all || containsAddr(peers.prefixes, a) {
				hosts = append(hosts, hostPrefix(a))
			}
		}
		if len(hosts) == 0 {
			continue
		}
		k := set.key()
		if i, ok := byPorts[k]; ok {
			r.parts[i].peers = append(r.parts[i].peers, hosts...)
			continue
		}
		byPorts[k] = len(r.parts)
		r.parts = append(r.parts, part{hosts, set})
	}
	for i := range r.parts {
		if i > 0 || ports.numeric.empty() {
			r.parts[i].peers = aggregate(r.parts[i].peers)
		}
	}
	return r
}

// endpointPorts are the container ports a pod's addresses answer on: its
// own, plus those of pods sharing an address with it.
func (ix *index) endpointPorts(q *pod) []v1.ContainerPort {
	ports := q.ports
	for _, a := range q.addrs {
		for _, o := range ix.byAddr[a] {
			if o != q {
				ports = slices.Concat(ports, o.ports)
			}
		}
	}
	return ports
}

// compiledPolicy is a policy with its selectors resolved.
type compiledPolicy struct {
	key             string
	ingress, egress bool
	selected        []*pod
	in              []ingressRule
	named           []namedRef // used by ingress rules, sorted
	eg              []*ruleAllow
}

// ingressRule is an ingress rule whose named ports still need the
// destination group; fixed is its allowance when it uses none.
type ingressRule struct {
	name  string
	peers []netip.Prefix
	ports rulePorts
	fixed *ruleAllow
}

func (rs *resolver) compilePolicy(p *v1.NetworkPolicy) *compiledPolicy {
	ns := nsOrDefault(p.Metadata.Namespace)
	cp := &compiledPolicy{key: ns + "/" + p.Metadata.Name}
	cp.ingress, cp.egress = p.Types()
	cp.selected = rs.selectPods(ns, &p.Spec.PodSelector, selectorKey(&p.Spec.PodSelector))
	if cp.ingress {
		for i, r := range p.Spec.Ingress {
			ir := ingressRule{
				name:  cp.key + " ingress[" + strconv.Itoa(i) + "]",
				peers: rs.compilePeers(ns, r.From).prefixes,
				ports: compilePorts(r.Ports),
			}
			if len(ir.ports.named) == 0 {
				ir.fixed = newRuleAllow(ir.name)
				if len(ir.peers) > 0 && !ir.ports.numeric.empty() {
					ir.fixed.parts = []part{{ir.peers, ir.ports.numeric}}
				}
			}
			cp.named = append(cp.named, ir.ports.named...)
			cp.in = append(cp.in, ir)
		}
		slices.SortFunc(cp.named, compareRef)
		cp.named = slices.Compact(cp.named)
	}
	if cp.egress {
		for i, r := range p.Spec.Egress {
			name := cp.key + " egress[" + strconv.Itoa(i) + "]"
			cp.eg = append(cp.eg, rs.egressAllow(name, rs.compilePeers(ns, r.To), compilePorts(r.Ports)))
		}
	}
	return cp
}

// ingressAllow is rule r's allowance for a group whose pods have ports.
func (r *ingressRule) allow(ports []v1.ContainerPort) *ruleAllow {
	if r.fixed != nil {
		return r.fixed
	}
	ra := newRuleAllow(r.name)
	if set := union(r.ports.numeric, resolve(r.ports.named, ports)); len(r.peers) > 0 && !set.empty() {
		ra.parts = []part{{r.peers, set}}
	}
	return ra
}
