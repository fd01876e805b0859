package cli

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	v1 "github.com/knit-net/knit/api/v1"
)

func ago(d time.Duration) time.Time { return testNow.Add(-d) }

func port(p int32) v1.ServicePort {
	return v1.ServicePort{Port: p, Protocol: "TCP", TargetPort: v1.IntOrString{Int: 8080}}
}

// fixtures: one service of each kind, as knitd returns them.
func fixtures() []v1.Service {
	meta := func(name, ns string, age time.Duration) v1.ObjectMeta {
		return v1.ObjectMeta{Name: name, Namespace: ns, CreationTimestamp: ago(age)}
	}
	np := port(80)
	np.NodePort = 30080
	dns := v1.ServicePort{Name: "dns", Port: 53, Protocol: "UDP", TargetPort: v1.IntOrString{Int: 53}}
	return []v1.Service{
		{Metadata: meta("backend", "default", 5*time.Second), Spec: v1.ServiceSpec{Type: "ClusterIP", ClusterIP: "10.96.0.10", ClusterIPs: []string{"10.96.0.10"}, Selector: map[string]string{"app": "backend", "tier": "api"}, Ports: []v1.ServicePort{port(80)}}},
		{Metadata: meta("frontend", "default", 3*time.Minute), Spec: v1.ServiceSpec{Type: "NodePort", ClusterIP: "10.96.0.11", Selector: map[string]string{"app": "frontend"}, Ports: []v1.ServicePort{np, dns}}},
		{Metadata: meta("public", "web", 2*time.Hour), Spec: v1.ServiceSpec{Type: "LoadBalancer", ClusterIP: "10.96.0.12", Selector: map[string]string{"app": "web"}, Ports: []v1.ServicePort{{Port: 80, NodePort: 31000}}},
			Status: v1.ServiceStatus{LoadBalancer: v1.LoadBalancerStatus{Ingress: []v1.LoadBalancerIngress{{IP: "192.168.100.240"}, {IP: "192.168.100.241"}}}}},
		{Metadata: meta("pending", "web", 4*24*time.Hour), Spec: v1.ServiceSpec{Type: "LoadBalancer", ClusterIP: "10.96.0.13", Ports: []v1.ServicePort{port(443)}}},
		{Metadata: meta("external-api", "web", 90*time.Second), Spec: v1.ServiceSpec{Type: "ExternalName", ExternalName: "api.external.com"}},
		{Metadata: meta("db", "web", 0), Spec: v1.ServiceSpec{ClusterIP: "None", Selector: map[string]string{"app": "db"}}},
	}
}

func tableString(header []string, rows [][]string) string {
	var b bytes.Buffer
	(&app{stdout: &b}).table(header, rows)
	return b.String()
}

func TestServiceTable(t *testing.T) {
	got := tableString(serviceTable(fixtures(), false, false, testNow))
	want := `NAME           TYPE           CLUSTER-IP   EXTERNAL-IP        PORT(S)               AGE
backend        ClusterIP      10.96.0.10   <none>             80/TCP                5s
frontend       NodePort       10.96.0.11   <none>             80:30080/TCP,53/UDP   3m
public         LoadBalancer   10.96.0.12   192.168.100.2...   80:31000/TCP          120m
pending        LoadBalancer   10.96.0.13   <pending>          443/TCP               4d
external-api   ExternalName   <none>       api.external.com   <none>                90s
db             ClusterIP      None         <none>             <none>                0s
`
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	got = tableString(serviceTable(fixtures()[1:3], true, true, testNow))
	want = `NAMESPACE   NAME       TYPE           CLUSTER-IP   EXTERNAL-IP                       PORT(S)               AGE    SELECTOR
default     frontend   NodePort       10.96.0.11   <none>                            80:30080/TCP,53/UDP   3m     app=frontend
web         public     LoadBalancer   10.96.0.12   192.168.100.240,192.168.100.241   80:31000/TCP          120m   app=web
`
	if got != want {
		t.Errorf("wide -A got:\n%s\nwant:\n%s", got, want)
	}
}

