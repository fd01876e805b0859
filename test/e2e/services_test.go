package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/knit-net/knit/api/v1"
)

// Service tests: manifests from the seeds, applied with knit apply -f, and
// real connections to the virtual addresses from containers, the host and
// the outside namespace.

func seed(name string) string { return filepath.Join("testdata", "seed-"+name+".yaml") }

// manifest writes a manifest to a file and returns its path.
func (h *Host) manifest(name, yaml string) string {
	p := filepath.Join(h.dir, name+".yaml")
	must(h.t, os.WriteFile(p, []byte(yaml), 0o644))
	return p
}

func (h *Host) service(ns, name string) v1.ServiceDetail {
	h.t.Helper()
	var svcs []v1.Service
	must(h.t, json.Unmarshal([]byte(h.knit("get", "services", "-n", ns, "-o", "json")), &struct {
		Items *[]v1.Service `json:"items"`
	}{&svcs}))
	for _, s := range svcs {
		if s.Metadata.Name == name {
			return v1.ServiceDetail{Service: s}
		}
	}
	h.t.Fatalf("no service %s/%s in knit get services", ns, name)
	return v1.ServiceDetail{}
}

// dialN connects n times from a container and returns how many
// connections each backend (by host name) took; failures count under
// "FAIL".
func (h *Host) dialN(from, addr string, n int) map[string]int {
	h.t.Helper()
	out, _ := h.try("exec", from, "--", bins.probe, "dialn", addr+","+itoa(n))
	return tally(out)
}

func tally(out string) map[string]int {
	got := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			got[f[0]]++
		}
	}
	return got
}

// backends runs n containers labelled app=LABEL serving TCP 8080 (named
// "http") on the network; their host names are their names.
func (h *Host) backends(label, network string, names ...string) {
	for _, n := range names {
		h.knit("run", "-d", "--name", n, "--hostname", n, "--network", network, "--label", "app="+label,
			"--port", "http=8080/tcp", "--", bins.probe, "serve", "8080")
		h.waitLog(n, "listening")
	}
}

func keys(m map[string]int) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestServiceClusterIP(t *testing.T) {
	h := newHost(t)
	h.knit("network", "create", "app")
	h.knit("network", "create", "other")
	h.backends("backend", "app", "be1", "be2", "be3")
	h.serve("client", "--network", "other")

	out := h.knit("apply", "-f", seed("backend-service"))
	if strings.TrimSpace(out) != "service/backend-service created" {
		t.Errorf("apply: %q", out)
	}
	vip := h.service("default", "backend-service").Service.Spec.ClusterIP
	if a := net.ParseIP(vip); a == nil || !(&net.IPNet{IP: net.IP{10, 96, 0, 0}, Mask: net.CIDRMask(12, 32)}).Contains(a) {
		t.Fatalf("clusterIP %q is not in 10.96.0.0/12", vip)
	}

	// From a container on another network: every ready endpoint gets
	// connections, and nothing fails.
	got := h.dialN("client", vip+":80", 60)
	if !slices.Equal(keys(got), []string{"be1", "be2", "be3"}) {
		t.Errorf("60 connections to %s:80 from another network reached %v; want be1, be2 and be3 only", vip, got)
	}
	// By name, through the search list, and by the full name.
	for _, name := range []string{"backend-service", "backend-service.default", "backend-service.default.svc.cluster.local"} {
		if out, err := h.try("exec", "client", "--", bins.probe, "lookup", name); err != nil || strings.TrimSpace(out) != vip {
			t.Errorf("lookup %s in a container: %q %v; want %s", name, out, err, vip)
		}
	}
	if got := h.dialN("client", "backend-service:80", 6); got["FAIL"] > 0 {
		t.Errorf("dial backend-service:80 by name: %v", got)
	}
	// From the host itself, and hairpin: an endpoint reaching its own service.
	if out, ok := dialFrom(t, h.NS, "tcp", vip+":80"); !ok || !strings.HasPrefix(out, "be") {
		t.Errorf("host → %s:80: %q %v", vip, out, ok)
	}
	if got := h.dialN("be1", vip+":80", 30); got["FAIL"] > 0 || got["be1"] == 0 {
		t.Errorf("be1 → its own service 30 times: %v; want no failure and be1 among the backends (hairpin)", got)
	}
	// A port the service does not serve is refused at once, not dropped.
	start := time.Now()
	if got := h.dialN("client", vip+":81", 1); got["FAIL"] != 1 {
		t.Errorf("%s:81 answered: %v", vip, got)
	}
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Errorf("%s:81 took %v to fail; want a refusal, not a timeout", vip, d)
	}

	// Relabelling takes an endpoint out; stopping one takes it out.
	h.knit("label", "be1", "app-")
	h.knit("stop", "-t", "0", "be2")
	got = h.dialN("client", vip+":80", 20)
	if !slices.Equal(keys(got), []string{"be3"}) {
		t.Errorf("after relabelling be1 and stopping be2: %v; want be3 only", got)
	}
	h.knit("label", "be1", "app=backend")
	if got := h.dialN("client", vip+":80", 40); got["be1"] == 0 || got["be2"] > 0 || got["FAIL"] > 0 {
		t.Errorf("after labelling be1 again: %v; want be1 and be3", got)
	}

	// Re-applying is a no-op; a change updates in place, keeping the VIP.
	if out := h.knit("apply", "-f", seed("backend-service")); strings.TrimSpace(out) != "service/backend-service unchanged" {
		t.Errorf("re-apply: %q", out)
	}
	changed := strings.Replace(readFile(t, seed("backend-service")), "    - port: 80\n      targetPort: 8080",
		"    - port: 80\n      targetPort: 8080\n      name: web\n    - port: 8443\n      targetPort: http\n      name: alt", 1)
	if out := h.knit("apply", "-f", h.manifest("changed", changed)); strings.TrimSpace(out) != "service/backend-service configured" {
		t.Errorf("apply changed: %q", out)
	}
	if now := h.service("default", "backend-service").Service.Spec.ClusterIP; now != vip {
		t.Errorf("clusterIP moved from %s to %s on update", vip, now)
	}
	if got := h.dialN("client", vip+":8443", 10); got["FAIL"] > 0 {
		t.Errorf("new port 8443 → targetPort http: %v", got)
	}
	desc := h.knit("describe", "service", "backend-service")
	for _, want := range []string{"backend-service", "app=backend", vip, "8443/TCP"} {
		if !strings.Contains(desc, want) {
			t.Errorf("describe lacks %q:\n%s", want, desc)
		}
	}

	// Delete: the VIP stops answering and its address is free again.
	h.knit("delete", "service", "backend-service")
	if got := h.dialN("client", vip+":80", 1); got["FAIL"] != 1 {
		t.Errorf("deleted service still answers: %v", got)
	}
	if out := h.knit("get", "services"); strings.Contains(out, "backend-service") {
		t.Errorf("knit get services after delete:\n%s", out)
	}
}

