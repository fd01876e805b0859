package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"time"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/endpoints"
	"github.com/knit-net/knit/internal/ipam"
	"github.com/knit-net/knit/internal/portmap"
	"github.com/knit-net/knit/internal/state"
	"github.com/knit-net/knit/internal/store"
)

// Pseudo networks under which ipam records ClusterIPs and load balancer
// addresses.
const (
	svcIPNet = "services"
	lbIPNet  = "loadbalancers"
)

// ServiceOptions are the ranges services allocate from.
type ServiceOptions struct {
	// Ranges are the ClusterIP ranges, at most one per family; the first is
	// the default family.
	Ranges []netip.Prefix
	// NodePortLow and NodePortHigh bound node ports (30000-32767).
	NodePortLow, NodePortHigh uint16
	// LBPools hand out LoadBalancer addresses; none leaves such services
	// pending, as Kubernetes does without a load balancer provider.
	LBPools []netip.Prefix
	// Applied returns once the service data plane reflects store revision
	// rev (nil: do not wait).
	Applied func(ctx context.Context, rev int64) error
}

// maxApplyBody bounds POST /v1/apply (10,000 services are about 5 MiB).
const maxApplyBody = 64 << 20

func (s *Server) apply(w http.ResponseWriter, r *http.Request) {
	var req v1.ApplyRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, maxApplyBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeErr(w, v1.Invalidf("malformed request body for POST /v1/apply: %s; send one JSON object as described in docs/api.md", err))
		return
	}
	res, err := s.Apply(r.Context(), req)
	reply(w, http.StatusOK, res, err)
}

// Apply validates every object, then allocates and writes all of them in one
// transaction: a bad object changes nothing. Objects equal to what is stored
// are left alone ("unchanged"). It returns once the service and policy data
// planes reflect the write.
func (s *Server) Apply(ctx context.Context, req v1.ApplyRequest) (v1.ApplyResult, error) {
	seen := map[string]bool{}
	for i := range req.Services {
		svc := &req.Services[i]
		svc.Status = v1.ServiceStatus{}
		if err := svc.Validate(); err != nil {
			return v1.ApplyResult{}, err
		}
		if seen["svc "+svc.Key()] {
			return v1.ApplyResult{}, v1.Invalidf("service %q is given twice in one apply; keep one of them", svc.Key())
		}
		seen["svc "+svc.Key()] = true
	}
	for i := range req.NetworkPolicies {
		np := &req.NetworkPolicies[i]
		if err := np.Validate(); err != nil {
			return v1.ApplyResult{}, err
		}
		if seen["np "+np.Key()] {
			return v1.ApplyResult{}, v1.Invalidf("networkpolicy %q is given twice in one apply; keep one of them", np.Key())
		}
		seen["np "+np.Key()] = true
	}
	res := v1.ApplyResult{Objects: make([]v1.AppliedObject, 0, len(req.Services)+len(req.NetworkPolicies))}
	host := s.opts.Host.Sockets()
	write := func(tx store.Tx) error {
		res.Objects = res.Objects[:0] // Update may run fn again
		for i := range req.Services {
			in := clone(&req.Services[i])
			action, err := s.applyService(tx, in, host)
			if err != nil {
				return err
			}
			res.Objects = append(res.Objects, v1.AppliedObject{Kind: v1.KindService, Namespace: in.Metadata.Namespace, Name: in.Metadata.Name, Action: action})
		}
		for i := range req.NetworkPolicies {
			in := clone(&req.NetworkPolicies[i])
			action, err := applyPolicy(tx, in)
			if err != nil {
				return err
			}
			res.Objects = append(res.Objects, v1.AppliedObject{Kind: v1.KindNetworkPolicy, Namespace: in.Metadata.Namespace, Name: in.Metadata.Name, Action: action})
		}
		if req.DryRun {
			return errDryRun
		}
		return nil
	}
	rev, err := s.st.Update(ctx, write)
	if errors.Is(err, errDryRun) {
		return res, nil
	}
	if err != nil {
		return v1.ApplyResult{}, err
	}
	return res, s.waitApplied(ctx, rev)
}

var errDryRun = errors.New("dry run")

