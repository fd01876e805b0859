package policy

import (
	"cmp"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	v1 "github.com/knit-net/knit/api/v1"
)

// pod is an input Pod as the compiler uses it.
type pod struct {
	key    string // "ns/name"
	ns     string
	labels map[string]string
	addrs  []netip.Addr // valid, unmapped, deduplicated
	ports  []v1.ContainerPort
}

// label is a label's key and value.
type label struct{ k, v string }

// index holds pods by namespace, label and container port name, and the
// namespaces' labels, so that resolving the selectors of 1,000 policies
// costs a lookup each rather than a scan of every pod. Selector results are
// cached: policies repeat selectors.
type index struct {
	pods       []*pod // in key order
	byNS       map[string][]*pod
	byLabel    map[string]map[label][]*pod // ns → label → pods
	byPortName map[string][]*pod
	byAddr     map[netip.Addr][]*pod
	nsLabels   map[string]map[string]string
	nsNames    []string // sorted
	names      *podNames
}

func nsOrDefault(ns string) string {
	if ns == "" {
		return v1.DefaultNamespace
	}
	return ns
}

// resolver resolves selectors against an index, caching results:
// policies repeat selectors. Each goroutine needs its own.
type resolver struct {
	*index
	podCache  map[string]map[string][]*pod // ns → selectorKey → pods
	nsCache   map[string][]string
	peerCache map[string]rulePeers
}

func (ix *index) resolver() *resolver {
	return &resolver{index: ix, podCache: map[string]map[string][]*pod{}, nsCache: map[string][]string{}, peerCache: map[string]rulePeers{}}
}

// newIndex indexes pods and namespaces. Namespaces with no pods do not
// matter: no peer can come from them.
func newIndex(pods []Pod, namespaces []v1.Namespace) *index {
	ix := &index{
		byNS: map[string][]*pod{}, byLabel: map[string]map[label][]*pod{},
		byPortName: map[string][]*pod{}, byAddr: map[netip.Addr][]*pod{},
		nsLabels: map[string]map[string]string{},
	}
	for i := range namespaces {
		ix.nsLabels[namespaces[i].Name] = namespaces[i].EffectiveLabels()
	}
	addNS := func(ns string) {
		if _, ok := ix.nsLabels[ns]; !ok {
			ix.nsLabels[ns] = map[string]string{v1.NamespaceNameLabel: ns}
		}
	}
	for i := range pods {
		p := &pods[i]
		q := &pod{ns: nsOrDefault(p.Namespace), labels: p.Labels, ports: p.Ports}
		q.key = q.ns + "/" + p.Name
		for _, a := range p.Addrs {
			if a = a.Unmap().WithZone(""); a.IsValid() && !slices.Contains(q.addrs, a) {
				q.addrs = append(q.addrs, a)
			}
		}
		ix.pods = append(ix.pods, q)
	}
	slices.SortStableFunc(ix.pods, func(a, b *pod) int { return cmp.Compare(a.key, b.key) })
	ix.pods = slices.CompactFunc(ix.pods, func(a, b *pod) bool { return a.key == b.key })
	for _, q := range ix.pods {
		addNS(q.ns)
		ix.byNS[q.ns] = append(ix.byNS[q.ns], q)
		m := ix.byLabel[q.ns]
		if m == nil {
			m = map[label][]*pod{}
			ix.byLabel[q.ns] = m
		}
		for k, v := range q.labels {
			m[label{k, v}] = append(m[label{k, v}], q)
		}
		for i, cp := range q.ports {
			if cp.Name != "" && !slices.ContainsFunc(q.ports[:i], func(o v1.ContainerPort) bool { return o.Name == cp.Name }) {
				ix.byPortName[cp.Name] = append(ix.byPortName[cp.Name], q)
			}
		}
		for _, a := range q.addrs {
			ix.byAddr[a] = append(ix.byAddr[a], q)
		}
	}
	for ns := range ix.nsLabels {
		ix.nsNames = append(ix.nsNames, ns)
	}
	slices.Sort(ix.nsNames)
	ix.names = newPodNames(ix.pods)
	return ix
}

