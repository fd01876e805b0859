package manifest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/knit-net/knit/api/v1"
)

// The Service examples of seed 001, copied unchanged into testdata/seed.
func TestSeedServices(t *testing.T) {
	objs, err := Read([]string{"testdata/seed"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*v1.Service{}
	for _, o := range objs {
		if o.Service == nil || o.Kind != KindService || o.Namespace != "" {
			t.Fatalf("%s: got %+v", o.Source, o)
		}
		if o.Service.APIVersion != "v1" || o.Service.Kind != "Service" || o.Service.Metadata.Name != o.Name {
			t.Errorf("%s: type meta %q %q name %q", o.Source, o.Service.APIVersion, o.Service.Kind, o.Service.Metadata.Name)
		}
		byName[o.Name] = o.Service
	}
	if len(byName) != 5 {
		t.Fatalf("got %d services, want the seed's 5: %v", len(byName), byName)
	}
	be := byName["backend-service"]
	if be.Spec.Type != "ClusterIP" || be.Spec.Selector["app"] != "backend" || len(be.Spec.Ports) != 1 ||
		be.Spec.Ports[0].Port != 80 || be.Spec.Ports[0].TargetPort != (v1.IntOrString{Int: 8080}) {
		t.Errorf("backend-service: %+v", be.Spec)
	}
	if fe := byName["frontend-service"]; fe.Spec.Type != "NodePort" || fe.Spec.Ports[0].NodePort != 30080 {
		t.Errorf("frontend-service: %+v", fe.Spec)
	}
	if pub := byName["public-service"]; pub.Spec.Type != "LoadBalancer" {
		t.Errorf("public-service: %+v", pub.Spec)
	}
	if ext := byName["external-api"]; ext.Spec.Type != "ExternalName" || ext.Spec.ExternalName != "api.external.com" {
		t.Errorf("external-api: %+v", ext.Spec)
	}
	lb := byName["load-balanced-service"]
	if lb.Spec.SessionAffinity != "ClientIP" || lb.AffinityTimeout().Seconds() != 300 {
		t.Errorf("load-balanced-service: %+v", lb.Spec)
	}
}

func TestMultiDocumentAndJSON(t *testing.T) {
	yml := `# a leading comment document
---
apiVersion: v1
kind: Service
metadata:
  name: a
  namespace: prod
spec:
  ports:
  - name: http
    port: 80
    targetPort: http
---
# only a comment
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: b}
  spec: {ports: [{port: 53, protocol: UDP}]}
- apiVersion: v1
  kind: Service
  metadata: {name: c}
  spec: {clusterIP: None}
`
	objs, err := Parse("m.yaml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range objs {
		got = append(got, o.Source.String()+" "+o.Ref()+" "+o.Namespace)
	}
	want := []string{`"m.yaml" document 1 service/a prod`, `"m.yaml" document 2 item 1 service/b `, `"m.yaml" document 2 item 2 service/c `}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	if tp := objs[0].Service.Spec.Ports[0].TargetPort; !tp.IsStr || tp.Str != "http" {
		t.Errorf("targetPort by name: %+v", tp)
	}
	if !objs[2].Service.Headless() {
		t.Errorf("c is not headless: %+v", objs[2].Service.Spec)
	}

	js := `{"apiVersion":"v1","kind":"Service","metadata":{"name":"j1"},"spec":{"ports":[{"port":1}]}}
{"apiVersion":"v1","kind":"Service","metadata":{"name":"j2"},"spec":{"ports":[{"port":2}]}}`
	objs, err = Parse("m.json", []byte(js))
	if err != nil || len(objs) != 2 || objs[1].Name != "j2" || objs[1].Source.Doc != 2 {
		t.Fatalf("JSON stream: %v %+v", err, objs)
	}
}

// kubectl get svc -o yaml output (server fields, status) applies again.
func TestServerFieldsDropped(t *testing.T) {
	yml := `apiVersion: v1
kind: Service
metadata:
  name: backend
  namespace: default
  uid: 3f1c2a6e-1111-2222-3333-444455556666
  resourceVersion: "4711"
  generation: 2
  creationTimestamp: "2024-05-01T10:00:00Z"
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: "{}"
  managedFields:
  - manager: kubectl
    operation: Apply
spec:
  clusterIP: 10.96.0.10
  clusterIPs: [10.96.0.10]
  ipFamilies: [IPv4]
  ipFamilyPolicy: SingleStack
  internalTrafficPolicy: Cluster
  ports:
  - port: 80
    protocol: TCP
    targetPort: 8080
  selector:
    app: backend
  sessionAffinity: None
  type: ClusterIP
status:
  loadBalancer:
    ingress:
    - ip: 192.0.2.1
      ipMode: VIP
`
	objs, err := Parse("saved.yaml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	s := objs[0].Service
	if s.Metadata.UID != "" || s.Metadata.Generation != 0 || !s.Metadata.CreationTimestamp.IsZero() || len(s.Status.LoadBalancer.Ingress) != 0 {
		t.Errorf("server fields kept: %+v", s)
	}
	if s.Spec.ClusterIP != "10.96.0.10" || s.Spec.IPFamilyPolicy != "SingleStack" || s.Metadata.Annotations == nil {
		t.Errorf("spec lost: %+v", s)
	}
}

func TestErrors(t *testing.T) {
	svc := "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n"
	for _, tc := range []struct {
		name, doc string
		want      []string
	}{
		{"unknown kind", "apiVersion: v1\nkind: Foo\nmetadata:\n  name: x\n",
			[]string{`resource mapping not found for name: "x" namespace: "" from "f.yaml" document 1: no matches for kind "Foo" in version "v1"`}},
		{"known kind, other version", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n  namespace: ns1\n",
			[]string{`name: "d" namespace: "ns1"`, `no matches for kind "Deployment" in version "apps/v1"`}},
		{"Service in the wrong group", "apiVersion: networking.k8s.io/v1\nkind: Service\nmetadata:\n  name: x\n",
			[]string{`no matches for kind "Service" in version "networking.k8s.io/v1"`}},
		{"no apiVersion and kind", "metadata:\n  name: x\n",
			[]string{`error validating "f.yaml" document 1: error validating data: [apiVersion not set, kind not set]`}},
		{"typo", svc + "spec:\n  portz:\n  - port: 80\n",
			[]string{`error validating "f.yaml" document 1 (service/web): unknown field "spec.portz" (a Service in version v1 has no such field; check the spelling)`}},
		{"typo in a port", svc + "spec:\n  ports:\n  - port: 80\n    targetport: 8080\n",
			[]string{`unknown field "spec.ports[0].targetport"`}},
		{"wrong case", svc + "Spec:\n  ports:\n  - port: 80\n", []string{`unknown field "Spec"`}},
		{"duplicate key", svc + "spec:\n  type: ClusterIP\n  type: NodePort\n", []string{`"f.yaml" document 1`, `line 7`, `already set`}},
		{"wrong type", svc + "spec:\n  ports:\n  - port: eighty\n", []string{`error validating "f.yaml" document 1 (service/web): Service in version "v1" cannot be handled as a Service`, "spec.ports.port"}},
		{"unsupported by knit", svc + "spec:\n  externalIPs: [192.0.2.7]\n  healthCheckNodePort: 30001\n",
			[]string{`error validating "f.yaml" document 1 (service/web): knit does not support the Kubernetes Service fields "spec.externalIPs", "spec.healthCheckNodePort"; remove them`}},
		{"unsupported metadata", "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  ownerReferences:\n  - apiVersion: v1\n    kind: Pod\n    name: p\n    uid: u\n",
			[]string{`(service/web): knit does not support the Kubernetes Service field "metadata.ownerReferences"; remove it`}},
		{"no name", "apiVersion: v1\nkind: Service\nspec:\n  ports:\n  - port: 80\n", []string{`"f.yaml" document 1: Service has no metadata.name`}},
		{"bad yaml", "apiVersion: v1\nkind: Service\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: x\n   bad: indent\n",
			[]string{`error parsing "f.yaml" document 2`, "line 8"}},
		{"nested list", "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: List\n  items: []\n", []string{`"f.yaml" document 1 item 1: no matches for kind "List"`}},
		{"JSON array", `[{"apiVersion":"v1"}]`, []string{"JSON array", `"kind": "List"`}},
		{"scalar", "just words\n", []string{`error validating "f.yaml" document 1: not a Kubernetes object`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(tc.doc))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

// Every bad document is reported, with the numbering of the file.
func TestAllErrorsReported(t *testing.T) {
	doc := "apiVersion: v1\nkind: Service\nmetadata: {name: ok}\n---\napiVersion: v1\nkind: Foo\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: b}\nspec: {portz: []}\n"
	objs, err := Parse("f.yaml", []byte(doc))
	if err == nil || !strings.Contains(err.Error(), `"f.yaml" document 2`) || !strings.Contains(err.Error(), `"f.yaml" document 3 (service/b): unknown field "spec.portz"`) {
		t.Fatalf("err = %v", err)
	}
	if len(objs) != 1 {
		t.Errorf("objs = %+v", objs)
	}
}

// The NetworkPolicy examples of seed 001, copied unchanged into
// testdata/policies.
func TestSeedNetworkPolicies(t *testing.T) {
	objs, err := Read([]string{"testdata/policies"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*v1.NetworkPolicy{}
	for _, o := range objs {
		p := o.NetworkPolicy
		if p == nil || o.Service != nil || o.Kind != KindNetworkPolicy || o.APIVersion != NetworkingAPIVersion || o.Namespace != "" {
			t.Fatalf("%s: got %+v", o.Source, o)
		}
		if p.APIVersion != "networking.k8s.io/v1" || p.Kind != "NetworkPolicy" || p.Metadata.Name != o.Name {
			t.Errorf("%s: type meta %q %q name %q", o.Source, p.APIVersion, p.Kind, p.Metadata.Name)
		}
		if err := p.Validate(); err != nil {
			t.Errorf("%s: %v", o.Source, err)
		}
		byName[o.Name] = p
	}
	if len(byName) != 4 {
		t.Fatalf("got %d policies, want the seed's 4: %v", len(byName), byName)
	}
	deny := byName["default-deny-all"]
	if !deny.Spec.PodSelector.Empty() || len(deny.Spec.Ingress)+len(deny.Spec.Egress) != 0 || strings.Join(deny.Spec.PolicyTypes, ",") != "Ingress,Egress" {
		t.Errorf("default-deny-all: %+v", deny.Spec)
	}
	for name, want := range map[string]struct {
		selector, from string
		ports          []int32
	}{
		"allow-frontend-to-backend": {"app=backend", "app=frontend", []int32{8080}},
		"allow-external-web":        {"app=web", "", []int32{80, 443}},
		"micro-segmentation":        {"tier=database", "tier=application", []int32{5432}},
	} {
		p := byName[name]
		if p == nil || len(p.Spec.Ingress) != 1 || strings.Join(p.Spec.PolicyTypes, ",") != "Ingress" {
			t.Errorf("%s: %+v", name, p)
			continue
		}
		if got := selectorString(&p.Spec.PodSelector); got != want.selector {
			t.Errorf("%s: podSelector %q, want %q", name, got, want.selector)
		}
		r := p.Spec.Ingress[0]
		var from string
		if len(r.From) == 1 && r.From[0].PodSelector != nil && r.From[0].NamespaceSelector == nil && r.From[0].IPBlock == nil {
			from = selectorString(r.From[0].PodSelector)
		} else if len(r.From) != 0 {
			from = fmt.Sprintf("%+v", r.From)
		}
		if from != want.from {
			t.Errorf("%s: from %q, want %q", name, from, want.from)
		}
		var ports []int32
		for _, pp := range r.Ports {
			if pp.Protocol != "TCP" || pp.Port == nil || pp.Port.IsStr || pp.EndPort != nil {
				t.Errorf("%s: port %+v", name, pp)
				continue
			}
			ports = append(ports, pp.Port.Int)
		}
		if fmt.Sprint(ports) != fmt.Sprint(want.ports) {
			t.Errorf("%s: ports %v, want %v", name, ports, want.ports)
		}
	}
}

func selectorString(s *v1.LabelSelector) string {
	if len(s.MatchExpressions) > 0 {
		return fmt.Sprintf("%+v", *s)
	}
	var kv []string
	for k, v := range s.MatchLabels {
		kv = append(kv, k+"="+v)
	}
	slices.Sort(kv)
	return strings.Join(kv, ",")
}

// Seeds 000 and 004 hold NetworkPolicies whose indentation the text
// extraction flattened (testdata/flattened, copied verbatim). Flattened,
// they are no NetworkPolicy any more (metadata.name became a top-level
// "name"), and knit says which fields are wrong rather than applying
// something else; testdata/restored holds them re-indented, which apply.
func TestSeedNetworkPoliciesFlattened(t *testing.T) {
	for file, want := range map[string][]string{
		"testdata/flattened/000-deny-cross-ns.yaml": {`error validating "testdata/flattened/000-deny-cross-ns.yaml" document 1: unknown field "app"`, `unknown field "name" (a NetworkPolicy in version networking.k8s.io/v1 has no such field; check the spelling)`, `unknown field "podSelector"`},
		// Flattening repeats matchLabels and app at the top level.
		"testdata/flattened/004-allow-frontend-to-api.yaml": {`error parsing "testdata/flattened/004-allow-frontend-to-api.yaml" document 1`, `line 13`, `"matchLabels" already set in map`},
	} {
		if _, err := Read([]string{file}, Options{}); err == nil || !containsAll(err.Error(), want) {
			t.Errorf("%s: %v\nwant %q", file, err, want)
		}
	}
	objs, err := Read([]string{"testdata/restored"}, Options{})
	if err != nil || len(objs) != 2 {
		t.Fatalf("restored: %v %+v", err, objs)
	}
	deny, api := objs[0].NetworkPolicy, objs[1].NetworkPolicy
	if deny.Metadata.Name != "deny-cross-ns" || !deny.Spec.PodSelector.Empty() || selectorString(deny.Spec.Ingress[0].From[0].PodSelector) != "app=frontend" {
		t.Errorf("deny-cross-ns: %+v", deny)
	}
	if api.Metadata.Name != "allow-frontend-to-api" || objs[1].Namespace != "production" || selectorString(&api.Spec.PodSelector) != "app=api" ||
		api.Spec.Ingress[0].Ports[0].Port.Int != 8080 || len(api.Spec.PolicyTypes) != 0 {
		t.Errorf("allow-frontend-to-api: %+v", api)
	}
	for _, o := range objs {
		if err := o.NetworkPolicy.Validate(); err != nil {
			t.Error(err)
		}
	}
	if strings.Join(api.Spec.PolicyTypes, ",") != "Ingress" {
		t.Errorf("defaulted policyTypes %q", api.Spec.PolicyTypes)
	}
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

func TestNetworkPolicyDecode(t *testing.T) {
	// Everything knit's type has, as kubectl get -o yaml writes it.
	yml := `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: db
  namespace: prod
  uid: 3f1c2a6e-1111-2222-3333-444455556666
  resourceVersion: "4711"
  generation: 3
  creationTimestamp: "2024-05-01T10:00:00Z"
  labels: {team: a}
  annotations: {note: x}
  managedFields:
  - manager: kubectl
    operation: Apply
spec:
  podSelector:
    matchExpressions:
    - {key: app, operator: In, values: [db, cache]}
  policyTypes: [Ingress, Egress]
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {env: prod}}
      podSelector: {matchLabels: {app: api}}
    - ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}
    ports:
    - {protocol: UDP, port: 32000, endPort: 32768}
    - {port: metrics}
  egress:
  - to:
    - namespaceSelector: {}
    ports:
    - {protocol: UDP, port: 53}
`
	objs, err := Parse("np.yaml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	p := objs[0].NetworkPolicy
	m := p.Metadata
	if m.UID != "" || m.Generation != 0 || !m.CreationTimestamp.IsZero() || m.Labels["team"] != "a" || m.Annotations["note"] != "x" || objs[0].Namespace != "prod" {
		t.Errorf("metadata %+v", m)
	}
	e := p.Spec.PodSelector.MatchExpressions
	if len(e) != 1 || e[0].Key != "app" || e[0].Operator != "In" || strings.Join(e[0].Values, ",") != "db,cache" {
		t.Errorf("podSelector %+v", p.Spec.PodSelector)
	}
	in := p.Spec.Ingress[0]
	if in.From[0].NamespaceSelector.MatchLabels["env"] != "prod" || in.From[0].PodSelector.MatchLabels["app"] != "api" ||
		in.From[1].IPBlock.CIDR != "10.0.0.0/8" || in.From[1].IPBlock.Except[0] != "10.1.0.0/16" {
		t.Errorf("from %+v", in.From)
	}
	if pp := in.Ports[0]; pp.Protocol != "UDP" || pp.Port.Int != 32000 || *pp.EndPort != 32768 {
		t.Errorf("port range %+v", pp)
	}
	if pp := in.Ports[1]; pp.Protocol != "" || !pp.Port.IsStr || pp.Port.Str != "metrics" {
		t.Errorf("named port %+v", pp)
	}
	if to := p.Spec.Egress[0].To[0]; to.NamespaceSelector == nil || !to.NamespaceSelector.Empty() || to.PodSelector != nil || p.Spec.Egress[0].Ports[0].Port.Int != 53 {
		t.Errorf("egress %+v", p.Spec.Egress)
	}
	if err := p.Validate(); err != nil {
		t.Error(err)
	}

	// A NetworkPolicyList (kubectl get netpol -o yaml writes kind List).
	list := "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicyList\nitems:\n- apiVersion: networking.k8s.io/v1\n  kind: NetworkPolicy\n  metadata: {name: a}\n  spec: {podSelector: {}}\n"
	if objs, err := Parse("l.yaml", []byte(list)); err != nil || len(objs) != 1 || objs[0].NetworkPolicy.Metadata.Name != "a" || objs[0].Source.Item != 1 {
		t.Errorf("NetworkPolicyList: %v %+v", err, objs)
	}
	// SetNamespace reaches the policy.
	if err := SetNamespace(objs, "dev", false); err != nil || p.Metadata.Namespace != "prod" {
		t.Errorf("SetNamespace: %v %q", err, p.Metadata.Namespace)
	}
	objs, _ = Parse("np.yaml", []byte("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: a}\n"))
	if err := SetNamespace(objs, "dev", true); err != nil || objs[0].NetworkPolicy.Metadata.Namespace != "dev" {
		t.Errorf("SetNamespace -n dev: %v %+v", err, objs[0].NetworkPolicy.Metadata)
	}
}

func TestNetworkPolicyErrors(t *testing.T) {
	np := "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: p\n"
	for _, tc := range []struct {
		name, doc string
		want      []string
	}{
		{"typo", np + "spec: {podSelecter: {}}\n",
			[]string{`error validating "f.yaml" document 1 (networkpolicy/p): unknown field "spec.podSelecter" (a NetworkPolicy in version networking.k8s.io/v1 has no such field; check the spelling)`}},
		{"typo in a peer", np + "spec:\n  ingress:\n  - from:\n    - ipblock: {cidr: 10.0.0.0/8}\n",
			[]string{`unknown field "spec.ingress[0].from[0].ipblock"`}},
		{"wrong type", np + "spec:\n  ingress:\n  - ports:\n    - endPort: high\n",
			[]string{`error validating "f.yaml" document 1 (networkpolicy/p): NetworkPolicy in version "networking.k8s.io/v1" cannot be handled as a NetworkPolicy`}},
		{"unsupported metadata", np + "  finalizers: [x]\n",
			[]string{`error validating "f.yaml" document 1 (networkpolicy/p): knit does not support the Kubernetes NetworkPolicy field "metadata.finalizers"; remove it`}},
		{"unsupported metadata fields", np + "  finalizers: [x]\n  generateName: p-\n",
			[]string{`knit does not support the Kubernetes NetworkPolicy fields "metadata.generateName", "metadata.finalizers"; remove them`}},
		{"no name", "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nspec: {}\n", []string{`"f.yaml" document 1: NetworkPolicy has no metadata.name; give it one`}},
		{"wrong group", "apiVersion: v1\nkind: NetworkPolicy\nmetadata: {name: p}\n",
			[]string{`no matches for kind "NetworkPolicy" in version "v1"; knit knows kind Service in version v1 and kind NetworkPolicy in version networking.k8s.io/v1`}},
		{"no kind", "apiVersion: networking.k8s.io/v1\nmetadata: {name: p}\n", []string{`[kind not set]`, `a NetworkPolicy with "apiVersion: networking.k8s.io/v1" and "kind: NetworkPolicy"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(tc.doc))
			if err == nil || !containsAll(err.Error(), tc.want) {
				t.Errorf("error %v\ndoes not contain %q", err, tc.want)
			}
		})
	}
}

func TestReadDirStdinAndFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	svc := func(name string) string {
		return "apiVersion: v1\nkind: Service\nmetadata:\n  name: " + name + "\nspec:\n  ports:\n  - port: 80\n"
	}
	write("b.yaml", svc("b"))
	write("a.yml", svc("a1")+"---\n"+svc("a2"))
	write("c.json", `{"apiVersion":"v1","kind":"Service","metadata":{"name":"c"}}`)
	write("README.md", "not a manifest")
	write("empty/only-comments.yaml", "# nothing here\n---\n")
	write("sub/d.yaml", svc("d"))

	names := func(objs []Object) string {
		var s []string
		for _, o := range objs {
			s = append(s, o.Name)
		}
		return strings.Join(s, ",")
	}
	objs, err := Read([]string{dir}, Options{})
	if err != nil || names(objs) != "a1,a2,b,c" {
		t.Fatalf("dir: %q %v", names(objs), err)
	}
	if objs[1].Source.File != filepath.Join(dir, "a.yml") || objs[1].Source.Doc != 2 {
		t.Errorf("source %+v", objs[1].Source)
	}
	objs, err = Read([]string{dir}, Options{Recursive: true})
	if err != nil || names(objs) != "a1,a2,b,c,d" {
		t.Fatalf("dir -R: %q %v", names(objs), err)
	}
	objs, err = Read([]string{filepath.Join(dir, "b.yaml"), "-"}, Options{Stdin: strings.NewReader(svc("in"))})
	if err != nil || names(objs) != "b,in" || objs[1].Source.File != Stdin {
		t.Fatalf("file and stdin: %q %v %+v", names(objs), err, objs)
	}

	for _, tc := range []struct {
		paths []string
		want  string
	}{
		{nil, "no manifest given"},
		{[]string{filepath.Join(dir, "nope.yaml")}, "no such file"},
		{[]string{filepath.Join(dir, "empty")}, "no objects passed"},
		{[]string{filepath.Join(dir, "README.md")}, "not a Kubernetes object"},
		{[]string{"https://example.com/x.yaml"}, "not URLs"},
		{[]string{t.TempDir()}, "has no .yaml, .yml or .json files"},
	} {
		if _, err := Read(tc.paths, Options{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Read(%q) = %v, want %q", tc.paths, err, tc.want)
		}
	}
}

func TestSetNamespace(t *testing.T) {
	parse := func() []Object {
		objs, err := Parse("n.yaml", []byte("apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: b, namespace: prod}\n"))
		if err != nil {
			t.Fatal(err)
		}
		return objs
	}
	objs := parse()
	if err := SetNamespace(objs, "default", false); err != nil {
		t.Fatal(err)
	}
	if objs[0].Service.Metadata.Namespace != "default" || objs[1].Service.Metadata.Namespace != "prod" {
		t.Errorf("namespaces %q %q", objs[0].Namespace, objs[1].Namespace)
	}
	objs = parse()
	if err := SetNamespace(objs, "prod", true); err != nil || objs[0].Namespace != "prod" {
		t.Errorf("-n prod: %v %q", err, objs[0].Namespace)
	}
	err := SetNamespace(parse(), "dev", true)
	want := `"n.yaml" document 2 (service/b): the namespace from the provided object "prod" does not match the namespace "dev". You must pass '--namespace=prod'`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("conflict: %v", err)
	}
}

func TestCheckDuplicates(t *testing.T) {
	objs, err := Parse("d.yaml", []byte("apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: x}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: default}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := SetNamespace(objs, "default", false); err != nil {
		t.Fatal(err)
	}
	err = CheckDuplicates(objs)
	if err == nil || !strings.Contains(err.Error(), `"d.yaml" document 1 and "d.yaml" document 3 both define service/a in namespace "default"`) {
		t.Errorf("err = %v", err)
	}
	if err := CheckDuplicates(objs[:2]); err != nil {
		t.Errorf("different namespaces: %v", err)
	}
}
