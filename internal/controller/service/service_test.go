package service

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	v1 "github.com/knit-net/knit/api/v1"
)

func running(name, addr string, labels map[string]string) v1.Container {
	return v1.Container{ID: name + "-0123456789", Name: name, Hostname: name, Namespace: "default", Labels: labels,
		NetworkMode: v1.DriverBridge, Status: v1.ContainerStatus{State: v1.StateRunning},
		Endpoints: []v1.Endpoint{{Addresses: []netip.Prefix{netip.MustParsePrefix(addr + "/24")}}}}
}

func TestCompute(t *testing.T) {
	web := map[string]string{"app": "web"}
	probed := running("c", "10.0.0.4", web)
	probed.Readiness = &v1.Probe{Type: "http", Port: "8080", Path: "/healthz", Period: time.Second, Timeout: time.Second}
	ctrs := []v1.Container{running("a", "10.0.0.2", web), running("b", "10.0.0.3", web), probed}
	timeout := int32(60)
	svcs := []v1.Service{
		{Metadata: v1.ObjectMeta{Name: "web", Namespace: "default"}, Spec: v1.ServiceSpec{
			Type: v1.ServiceTypeLoadBalancer, Selector: web, ClusterIP: "10.96.0.10", ClusterIPs: []string{"10.96.0.10"},
			SessionAffinity: v1.AffinityClientIP, SessionAffinityConfig: &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: &timeout}},
			Ports: []v1.ServicePort{{Name: "http", Protocol: "TCP", Port: 80, TargetPort: v1.IntOrString{Int: 8080}, NodePort: 30080}},
		}, Status: v1.ServiceStatus{LoadBalancer: v1.LoadBalancerStatus{Ingress: []v1.LoadBalancerIngress{{IP: "192.0.2.9"}}}}},
		{Metadata: v1.ObjectMeta{Name: "hl", Namespace: "default"}, Spec: v1.ServiceSpec{
			Selector: web, ClusterIP: v1.ClusterIPNone, ClusterIPs: []string{v1.ClusterIPNone},
			Ports: []v1.ServicePort{{Name: "http", Protocol: "TCP", Port: 80, TargetPort: v1.IntOrString{Int: 8080}}},
		}},
	}
	d := Compute(svcs, ctrs)
	if len(d.Ports) != 1 {
		t.Fatalf("ports %+v; want one (headless services have no VIP)", d.Ports)
	}
	p := d.Ports[0]
	want := []netip.AddrPort{netip.MustParseAddrPort("10.0.0.2:8080"), netip.MustParseAddrPort("10.0.0.3:8080")}
	if !slices.Equal(p.Backends, want) {
		t.Errorf("backends %v; want %v (c has not passed its probe)", p.Backends, want)
	}
	if !slices.Equal(p.VIPs, []netip.Addr{netip.MustParseAddr("10.96.0.10"), netip.MustParseAddr("192.0.2.9")}) ||
		p.NodePort != 30080 || p.Protocol != "tcp" || p.AffinityTimeout != time.Minute || p.Name != "default/web:http" {
		t.Errorf("port %+v", p)
	}
	if len(d.LBAddrs) != 1 || d.LBAddrs[0] != netip.MustParsePrefix("192.0.2.9/32") {
		t.Errorf("LB routes %v", d.LBAddrs)
	}
	if tg, ok := d.Probes["c"]; !ok || tg.Port != 8080 || !tg.HTTP || tg.Addr != netip.MustParseAddr("10.0.0.4") || len(d.Probes) != 1 {
		t.Errorf("probes %+v", d.Probes)
	}
	if len(d.DNS) != 2 || !d.DNS[1].Headless || len(d.DNS[1].Endpoints) != 2 {
		t.Errorf("DNS %+v", d.DNS)
	}
}