func sameJSON(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

// clone deep-copies an API object through JSON, as the store would.
func clone[T any](v *T) *T {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // API types always encode
	}
	out := new(T)
	if err := json.Unmarshal(b, out); err != nil {
		panic(err)
	}
	return out
}

// waitApplied returns once every derived data plane (services, policies)
// reflects store revision rev.
func (s *Server) waitApplied(ctx context.Context, rev int64) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.WaitTimeout)
	defer cancel()
	for _, applied := range []func(context.Context, int64) error{s.opts.Services.Applied, s.opts.PolicyApplied} {
		if applied != nil {
			if err := applied(ctx, rev); err != nil {
				return err
			}
		}
	}
	return nil
}

// applyService allocates what svc needs (keeping what the stored version
// already holds), writes it unless nothing changed, and says which.
func (s *Server) applyService(tx store.Tx, svc *v1.Service, host portmap.HostHolder) (string, error) {
	old, err := state.GetService(tx, svc.Metadata.Namespace, svc.Metadata.Name)
	if err != nil {
		return "", err
	}
	f := v1.NewFieldErrors(v1.KindService, svc.Metadata.Name)
	owner := portmap.ServiceOwner(svc.Metadata.Namespace, svc.Metadata.Name)
	if err := s.allocClusterIPs(tx, f, svc, old, owner); err != nil {
		return "", err
	}
	if err := s.allocNodePorts(tx, f, svc, old, owner, host); err != nil {
		return "", err
	}
	if err := s.allocLoadBalancer(tx, f, svc, old, owner); err != nil {
		return "", err
	}
	if err := f.Err(v1.CodeInvalid); err != nil {
		return "", err
	}
	if old != nil {
		if err := s.releaseStale(tx, old, svc, owner); err != nil {
			return "", err
		}
		svc.Metadata.UID, svc.Metadata.CreationTimestamp = old.Metadata.UID, old.Metadata.CreationTimestamp
		svc.Metadata.Generation = old.Metadata.Generation
		if sameJSON(old, svc) {
			return v1.ApplyUnchanged, nil
		}
		svc.Metadata.Generation++
		return v1.ApplyConfigured, state.PutService(tx, svc)
	}
	svc.Metadata.UID = newID()
	svc.Metadata.CreationTimestamp = time.Now().UTC().Truncate(time.Second)
	svc.Metadata.Generation = 1
	return v1.ApplyCreated, state.PutService(tx, svc)
}

// rangeFor returns the ClusterIP range of a family.
func (s *Server) rangeFor(v4 bool) (netip.Prefix, bool) {
	for _, r := range s.opts.Services.Ranges {
		if r.Addr().Is4() == v4 {
			return r, true
		}
	}
	return netip.Prefix{}, false
}

func rangesString(rs []netip.Prefix) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.String()
	}
	return strings.Join(parts, ",")
}

