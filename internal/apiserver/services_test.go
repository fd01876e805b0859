package apiserver

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/ipam"
	"github.com/knit-net/knit/internal/state"
	"github.com/knit-net/knit/internal/store"
	"github.com/knit-net/knit/internal/store/memstore"
)

func newServiceServer(t *testing.T) (*Server, store.Store) {
	t.Helper()
	st := memstore.New()
	s := New(Options{Store: st, Pools: ipam.DefaultPools(), Host: fakeHost{}, Services: ServiceOptions{
		Ranges:      []netip.Prefix{netip.MustParsePrefix("10.96.0.0/28"), netip.MustParsePrefix("fd00:96::/120")},
		NodePortLow: 30000, NodePortHigh: 30002,
		LBPools: []netip.Prefix{netip.MustParsePrefix("192.0.2.8/30")},
	}})
	return s, st
}

func svc(name string, mut func(*v1.Service)) v1.Service {
	s := v1.Service{APIVersion: "v1", Kind: "Service", Metadata: v1.ObjectMeta{Name: name},
		Spec: v1.ServiceSpec{Selector: map[string]string{"app": name}, Ports: []v1.ServicePort{{Port: 80}}}}
	if mut != nil {
		mut(&s)
	}
	return s
}

func apply(t *testing.T, s *Server, svcs ...v1.Service) ([]string, error) {
	t.Helper()
	res, err := s.Apply(context.Background(), v1.ApplyRequest{Services: svcs})
	var out []string
	for _, o := range res.Objects {
		out = append(out, o.String())
	}
	return out, err
}

func getSvc(t *testing.T, st store.Store, name string) *v1.Service {
	t.Helper()
	var out *v1.Service
	if err := st.View(context.Background(), func(tx store.Tx) (err error) {
		out, err = state.GetService(tx, "default", name)
		return err
	}); err != nil || out == nil {
		t.Fatalf("service %s: %v %v", name, out, err)
	}
	return out
}

func TestApplyDefaultsAllocatesAndIsIdempotent(t *testing.T) {
	s, st := newServiceServer(t)
	np := svc("np", func(s *v1.Service) { s.Spec.Type = v1.ServiceTypeLoadBalancer })
	out, err := apply(t, s, svc("web", nil), np)
	if err != nil || strings.Join(out, ",") != "service/web created,service/np created" {
		t.Fatalf("apply: %v %v", out, err)
	}
	web := getSvc(t, st, "web")
	if web.Spec.ClusterIP != "10.96.0.1" || web.Spec.Type != "ClusterIP" || web.Spec.Ports[0].Protocol != "TCP" ||
		web.Spec.Ports[0].TargetPort.Int != 80 || web.Spec.SessionAffinity != "None" || web.Metadata.Namespace != "default" ||
		web.Metadata.UID == "" || strings.Join(web.Spec.IPFamilies, ",") != "IPv4" {
		t.Errorf("defaults: %+v", web)
	}
	lb := getSvc(t, st, "np")
	if lb.Spec.Ports[0].NodePort < 30000 || lb.Spec.Ports[0].NodePort > 30002 || len(lb.Status.LoadBalancer.Ingress) != 1 ||
		lb.Status.LoadBalancer.Ingress[0].IP != "192.0.2.9" {
		t.Errorf("LoadBalancer allocation: ports %+v status %+v", lb.Spec.Ports, lb.Status)
	}
	rev := st.Rev()
	out, err = apply(t, s, svc("web", nil), np)
	if err != nil || strings.Join(out, ",") != "service/web unchanged,service/np unchanged" {
		t.Fatalf("re-apply: %v %v", out, err)
	}
	if st.Rev() != rev {
		t.Errorf("re-applying the same objects wrote the store")
	}
	// An update keeps the allocations.
	out, err = apply(t, s, svc("np", func(s *v1.Service) {
		s.Spec.Type = v1.ServiceTypeLoadBalancer
		s.Spec.Ports = append(s.Spec.Ports, v1.ServicePort{Name: "b", Port: 81})
		s.Spec.Ports[0].Name = "a"
	}))
	if err != nil || out[0] != "service/np configured" {
		t.Fatalf("update: %v %v", out, err)
	}
	lb2 := getSvc(t, st, "np")
	if lb2.Spec.ClusterIP != lb.Spec.ClusterIP || lb2.Spec.Ports[0].NodePort != lb.Spec.Ports[0].NodePort ||
		lb2.Status.LoadBalancer.Ingress[0].IP != "192.0.2.9" || lb2.Metadata.Generation != 2 {
		t.Errorf("update moved allocations: %+v → %+v", lb, lb2)
	}
}

