package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	v1 "github.com/knit-net/knit/api/v1"
	"github.com/knit-net/knit/internal/manifest"
)

const policyDir = "../manifest/testdata/policies"

// The Kubernetes documentation's NetworkPolicy example.
const docsPolicy = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: test-network-policy
  namespace: default
spec:
  podSelector:
    matchLabels:
      role: db
  policyTypes:
  - Ingress
  - Egress
  ingress:
  - from:
    - ipBlock:
        cidr: 172.17.0.0/16
        except:
        - 172.17.1.0/24
    - namespaceSelector:
        matchLabels:
          project: myproject
    - podSelector:
        matchLabels:
          role: frontend
    ports:
    - protocol: TCP
      port: 6379
  egress:
  - to:
    - ipBlock:
        cidr: 10.0.0.0/24
    ports:
    - protocol: TCP
      port: 5978
`

// parsePolicy reads one policy as knitd stores it: validated, created at
// testNow - created.
func parsePolicy(t *testing.T, doc string, created time.Duration) v1.NetworkPolicy {
	t.Helper()
	objs, err := manifest.Parse("p.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	p := *objs[0].NetworkPolicy
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	p.Metadata.CreationTimestamp = ago(created)
	return p
}

func seedPolicies(t *testing.T) []v1.NetworkPolicy {
	t.Helper()
	var out []v1.NetworkPolicy
	for i, f := range []string{"policy-allow-frontend-to-backend.yaml", "policy-default-deny-all.yaml", "policy-micro-segmentation.yaml"} {
		b, err := os.ReadFile(filepath.Join(policyDir, f))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, parsePolicy(t, string(b), time.Duration(i+1)*time.Minute))
	}
	return out
}

func TestApplyWithPolicies(t *testing.T) {
	res := v1.ApplyResult{Objects: []v1.AppliedObject{
		{Kind: "Service", Namespace: "prod", Name: "backend-service", Action: v1.ApplyCreated},
		{Kind: "NetworkPolicy", Namespace: "prod", Name: "allow-external-web", Action: v1.ApplyCreated},
		{Kind: "NetworkPolicy", Namespace: "prod", Name: "allow-frontend-to-backend", Action: v1.ApplyConfigured},
		{Kind: "NetworkPolicy", Namespace: "prod", Name: "default-deny-all", Action: v1.ApplyUnchanged},
		{Kind: "NetworkPolicy", Namespace: "prod", Name: "micro-segmentation", Action: v1.ApplyCreated},
	}}
	f := newFakeKnitd(t, map[string]answer{"POST /v1/apply": {200, res}})
	r := knit(t, f.socket, "", "apply", "-f", filepath.Join(seedDir, "backend-service.yaml"), "-f", policyDir, "-n", "prod")
	want := `service/backend-service created
networkpolicy.networking.k8s.io/allow-external-web created
networkpolicy.networking.k8s.io/allow-frontend-to-backend configured
networkpolicy.networking.k8s.io/default-deny-all unchanged
networkpolicy.networking.k8s.io/micro-segmentation created
`
	if r.code != 0 || r.stdout != want {
		t.Fatalf("exit %d stderr %q stdout:\n%s\nwant:\n%s", r.code, r.stderr, r.stdout, want)
	}
	reqs := f.requests()
	if len(reqs) != 1 {
		t.Fatalf("requests: %+v", reqs)
	}
	var got v1.ApplyRequest
	if err := json.Unmarshal(reqs[0].Body, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Services) != 1 || len(got.NetworkPolicies) != 4 {
		t.Fatalf("request: %s", reqs[0].Body)
	}
	var names []string
	for _, p := range got.NetworkPolicies {
		names = append(names, p.Metadata.Name)
		if p.Metadata.Namespace != "prod" || p.APIVersion != "networking.k8s.io/v1" || p.Kind != "NetworkPolicy" || len(p.Spec.PolicyTypes) == 0 {
			t.Errorf("policy %+v", p)
		}
	}
	if strings.Join(names, ",") != "allow-external-web,allow-frontend-to-backend,default-deny-all,micro-segmentation" {
		t.Errorf("policies %q", names)
	}
	if pp := got.NetworkPolicies[1].Spec.Ingress[0]; pp.Ports[0].Port.Int != 8080 || pp.Ports[0].Protocol != "TCP" || pp.From[0].PodSelector.MatchLabels["app"] != "frontend" {
		t.Errorf("allow-frontend-to-backend: %+v", pp)
	}

	r = knit(t, f.socket, "", "apply", "-f", policyDir, "-o", "name", "-n", "prod")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "service/backend-service\nnetworkpolicy.networking.k8s.io/allow-external-web\n") {
		t.Errorf("-o name: %d %q %q", r.code, r.stdout, r.stderr)
	}
}

func TestGetNetworkPolicies(t *testing.T) {
	ps := seedPolicies(t)
	other := parsePolicy(t, docsPolicy, 5*24*time.Hour)
	other.Metadata.Namespace = "web"
	f := newFakeKnitd(t, map[string]answer{
		"GET /v1/networkpolicies?namespace=default":           {200, ps},
		"GET /v1/networkpolicies?namespace=empty":             {200, []v1.NetworkPolicy{}},
		"GET /v1/networkpolicies":                             {200, []v1.NetworkPolicy{other, ps[1], ps[0]}},
		"GET /v1/networkpolicies/default/default-deny-all":    {200, ps[1]},
		"GET /v1/networkpolicies/default/nope":                notFound(`networkpolicies.networking.k8s.io "nope" not found in namespace "default"`),
		"GET /v1/networkpolicies/web/test-network-policy":     {200, other},
		"DELETE /v1/networkpolicies/default/default-deny-all": {200, map[string]string{"deleted": "default/default-deny-all"}},
		"DELETE /v1/networkpolicies/default/nope":             notFound("gone"),
		"DELETE /v1/services/default/backend-service":         {200, struct{}{}},
	})
	r := knit(t, f.socket, "", "get", "networkpolicies")
	want := `NAME                        POD-SELECTOR    AGE