func readFile(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	must(t, err)
	return string(b)
}

func TestServiceTypes(t *testing.T) {
	h := newHost(t)
	h.knit("network", "create", "app")
	h.backends("frontend", "app", "fe1", "fe2")
	h.backends("web", "app", "web1", "web2", "web3")
	h.serve("client", "--network", "app")
	h.knit("apply", "-f", seed("frontend-service"), "-f", seed("public-service"), "-f", seed("load-balanced-service"), "-f", seed("external-api"))

	// NodePort: the host's address from outside, keeping the client address.
	if out, ok := dialFrom(t, h.Outside, "tcp", h.UplinkIP+":30080"); !ok || !strings.HasPrefix(out, "fe") || !strings.Contains(out, "198.51.100.2:") {
		t.Errorf("outside → node port 30080: %q %v; want fe1 or fe2 seeing 198.51.100.2", out, ok)
	}
	get := h.knit("get", "services", "-o", "wide")
	if !strings.Contains(get, "80:30080/TCP") {
		t.Errorf("knit get services lacks 80:30080/TCP:\n%s", get)
	}

	// LoadBalancer: an address from the pool, answering from outside.
	lb := h.service("default", "public-service").Service.Status.LoadBalancer.Ingress
	if len(lb) != 1 || !strings.HasPrefix(lb[0].IP, "198.51.100.2") {
		t.Fatalf("public-service ingress %v; want one address from --lb-pool 198.51.100.200/29", lb)
	}
	seen := map[string]bool{}
	for range 30 {
		out, ok := dialFrom(t, h.Outside, "tcp", lb[0].IP+":80")
		if !ok {
			t.Fatalf("outside → LoadBalancer %s:80 failed", lb[0].IP)
		}
		seen[strings.Fields(out)[0]] = true
	}
	if len(seen) != 3 {
		t.Errorf("30 connections to the LoadBalancer reached %v; want web1..3", seen)
	}

	// ClientIP affinity: one client stays on one backend.
	alb := h.service("default", "load-balanced-service").Service
	vip := alb.Spec.ClusterIP
	got := h.dialN("client", vip+":80", 30)
	if len(got) != 1 || got["FAIL"] > 0 {
		t.Errorf("ClientIP affinity: 30 connections from one client reached %v; want a single backend", got)
	}
	lbIP := alb.Status.LoadBalancer.Ingress[0].IP
	first := ""
	for range 10 {
		out, ok := dialFrom(t, h.Outside, "tcp", lbIP+":80")
		if !ok {
			t.Fatalf("outside → %s:80 failed", lbIP)
		}
		if w := strings.Fields(out)[0]; first == "" {
			first = w
		} else if w != first {
			t.Errorf("ClientIP affinity from outside: %s then %s", first, w)
		}
	}
	// The chosen backend going away moves the client, once.
	var chosen string
	for k := range got {
		chosen = k
	}
	h.knit("stop", "-t", "0", chosen)
	again := h.dialN("client", vip+":80", 10)
	if len(again) != 1 || again["FAIL"] > 0 || again[chosen] > 0 {
		t.Errorf("after stopping %s: %v; want one other backend", chosen, again)
	}

	// ExternalName: a CNAME.
	out, _ := h.try("exec", "client", "--", bins.probe, "resolve", "external-api.default.svc.cluster.local/CNAME")
	if !strings.Contains(out, "CNAME api.external.com.") {
		t.Errorf("external-api CNAME: %q", out)
	}
}