func TestApplyRejectsAndChangesNothing(t *testing.T) {
	s, st := newServiceServer(t)
	if _, err := apply(t, s, svc("fixed", func(s *v1.Service) { s.Spec.ClusterIP = "10.96.0.5" })); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		svc  v1.Service
		want string
	}{
		{"kind", svc("x", func(s *v1.Service) { s.Kind = "Pod" }), "apiVersion/kind"},
		{"name", svc("X_1", nil), "metadata.name"},
		{"port", svc("x", func(s *v1.Service) { s.Spec.Ports[0].Port = 70000 }), "spec.ports[0].port: Invalid value: 70000"},
		{"no ports", svc("x", func(s *v1.Service) { s.Spec.Ports = nil }), "spec.ports: Required value"},
		{"dup names", svc("x", func(s *v1.Service) {
			s.Spec.Ports = []v1.ServicePort{{Name: "a", Port: 1}, {Name: "a", Port: 2}}
		}), `spec.ports[1].name: Duplicate value: "a"`},
		{"dup port", svc("x", func(s *v1.Service) {
			s.Spec.Ports = []v1.ServicePort{{Name: "a", Port: 1}, {Name: "b", Port: 1}}
		}), "spec.ports[1]: Duplicate value"},
		{"protocol", svc("x", func(s *v1.Service) { s.Spec.Ports[0].Protocol = "ICMP" }), "spec.ports[0].protocol: Unsupported value"},
		{"target", svc("x", func(s *v1.Service) { s.Spec.Ports[0].TargetPort = v1.IntOrString{IsStr: true, Str: "Bad_Name"} }), "spec.ports[0].targetPort"},
		{"outside", svc("x", func(s *v1.Service) { s.Spec.ClusterIP = "10.0.0.1" }), "The range of valid IPs is 10.96.0.0/28"},
		{"taken", svc("x", func(s *v1.Service) { s.Spec.ClusterIP = "10.96.0.5" }), "provided IP is already allocated (to service default/fixed)"},
		{"bad ip", svc("x", func(s *v1.Service) { s.Spec.ClusterIP = "1.2.3" }), "spec.clusterIP"},
		{"selector", svc("x", func(s *v1.Service) { s.Spec.Selector = map[string]string{"a b": "c"} }), "spec.selector"},
		{"selector value", svc("x", func(s *v1.Service) { s.Spec.Selector = map[string]string{"a": "-c"} }), "spec.selector[a]"},
		{"node port type", svc("x", func(s *v1.Service) { s.Spec.Ports[0].NodePort = 30000 }), "spec.ports[0].nodePort: Forbidden"},
		{"node port range", svc("x", func(s *v1.Service) {
			s.Spec.Type = v1.ServiceTypeNodePort
			s.Spec.Ports[0].NodePort = 80
		}), "The range of valid ports is 30000-30002"},
		{"lb ip", svc("x", func(s *v1.Service) {
			s.Spec.Type = v1.ServiceTypeLoadBalancer
			s.Spec.LoadBalancerIP = "198.51.100.1"
		}), "spec.loadBalancerIP"},
		{"affinity", svc("x", func(s *v1.Service) {
			s.Spec.SessionAffinity = "ClientIP"
			t := int32(0)
			s.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: &t}}
		}), "timeoutSeconds"},
		{"external name", svc("x", func(s *v1.Service) { s.Spec.Type = v1.ServiceTypeExternalName }), "spec.externalName: Required"},
		{"headless node port", svc("x", func(s *v1.Service) {
			s.Spec.Type = v1.ServiceTypeNodePort
			s.Spec.ClusterIP = "None"
		}), "spec.clusterIP"},
		{"immutable", svc("fixed", func(s *v1.Service) { s.Spec.ClusterIP = "10.96.0.6" }), "field is immutable"},
		{"dual stack single", svc("x", func(s *v1.Service) { s.Spec.ClusterIPs = []string{"10.96.0.7", "fd00:96::7"} }), "SingleStack"},
	}
	for _, c := range cases {
		rev := st.Rev()
		// Each bad object goes with a good one: neither may be written.
		_, err := apply(t, s, svc("good", nil), c.svc)
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "is invalid") && v1.CodeOf(err) == v1.CodeInvalid {
			t.Errorf("%s: %q; want it to contain %q", c.name, err, c.want)
		}
		if st.Rev() != rev {
			t.Errorf("%s: the store changed", c.name)
		}
	}
}

