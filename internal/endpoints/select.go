// Package endpoints computes what Kubernetes Services mean on this host: which
// containers a service's selector picks (its endpoints), whether each is
// ready, and which port each service port reaches on it. It is pure: the API
// uses it to describe a service and the service controller to program the
// data plane and DNS, so both always agree.
package endpoints

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"

	v1 "github.com/knit-net/knit/api/v1"
)

// Index holds containers by namespace and label, so that selecting the
// endpoints of 10,000 services among 100,000 containers costs a lookup per
// service instead of a scan.
type Index struct {
	// byLabel: namespace → "key=value" → containers carrying that label.
	byLabel map[string]map[string][]*v1.Container
	byName  map[string]*v1.Container
}

// NewIndex indexes containers (the slice must not change while the index is
// used).
func NewIndex(cs []v1.Container) *Index {
	ix := &Index{byLabel: map[string]map[string][]*v1.Container{}, byName: make(map[string]*v1.Container, len(cs))}
	for i := range cs {
		c := &cs[i]
		ix.byName[c.Name] = c
		ns := Namespace(c)
		m := ix.byLabel[ns]
		if m == nil {
			m = map[string][]*v1.Container{}
			ix.byLabel[ns] = m
		}
		for k, v := range c.Labels {
			m[k+"="+v] = append(m[k+"="+v], c)
		}
	}
	return ix
}

// Namespace is c's namespace; records written before namespaces existed
// are in "default".
func Namespace(c *v1.Container) string {
	if c.Namespace == "" {
		return v1.DefaultNamespace
	}
	return c.Namespace
}

// Ready reports whether c may receive service traffic: it runs, is not being
// removed, and passes its readiness probe if it has one.
func Ready(c *v1.Container) bool {
	if c.Status.State != v1.StateRunning || c.Stopped || c.Deleting {
		return false
	}
	return c.Readiness == nil || c.Status.Ready
}

// Endpoints returns the containers svc selects, in name order, with their
// addresses and target ports. A service without a selector has none (as in
// Kubernetes, where its endpoints would be managed by hand). Containers
// without an address of their own (host and none networking) are skipped;
// one sharing another's network namespace ("container:NAME") uses that
// container's addresses.
func (ix *Index) Endpoints(svc *v1.Service) []v1.ServiceEndpoint {
	sel := svc.Spec.Selector
	if len(sel) == 0 || svc.Spec.Type == v1.ServiceTypeExternalName {
		return nil
	}
	byLabel := ix.byLabel[svc.Metadata.Namespace]
	var cands []*v1.Container
	for k, v := range sel {
		l := byLabel[k+"="+v]
		if len(l) == 0 {
			return nil
		}
		if cands == nil || len(l) < len(cands) {
			cands = l
		}
	}
	var out []v1.ServiceEndpoint
	for _, c := range cands {
		if c.Deleting || !matches(sel, c.Labels) {
			continue
		}
		addrs := ix.addresses(c)
		if len(addrs) == 0 {
			continue
		}
		ep := v1.ServiceEndpoint{Container: c.Name, Hostname: hostname(c), Addresses: addrs, Ready: Ready(c)}
		for _, sp := range svc.Spec.Ports {
			if port, ok := TargetPort(sp, c); ok {
				ep.Ports = append(ep.Ports, v1.EndpointPort{Name: sp.Name, Protocol: sp.Protocol, Port: port})
			}
		}
		out = append(out, ep)
	}
	slices.SortFunc(out, func(a, b v1.ServiceEndpoint) int { return cmp.Compare(a.Container, b.Container) })
	return out
}

func matches(sel, labels map[string]string) bool {
	for k, v := range sel {
		if have, ok := labels[k]; !ok || have != v {
			return false
		}
	}
	return true
}

func (ix *Index) addresses(c *v1.Container) []netip.Addr {
	if owner, ok := strings.CutPrefix(c.NetworkMode, "container:"); ok {
		if o := ix.byName[owner]; o != nil && o != c {
			c = o
		}
	}
	var out []netip.Addr
	for _, ep := range c.Endpoints {
		for _, p := range ep.Addresses {
			out = append(out, p.Addr())
		}
	}
	return out
}

// hostname is the DNS label a headless service's record of c uses: its host
// name's first label when that is a valid label, else its name.
func hostname(c *v1.Container) string {
	h, _, _ := strings.Cut(c.Hostname, ".")
	if h == "" || c.Hostname == c.ID[:min(12, len(c.ID))] {
		h = c.Name
	}
	return strings.ToLower(h)
}

// TargetPort resolves a service port's targetPort on c: a number is used as
// is, a name must be one of c's --port names with the same protocol.
func TargetPort(sp v1.ServicePort, c *v1.Container) (uint16, bool) {
	if !sp.TargetPort.IsStr {
		t := sp.TargetPort.Int
		if t == 0 {
			t = sp.Port
		}
		return uint16(t), t > 0 && t <= 65535
	}
	for _, p := range c.ContainerPorts {
		if p.Name == sp.TargetPort.Str && strings.EqualFold(p.Protocol, sp.Protocol) {
			return p.Port, true
		}
	}
	return 0, false
}