// allocClusterIPs fills spec.clusterIP(s) and ipFamilies: addresses given
// must be in the range and free, left out ones are kept from the stored
// version or allocated. The addresses of a service never change.
func (s *Server) allocClusterIPs(tx store.Tx, f *v1.FieldErrors, svc, old *v1.Service, owner string) error {
	sp := &svc.Spec
	if sp.Type == v1.ServiceTypeExternalName || svc.Headless() {
		sp.IPFamilies, sp.IPFamilyPolicy = nil, ""
		if svc.Headless() && old != nil && !old.Headless() && old.Spec.Type != v1.ServiceTypeExternalName {
			f.Invalid("spec.clusterIP", sp.ClusterIP, "field is immutable")
		}
		return nil
	}
	if len(sp.ClusterIPs) == 0 && old != nil && old.Spec.Type != v1.ServiceTypeExternalName && !old.Headless() {
		sp.ClusterIP, sp.ClusterIPs = old.Spec.ClusterIP, old.Spec.ClusterIPs
	}
	if old != nil && len(old.Spec.ClusterIPs) > 0 && !old.Headless() && old.Spec.Type != v1.ServiceTypeExternalName {
		if !strings.EqualFold(sp.ClusterIP, old.Spec.ClusterIP) {
			f.Invalid("spec.clusterIP", sp.ClusterIP, "field is immutable")
			return nil
		}
	}
	if sp.IPFamilyPolicy == "" {
		sp.IPFamilyPolicy = "SingleStack"
	}
	// The families wanted, in order.
	var fams []bool // true = IPv4
	for _, ip := range sp.ClusterIPs {
		a, _ := netip.ParseAddr(ip)
		fams = append(fams, a.Is4())
	}
	if len(fams) == 0 {
		for _, fam := range sp.IPFamilies {
			fams = append(fams, fam == "IPv4")
		}
	}
	if len(fams) == 0 {
		if len(s.opts.Services.Ranges) == 0 {
			return v1.Invalidf("service %q: knitd has no service range; start it with --service-cidr", svc.Key())
		}
		fams = []bool{s.opts.Services.Ranges[0].Addr().Is4()}
	}
	if sp.IPFamilyPolicy != "SingleStack" && len(fams) == 1 {
		if _, ok := s.rangeFor(!fams[0]); ok {
			fams = append(fams, !fams[0])
		} else if sp.IPFamilyPolicy == "RequireDualStack" {
			f.Invalid("spec.ipFamilyPolicy", sp.IPFamilyPolicy, "this host has a service range of one family only ("+rangesString(s.opts.Services.Ranges)+"); use SingleStack or PreferDualStack, or start knitd with a --service-cidr of each family")
			return nil
		}
	}
	if sp.IPFamilyPolicy == "SingleStack" && len(fams) > 1 {
		f.Invalid("spec.ipFamilyPolicy", sp.IPFamilyPolicy, "SingleStack allows one clusterIP; use PreferDualStack or RequireDualStack for two")
		return nil
	}
	ips := make([]string, len(fams))
	sp.IPFamilies = make([]string, len(fams))
	for i, v4 := range fams {
		sp.IPFamilies[i] = map[bool]string{true: "IPv4", false: "IPv6"}[v4]
		field := "spec.clusterIP"
		if i > 0 {
			field = fmt.Sprintf("spec.clusterIPs[%d]", i)
		}
		rng, ok := s.rangeFor(v4)
		if !ok {
			f.Invalid("spec.ipFamilies", sp.IPFamilies[i], "this host has no service range of that family ("+rangesString(s.opts.Services.Ranges)+"); start knitd with --service-cidr of that family")
			return nil
		}
		if i < len(sp.ClusterIPs) {
			a, _ := netip.ParseAddr(sp.ClusterIPs[i])
			if !rng.Contains(a) {
				f.Invalid(field, sp.ClusterIPs[i], "provided IP is not in the valid range. The range of valid IPs is "+rng.String())
				continue
			}
			who, taken, err := ipam.Owner(tx, svcIPNet, a)
			if err != nil {
				return err
			}
			if taken && who != owner {
				f.Invalid(field, sp.ClusterIPs[i], "provided IP is already allocated (to "+who+")")
				continue
			}
			if err := ipam.Claim(tx, svcIPNet, a, owner); err != nil {
				return err
			}
			ips[i] = a.String()
			continue
		}
		a, err := ipam.Allocate(tx, &v1.Network{ID: svcIPNet, Name: "services"}, v1.Subnet{Subnet: rng}, owner)
		if v1.CodeOf(err) == v1.CodeExhausted {
			return v1.Exhaustedf("service %q: the service range %s is full; delete services or start knitd with a larger --service-cidr", svc.Key(), rng)
		} else if err != nil {
			return err
		}
		ips[i] = a.String()
	}
	sp.ClusterIPs = ips
	sp.ClusterIP = ips[0]
	return nil
}