func TestAge(t *testing.T) {
	for d, want := range map[time.Duration]string{
		5 * time.Second: "5s", 3*time.Minute + 20*time.Second: "3m20s", 30 * time.Minute: "30m",
		5 * time.Hour: "5h", 20 * time.Hour: "20h", 4 * 24 * time.Hour: "4d", 400 * 24 * time.Hour: "400d",
	} {
		if got := age(ago(d), testNow); got != want {
			t.Errorf("age(%s) = %q, want %q", d, got, want)
		}
	}
	if got := age(time.Time{}, testNow); got != "<unknown>" {
		t.Errorf("zero time: %q", got)
	}
}

func TestGetServices(t *testing.T) {
	svcs := fixtures()
	f := newFakeKnitd(t, map[string]answer{
		"GET /v1/services?namespace=default": {200, svcs[:2]},
		"GET /v1/services?namespace=empty":   {200, []v1.Service{}},
		"GET /v1/services":                   {200, []v1.Service{svcs[2], svcs[0]}},
		"GET /v1/services/default/backend":   {200, v1.ServiceDetail{Service: svcs[0]}},
		"GET /v1/services/default/nope":      notFound(`service "default/nope" not found`),
	})
	r := knit(t, f.socket, "", "get", "svc")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "NAME       TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)               AGE\nbackend    ClusterIP") {
		t.Errorf("get svc: %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = knit(t, f.socket, "", "get", "services", "-A")
	if r.code != 0 || !strings.Contains(r.stdout, "NAMESPACE   NAME") || strings.Index(r.stdout, "default") > strings.Index(r.stdout, "web ") {
		t.Errorf("get services -A (sorted by namespace): %q", r.stdout)
	}
	r = knit(t, f.socket, "", "get", "svc", "-n", "empty")
	if r.code != 0 || r.stdout != "" || r.stderr != "No resources found in empty namespace.\n" {
		t.Errorf("empty: %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = knit(t, f.socket, "", "get", "svc", "backend", "nope")
	if r.code != 1 || !strings.Contains(r.stdout, "backend ") || r.stderr != "Error from server (NotFound): services \"nope\" not found\n" {
		t.Errorf("one missing: %d %q %q", r.code, r.stdout, r.stderr)
	}

	// -o yaml of one service is the object, knit's v1.Service.
	r = knit(t, f.socket, "", "get", "service/backend", "-o", "yaml")
	var one v1.Service
	if err := yaml.UnmarshalStrict([]byte(r.stdout), &one); err != nil || one.Metadata.Name != "backend" || one.Spec.Ports[0].TargetPort.Int != 8080 {
		t.Errorf("-o yaml: %v\n%s", err, r.stdout)
	}
	if !strings.Contains(r.stdout, "\nspec:\n  clusterIP: 10.96.0.10\n") {
		t.Errorf("-o yaml is not kubectl-like YAML:\n%s", r.stdout)
	}
	// a list is kind List.
	r = knit(t, f.socket, "", "get", "svc", "-o", "json")
	var list struct {
		APIVersion, Kind string
		Items            []v1.Service
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || list.Kind != "List" || list.APIVersion != "v1" || len(list.Items) != 2 {
		t.Errorf("-o json: %v\n%s", err, r.stdout)
	}
	r = knit(t, f.socket, "", "get", "svc", "-o", "name")
	if r.stdout != "service/backend\nservice/frontend\n" {
		t.Errorf("-o name: %q", r.stdout)
	}

	for _, args := range [][]string{{"get", "svc", "-o", "xml"}, {"ps", "-o", "wide"}} {
		if r := knit(t, f.socket, "", args...); r.code != 1 || !strings.Contains(r.stderr, "unknown output format") {
			t.Errorf("%q: %d %q", args, r.code, r.stderr)
		}
	}
	if r := knit(t, f.socket, "", "get", "pods"); r.code != 1 || !strings.Contains(r.stderr, `the server doesn't have a resource type "pods"; use services, endpoints, networkpolicies or namespaces`) {
		t.Errorf("get pods: %q", r.stderr)
	}
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func backendDetail() v1.ServiceDetail {
	s := fixtures()[0]
	s.Metadata.Labels = map[string]string{"app": "backend", "team": "core"}
	s.Metadata.Annotations = map[string]string{"owner": "ops", lastApplied: "{}"}
	s.Spec.IPFamilies = []string{"IPv4"}
	s.Spec.IPFamilyPolicy = "SingleStack"
	s.Spec.SessionAffinity = "ClientIP"
	s.Spec.Ports = []v1.ServicePort{
		{Name: "http", Port: 80, Protocol: "TCP", TargetPort: v1.IntOrString{Str: "web", IsStr: true}},
		{Name: "metrics", Port: 9090, Protocol: "TCP"},
	}
	ep := func(name string, ready bool, ip string, ports ...v1.EndpointPort) v1.ServiceEndpoint {
		return v1.ServiceEndpoint{Container: name, Addresses: addrs(ip), Ready: ready, Ports: ports}
	}
	http := func(p uint16) v1.EndpointPort { return v1.EndpointPort{Name: "http", Protocol: "tcp", Port: p} }
	metrics := v1.EndpointPort{Name: "metrics", Protocol: "tcp", Port: 9090}
	return v1.ServiceDetail{Service: s, Endpoints: []v1.ServiceEndpoint{
		ep("b1", true, "172.18.0.2", http(8080), metrics),
		ep("b2", true, "172.18.0.3", http(8081), metrics),
		ep("b3", false, "172.18.0.4", http(8080), metrics),
		ep("b4", true, "172.18.0.5", metrics), // no port named web
		{Container: "b5", Addresses: addrs("172.18.0.6", "fd00::6"), Ready: true, Ports: []v1.EndpointPort{http(8080)}},
	}}
}

func TestDescribeService(t *testing.T) {
	var b bytes.Buffer
	d := backendDetail()
	describeService(&b, &d)
	want := `Name:                 backend
Namespace:            default
Labels:               app=backend
                      team=core
Annotations:          owner: ops
Selector:             app=backend,tier=api
Type:                 ClusterIP
IP Family Policy:     SingleStack
IP Families:          IPv4
IP:                   10.96.0.10
IPs:                  10.96.0.10
Port:                 http  80/TCP
TargetPort:           web/TCP
Endpoints:            172.18.0.2:8080,172.18.0.3:8081,172.18.0.6:8080,[fd00::6]:8080
Not Ready Endpoints:  172.18.0.4:8080
Port:                 metrics  9090/TCP
TargetPort:           9090/TCP
Endpoints:            172.18.0.2:9090,172.18.0.3:9090,172.18.0.5:9090
Not Ready Endpoints:  172.18.0.4:9090
Session Affinity:     ClientIP
Events:               <none>
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}

	b.Reset()
	ext := v1.ServiceDetail{Service: fixtures()[4]}
	describeService(&b, &ext)
	want = `Name:              external-api
Namespace:         web
Labels:            <none>
Annotations:       <none>
Selector:          <none>
Type:              ExternalName
IP Families:       <none>
IP:                
IPs:               <none>
External Name:     api.external.com
Session Affinity:  None
Events:            <none>
`
	if b.String() != want {
		t.Errorf("ExternalName got:\n%s\nwant:\n%s", b.String(), want)
	}

	b.Reset()
	lb := v1.ServiceDetail{Service: fixtures()[2]}
	describeService(&b, &lb)
	for _, line := range []string{"LoadBalancer Ingress:  192.168.100.240, 192.168.100.241\n", "Port:                  <unset>  80/TCP\n", "TargetPort:            80/TCP\n", "NodePort:              <unset>  31000/TCP\n", "Endpoints:             <none>\n"} {
		if !strings.Contains(b.String(), line) {
			t.Errorf("LoadBalancer: no %q in\n%s", line, b.String())
		}
	}
}

func TestGetEndpointsAndDescribe(t *testing.T) {
	d := backendDetail()
	svcs := fixtures()
	f := newFakeKnitd(t, map[string]answer{
		"GET /v1/services?namespace=default": {200, svcs[:2]},
		"GET /v1/services/default/backend":   {200, d},
		"GET /v1/services/default/frontend":  {200, v1.ServiceDetail{Service: svcs[1]}},
		"GET /v1/services/web/external-api":  {200, v1.ServiceDetail{Service: svcs[4]}},
		"GET /v1/services/default/missing":   notFound("no"),
		"GET /v1/services?namespace=nothing": {200, []v1.Service{}},
	})
	r := knit(t, f.socket, "", "get", "endpoints")
	want := `NAME       ENDPOINTS                                                     AGE
backend    172.18.0.2:8080,172.18.0.3:8081,172.18.0.6:8080 + 4 more...   5s
frontend   <none>                                                        3m
`
	if r.code != 0 || r.stdout != want {
		t.Errorf("get endpoints: %d %q\n%s\nwant:\n%s", r.code, r.stderr, r.stdout, want)
	}
	r = knit(t, f.socket, "", "get", "ep", "external-api", "-n", "web")
	if r.code != 1 || r.stderr != "Error from server (NotFound): endpoints \"external-api\" not found\n" {
		t.Errorf("endpoints of a service without selector: %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = knit(t, f.socket, "", "get", "ep", "backend", "-o", "yaml")
	var ep struct {
		Kind    string
		Subsets []struct {
			Addresses         []struct{ IP string }
			NotReadyAddresses []struct{ IP string }
			Ports             []struct {
				Name string
				Port int
			}
		}
	}
	if err := yaml.Unmarshal([]byte(r.stdout), &ep); err != nil || ep.Kind != "Endpoints" || len(ep.Subsets) != 4 ||
		len(ep.Subsets[0].Addresses) != 1 || len(ep.Subsets[0].NotReadyAddresses) != 1 || len(ep.Subsets[3].Addresses) != 2 {
		t.Errorf("-o yaml: %v\n%s", err, r.stdout)
	}

	r = knit(t, f.socket, "", "describe", "svc", "backend", "missing")
	if r.code != 1 || !strings.HasPrefix(r.stdout, "Name:                 backend\n") || r.stderr != "Error from server (NotFound): services \"missing\" not found\n" {
		t.Errorf("describe: %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = knit(t, f.socket, "", "describe", "services")
	if r.code != 0 || strings.Count(r.stdout, "Name:") != 2 || !strings.Contains(r.stdout, "Events:               <none>\n\n\nName:              frontend\n") {
		t.Errorf("describe all: %d %q\n%s", r.code, r.stderr, r.stdout)
	}
	r = knit(t, f.socket, "", "describe", "svc", "-n", "nothing")
	if r.code != 0 || r.stderr != "No resources found in nothing namespace.\n" {
		t.Errorf("describe none: %d %q %q", r.code, r.stdout, r.stderr)
	}
}

func TestGetEdgeCases(t *testing.T) {
	// knitd unreachable: one error, no "No resources found".
	r := knit(t, "", "", "get", "svc")
	if r.code != 1 || r.stdout != "" || !strings.HasPrefix(r.stderr, "knit: cannot reach knitd at ") || strings.Contains(r.stderr, "No resources") {
		t.Errorf("unreachable: %d %q %q", r.code, r.stdout, r.stderr)
	}
	f := newFakeKnitd(t, map[string]answer{
		"GET /v1/services/default/gone":    notFound("no"),
		"DELETE /v1/services/default/kept": {200, struct{}{}},
	})
	r = knit(t, f.socket, "", "get", "svc", "gone", "-o", "yaml")
	if r.code != 1 || r.stdout != "" || r.stderr != "Error from server (NotFound): services \"gone\" not found\n" {
		t.Errorf("-o yaml of a missing service: %d %q %q", r.code, r.stdout, r.stderr)
	}
	if r = knit(t, f.socket, "", "get", "svc", "gone", "-A"); r.code != 1 || !strings.Contains(r.stderr, "cannot be retrieved by name across all namespaces") {
		t.Errorf("-A with a name: %d %q", r.code, r.stderr)
	}
	if r = knit(t, f.socket, "", "delete", "svc", "kept", "-o", "name"); r.code != 0 || r.stdout != "service/kept\n" {
		t.Errorf("delete -o name: %d %q %q", r.code, r.stdout, r.stderr)
	}
	if r = knit(t, f.socket, "", "describe", "svc", "x", "-o", "json"); r.code != 1 || !strings.Contains(r.stderr, `-o "json": unknown output format; use table`) {
		t.Errorf("describe -o json: %d %q", r.code, r.stderr)
	}
}