func newPodNames(pods []*pod) *podNames {
	n := &podNames{at: map[netip.Addr]string{}, addrs: make(map[string][]netip.Addr, len(pods)), byName: map[string][]string{}}
	for _, q := range pods {
		n.addrs[q.key] = q.addrs
		_, name, _ := strings.Cut(q.key, "/")
		n.byName[name] = append(n.byName[name], q.key)
		for _, a := range q.addrs {
			if prev, ok := n.at[a]; ok {
				n.at[a] = prev + "+" + q.key
			} else {
				n.at[a] = q.key
			}
		}
	}
	return n
}

// selectorKey is a canonical, unambiguous text of a selector, for the
// caches: every string in it is length-prefixed.
func selectorKey(s *v1.LabelSelector) string {
	if len(s.MatchExpressions) == 0 && len(s.MatchLabels) <= 1 {
		for k, v := range s.MatchLabels {
			return "L" + strconv.Itoa(len(k)) + ":" + k + strconv.Itoa(len(v)) + ":" + v
		}
		return ""
	}
	var b strings.Builder
	keys := make([]string, 0, len(s.MatchLabels))
	for k := range s.MatchLabels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b.WriteByte('L')
		writeKeyString(&b, k)
		writeKeyString(&b, s.MatchLabels[k])
	}
	for _, r := range s.MatchExpressions {
		b.WriteByte('X')
		writeKeyString(&b, r.Key)
		writeKeyString(&b, r.Operator)
		b.WriteString(strconv.Itoa(len(r.Values)) + ";")
		for _, v := range r.Values {
			writeKeyString(&b, v)
		}
	}
	return b.String()
}

// writeKeyString writes s length-prefixed, so that keys built of several
// strings cannot collide.
func writeKeyString(b *strings.Builder, s string) {
	b.WriteString(strconv.Itoa(len(s)))
	b.WriteByte(':')
	b.WriteString(s)
}

// selectPods returns the pods of namespace ns that sel (whose selectorKey
// is key) matches, in key order. The result is shared: callers must not
// change it.
func (rs *resolver) selectPods(ns string, sel *v1.LabelSelector, key string) []*pod {
	cache := rs.podCache[ns]
	if r, ok := cache[key]; ok {
		return r
	}
	if cache == nil {
		cache = map[string][]*pod{}
		rs.podCache[ns] = cache
	}
	// Start from the smallest candidate list the selector allows.
	byLabel := rs.byLabel[ns]
	cands := rs.byNS[ns]
	for k, v := range sel.MatchLabels {
		if l := byLabel[label{k, v}]; len(l) < len(cands) {
			cands = l
		}
	}
	sorted := true
	for _, r := range sel.MatchExpressions {
		if r.Operator != v1.SelectorOpIn {
			continue
		}
		var u []*pod
		for _, v := range r.Values {
			u = append(u, byLabel[label{r.Key, v}]...)
		}
		if len(u) < len(cands) {
			cands, sorted = u, len(r.Values) <= 1
		}
	}
	var out []*pod
	for _, q := range cands {
		if sel.Matches(q.labels) {
			out = append(out, q)
		}
	}
	if !sorted {
		slices.SortFunc(out, func(a, b *pod) int { return cmp.Compare(a.key, b.key) })
		out = slices.Compact(out)
	}
	cache[key] = out
	return out
}

// selectNamespaces returns the names of the namespaces sel matches, sorted.
func (rs *resolver) selectNamespaces(sel *v1.LabelSelector) []string {
	ck := selectorKey(sel)
	if r, ok := rs.nsCache[ck]; ok {
		return r
	}
	var out []string
	for _, ns := range rs.nsNames {
		if sel.Matches(rs.nsLabels[ns]) {
			out = append(out, ns)
		}
	}
	rs.nsCache[ck] = out
	return out
}
