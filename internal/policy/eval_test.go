package policy

import (
	"cmp"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	v1 "github.com/knit-net/knit/api/v1"
)

// The reference evaluator: NetworkPolicy semantics straight from the API
// documentation, evaluated connection by connection on the raw input. It
// shares nothing with the compiler but v1.LabelSelector.Matches, so that
// comparing the two over every pair checks the compiled form.

type refDir struct {
	isolated, allowed     bool
	isolatedBy, allowedBy []string
}

type refWorld struct {
	in       *Input
	policies []*v1.NetworkPolicy
	nsLabels map[string]map[string]string
}

func newRefWorld(in *Input) *refWorld {
	w := &refWorld{in: in, nsLabels: map[string]map[string]string{}}
	for i := range in.Namespaces {
		w.nsLabels[in.Namespaces[i].Name] = in.Namespaces[i].EffectiveLabels()
	}
	for i := range in.Policies {
		w.policies = append(w.policies, &in.Policies[i])
	}
	key := func(p *v1.NetworkPolicy) string { return refNS(p.Metadata.Namespace) + "/" + p.Metadata.Name }
	slices.SortStableFunc(w.policies, func(a, b *v1.NetworkPolicy) int { return cmp.Compare(key(a), key(b)) })
	return w
}

func refNS(ns string) string {
	if ns == "" {
		return "default"
	}
	return ns
}

func (w *refWorld) podAt(a netip.Addr) *Pod {
	for i := range w.in.Pods {
		if slices.Contains(w.in.Pods[i].Addrs, a) {
			return &w.in.Pods[i]
		}
	}
	return nil
}

func (w *refWorld) labelsOfNS(ns string) map[string]string {
	if l, ok := w.nsLabels[ns]; ok {
		return l
	}
	return map[string]string{v1.NamespaceNameLabel: ns}
}

// verdict is the reference answer for a new connection src → dst.
func (w *refWorld) verdict(src, dst netip.Addr, proto uint8, port uint16) (allowed bool, eg, in refDir) {
	sp, dp := w.podAt(src), w.podAt(dst)
	if sp != nil && sp == dp {
		return true, refDir{allowed: true}, refDir{allowed: true}
	}
	eg = w.dir(sp, dst, dp, proto, port, false)
	in = w.dir(dp, src, sp, proto, port, true)
	return eg.allowed && in.allowed, eg, in
}

func (w *refWorld) dir(self *Pod, peer netip.Addr, peerPod *Pod, proto uint8, port uint16, ingress bool) refDir {
	var d refDir
	if self == nil {
		d.allowed = true
		return d
	}
	for _, p := range w.policies {
		ns := refNS(p.Metadata.Namespace)
		if ns != refNS(self.Namespace) || !p.Spec.PodSelector.Matches(self.Labels) {
			continue
		}
		ti, te := p.Types()
		if ingress && !ti || !ingress && !te {
			continue
		}
		key := ns + "/" + p.Metadata.Name
		d.isolated = true
		d.isolatedBy = append(d.isolatedBy, key)
		type rule struct {
			peers []v1.NetworkPolicyPeer
			ports []v1.NetworkPolicyPort
		}
		var rules []rule
		dirName := "egress"
		target := peerPod // whose named ports count: the destination's
		if ingress {
			dirName, target = "ingress", self
			for _, r := range p.Spec.Ingress {
				rules = append(rules, rule{r.From, r.Ports})
			}
		} else {
			for _, r := range p.Spec.Egress {
				rules = append(rules, rule{r.To, r.Ports})
			}
		}
		for i, r := range rules {
			peerOK := len(r.peers) == 0
			for _, pe := range r.peers {
				peerOK = peerOK || w.peerMatch(pe, ns, peer, peerPod)
			}
			portOK := len(r.ports) == 0
			for _, pp := range r.ports {
				portOK = portOK || refPortMatch(pp, proto, port, target)
			}
			if peerOK && portOK {
				d.allowedBy = append(d.allowedBy, key+" "+dirName+"["+strconv.Itoa(i)+"]")
			}
		}
	}
	d.allowed = !d.isolated || len(d.allowedBy) > 0
	return d
}

func (w *refWorld) peerMatch(pe v1.NetworkPolicyPeer, policyNS string, addr netip.Addr, peerPod *Pod) bool {
	if pe.IPBlock != nil {
		if pe.PodSelector != nil || pe.NamespaceSelector != nil {
			return false
		}
		cidr, err := netip.ParsePrefix(pe.IPBlock.CIDR)
		if err != nil || !cidr.Masked().Contains(addr) {
			return false
		}
		for _, e := range pe.IPBlock.Except {
			ex, err := netip.ParsePrefix(e)
			if err != nil || ex.Masked().Contains(addr) {
				return false
			}
		}
		return true
	}
	if peerPod == nil || (pe.PodSelector == nil && pe.NamespaceSelector == nil) {
		return false
	}
	ns := refNS(peerPod.Namespace)
	if pe.NamespaceSelector == nil {
		if ns != policyNS {
			return false
		}
	} else if !pe.NamespaceSelector.Matches(w.labelsOfNS(ns)) {
		return false
	}
	return pe.PodSelector == nil || pe.PodSelector.Matches(peerPod.Labels)
}

func refPortMatch(pp v1.NetworkPolicyPort, proto uint8, port uint16, target *Pod) bool {
	want := map[string]uint8{"": 6, "TCP": 6, "UDP": 17, "SCTP": 132}
	p, ok := want[pp.Protocol]
	if !ok || p != proto {
		return false
	}
	if pp.Port == nil {
		return pp.EndPort == nil
	}
	if pp.Port.IsStr {
		if pp.EndPort != nil || target == nil {
			return false
		}
		for _, cp := range target.Ports {
			cpProto := strings.ToUpper(cp.Protocol)
			if cpProto == "" {
				cpProto = "TCP"
			}
			if cp.Name == pp.Port.Str && want[cpProto] == proto && cp.Port == port {
				return true
			}
		}
		return false
	}
	lo, hi := pp.Port.Int, pp.Port.Int
	if pp.EndPort != nil {
		hi = *pp.EndPort
	}
	return lo >= 1 && hi >= lo && hi <= 65535 && int32(port) >= lo && int32(port) <= hi
}