func TestServiceHeadlessAndDNS(t *testing.T) {
	h := newHost(t)
	h.knit("network", "create", "app")
	h.backends("db", "app", "db1", "db2")
	h.serve("client", "--network", "app")
	h.knit("apply", "-f", h.manifest("db", `apiVersion: v1
kind: Service
metadata:
  name: db
  namespace: default
spec:
  clusterIP: None
  selector:
    app: db
  ports:
    - name: pg
      port: 5432
      targetPort: http
---
apiVersion: v1
kind: Service
metadata:
  name: cache
spec:
  selector:
    app: db
  ports:
    - name: redis
      port: 6379
      protocol: TCP
      targetPort: 8080
`))
	want := []string{h.ip("db1", "app"), h.ip("db2", "app")}
	slices.Sort(want)
	if out, _ := h.try("exec", "client", "--", bins.probe, "lookup", "db"); strings.Fields(out) == nil || !slices.Equal(strings.Fields(out), want) {
		t.Errorf("headless db: %q; want %v", out, want)
	}
	if out, _ := h.try("exec", "client", "--", bins.probe, "resolve", "db1.db.default.svc.cluster.local"); !strings.Contains(out, "A "+h.ip("db1", "app")) {
		t.Errorf("db1.db.default.svc.cluster.local: %q", out)
	}
	out, _ := h.try("exec", "client", "--", bins.probe, "resolve", "_pg._tcp.db.default.svc.cluster.local/SRV")
	if !strings.Contains(out, "8080 db1.db.default.svc.cluster.local.") || !strings.Contains(out, "8080 db2.db.default.svc.cluster.local.") {
		t.Errorf("headless SRV: %q", out)
	}
	cache := h.service("default", "cache").Service.Spec.ClusterIP
	out, _ = h.try("exec", "client", "--", bins.probe, "resolve", "_redis._tcp.CACHE.default.svc.cluster.local/SRV")
	if !strings.Contains(out, "6379 cache.default.svc.cluster.local.") {
		t.Errorf("SRV of cache: %q", out)
	}
	out, _ = h.try("exec", "client", "--", bins.probe, "resolve", cache+"/PTR")
	if !strings.Contains(out, "PTR cache.default.svc.cluster.local.") {
		t.Errorf("PTR of %s: %q", cache, out)
	}
	out, _ = h.try("exec", "client", "--", bins.probe, "resolve", "nothing.default.svc.cluster.local")
	if !strings.HasPrefix(out, "NXDOMAIN") {
		t.Errorf("unknown service: %q; want NXDOMAIN", out)
	}
}