func (s *Server) allocNodePorts(tx store.Tx, f *v1.FieldErrors, svc, old *v1.Service, owner string, host portmap.HostHolder) error {
	sp := &svc.Spec
	wants := sp.Type == v1.ServiceTypeNodePort ||
		(sp.Type == v1.ServiceTypeLoadBalancer && (sp.AllocateLoadBalancerNodePorts == nil || *sp.AllocateLoadBalancerNodePorts))
	if !wants {
		return nil
	}
	lo, hi := s.opts.Services.NodePortLow, s.opts.Services.NodePortHigh
	held := map[string]int32{} // the stored version's node ports by port/protocol
	if old != nil {
		for _, p := range old.Spec.Ports {
			if p.NodePort != 0 {
				held[fmt.Sprintf("%d/%s", p.Port, p.Protocol)] = p.NodePort
			}
		}
	}
	for i := range sp.Ports {
		p := &sp.Ports[i]
		field := fmt.Sprintf("spec.ports[%d].nodePort", i)
		proto := strings.ToLower(p.Protocol)
		if p.NodePort == 0 {
			p.NodePort = held[fmt.Sprintf("%d/%s", p.Port, p.Protocol)]
		}
		if p.NodePort != 0 {
			if p.NodePort < int32(lo) || p.NodePort > int32(hi) {
				f.Invalid(field, p.NodePort, fmt.Sprintf("provided port is not in the valid range. The range of valid ports is %d-%d", lo, hi))
				continue
			}
			who, err := portmap.Holder(tx, proto, uint16(p.NodePort), host)
			if err != nil {
				return err
			}
			if who != "" && who != owner {
				f.Invalid(field, p.NodePort, "provided port is already allocated (to "+who+"); pick another nodePort or leave it out")
				continue
			}
		} else {
			port, ok, err := portmap.PickFree(tx, proto, lo, hi, lo+uint16(time.Now().UnixNano()%int64(hi-lo+1)), host)
			if err != nil {
				return err
			}
			if !ok {
				return v1.Exhaustedf("service %q: no free node port left in %d-%d; delete services or give nodePort", svc.Key(), lo, hi)
			}
			p.NodePort = int32(port)
		}
		if err := portmap.Claim(tx, owner, proto, uint16(p.NodePort)); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) allocLoadBalancer(tx store.Tx, f *v1.FieldErrors, svc, old *v1.Service, owner string) error {
	sp := &svc.Spec
	if sp.Type != v1.ServiceTypeLoadBalancer || len(s.opts.Services.LBPools) == 0 {
		return nil
	}
	var want netip.Addr
	if sp.LoadBalancerIP != "" {
		want, _ = netip.ParseAddr(sp.LoadBalancerIP)
	} else if old != nil && len(old.Status.LoadBalancer.Ingress) > 0 {
		want, _ = netip.ParseAddr(old.Status.LoadBalancer.Ingress[0].IP)
	}
	if want.IsValid() {
		in := false
		for _, p := range s.opts.Services.LBPools {
			in = in || p.Contains(want)
		}
		if !in {
			f.Invalid("spec.loadBalancerIP", sp.LoadBalancerIP, "not in knitd's load balancer pool "+rangesString(s.opts.Services.LBPools)+"; pick an address in it or leave it out")
			return nil
		}
		who, taken, err := ipam.Owner(tx, lbIPNet, want)
		if err != nil {
			return err
		}
		if taken && who != owner {
			f.Invalid("spec.loadBalancerIP", sp.LoadBalancerIP, "already allocated (to "+who+"); pick another address or leave it out")
			return nil
		}
		if err := ipam.Claim(tx, lbIPNet, want, owner); err != nil {
			return err
		}
	} else {
		var err error
		for _, pool := range s.opts.Services.LBPools {
			want, err = ipam.Allocate(tx, &v1.Network{ID: lbIPNet, Name: "loadbalancers"}, v1.Subnet{Subnet: pool}, owner)
			if err == nil {
				break
			}
			if v1.CodeOf(err) != v1.CodeExhausted {
				return err
			}
		}
		if !want.IsValid() {
			return v1.Exhaustedf("service %q: the load balancer pool %s is used up; delete LoadBalancer services or give knitd a larger --lb-pool", svc.Key(), rangesString(s.opts.Services.LBPools))
		}
	}
	svc.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: want.String()}}
	return nil
}

// releaseStale frees what old held and cur no longer does.
func (s *Server) releaseStale(tx store.Tx, old, cur *v1.Service, owner string) error {
	keep := map[string]bool{}
	for _, ip := range cur.Spec.ClusterIPs {
		keep["ip "+ip] = true
	}
	for _, p := range cur.Spec.Ports {
		if p.NodePort != 0 {
			keep[fmt.Sprintf("np %d/%s", p.NodePort, strings.ToLower(p.Protocol))] = true
		}
	}
	for _, in := range cur.Status.LoadBalancer.Ingress {
		keep["lb "+in.IP] = true
	}
	return releaseService(tx, old, owner, keep)
}

