package endpoints

import (
	"net/netip"
	"strings"
	"testing"

	v1 "github.com/knit-net/knit/api/v1"
)

func ctr(name, ns, addr string, labels map[string]string, mut func(*v1.Container)) v1.Container {
	c := v1.Container{ID: name + "0123456789ab", Name: name, Namespace: ns, Labels: labels, NetworkMode: v1.DriverBridge,
		Status: v1.ContainerStatus{State: v1.StateRunning}}
	if addr != "" {
		c.Endpoints = []v1.Endpoint{{Addresses: []netip.Prefix{netip.MustParsePrefix(addr + "/24")}}}
	}
	if mut != nil {
		mut(&c)
	}
	return c
}

func TestEndpoints(t *testing.T) {
	web := map[string]string{"app": "web", "tier": "front"}
	cs := []v1.Container{
		ctr("a", "", "10.0.0.2", web, func(c *v1.Container) {
			c.ContainerPorts = []v1.ContainerPort{{Name: "http", Port: 8080, Protocol: "tcp"}}
		}),
		ctr("b", "default", "10.0.0.3", map[string]string{"app": "web"}, nil),
		ctr("c", "prod", "10.0.0.4", web, nil),                               // other namespace
		ctr("d", "default", "10.0.0.5", map[string]string{"app": "db"}, nil), // other labels
		ctr("e", "default", "10.0.0.6", web, func(c *v1.Container) { c.Status.State = v1.StateExited }),
		ctr("f", "default", "10.0.0.7", web, func(c *v1.Container) { c.Readiness = &v1.Probe{Type: "tcp", Port: "80"} }),
		ctr("g", "default", "", web, func(c *v1.Container) { c.NetworkMode = "container:a" }), // shares a's namespace
		ctr("h", "default", "", web, func(c *v1.Container) { c.NetworkMode = v1.DriverHost }), // no address of its own
		ctr("i", "default", "10.0.0.9", web, func(c *v1.Container) { c.Deleting = true }),
	}
	ix := NewIndex(cs)
	svc := &v1.Service{Metadata: v1.ObjectMeta{Name: "s", Namespace: "default"}, Spec: v1.ServiceSpec{
		Selector: map[string]string{"app": "web", "tier": "front"},
		Ports: []v1.ServicePort{
			{Name: "num", Port: 80, Protocol: "TCP", TargetPort: v1.IntOrString{Int: 8000}},
			{Name: "named", Port: 81, Protocol: "TCP", TargetPort: v1.IntOrString{IsStr: true, Str: "http"}},
			{Name: "udp", Port: 82, Protocol: "UDP", TargetPort: v1.IntOrString{IsStr: true, Str: "http"}},
		},
	}}
	eps := ix.Endpoints(svc)
	got := map[string]v1.ServiceEndpoint{}
	var order []string
	for _, ep := range eps {
		got[ep.Container] = ep
		order = append(order, ep.Container)
	}
	if want := "a e f g"; strings.Join(order, " ") != want {
		t.Fatalf("endpoints %v; want %s", order, want)
	}
	if !got["a"].Ready || got["e"].Ready || got["f"].Ready || !got["g"].Ready {
		t.Errorf("readiness: %+v", eps)
	}
	if a := got["a"]; len(a.Ports) != 2 || a.Ports[0].Port != 8000 || a.Ports[1].Port != 8080 {
		t.Errorf("a's ports %+v; want 8000 and 8080 (http/tcp), no UDP port", a.Ports)
	}
	if f := got["f"]; len(f.Ports) != 1 || f.Ports[0].Port != 8000 {
		t.Errorf("f without named ports: %+v", f.Ports)
	}
	if g := got["g"]; len(g.Addresses) != 1 || g.Addresses[0].String() != "10.0.0.2" {
		t.Errorf("g shares a's namespace: %+v", g)
	}
	if ix.Endpoints(&v1.Service{Metadata: v1.ObjectMeta{Namespace: "default"}}) != nil {
		t.Errorf("a service without selector got endpoints")
	}
	f := cs[5]
	f.Status.Ready = true
	if !Ready(&f) {
		t.Errorf("a container passing its probe is not ready")
	}
}