func TestServiceReadiness(t *testing.T) {
	h := newHost(t)
	h.knit("network", "create", "app")
	dir := t.TempDir()
	for _, n := range []string{"r1", "r2"} {
		ready := filepath.Join(dir, n)
		must(t, os.WriteFile(ready, nil, 0o644))
		h.knit("run", "-d", "--name", n, "--hostname", n, "--network", "app", "--label", "app=r",
			"--readiness", "http:8081/healthz", "--", bins.probe, "readyserve", "8080,8081,"+ready)
		h.waitLog(n, "listening")
	}
	h.serve("client", "--network", "app")
	h.knit("apply", "-f", h.manifest("r", "apiVersion: v1\nkind: Service\nmetadata:\n  name: r\nspec:\n  selector:\n    app: r\n  ports:\n  - port: 80\n    targetPort: 8080\n"))
	vip := h.service("default", "r").Service.Spec.ClusterIP
	if !eventually(t, 20*time.Second, "both ready endpoints to serve", func() error {
		if got := h.dialN("client", vip+":80", 20); len(got) != 2 {
			return fmt.Errorf("20 connections reached %v", got)
		}
		return nil
	}) {
		t.FailNow()
	}
	// r1 fails its probe: out of the load balancer within a second. The
	// 3 s deadline is part of what is tested (the README promises a second).
	must(t, os.Remove(filepath.Join(dir, "r1")))
	start := time.Now()
	if !eventually(t, 3*time.Second, "r1 to leave the load balancer after failing its probe", func() error {
		if got := h.dialN("client", vip+":80", 10); keys(got)[0] != "r2" || len(h.dialN("client", vip+":80", 10)) != 1 {
			return fmt.Errorf("10 connections reached %v", got)
		}
		return nil
	}) {
		t.FailNow()
	}
	t.Logf("endpoint left the load balancer %v after its probe started failing", time.Since(start).Round(10*time.Millisecond))
	if got := h.dialN("client", vip+":80", 20); got["r1"] > 0 {
		t.Errorf("not-ready r1 got traffic: %v", got)
	}
	desc := h.knit("describe", "service", "r")
	if !strings.Contains(desc, "NotReadyAddresses") && !strings.Contains(desc, "not ready") {
		t.Logf("describe (for information):\n%s", desc)
	}
	must(t, os.WriteFile(filepath.Join(dir, "r1"), nil, 0o644))
	eventually(t, 3*time.Second, "r1 to come back after passing its probe again", func() error {
		if got := h.dialN("client", vip+":80", 20); got["r1"] == 0 {
			return fmt.Errorf("20 connections reached %v", got)
		}
		return nil
	})
	// No endpoints at all: refused at once.
	h.knit("apply", "-f", h.manifest("empty", "apiVersion: v1\nkind: Service\nmetadata:\n  name: empty\nspec:\n  selector:\n    app: nobody\n  ports:\n  - port: 80\n"))
	empty := h.service("default", "empty").Service.Spec.ClusterIP
	start = time.Now()
	out, _ := h.try("exec", "client", "--", bins.probe, "dialn", empty+":80,1")
	if !strings.Contains(out, "refused") || time.Since(start) > 900*time.Millisecond {
		t.Errorf("service without endpoints: %q after %v; want connection refused at once", out, time.Since(start))
	}
}

func TestServiceUDPAndNamespaces(t *testing.T) {
	h := newHost(t)
	h.knit("network", "create", "app")
	for _, n := range []string{"u1", "u2"} {
		h.knit("run", "-d", "--name", n, "--hostname", n, "--network", "app", "--namespace", "prod", "--label", "app=dns",
			"--", bins.probe, "udpserve", "5353")
		h.waitLog(n, "listening")
	}
	// Same label in another namespace: not selected.
	h.knit("run", "-d", "--name", "u3", "--hostname", "u3", "--network", "app", "--label", "app=dns", "--", bins.probe, "udpserve", "5353")
	h.waitLog("u3", "listening")
	h.knit("run", "-d", "--name", "client", "--namespace", "prod", "--network", "app", "--", bins.probe, "serve", "8080")
	h.waitLog("client", "listening")
	h.knit("apply", "-n", "prod", "-f", h.manifest("u", "apiVersion: v1\nkind: Service\nmetadata:\n  name: udp\nspec:\n  selector:\n    app: dns\n  ports:\n  - port: 53\n    protocol: UDP\n    targetPort: 5353\n"))
	got := h.dialN("client", "udp:udp:53", 30) // "udp" resolves via prod.svc.cluster.local
	if !slices.Equal(keys(got), []string{"u1", "u2"}) {
		t.Errorf("UDP service in namespace prod by short name: %v; want u1 and u2", got)
	}
	if out := h.knit("get", "services", "-A"); !strings.Contains(out, "prod") {
		t.Errorf("get services -A lacks namespace prod:\n%s", out)
	}
}