// releaseService frees old's addresses and node ports except those in keep.
func releaseService(tx store.Tx, old *v1.Service, owner string, keep map[string]bool) error {
	for _, ip := range old.Spec.ClusterIPs {
		if a, err := netip.ParseAddr(ip); err == nil && !keep["ip "+ip] {
			if err := releaseIfOwner(tx, svcIPNet, a, owner); err != nil {
				return err
			}
		}
	}
	for _, p := range old.Spec.Ports {
		proto := strings.ToLower(p.Protocol)
		if p.NodePort != 0 && !keep[fmt.Sprintf("np %d/%s", p.NodePort, proto)] {
			if err := portmap.Unclaim(tx, owner, proto, uint16(p.NodePort)); err != nil {
				return err
			}
		}
	}
	for _, in := range old.Status.LoadBalancer.Ingress {
		if a, err := netip.ParseAddr(in.IP); err == nil && !keep["lb "+in.IP] {
			if err := releaseIfOwner(tx, lbIPNet, a, owner); err != nil {
				return err
			}
		}
	}
	return nil
}

func releaseIfOwner(tx store.Tx, netID string, a netip.Addr, owner string) error {
	who, ok, err := ipam.Owner(tx, netID, a)
	if err != nil || !ok || who != owner {
		return err
	}
	return ipam.Release(tx, netID, a)
}

func (s *Server) listServices(w http.ResponseWriter, r *http.Request) {
	ns := r.URL.Query().Get("namespace")
	svcs, err := read(r.Context(), s.st, func(tx store.Tx) ([]v1.Service, error) { return state.ListServices(tx, ns) })
	if svcs == nil {
		svcs = []v1.Service{}
	}
	reply(w, http.StatusOK, svcs, err)
}

func (s *Server) getService(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	d, err := read(r.Context(), s.st, func(tx store.Tx) (v1.ServiceDetail, error) {
		svc, err := state.GetService(tx, ns, name)
		if err != nil {
			return v1.ServiceDetail{}, err
		}
		if svc == nil {
			return v1.ServiceDetail{}, notFoundService(ns, name)
		}
		cs, err := state.ListContainers(tx)
		if err != nil {
			return v1.ServiceDetail{}, err
		}
		eps := endpoints.NewIndex(cs).Endpoints(svc)
		if eps == nil {
			eps = []v1.ServiceEndpoint{}
		}
		return v1.ServiceDetail{Service: *svc, Endpoints: eps}, nil
	})
	reply(w, http.StatusOK, d, err)
}

func notFoundService(ns, name string) error {
	return v1.NotFoundf("services %q not found in namespace %q; see knit get services -A", name, ns)
}

func (s *Server) deleteService(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	rev, err := s.st.Update(r.Context(), func(tx store.Tx) error {
		svc, err := state.GetService(tx, ns, name)
		if err != nil {
			return err
		}
		if svc == nil {
			return notFoundService(ns, name)
		}
		if err := releaseService(tx, svc, portmap.ServiceOwner(ns, name), nil); err != nil {
			return err
		}
		return tx.Delete(state.ServiceKey(ns, name))
	})
	if err == nil {
		err = s.waitApplied(r.Context(), rev)
	}
	reply(w, http.StatusOK, map[string]string{"deleted": ns + "/" + name}, err)
}

// labelContainer applies a LabelUpdate (knit label).
func (s *Server) labelContainer(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var req v1.LabelUpdate
	if err := decode(r, &req); err != nil {
		writeErr(w, err)
		return
	}
	owner := fmt.Sprintf("container %q", name)
	if err := v1.ValidateLabels(owner, req.Set); err != nil {
		writeErr(w, err)
		return
	}
	var out *v1.Container
	rev, err := s.st.Update(r.Context(), func(tx store.Tx) error {
		c, err := state.GetContainer(tx, name)
		if err != nil {
			return err
		}
		if c == nil {
			return v1.NotFoundf("no container %q; see knit ps -a", name)
		}
		labels, err := updateLabels(owner, c.Labels, req.Set, req.Remove, req.Overwrite)
		if err != nil {
			return err
		}
		c.Labels = labels
		out = c
		return state.PutContainer(tx, c)
	})
	if err == nil {
		err = s.waitApplied(r.Context(), rev)
	}
	reply(w, http.StatusOK, out, err)
}
