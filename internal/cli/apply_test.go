package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/knit-net/knit/api/v1"
)

const seedDir = "../manifest/testdata/seed"

func appliedAll(req v1.ApplyRequest) v1.ApplyResult {
	var res v1.ApplyResult
	for i, s := range req.Services {
		action := v1.ApplyCreated
		if i == 1 {
			action = v1.ApplyConfigured
		}
		res.Objects = append(res.Objects, v1.AppliedObject{Kind: s.Kind, Namespace: s.Metadata.Namespace, Name: s.Metadata.Name, Action: action})
	}
	return res
}

func TestApplySeedDirectoryInOneRequest(t *testing.T) {
	// The answer is what knitd would say for the five seed services.
	var want v1.ApplyRequest
	for _, n := range []string{"backend-service", "external-api", "frontend-service", "load-balanced-service", "public-service"} {
		want.Services = append(want.Services, v1.Service{Kind: "Service", Metadata: v1.ObjectMeta{Name: n, Namespace: "staging"}})
	}
	f := newFakeKnitd(t, map[string]answer{"POST /v1/apply": {200, appliedAll(want)}})

	r := knit(t, f.socket, "", "apply", "-f", seedDir, "-n", "staging")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	wantOut := "service/backend-service created\nservice/external-api configured\nservice/frontend-service created\nservice/load-balanced-service created\nservice/public-service created\n"
	if r.stdout != wantOut {
		t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, wantOut)
	}
	reqs := f.requests()
	if len(reqs) != 1 || reqs[0].URI != "/v1/apply" {
		t.Fatalf("requests: %+v", reqs)
	}
	var got v1.ApplyRequest
	if err := json.Unmarshal(reqs[0].Body, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Services) != 5 || got.DryRun {
		t.Fatalf("request: %s", reqs[0].Body)
	}
	for _, s := range got.Services {
		if s.Metadata.Namespace != "staging" || s.APIVersion != "v1" || s.Kind != "Service" {
			t.Errorf("service %+v", s)
		}
	}
	if nodePort := got.Services[2].Spec.Ports[0].NodePort; got.Services[2].Metadata.Name != "frontend-service" || nodePort != 30080 {
		t.Errorf("frontend-service: %+v", got.Services[2])
	}
}