func TestApplyNodePortsAndReleases(t *testing.T) {
	s, st := newServiceServer(t)
	mk := func(name string) v1.Service {
		return svc(name, func(s *v1.Service) { s.Spec.Type = v1.ServiceTypeNodePort })
	}
	if _, err := apply(t, s, mk("a"), mk("b"), mk("c")); err != nil {
		t.Fatal(err)
	}
	seen := map[int32]bool{}
	for _, n := range []string{"a", "b", "c"} {
		seen[getSvc(t, st, n).Spec.Ports[0].NodePort] = true
	}
	if len(seen) != 3 {
		t.Fatalf("node ports %v; want three distinct", seen)
	}
	if _, err := apply(t, s, mk("d")); v1.CodeOf(err) != v1.CodeExhausted {
		t.Fatalf("fourth node port in a range of three: %v; want exhausted", err)
	}
	// Turning a into ClusterIP frees its node port for d; deleting frees the
	// address.
	if _, err := apply(t, s, svc("a", nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := apply(t, s, mk("d")); err != nil {
		t.Fatalf("after a freed its node port: %v", err)
	}
	addr := getSvc(t, st, "b").Spec.ClusterIP
	_, err := st.Update(context.Background(), func(tx store.Tx) error {
		old, _ := state.GetService(tx, "default", "b")
		return releaseService(tx, old, "service default/b", nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := apply(t, s, svc("e", func(s *v1.Service) { s.Spec.ClusterIP = addr })); err != nil {
		t.Errorf("reusing a released clusterIP: %v", err)
	}
}

func TestApplyDualStackAndHeadless(t *testing.T) {
	s, st := newServiceServer(t)
	_, err := apply(t, s,
		svc("dual", func(s *v1.Service) { s.Spec.IPFamilyPolicy = "PreferDualStack" }),
		svc("six", func(s *v1.Service) { s.Spec.IPFamilies = []string{"IPv6"} }),
		svc("headless", func(s *v1.Service) { s.Spec.ClusterIP = "None" }),
		svc("ext", func(s *v1.Service) {
			s.Spec.Type = v1.ServiceTypeExternalName
			s.Spec.ExternalName = "api.example.com"
			s.Spec.Selector = nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	if d := getSvc(t, st, "dual"); len(d.Spec.ClusterIPs) != 2 || !strings.Contains(d.Spec.ClusterIPs[1], ":") {
		t.Errorf("PreferDualStack: %v", d.Spec.ClusterIPs)
	}
	if d := getSvc(t, st, "six"); !strings.HasPrefix(d.Spec.ClusterIP, "fd00:96::") {
		t.Errorf("IPv6 service: %v", d.Spec.ClusterIP)
	}
	if d := getSvc(t, st, "headless"); !d.Headless() || len(d.ClusterAddrs()) != 0 {
		t.Errorf("headless: %+v", d.Spec)
	}
}