allow-frontend-to-backend   app=backend     60s
default-deny-all            <none>          2m
micro-segmentation          tier=database   3m
`
	if r.code != 0 || r.stdout != want {
		t.Errorf("get networkpolicies: %d %q\n%s\nwant:\n%s", r.code, r.stderr, r.stdout, want)
	}
	r = knit(t, f.socket, "", "get", "netpol", "-A", "-o", "wide")
	want = `NAMESPACE   NAME                        POD-SELECTOR   AGE
default     allow-frontend-to-backend   app=backend    60s
default     default-deny-all            <none>         2m
web         test-network-policy         role=db        5d
`
	if r.code != 0 || r.stdout != want {
		t.Errorf("get netpol -A: %d %q\n%s\nwant:\n%s", r.code, r.stderr, r.stdout, want)
	}
	r = knit(t, f.socket, "", "get", "networkpolicy", "-n", "empty")
	if r.code != 0 || r.stdout != "" || r.stderr != "No resources found in empty namespace.\n" {
		t.Errorf("empty: %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = knit(t, f.socket, "", "get", "netpol", "default-deny-all", "nope")
	if r.code != 1 || !strings.HasPrefix(r.stdout, "NAME               POD-SELECTOR   AGE\ndefault-deny-all   <none>         2m\n") ||
		r.stderr != "Error from server (NotFound): networkpolicies.networking.k8s.io \"nope\" not found\n" {
		t.Errorf("one missing: %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = knit(t, f.socket, "", "get", "netpol", "-o", "name")
	if r.stdout != "networkpolicy.networking.k8s.io/allow-frontend-to-backend\nnetworkpolicy.networking.k8s.io/default-deny-all\nnetworkpolicy.networking.k8s.io/micro-segmentation\n" {
		t.Errorf("-o name: %q", r.stdout)
	}

	// -o yaml of one policy is the object, and applies again.
	r = knit(t, f.socket, "", "get", "networkpolicy.networking.k8s.io/test-network-policy", "-n", "web", "-o", "yaml")
	var one v1.NetworkPolicy
	if err := yaml.UnmarshalStrict([]byte(r.stdout), &one); err != nil || one.Metadata.Name != "test-network-policy" || one.Spec.Ingress[0].From[0].IPBlock.CIDR != "172.17.0.0/16" {
		t.Errorf("-o yaml: %v\n%s", err, r.stdout)
	}
	if objs, err := manifest.Parse("saved.yaml", []byte(r.stdout)); err != nil || objs[0].NetworkPolicy.Spec.Egress[0].Ports[0].Port.Int != 5978 {
		t.Errorf("-o yaml does not apply again: %v\n%s", err, r.stdout)
	}
	r = knit(t, f.socket, "", "get", "netpol", "-o", "json")
	var list struct {
		Kind  string
		Items []v1.NetworkPolicy
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || list.Kind != "List" || len(list.Items) != 3 {
		t.Errorf("-o json: %v\n%s", err, r.stdout)
	}

	// delete: by name, TYPE/NAME, and -f with a service and a policy.
	r = knit(t, f.socket, "", "delete", "netpol", "default-deny-all", "nope")
	if r.code != 1 || r.stdout != "networkpolicy.networking.k8s.io \"default-deny-all\" deleted\n" ||
		r.stderr != "Error from server (NotFound): networkpolicies.networking.k8s.io \"nope\" not found\n" {
		t.Errorf("delete netpol: %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = knit(t, f.socket, "", "delete", "networkpolicy/default-deny-all", "-o", "name")
	if r.code != 0 || r.stdout != "networkpolicy.networking.k8s.io/default-deny-all\n" {
		t.Errorf("delete -o name: %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = knit(t, f.socket, "", "delete", "-f", filepath.Join(seedDir, "backend-service.yaml"), "-f", filepath.Join(policyDir, "policy-default-deny-all.yaml"))
	if r.code != 0 || r.stdout != "service \"backend-service\" deleted\nnetworkpolicy.networking.k8s.io \"default-deny-all\" deleted\n" {
		t.Errorf("delete -f: %d %q %q", r.code, r.stdout, r.stderr)
	}
}

func TestDescribeNetworkPolicy(t *testing.T) {
	p := parsePolicy(t, docsPolicy, time.Hour)
	p.Metadata.Annotations = map[string]string{lastApplied: "{}", "owner": "ops"}
	var b bytes.Buffer
	describeNetworkPolicy(&b, &p)
	want := `Name:         test-network-policy