func TestServiceBadInput(t *testing.T) {
	h := newHost(t)
	h.knit("apply", "-f", seed("frontend-service"))
	h.knit("apply", "-f", h.manifest("fixed", "apiVersion: v1\nkind: Service\nmetadata:\n  name: fixed\nspec:\n  clusterIP: 10.96.0.100\n  ports:\n  - port: 80\n"))
	before := h.knit("get", "services", "-A", "-o", "json")
	cases := []struct{ name, yaml, want string }{
		{"kind", "apiVersion: v1\nkind: Servise\nmetadata:\n  name: x\n", "Servise"},
		{"apiversion", "apiVersion: v2\nkind: Service\nmetadata:\n  name: x\n", "v2"},
		{"port range", "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  ports:\n  - port: 70000\n", "spec.ports[0].port"},
		{"duplicate names", "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  ports:\n  - name: a\n    port: 1\n  - name: a\n    port: 2\n", "spec.ports[1].name"},
		{"outside range", "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  clusterIP: 192.168.0.1\n  ports:\n  - port: 80\n", "10.96.0.0/12"},
		{"taken", "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  clusterIP: 10.96.0.100\n  ports:\n  - port: 80\n", "already allocated"},
		{"selector", "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  selector:\n    \"bad key!\": x\n  ports:\n  - port: 80\n", "spec.selector"},
		{"node port used", "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  type: NodePort\n  ports:\n  - port: 80\n    nodePort: 30080\n", "spec.ports[0].nodePort"},
		{"node port range", "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  type: NodePort\n  ports:\n  - port: 80\n    nodePort: 80\n", "30000-32767"},
		{"typo field", "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  portz: []\n", "portz"},
		// A good object beside a bad one: neither is applied.
		{"all or nothing", "apiVersion: v1\nkind: Service\nmetadata:\n  name: good\nspec:\n  ports:\n  - port: 80\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  ports:\n  - port: 0\n", "spec.ports[0].port"},
	}
	for _, c := range cases {
		out, err := h.try("apply", "-f", h.manifest("bad", c.yaml))
		if err == nil {
			t.Errorf("%s: apply succeeded: %s", c.name, out)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q does not name %q", c.name, err, c.want)
		}
	}
	// A host port published by a container is a taken node port too.
	h.knit("network", "create", "app")
	h.knit("run", "-d", "--name", "p", "--network", "app", "-p", "30500:8080", "--", bins.probe, "serve", "8080")
	if _, err := h.try("apply", "-f", h.manifest("np", "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  type: NodePort\n  ports:\n  - port: 80\n    nodePort: 30500\n")); err == nil || !strings.Contains(err.Error(), `container "p"`) {
		t.Errorf("node port held by a published port: %v", err)
	}
	if _, err := h.try("run", "-d", "--name", "q", "--network", "app", "-p", "30080:8080", "--", bins.probe, "serve", "8080"); err == nil || !strings.Contains(err.Error(), "service default/frontend-service") {
		t.Errorf("publishing a service's node port: %v", err)
	}
	if after := h.knit("get", "services", "-A", "-o", "json"); after != before {
		t.Errorf("bad input changed the services:\nbefore %s\nafter %s", before, after)
	}
}

// A connection through a service survives kill -9 of knitd, and after the
// restart the service keeps its address, its endpoints and its DNS name.
func TestServiceSurvivesRestart(t *testing.T) {
	h := newHost(t)
	h.knit("network", "create", "app")
	h.backends("backend", "app", "be1", "be2")
	h.knit("apply", "-f", seed("backend-service"))
	vip := h.service("default", "backend-service").Service.Spec.ClusterIP
	h.knit("run", "-d", "--name", "client", "--network", "app", "--", bins.probe, "hold", vip+":80")
	h.waitLog("client", "ok 10")
	id := h.container("client").ID

	h.killKnitd()
	if !eventually(t, 10*time.Second, "the connection to carry traffic while knitd is down", h.holdAdvances(id)) {
		t.FailNow()
	}
	h.startKnitd()
	mark := strings.Count(h.knit("logs", "client"), "ok ")
	eventually(t, 10*time.Second, "the connection to carry traffic after the restart", h.holdAdvances(id))
	if logs := h.knit("logs", "client"); strings.Contains(logs, "FAIL") || strings.Count(logs, "ok ") <= mark {
		t.Fatalf("the connection through %s broke across the knitd restart:\n%s", vip, logs)
	}
	if now := h.service("default", "backend-service").Service.Spec.ClusterIP; now != vip {
		t.Errorf("clusterIP %s became %s", vip, now)
	}
	h.serve("c2", "--network", "app")
	if got := h.dialN("c2", "backend-service:80", 20); !slices.Equal(keys(got), []string{"be1", "be2"}) {
		t.Errorf("after the restart: %v; want be1 and be2", got)
	}
}
