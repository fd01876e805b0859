package cli

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	v1 "github.com/knit-net/knit/api/v1"
)

// printEndpoints prints kubectl get endpoints' table or objects; missing
// reports a named service without endpoints object (no selector).
func (a *app) printEndpoints(details []v1.ServiceDetail, ns *nsFlags, names []string) (missing bool, err error) {
	var shown []v1.ServiceDetail
	for _, d := range details {
		// Kubernetes keeps Endpoints only for services with a selector.
		if len(d.Service.Spec.Selector) == 0 {
			if len(names) > 0 {
				fmt.Fprintln(a.stderr, kubeError(v1.NotFoundf("no endpoints"), resEndpoints, d.Service.Metadata.Name))
				missing = true
			}
			continue
		}
		shown = append(shown, d)
	}
	switch a.output {
	case "yaml", "json":
		items := make([]any, len(shown))
		for i := range shown {
			items[i] = endpointsObject(&shown[i])
		}
		return missing, a.printObjects(items, len(names) == 1)
	case "name":
		for _, d := range shown {
			fmt.Fprintln(a.stdout, "endpoints/"+d.Service.Metadata.Name)
		}
		return missing, nil
	}
	if len(shown) == 0 {
		if len(names) == 0 {
			a.noResources(ns)
		}
		return missing, nil
	}
	header := []string{"NAME", "ENDPOINTS", "AGE"}
	if ns.allNamespaces {
		header = append([]string{"NAMESPACE"}, header...)
	}
	var rows [][]string
	now := a.clock()
	for i := range shown {
		d := &shown[i]
		row := []string{d.Service.Metadata.Name, formatEndpoints(endpointList(d, true, nil), 3), age(d.Service.Metadata.CreationTimestamp, now)}
		if ns.allNamespaces {
			row = append([]string{d.Service.Metadata.Namespace}, row...)
		}
		rows = append(rows, row)
	}
	a.table(header, rows)
	return missing, nil
}

// endpointList lists addr:port of the ready (or the not-ready) endpoints
// for each service port, or only for port when it is not nil; port-major,
// as kubectl prints them. A service without ports lists bare addresses.
// With publishNotReadyAddresses every endpoint counts as ready.
func endpointList(d *v1.ServiceDetail, ready bool, port *v1.ServicePort) []string {
	s := &d.Service
	isReady := func(ep *v1.ServiceEndpoint) bool { return ep.Ready || s.Spec.PublishNotReadyAddresses }
	var out []string
	if len(s.Spec.Ports) == 0 {
		for i := range d.Endpoints {
			if ep := &d.Endpoints[i]; isReady(ep) == ready {
				out = append(out, strs(ep.Addresses)...)
			}
		}
		return out
	}
	for _, sp := range s.Spec.Ports {
		if port != nil && sp.Name != port.Name {
			continue
		}
		for i := range d.Endpoints {
			ep := &d.Endpoints[i]
			if isReady(ep) != ready {
				continue
			}
			p, ok := endpointPort(ep, sp.Name)
			if !ok {
				continue
			}
			for _, addr := range ep.Addresses {
				out = append(out, netip.AddrPortFrom(addr, p).String())
			}
		}
	}
	return out
}

// endpointPort is the resolved target port of an endpoint for the service
// port named name.
func endpointPort(ep *v1.ServiceEndpoint, name string) (uint16, bool) {
	for _, p := range ep.Ports {
		if p.Name == name {
			return p.Port, true
		}
	}
	return 0, false
}

// formatEndpoints joins addresses, showing at most max (0: all) and
// "+ N more..." after, or <none>.
func formatEndpoints(addrs []string, max int) string {
	if len(addrs) == 0 {
		return "<none>"
	}
	if max <= 0 || len(addrs) <= max {
		return strings.Join(addrs, ",")
	}
	return strings.Join(addrs[:max], ",") + " + " + strconv.Itoa(len(addrs)-max) + " more..."
}

// endpointsObject renders a service's endpoints in the shape of a
// Kubernetes v1 Endpoints object (one subset per distinct set of ports),
// for get endpoints -o yaml|json.
func endpointsObject(d *v1.ServiceDetail) any {
	type address struct {
		IP        string            `json:"ip"`
		Hostname  string            `json:"hostname,omitempty"`
		TargetRef map[string]string `json:"targetRef,omitempty"`
	}
	type port struct {
		Name     string `json:"name,omitempty"`
		Port     uint16 `json:"port"`
		Protocol string `json:"protocol"`
	}
	type subset struct {
		Addresses         []address `json:"addresses,omitempty"`
		NotReadyAddresses []address `json:"notReadyAddresses,omitempty"`
		Ports             []port    `json:"ports,omitempty"`
	}
	s := &d.Service
	var subsets []subset
	index := map[string]int{}
	for _, ep := range d.Endpoints {
		var ports []port
		for _, p := range ep.Ports {
			ports = append(ports, port{Name: p.Name, Port: p.Port, Protocol: protocol(strings.ToUpper(p.Protocol))})
		}
		key := fmt.Sprint(ports)
		i, ok := index[key]
		if !ok {
			i = len(subsets)
			index[key] = i
			subsets = append(subsets, subset{Ports: ports})
		}
		for _, ip := range ep.Addresses {
			addr := address{IP: ip.String(), Hostname: ep.Hostname, TargetRef: map[string]string{"kind": "Container", "name": ep.Container, "namespace": s.Metadata.Namespace}}
			if ep.Ready || s.Spec.PublishNotReadyAddresses {
				subsets[i].Addresses = append(subsets[i].Addresses, addr)
			} else {
				subsets[i].NotReadyAddresses = append(subsets[i].NotReadyAddresses, addr)
			}
		}
	}
	meta := map[string]any{"name": s.Metadata.Name, "namespace": s.Metadata.Namespace}
	if len(s.Metadata.Labels) > 0 {
		meta["labels"] = s.Metadata.Labels
	}
	if !s.Metadata.CreationTimestamp.IsZero() {
		meta["creationTimestamp"] = s.Metadata.CreationTimestamp
	}
	obj := map[string]any{"apiVersion": "v1", "kind": "Endpoints", "metadata": meta}
	if len(subsets) > 0 {
		obj["subsets"] = subsets
	}
	return obj
}