func TestApplyStdinDryRun(t *testing.T) {
	svc := "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: prod\nspec:\n  ports:\n  - port: 80\n"
	res := v1.ApplyResult{Objects: []v1.AppliedObject{{Kind: "Service", Namespace: "prod", Name: "web", Action: v1.ApplyUnchanged}}}
	f := newFakeKnitd(t, map[string]answer{"POST /v1/apply": {200, res}})
	r := knit(t, f.socket, svc, "apply", "-f", "-", "--dry-run")
	if r.code != 0 || r.stdout != "service/web unchanged (server dry run)\n" {
		t.Fatalf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	var got v1.ApplyRequest
	_ = json.Unmarshal(f.requests()[0].Body, &got)
	if !got.DryRun || got.Services[0].Metadata.Namespace != "prod" {
		t.Errorf("request %+v", got)
	}
	r = knit(t, f.socket, svc, "apply", "-f", "-", "-o", "json")
	if r.code != 0 || !strings.Contains(r.stdout, `"action": "unchanged"`) {
		t.Errorf("-o json: %d %q %q", r.code, r.stdout, r.stderr)
	}
}

// Client-side errors: exit 1, a message naming the object, nothing sent.
func TestApplyRefusesBeforeSending(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: ok}\nspec: {ports: [{port: 80}]}\n")
	foo := write("foo.yaml", "apiVersion: v1\nkind: Foo\nmetadata: {name: x}\n")
	typo := write("typo.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: t}\nspec: {portz: [{port: 80}]}\n")
	prod := write("prod.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: p, namespace: prod}\n")
	badPolicy := write("bad-policy.yaml", "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: bad}\nspec:\n  podSelector: {}\n  ingress:\n  - ports:\n    - {port: 80, endPort: 70}\n")

	f := newFakeKnitd(t, map[string]answer{})
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"apply", "-f", good, "-f", foo}, `resource mapping not found for name: "x" namespace: "" from "` + foo + `" document 1: no matches for kind "Foo" in version "v1"`},
		{[]string{"apply", "-f", good, "-f", typo}, `error validating "` + typo + `" document 1 (service/t): unknown field "spec.portz"`},
		{[]string{"apply", "-f", prod, "-n", "dev"}, `the namespace from the provided object "prod" does not match the namespace "dev". You must pass '--namespace=prod'`},
		{[]string{"apply", "-f", good, "-f", badPolicy}, `"` + badPolicy + `" document 1: The NetworkPolicy "bad" is invalid: spec.ingress[0].ports[0].endPort: Invalid value: 70: must be greater than or equal to port`},
		{[]string{"apply", "-f", badPolicy, "-n", "Bad_NS"}, `metadata.namespace: Invalid value: "Bad_NS"`},
		{[]string{"apply", "-f", good, "-f", good}, `both define service/ok in namespace "default"; keep one`},
		{[]string{"apply"}, "knit apply needs -f FILE"},
		{[]string{"apply", "-f", good, "--dry-run=maybe"}, "--dry-run=maybe: use server, client or none"},
		{[]string{"delete", "-f", foo}, `no matches for kind "Foo"`},
		{[]string{"delete", "-f", good, "svc", "x"}, "either -f or TYPE NAME"},
		{[]string{"delete", "pods", "x"}, `the server doesn't have a resource type "pods"; use services, networkpolicies or namespaces`},
		{[]string{"delete", "netpol"}, "give the networkpolicies to delete: knit delete networkpolicy NAME..., or -f FILE"},
		{[]string{"delete", "svc"}, "give the services to delete"},
	} {
		r := knit(t, f.socket, "", tc.args...)
		if r.code != 1 || !strings.Contains(r.stderr, tc.want) || r.stdout != "" {
			t.Errorf("knit %s: exit %d stdout %q stderr %q\nwant %q", strings.Join(tc.args, " "), r.code, r.stdout, r.stderr, tc.want)
		}
	}
	if reqs := f.requests(); len(reqs) != 0 {
		t.Errorf("knitd was called: %+v", reqs)
	}
}

func TestApplyServerError(t *testing.T) {
	f := newFakeKnitd(t, map[string]answer{"POST /v1/apply": {400, v1.Error{Code: v1.CodeInvalid, Message: `service "default/backend-service": spec.ports[0].nodePort: 30080 is taken by service "default/other"`}}})
	r := knit(t, f.socket, "", "apply", "-f", filepath.Join(seedDir, "frontend-service.yaml"))
	if r.code != 1 || r.stderr != "knit: service \"default/backend-service\": spec.ports[0].nodePort: 30080 is taken by service \"default/other\"\n" {
		t.Errorf("exit %d stderr %q", r.code, r.stderr)
	}
}

func TestDelete(t *testing.T) {
	f := newFakeKnitd(t, map[string]answer{
		"DELETE /v1/services/default/backend-service":  {200, struct{}{}},
		"DELETE /v1/services/default/frontend-service": notFound(`service "default/frontend-service" not found`),
		"DELETE /v1/services/default/public-service":   {200, struct{}{}},
		"DELETE /v1/services/web/a":                    {200, struct{}{}},
		"DELETE /v1/services/web/b":                    notFound("gone"),
	})
	dir := t.TempDir()
	for _, n := range []string{"backend-service", "frontend-service", "public-service"} {
		b, err := os.ReadFile(filepath.Join(seedDir, n+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, n+".yaml"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := knit(t, f.socket, "", "delete", "-f", dir)
	if r.code != 1 || r.stdout != "service \"backend-service\" deleted\nservice \"public-service\" deleted\n" ||
		r.stderr != "Error from server (NotFound): services \"frontend-service\" not found\n" {
		t.Errorf("delete -f: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	r = knit(t, f.socket, "", "delete", "svc", "a", "b", "-n", "web", "--ignore-not-found")
	if r.code != 0 || r.stdout != "service \"a\" deleted\n" || r.stderr != "" {
		t.Errorf("delete svc: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	r = knit(t, f.socket, "", "delete", "service/a", "services/b", "-n", "web")
	if r.code != 1 || r.stdout != "service \"a\" deleted\n" || r.stderr != "Error from server (NotFound): services \"b\" not found\n" {
		t.Errorf("delete TYPE/NAME: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
}