Namespace:    default
Created on:   ` + ago(time.Hour).Local().Format("2006-01-02 15:04:05 -0700 MST") + `
Labels:       <none>
Annotations:  owner: ops
Spec:
  PodSelector:     role=db
  Allowing ingress traffic:
    To Port: 6379/TCP
    From:
      IPBlock:
        CIDR: 172.17.0.0/16
        Except: 172.17.1.0/24
    From:
      NamespaceSelector: project=myproject
    From:
      PodSelector: role=frontend
  Allowing egress traffic:
    To Port: 5978/TCP
    To:
      IPBlock:
        CIDR: 10.0.0.0/24
        Except: 
  Policy Types: Ingress, Egress
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}

	b.Reset()
	deny := seedPolicies(t)[1]
	deny.Metadata.CreationTimestamp = time.Time{}
	deny.Metadata.Labels = map[string]string{"team": "a", "tier": "b"}
	describeNetworkPolicy(&b, &deny)
	want = `Name:         default-deny-all
Namespace:    default
Created on:   <unknown>
Labels:       team=a
              tier=b
Annotations:  <none>
Spec:
  PodSelector:     <none> (Allowing the specific traffic to all pods in this namespace)
  Allowing ingress traffic:
    <none> (Selected pods are isolated for ingress connectivity)
  Allowing egress traffic:
    <none> (Selected pods are isolated for egress connectivity)
  Policy Types: Ingress, Egress
`
	if b.String() != want {
		t.Errorf("default deny got:\n%s\nwant:\n%s", b.String(), want)
	}

	b.Reset()
	rules := parsePolicy(t, `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: rules, namespace: prod}
spec:
  podSelector:
    matchExpressions:
    - {key: app, operator: In, values: [db, cache]}
    - {key: legacy, operator: DoesNotExist}
  policyTypes: [Egress]
  ingress:
  - {}
  egress:
  - to:
    - namespaceSelector: {matchLabels: {env: prod}}
      podSelector: {matchLabels: {app: api}}
    ports:
    - {protocol: UDP, port: 32000, endPort: 32768}
    - {port: metrics}
    - {protocol: SCTP}
  - {}
`, 0)
	describeNetworkPolicy(&b, &rules)
	want = `Spec:
  PodSelector:     app in (cache,db),!legacy
  Not affecting ingress traffic
  Allowing egress traffic:
    To Port: 32000-32768/UDP
    To Port: metrics/TCP
    To Port: <any>/SCTP
    To:
      NamespaceSelector: env=prod
      PodSelector: app=api
    ----------
    To Port: <any> (traffic allowed to all ports)
    To: <any> (traffic not restricted by destination)
  Policy Types: Egress
`
	if _, spec, _ := strings.Cut(b.String(), "Annotations:  <none>\n"); spec != want {
		t.Errorf("rules got:\n%s\nwant:\n%s", b.String(), want)
	}

	f := newFakeKnitd(t, map[string]answer{
		"GET /v1/networkpolicies?namespace=prod":    {200, []v1.NetworkPolicy{rules, p}},
		"GET /v1/networkpolicies/prod/rules":        {200, rules},
		"GET /v1/networkpolicies/prod/missing":      notFound("no"),
		"GET /v1/networkpolicies?namespace=nothing": {200, []v1.NetworkPolicy{}},
	})
	r := knit(t, f.socket, "", "describe", "netpol", "rules", "missing", "-n", "prod")
	if r.code != 1 || !strings.HasPrefix(r.stdout, "Name:         rules\nNamespace:    prod\n") || r.stderr != "Error from server (NotFound): networkpolicies.networking.k8s.io \"missing\" not found\n" {
		t.Errorf("describe: %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = knit(t, f.socket, "", "describe", "networkpolicies", "-n", "prod")
	if r.code != 0 || strings.Count(r.stdout, "Name:") != 2 || !strings.Contains(r.stdout, "  Policy Types: Ingress, Egress\n\n\nName:         rules\n") {
		t.Errorf("describe all: %d %q\n%s", r.code, r.stderr, r.stdout)
	}
	r = knit(t, f.socket, "", "describe", "networkpolicy", "-n", "nothing")
	if r.code != 0 || r.stderr != "No resources found in nothing namespace.\n" {
		t.Errorf("describe none: %d %q %q", r.code, r.stdout, r.stderr)
	}
}
